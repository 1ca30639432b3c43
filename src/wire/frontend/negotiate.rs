//! The first bytes of a connection: the startup packet, and before it an
//! SSLRequest (answered with TLS when infrasql has a certificate) or a
//! GSSENCRequest (always declined). A CancelRequest ends the connection
//! here.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::packet::{packet_kind, packet_len, PacketKind};
use crate::engine::errors;
use crate::engine::report::Report;
use crate::wire::protocol::encode_error;
use crate::wire::stream::{BoxRead, BoxWrite};

/// How a connection opened.
pub(super) enum Opening {
    /// A StartupMessage (or one of another protocol version, which the
    /// caller refuses), over TLS if the client asked for it.
    Startup(ClientConn, Vec<u8>),
    /// A CancelRequest: the whole packet.
    Cancel(Vec<u8>),
    /// A malformed packet, already answered with an error.
    Refused,
}

/// Read packets until the startup packet, switching to TLS on the way if
/// the client asks and infrasql can. With `tls_required`, a startup packet
/// that arrives in plaintext is refused (28000) before any credential is
/// exchanged; a CancelRequest still goes through (it carries no secret the
/// client has not already sent in the clear, and PostgreSQL takes it too).
pub(super) async fn negotiate(
    tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
    tls_required: bool,
) -> std::io::Result<Opening> {
    let mut conn = ClientConn::Plain(tcp);
    let mut tls_done = false;
    loop {
        let packet = match read_startup_packet(&mut conn).await {
            Ok(p) => p,
            Err(StartupError::Io(e)) => return Err(e),
            Err(StartupError::Invalid(msg)) => {
                conn.fatal(Report::fatal(errors::PROTOCOL_VIOLATION, msg))
                    .await;
                return Ok(Opening::Refused);
            }
        };
        // packet_len guarantees the code is there.
        match packet_kind(&packet).unwrap_or(PacketKind::Startup) {
            PacketKind::SslRequest if !tls_done => match (tls, conn) {
                (Some(acceptor), ClientConn::Plain(mut tcp)) => {
                    tcp.write_all(b"S").await?;
                    let tls = acceptor.accept(tcp).await?;
                    conn = ClientConn::Tls(Box::new(tls));
                    tls_done = true;
                }
                (_, mut c) => {
                    c.write_all(b"N").await?;
                    conn = c;
                }
            },
            PacketKind::GssEncRequest if !tls_done => conn.write_all(b"N").await?,
            PacketKind::CancelRequest => return Ok(Opening::Cancel(packet)),
            _ if tls_required && matches!(conn, ClientConn::Plain(_)) => {
                conn.fatal(
                    Report::fatal(errors::LOGIN_REFUSED, "this server requires TLS")
                        .with_detail("The client connected without TLS (SSL), and infrasql runs with --tls-required.")
                        .with_hint("Connect with sslmode=require (or verify-full with the server's CA)."),
                )
                .await;
                return Ok(Opening::Refused);
            }
            _ => return Ok(Opening::Startup(conn, packet)),
        }
    }
}

enum StartupError {
    Io(std::io::Error),
    Invalid(String),
}

async fn read_startup_packet(conn: &mut ClientConn) -> Result<Vec<u8>, StartupError> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).await.map_err(StartupError::Io)?;
    let n = packet_len(len).map_err(StartupError::Invalid)?;
    let mut packet = vec![0u8; n];
    packet[..4].copy_from_slice(&len);
    conn.read_exact(&mut packet[4..])
        .await
        .map_err(StartupError::Io)?;
    Ok(packet)
}

/// The client's connection, plain or TLS, until the session splits it.
pub(super) enum ClientConn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ClientConn {
    async fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        match self {
            ClientConn::Plain(s) => s.read_exact(buf).await.map(drop),
            ClientConn::Tls(s) => s.read_exact(buf).await.map(drop),
        }
    }
    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            ClientConn::Plain(s) => s.write_all(buf).await,
            ClientConn::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }
    /// Refuse the connection with `r`; the caller then drops it.
    pub(super) async fn fatal(&mut self, r: Report) {
        let mut b = bytes::BytesMut::new();
        encode_error(&r, &mut b);
        let _ = self.write_all(&b).await;
    }
    pub(super) fn into_split(self) -> (BoxRead, BoxWrite) {
        match self {
            ClientConn::Plain(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            ClientConn::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (Box::new(r) as BoxRead, Box::new(w) as BoxWrite)
            }
        }
    }
}
