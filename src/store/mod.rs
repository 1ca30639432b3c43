//! The backend PostgreSQL: the embedded cluster or an external database,
//! the engine's own connections to it, and the schema.

pub mod cluster;
pub mod engine_db;
pub mod migrate;
pub mod roles;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tokio_postgres::config::Host;
use tokio_postgres::Config;

use crate::config::{AuthMode, ServeConfig};
use cluster::{Cluster, ClusterError, Supervisor, DATABASE, ENGINE_ROLE};
use engine_db::{EngineDb, Session};

/// What `SELECT infra.version()` answers.
pub const VERSION: &str = concat!("infrasql ", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("invalid --database-url: {0}")]
    BadUrl(String),
    #[error("cannot connect to the backend PostgreSQL at {addr}: {source}")]
    Connect {
        addr: String,
        source: tokio_postgres::Error,
    },
    #[error("cannot prepare the backend PostgreSQL: {0}")]
    Bootstrap(tokio_postgres::Error),
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    #[error(transparent)]
    Roles(#[from] roles::RolesError),
}

/// Address of the backend PostgreSQL's client port: where the proxy sends
/// its clients. (How to reach it over the wire is `wire::backend`'s job.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendAddr {
    /// Full path of the Unix socket file (`.../.s.PGSQL.5432`).
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
    },
}

impl std::fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            BackendAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// How a person logs in, for the start-up line.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: Option<String>,
    pub database: String,
    pub password_file: Option<PathBuf>,
}

pub struct Store {
    pub backend: BackendAddr,
    engine: Arc<EngineDb>,
    /// Roles that must not log in through the proxy.
    pub reserved_roles: Vec<String>,
    pub login: Login,
    supervisor: Option<Supervisor>,
}

impl Store {
    /// Start (or reach) the backend, create the user's role on first start,
    /// and apply the schema.
    pub async fn open(cfg: &ServeConfig) -> Result<Store, StoreError> {
        let store = match &cfg.database_url {
            Some(url) => Self::external(url)?,
            None => Self::embedded(cfg).await?,
        };
        let mut client = store.session().await?;
        // The schema grants to the groups, so they come first; the embedded
        // cluster's login role is an admin.
        roles::ensure(&client, store.login.user.as_deref()).await?;
        migrate::migrate(&mut client).await?;
        // infra.version() reads it; the binary that last started names itself.
        client
            .execute(
                "INSERT INTO infra.setting (key, value) VALUES ('version', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value \
                 WHERE infra.setting.value IS DISTINCT FROM excluded.value",
                &[&VERSION],
            )
            .await
            .map_err(StoreError::Bootstrap)?;
        client.done();
        Ok(store)
    }

    fn external(url: &str) -> Result<Store, StoreError> {
        let engine = Config::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        let port = engine.get_ports().first().copied().unwrap_or(5432);
        let backend = match engine.get_hosts().first() {
            Some(Host::Tcp(h)) => BackendAddr::Tcp {
                host: h.clone(),
                port,
            },
            Some(Host::Unix(dir)) => BackendAddr::Unix(dir.join(format!(".s.PGSQL.{port}"))),
            None => BackendAddr::Tcp {
                host: "localhost".into(),
                port,
            },
        };
        let database = engine
            .get_dbname()
            .or(engine.get_user())
            .unwrap_or("postgres")
            .to_owned();
        Ok(Store {
            backend,
            reserved_roles: engine.get_user().map(str::to_owned).into_iter().collect(),
            engine: Arc::new(EngineDb::new(engine)),
            login: Login {
                user: None,
                database,
                password_file: None,
            },
            supervisor: None,
        })
    }

    async fn embedded(cfg: &ServeConfig) -> Result<Store, StoreError> {
        let cluster =
            Cluster::prepare(&cfg.data_dir, cfg.pg_bin.as_deref(), embedded_options(cfg))?;
        let dir = cluster.dir.clone();
        let mut engine = Config::new();
        engine
            .host_path(dir.pgdata())
            .port(5432)
            .user(ENGINE_ROLE)
            .password(cluster.engine_password()?)
            .dbname("postgres")
            .application_name("infrasql-engine");
        let backend = cluster.addr();
        let supervisor = cluster.start(cfg.auth == AuthMode::Trust).await?;
        // First in `postgres`: the database is made by the bootstrap.
        let mut store = Store {
            backend,
            engine: Arc::new(EngineDb::new(engine.clone())),
            reserved_roles: vec![ENGINE_ROLE.to_owned()],
            login: Login {
                user: Some(cfg.user.clone()),
                database: DATABASE.into(),
                password_file: Some(dir.password_file()),
            },
            supervisor: Some(supervisor),
        };
        if let Err(e) = store.bootstrap_user(&cfg.user, &dir).await {
            store.stop().await;
            return Err(e);
        }
        engine.dbname(DATABASE);
        store.engine = Arc::new(EngineDb::new(engine));
        Ok(store)
    }

    /// Create the user's login role and database; (re)set the password when
    /// its file is new.
    async fn bootstrap_user(&self, user: &str, dir: &cluster::DataDir) -> Result<(), StoreError> {
        let client = self.session().await?;
        let (password, fresh) = cluster::read_or_create_secret(&dir.password_file())?;
        // Only the SCRAM verifier reaches the server: no plaintext in its logs.
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
            .await
            .map_err(StoreError::Bootstrap)?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!(
                    "CREATE ROLE \"{user}\" LOGIN PASSWORD '{verifier}'"
                ))
                .await
                .map_err(StoreError::Bootstrap)?;
            tracing::info!(
                "created login role {user}; its password is in {}",
                dir.password_file().display()
            );
        } else if fresh {
            client
                .batch_execute(&format!("ALTER ROLE \"{user}\" PASSWORD '{verifier}'"))
                .await
                .map_err(StoreError::Bootstrap)?;
            tracing::info!(
                "reset the password of {user}; it is in {}",
                dir.password_file().display()
            );
        }
        let has_db = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
            .await
            .map_err(StoreError::Bootstrap)?
            .is_some();
        if !has_db {
            client
                .batch_execute(&format!("CREATE DATABASE {DATABASE} OWNER \"{user}\""))
                .await
                .map_err(StoreError::Bootstrap)?;
        }
        Ok(())
    }

    /// The engine's connections, shared by commits, the sync loop and recovery.
    pub fn engine(&self) -> Arc<EngineDb> {
        self.engine.clone()
    }

    /// A connection as the engine role, for infrasql's own work.
    pub async fn session(&self) -> Result<Session<'_>, StoreError> {
        self.engine
            .session()
            .await
            .map_err(|source| StoreError::Connect {
                addr: self.backend.to_string(),
                source,
            })
    }

    /// Stop the embedded cluster, if any.
    pub async fn stop(&mut self) {
        if let Some(s) = self.supervisor.take() {
            s.stop().await;
        }
    }
}

/// Connections the engine may hold beside the clients' (the shared one, a
/// sync round per table and region, recovery, retention, GitOps).
const ENGINE_CONNECTIONS: usize = 100;

/// The embedded PostgreSQL's settings: the user's `--pg-option`s, and a
/// `max_connections` above `--max-connections` plus the engine's own, so
/// the client past the limit meets infrasql's clear refusal and never
/// PostgreSQL's (unless the user set max_connections).
fn embedded_options(cfg: &ServeConfig) -> Vec<(String, String)> {
    let mut options = cfg.pg_options.clone();
    if !options.iter().any(|(k, _)| k == "max_connections") {
        options.push((
            "max_connections".into(),
            (cfg.max_connections + ENGINE_CONNECTIONS).to_string(),
        ));
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServeArgs;

    #[test]
    fn the_embedded_postgres_admits_the_clients_and_the_engine_unless_told_otherwise() {
        let cfg = ServeArgs {
            max_connections: Some(20),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        let options = embedded_options(&cfg);
        assert!(options.contains(&("max_connections".into(), "120".into())));
        let mut own = cfg.clone();
        own.pg_options = vec![("max_connections".into(), "500".into())];
        assert_eq!(
            embedded_options(&own),
            vec![("max_connections".into(), "500".into())]
        );
    }
}
