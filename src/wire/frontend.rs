//! The client side: accept, TLS, startup, authentication, then the session.
//!
//! Authentication is relayed: the backend PostgreSQL runs SCRAM-SHA-256
//! against its own roles and infrasql passes the exchange through, so no
//! password or verifier ever lives in infrasql. Under `--auth scram` the
//! relay insists that the backend really asked for SCRAM; a backend that lets
//! a user in without it is refused rather than trusted.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pgwire::messages::startup::Startup;
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use super::backend::BackendAddr;
use super::cancel::{BackendKey, CancelRegistry};
use super::protocol::{
    encode_backend_key, next_frame, Report, TxStatus, CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE,
    MAX_STARTUP_PACKET, SSL_REQUEST_CODE,
};
use super::session::{self, SessionParts};
use super::stream::{BoxRead, BoxWrite};
use crate::config::AuthMode;
use crate::engine::hook::CommitHook;

/// How long a client may take from connect to ReadyForQuery
/// (PostgreSQL's authentication_timeout default).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// SASL messages are small; this bounds what an unauthenticated client can make us buffer.
const MAX_AUTH_MESSAGE: usize = 64 * 1024;

/// What every session on this listener shares.
pub struct Frontend {
    pub backend: BackendAddr,
    pub auth: AuthMode,
    pub tls: Option<TlsAcceptor>,
    pub hook: Arc<dyn CommitHook>,
    /// Roles that may not log in through the proxy (the engine's own).
    pub reserved_roles: Vec<String>,
    pub cancels: CancelRegistry,
}

/// Load a rustls acceptor from PEM files.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {}", cert.display()));
    }
    let key_der = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| format!("invalid private key {}: {e}", key.display()))?
        .ok_or_else(|| format!("no private key found in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("certificate and key do not match: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Frontend {
    /// Accept clients until `shutdown` turns true, then wait (up to `grace`)
    /// for sessions to finish what they are doing.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) {
        let mut sessions = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let fe = self.clone();
                        let sd = shutdown.clone();
                        sessions.spawn(async move { fe.connection(stream, peer, sd).await });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                _ = shutdown.changed() => break,
            }
        }
        drop(listener);
        let drain = async { while sessions.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!("sessions still open after {grace:?}; closing them");
            sessions.abort_all();
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        let started = tokio::time::timeout(STARTUP_TIMEOUT, self.startup(stream)).await;
        let parts = match started {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "startup failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "startup timed out");
                return;
            }
        };
        let (parts, _guard) = parts;
        let parts = SessionParts { shutdown, ..parts };
        match session::run(parts).await {
            Ok(()) | Err(session::SessionEnd::ClientClosed) => {}
            Err(e) => tracing::debug!(%peer, "session ended: {e}"),
        }
    }

    /// Everything up to the first ReadyForQuery. `None` when the connection
    /// was only a cancel request or was refused with an error already sent.
    async fn startup(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<Option<(SessionParts, super::cancel::CancelGuard)>> {
        let mut conn = ClientConn::Plain(tcp);
        let mut tls_done = false;
        let packet = loop {
            let packet = match read_startup_packet(&mut conn).await {
                Ok(p) => p,
                Err(StartupError::Io(e)) => return Err(e),
                Err(StartupError::Invalid(msg)) => {
                    conn.fatal(Report::fatal("08P01", msg)).await;
                    return Ok(None);
                }
            };
            let code = (&packet[4..8]).get_i32();
            match code {
                SSL_REQUEST_CODE if !tls_done => match (&self.tls, conn) {
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
                GSSENC_REQUEST_CODE if !tls_done => conn.write_all(b"N").await?,
                CANCEL_REQUEST_CODE => {
                    self.cancel(&packet).await;
                    return Ok(None);
                }
                _ => break packet,
            }
        };
        let major = (&packet[4..6]).get_u16();
        let minor = (&packet[6..8]).get_u16();
        if major != 3 {
            conn.fatal(
                Report::fatal(
                    "0A000",
                    format!("unsupported frontend protocol {major}.{minor}: infrasql supports 3.0 and later minor versions"),
                ),
            )
            .await;
            return Ok(None);
        }
        let mut pb = BytesMut::from(&packet[..]);
        let startup =
            match Startup::decode(&mut pb, &DecodeContext::new(ProtocolVersion::PROTOCOL3_0)) {
                Ok(Some(s)) => s,
                _ => {
                    conn.fatal(Report::fatal("08P01", "invalid startup packet layout"))
                        .await;
                    return Ok(None);
                }
            };
        let Some(user) = startup.parameters.get("user").cloned() else {
            conn.fatal(Report::fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet",
            ))
            .await;
            return Ok(None);
        };
        if self.reserved_roles.iter().any(|r| r == &user) {
            conn.fatal(
                Report::fatal(
                    "28000",
                    format!("role \"{user}\" cannot log in through infrasql"),
                )
                .with_detail(
                    "This role belongs to infrasql's engine; its writes bypass change capture.",
                ),
            )
            .await;
            return Ok(None);
        }
        if startup
            .parameters
            .get("replication")
            .is_some_and(|v| v != "false" && v != "0" && v != "off")
        {
            conn.fatal(Report::fatal(
                "0A000",
                "replication connections are not supported by infrasql",
            ))
            .await;
            return Ok(None);
        }

        let (mut b_in, mut b_out) = match self.backend.connect().await {
            Ok(halves) => halves,
            Err(e) => {
                tracing::warn!("cannot reach backend {}: {e}", self.backend);
                conn.fatal(
                    Report::fatal("57P03", format!("the backend PostgreSQL is not available: {e}"))
                        .with_hint("infrasql restarts its embedded PostgreSQL when it stops; try again shortly."),
                )
                .await;
                return Ok(None);
            }
        };
        b_out.write_all(&packet).await?;
        b_out.flush().await?;

        let (mut c_in, mut c_out) = conn.into_split();
        let mut cbuf = BytesMut::new();
        let mut bbuf = BytesMut::with_capacity(8192);
        let mut saw_sasl = false;
        let mut guard = None;
        loop {
            let f = read_frame(&mut b_in, &mut bbuf, usize::MAX >> 1).await?;
            match f.tag {
                b'R' => {
                    let code = if f.body().len() >= 4 {
                        (&f.body()[..4]).get_i32()
                    } else {
                        -1
                    };
                    match code {
                        0 => {
                            if self.auth == AuthMode::Scram && !saw_sasl {
                                let r = Report::fatal(
                                    "28000",
                                    format!("password authentication required for user \"{user}\""),
                                )
                                .with_detail("The backend PostgreSQL let this user in without SCRAM, and infrasql runs with --auth scram.")
                                .with_hint("Configure the backend's pg_hba.conf for scram-sha-256, or run infrasql with --auth trust on a loopback address.");
                                write_report(&mut c_out, r).await;
                                return Ok(None);
                            }
                            c_out.write_all(&f.bytes).await?;
                        }
                        10 | 11 => {
                            saw_sasl = true;
                            c_out.write_all(&f.bytes).await?;
                            c_out.flush().await?;
                            let reply = read_frame(&mut c_in, &mut cbuf, MAX_AUTH_MESSAGE).await?;
                            if reply.tag != b'p' {
                                return Ok(None);
                            }
                            b_out.write_all(&reply.bytes).await?;
                            b_out.flush().await?;
                        }
                        12 => c_out.write_all(&f.bytes).await?,
                        3 | 5 if self.auth == AuthMode::Trust => {
                            c_out.write_all(&f.bytes).await?;
                            c_out.flush().await?;
                            let reply = read_frame(&mut c_in, &mut cbuf, MAX_AUTH_MESSAGE).await?;
                            b_out.write_all(&reply.bytes).await?;
                            b_out.flush().await?;
                        }
                        other => {
                            let method = match other {
                                3 => "cleartext password",
                                5 => "MD5",
                                7 | 8 => "GSSAPI",
                                9 => "SSPI",
                                _ => "an unknown method",
                            };
                            let r = Report::fatal(
                                "28000",
                                format!("the backend asked user \"{user}\" for {method} authentication; infrasql accepts only SCRAM-SHA-256"),
                            )
                            .with_hint("Set password_encryption = scram-sha-256 and use scram-sha-256 in the backend's pg_hba.conf.");
                            write_report(&mut c_out, r).await;
                            return Ok(None);
                        }
                    }
                }
                b'K' => {
                    let body = f.body();
                    if body.len() < 8 {
                        return Ok(None);
                    }
                    let pid = (&body[..4]).get_i32();
                    let g = self.cancels.register(BackendKey {
                        addr: self.backend.clone(),
                        pid,
                        secret: body[4..].to_vec(),
                    });
                    let mut kb = BytesMut::new();
                    encode_backend_key(g.key.0, g.key.1, &mut kb);
                    c_out.write_all(&kb).await?;
                    guard = Some(g);
                }
                b'E' => {
                    // Wrong password (28P01), unknown database, too many
                    // connections: the backend's own words reach the client.
                    c_out.write_all(&f.bytes).await?;
                    c_out.flush().await?;
                    return Ok(None);
                }
                b'Z' => {
                    c_out.write_all(&f.bytes).await?;
                    c_out.flush().await?;
                    let status = f
                        .body()
                        .first()
                        .and_then(|b| TxStatus::from_byte(*b))
                        .unwrap_or(TxStatus::Idle);
                    let Some(guard) = guard else {
                        // Every PostgreSQL sends BackendKeyData; without it
                        // cancel would silently not work.
                        tracing::warn!("backend sent no BackendKeyData");
                        return Ok(None);
                    };
                    let (_tx, rx) = watch::channel(false);
                    return Ok(Some((
                        SessionParts {
                            client_in: c_in,
                            client_buf: cbuf,
                            client_out: c_out,
                            backend_in: b_in,
                            backend_buf: bbuf,
                            backend_out: b_out,
                            status,
                            hook: self.hook.clone(),
                            shutdown: rx,
                        },
                        guard,
                    )));
                }
                _ => c_out.write_all(&f.bytes).await?,
            }
        }
    }

    async fn cancel(&self, packet: &[u8]) {
        if packet.len() < 16 {
            return;
        }
        let pid = (&packet[8..12]).get_i32();
        let secret = (&packet[12..16]).get_i32();
        // Unknown keys are ignored silently, as PostgreSQL does.
        if let Some(key) = self.cancels.lookup(pid, secret) {
            if let Err(e) = key.addr.cancel(key.pid, &key.secret).await {
                tracing::warn!("cancel request to backend failed: {e}");
            }
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
    let len = i32::from_be_bytes(len);
    if len < 8 || len as usize > MAX_STARTUP_PACKET {
        return Err(StartupError::Invalid(format!(
            "invalid length of startup packet: {len}"
        )));
    }
    let mut packet = vec![0u8; len as usize];
    packet[..4].copy_from_slice(&len.to_be_bytes());
    conn.read_exact(&mut packet[4..])
        .await
        .map_err(StartupError::Io)?;
    Ok(packet)
}

async fn read_frame(
    r: &mut BoxRead,
    buf: &mut BytesMut,
    max: usize,
) -> std::io::Result<super::protocol::Frame> {
    loop {
        match next_frame(buf, max) {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
        if r.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn write_report(w: &mut BoxWrite, r: Report) {
    let mut b = BytesMut::new();
    r.encode_error(&mut b);
    let _ = w.write_all(&b).await;
    let _ = w.flush().await;
}

enum ClientConn {
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
    async fn fatal(&mut self, r: Report) {
        let mut b = BytesMut::new();
        r.encode_error(&mut b);
        let _ = self.write_all(&b).await;
    }
    fn into_split(self) -> (BoxRead, BoxWrite) {
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
