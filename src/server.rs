//! `infrasql serve`: the backend, the listener and an orderly shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServeConfig;
use crate::engine::hook::CommitHook;
use crate::store::{Login, Store, StoreError};
use crate::wire::cancel::CancelRegistry;
use crate::wire::frontend::{tls_acceptor, Frontend};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

/// A running server.
pub struct Running {
    pub local_addr: SocketAddr,
    pub login: Login,
    pub tls: bool,
    shutdown: watch::Sender<bool>,
    frontend: tokio::task::JoinHandle<()>,
    store: Store,
}

/// Start everything and return once clients can connect.
pub async fn start(cfg: ServeConfig, hook: Arc<dyn CommitHook>) -> Result<Running, ServeError> {
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key).map_err(ServeError::Tls)?),
        None => None,
    };
    let mut store = Store::open(&cfg).await?;
    let listener = match TcpListener::bind(cfg.listen).await {
        Ok(l) => l,
        Err(source) => {
            store.stop().await;
            return Err(ServeError::Listen {
                addr: cfg.listen,
                source,
            });
        }
    };
    let local_addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let frontend = Arc::new(Frontend {
        backend: store.backend.clone(),
        auth: cfg.auth,
        tls: tls.clone(),
        hook,
        reserved_roles: store.reserved_roles.clone(),
        cancels: CancelRegistry::default(),
    });
    let (shutdown, rx) = watch::channel(false);
    let grace = cfg.shutdown_grace;
    let frontend = tokio::spawn(frontend.serve(listener, rx, grace));
    Ok(Running {
        local_addr,
        login: store.login.clone(),
        tls: tls.is_some(),
        shutdown,
        frontend,
        store,
    })
}

impl Running {
    /// The line a person pastes into a shell to connect.
    pub fn connect_hint(&self) -> String {
        let host = self.local_addr.ip();
        let host = if host.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            host.to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let user = self
            .login
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let url = format!(
            "postgresql://{user}{host}:{}/{}",
            self.local_addr.port(),
            self.login.database
        );
        match &self.login.password_file {
            Some(p) => format!("PGPASSWORD=\"$(cat '{}')\" psql \"{url}\"", p.display()),
            None => format!("psql \"{url}\""),
        }
    }

    /// Stop accepting, let sessions finish (up to the grace period), then
    /// stop the embedded PostgreSQL.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let _ = (&mut self.frontend).await;
        self.store.stop().await;
    }
}
