//! The client side: accept, then each connection's startup (negotiation,
//! checks of the startup packet, the authentication relay), then the
//! session. Cancel requests are forwarded to the backend.
//!
//! - `negotiate`: SSLRequest/TLS, GSSENCRequest, the startup packet.
//! - `auth`: the SCRAM relay up to the first ReadyForQuery.
//! - `mode`: infrasql's own connection mode (plan-only), read from and
//!   removed from the startup packet.
//! - `packet`: the startup-phase packets as bytes (pure: the fuzzer's target).
//!
//! Authentication is relayed: the backend PostgreSQL runs SCRAM-SHA-256
//! against its own roles and infrasql passes the exchange through, so no
//! password or verifier ever lives in infrasql.

mod auth;
pub mod mode;
mod negotiate;
pub mod packet;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use super::backend;
use super::cancel::{CancelGuard, CancelRegistry};
use super::runtime::EngineRuntime;
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
    /// Run with the engine's runtime as its context
    /// ([`super::runtime::on_engine`]).
    pub hook: Arc<dyn CommitHook>,
    /// Where the sessions' timers run: theirs has none (`wire::runtime`).
    pub engine: EngineRuntime,
    /// Roles that may not log in through the proxy (the engine's own).
    pub reserved_roles: Vec<String>,
    pub cancels: CancelRegistry,
    /// One permit per client session (`--max-connections`); held from the
    /// startup packet to the session's end. Cancel requests take none, as
    /// in PostgreSQL: a full server must still be cancellable.
    pub slots: Arc<Semaphore>,
    /// The permits `slots` started with, for the refusal's message.
    pub max_connections: usize,
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
                        crate::metrics::connection_accepted();
                        let fe = self.clone();
                        let sd = shutdown.clone();
                        sessions.spawn(async move { fe.connection(stream, peer, sd).await });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!("accept failed: {e}");
                        self.engine.sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                _ = shutdown.changed() => break,
            }
        }
        drop(listener);
        let drain = async { while sessions.join_next().await.is_some() {} };
        if self.engine.timeout(grace, drain).await.is_none() {
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
        let started = self
            .engine
            .timeout(STARTUP_TIMEOUT, self.startup(stream))
            .await;
        let parts = match started {
            Some(Ok(Some(p))) => p,
            Some(Ok(None)) => return,
            Some(Err(e)) => {
                tracing::debug!(%peer, "startup failed: {e}");
                return;
            }
            None => {
                tracing::debug!(%peer, "startup timed out");
                return;
            }
        };
        // The guard and the slot last as long as the session, and so does
        // its count in the open-sessions gauge.
        let (parts, _guard, _slot) = parts;
        let _open = crate::metrics::session_opened();
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
    ) -> std::io::Result<Option<(SessionParts, CancelGuard, OwnedSemaphorePermit)>> {
        let (mut conn, packet) = match negotiate(tcp, self.tls.as_ref(), self.tls_required).await? {
            Opening::Startup(conn, packet) => (conn, packet),
            Opening::Cancel(packet) => {
                self.cancel(&packet).await;
                return Ok(None);
            }
            Opening::Refused => return Ok(None),
        };
        // Refused after the startup packet, as PostgreSQL does, so the
        // client reads an error rather than a closed socket.
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            let n = self.max_connections;
            conn.fatal(
                Report::fatal(
                    errors::TOO_MANY_CONNECTIONS,
                    format!("sorry, too many clients already: infrasql allows {n} connections"),
                )
                .with_hint("Close idle connections, or raise --max-connections."),
            )
            .await;
            return Ok(None);
        };
        let packet::Accepted { mode, packet, user } =
            match packet::accept_startup(&packet, &self.reserved_roles) {
                Ok(accepted) => accepted,
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
        let started = self.relay_auth(conn, b_in, b_out, &user, mode).await?;
        Ok(started.map(|(parts, guard)| (parts, guard, slot)))
    }

    async fn cancel(&self, packet: &[u8]) {
        let Some((pid, secret)) = packet::cancel_key(packet) else {
            return;
        };
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
