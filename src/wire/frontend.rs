//! The client side: accept, then each connection's startup (negotiation,
//! checks of the startup packet, the authentication relay), then the
//! session. Cancel requests are forwarded to the backend.
//!
//! - `negotiate`: SSLRequest/TLS, GSSENCRequest, the startup packet.
//! - `auth`: the SCRAM relay up to the first ReadyForQuery.
//! - `mode`: infrasql's own connection mode (plan-only), read from and
//!   removed from the startup packet.
//!
//! Authentication is relayed: the backend PostgreSQL runs SCRAM-SHA-256
//! against its own roles and infrasql passes the exchange through, so no
//! password or verifier ever lives in infrasql.

mod auth;
pub mod mode;
mod negotiate;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pgwire::messages::startup::Startup;
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use super::backend;
use super::cancel::{CancelGuard, CancelRegistry};
use super::session::{self, SessionParts};
use crate::config::AuthMode;
use crate::engine::errors;
use crate::engine::hook::CommitHook;
use crate::engine::report::Report;
use crate::store::BackendAddr;
use negotiate::{negotiate, Opening};

/// How long a client may take from connect to ReadyForQuery
/// (PostgreSQL's authentication_timeout default).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What every session on this listener shares.
pub struct Frontend {
    pub backend: BackendAddr,
    pub auth: AuthMode,
    pub tls: Option<TlsAcceptor>,
    /// `--tls-required`: a client that did not switch to TLS is refused.
    pub tls_required: bool,
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
        let parts = SessionParts {
            shutdown,
            client_addr: Some(peer.ip().to_canonical().to_string()),
            ..parts
        };
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
    ) -> std::io::Result<Option<(SessionParts, CancelGuard)>> {
        let (mut conn, packet) = match negotiate(tcp, self.tls.as_ref(), self.tls_required).await? {
            Opening::Startup(conn, packet) => (conn, packet),
            Opening::Cancel(packet) => {
                self.cancel(&packet).await;
                return Ok(None);
            }
            Opening::Refused => return Ok(None),
        };
        let (mode, packet) = match mode::take_mode(&packet) {
            Ok(taken) => taken,
            Err(message) => {
                conn.fatal(Report::fatal(errors::BAD_SETTING_VALUE, message))
                    .await;
                return Ok(None);
            }
        };
        let user = match self.check_startup(&packet) {
            Ok(user) => user,
            Err(report) => {
                conn.fatal(report).await;
                return Ok(None);
            }
        };
        let (b_in, mut b_out) = match backend::connect(&self.backend).await {
            Ok(halves) => halves,
            Err(e) => {
                tracing::warn!("cannot reach backend {}: {e}", self.backend);
                conn.fatal(
                    Report::fatal(errors::BACKEND_UNAVAILABLE, format!("the backend PostgreSQL is not available: {e}"))
                        .with_hint("infrasql restarts its embedded PostgreSQL when it stops; try again shortly."),
                )
                .await;
                return Ok(None);
            }
        };
        b_out.write_all(&packet).await?;
        b_out.flush().await?;
        self.relay_auth(conn, b_in, b_out, &user, mode).await
    }

    /// What infrasql refuses before the backend sees the startup packet: a
    /// protocol other than 3.x, a malformed packet, no user, a role
    /// reserved to the engine, a replication connection. `Ok` is the user.
    fn check_startup(&self, packet: &[u8]) -> Result<String, Report> {
        let major = (&packet[4..6]).get_u16();
        let minor = (&packet[6..8]).get_u16();
        if major != 3 {
            return Err(Report::fatal(
                errors::UNSUPPORTED_CONNECTION,
                format!("unsupported frontend protocol {major}.{minor}: infrasql supports 3.0 and later minor versions"),
            ));
        }
        let mut pb = BytesMut::from(packet);
        let Ok(Some(startup)) =
            Startup::decode(&mut pb, &DecodeContext::new(ProtocolVersion::PROTOCOL3_0))
        else {
            return Err(Report::fatal(
                errors::PROTOCOL_VIOLATION,
                "invalid startup packet layout",
            ));
        };
        let Some(user) = startup.parameters.get("user").cloned() else {
            return Err(Report::fatal(
                errors::LOGIN_REFUSED,
                "no PostgreSQL user name specified in startup packet",
            ));
        };
        if self.reserved_roles.iter().any(|r| r == &user) {
            return Err(Report::fatal(
                errors::LOGIN_REFUSED,
                format!("role \"{user}\" cannot log in through infrasql"),
            )
            .with_detail(
                "This role belongs to infrasql's engine; its writes bypass change capture.",
            ));
        }
        if startup
            .parameters
            .get("replication")
            .is_some_and(|v| v != "false" && v != "0" && v != "off")
        {
            return Err(Report::fatal(
                errors::UNSUPPORTED_CONNECTION,
                "replication connections are not supported by infrasql",
            ));
        }
        Ok(user)
    }

    async fn cancel(&self, packet: &[u8]) {
        if packet.len() < 16 {
            return;
        }
        let pid = (&packet[8..12]).get_i32();
        let secret = (&packet[12..16]).get_i32();
        // Unknown keys are ignored silently, as PostgreSQL does.
        if let Some(key) = self.cancels.lookup(pid, secret) {
            // Stops a COMMIT's apply; the backend's cancel below stops a
            // running statement (each is a no-op when the other applies).
            key.apply.raise();
            if let Err(e) = backend::cancel(&key.addr, key.pid, &key.secret).await {
                tracing::warn!("cancel request to backend failed: {e}");
            }
        }
    }
}
