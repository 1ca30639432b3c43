//! `infrasql serve`: the backend, the cloud provider, the listener and an
//! orderly shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{AuthMode, ServeConfig};
use crate::engine::apply::Resources;
use crate::engine::commit::Engine;
use crate::engine::hook::CommitHook;
use crate::engine::recover;
use crate::engine::registry::{self, RegistryError};
use crate::engine::sync::Syncer;
use crate::playground::{Playground, PlaygroundError};
use crate::store::{Login, Store, StoreError};
use crate::wire::cancel::CancelRegistry;
use crate::wire::frontend::{tls_acceptor, Frontend};
use crate::wire::runtime::{self, EngineRuntime};

mod background;
mod connect_hint;

use background::{recovery_loop, retention_loop};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Playground(#[from] PlaygroundError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("gitops: {0}")]
    Gitops(String),
    #[error("--sync-tables: {0}")]
    SyncTables(String),
    #[error("cannot start the sessions' runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot read infrasql's seal secret: {0}")]
    Secret(tokio_postgres::Error),
}

/// A running server.
pub struct Running {
    pub local_addr: SocketAddr,
    /// Where the HTTP listener (`--http`) listens, when it is on.
    pub http_addr: Option<SocketAddr>,
    pub login: Login,
    pub tls: bool,
    /// The AWS endpoint in use when it is not AWS itself.
    pub aws_endpoint: Option<String>,
    auth: AuthMode,
    shutdown: watch::Sender<bool>,
    frontend: tokio::task::JoinHandle<()>,
    store: Store,
    playground: Option<Playground>,
    recovery: tokio::task::JoinHandle<()>,
    sync: Option<tokio::task::JoinHandle<()>>,
    retention: Option<tokio::task::JoinHandle<()>>,
    gitops: Option<tokio::task::JoinHandle<()>>,
    http: Option<tokio::task::JoinHandle<()>>,
}

/// Start everything and return once clients can connect. `hook` replaces
/// the apply engine (tests use it to prove the commit boundary).
pub async fn start(
    cfg: ServeConfig,
    hook: Option<Arc<dyn CommitHook>>,
) -> Result<Running, ServeError> {
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key).map_err(ServeError::Tls)?),
        None => None,
    };
    if tls.is_none() && !cfg.listen.ip().is_loopback() {
        // SCRAM keeps the password off the wire, but statements and rows
        // (and the values in them) would cross the network readable.
        tracing::warn!(
            "listening on {} without TLS: clients' queries and results cross the network in plaintext; give --tls-cert and --tls-key (and --tls-required to refuse plaintext clients)",
            cfg.listen
        );
    }
    if cfg.gitops.is_some() {
        check_gitops(&cfg)?;
    }
    let playground = if cfg.playground {
        Some(Playground::start().await?)
    } else {
        None
    };
    let mut store = Store::open(&cfg).await?;
    match prepare(&cfg, &store, playground.as_ref(), hook).await {
        Ok((hook, aws_endpoint, resources, syncer)) => {
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
            let http = match cfg.http {
                Some(addr) => match crate::http::bind(addr).await {
                    Ok(bound) => Some(bound),
                    Err(source) => {
                        store.stop().await;
                        return Err(ServeError::Listen { addr, source });
                    }
                },
                None => None,
            };
            let sessions_rt = match runtime::build(cfg.worker_threads) {
                Ok(rt) => rt,
                Err(source) => {
                    store.stop().await;
                    return Err(ServeError::Runtime(source));
                }
            };
            let engine = EngineRuntime::current();
            let frontend = Arc::new(Frontend {
                backend: store.backend.clone(),
                auth: cfg.auth,
                tls: tls.clone(),
                tls_required: cfg.tls_required,
                hook: runtime::on_engine(hook, engine.clone()),
                engine,
                reserved_roles: store.reserved_roles.clone(),
                cancels: CancelRegistry::default(),
                slots: Arc::new(tokio::sync::Semaphore::new(cfg.max_connections)),
                max_connections: cfg.max_connections,
            });
            let (shutdown, rx) = watch::channel(false);
            let recovery = tokio::spawn(recovery_loop(store.engine(), resources, rx.clone()));
            let sync = cfg
                .sync_interval
                .map(|every| tokio::spawn(syncer.run(every, rx.clone())));
            let retention = cfg
                .history_retention
                .map(|keep| tokio::spawn(retention_loop(store.engine(), keep, rx.clone())));
            let gitops = match &cfg.gitops {
                Some(g) => {
                    let login = crate::gitops::SelfLogin {
                        addr: local_addr,
                        // check_gitops made sure one of them is there.
                        user: store
                            .login
                            .user
                            .clone()
                            .or_else(|| std::env::var("PGUSER").ok())
                            .unwrap_or_default(),
                        database: store.login.database.clone(),
                        password_file: store.login.password_file.clone(),
                        tls: tls.is_some(),
                    };
                    let agent = crate::gitops::Agent::new(g.clone(), &cfg.data_dir, login);
                    Some(tokio::spawn(agent.run(rx.clone())))
                }
                None => None,
            };
            let http_addr = http.as_ref().map(|(_, addr)| *addr);
            let http = http.map(|(listener, _)| {
                let state = crate::http::AppState::new(store.engine());
                tokio::spawn(crate::http::serve(listener, tls.clone(), state, rx.clone()))
            });
            let frontend = runtime::serve(sessions_rt, frontend, listener, rx, cfg.shutdown_grace);
            Ok(Running {
                local_addr,
                http_addr,
                http,
                login: store.login.clone(),
                tls: tls.is_some(),
                aws_endpoint,
                auth: cfg.auth,
                shutdown,
                frontend,
                store,
                playground,
                recovery,
                sync,
                retention,
                gitops,
            })
        }
        Err(e) => {
            store.stop().await;
            if let Some(p) = playground {
                p.stop().await;
            }
            Err(e)
        }
    }
}

/// The agent logs in to this server as the user infrasql created, with the
/// password infrasql keeps; with `--database-url` there is no such user,
/// so it logs in as libpq would, from `PGUSER` and `PGPASSWORD` or
/// `~/.pgpass`. And it needs `git`. Either missing refuses to start rather
/// than run without the agent.
fn check_gitops(cfg: &ServeConfig) -> Result<(), ServeError> {
    if cfg.database_url.is_some() && std::env::var("PGUSER").map_or(true, |u| u.is_empty()) {
        return Err(ServeError::Gitops(
            "with --database-url the agent logs in as PGUSER (password from PGPASSWORD or \
             ~/.pgpass): set PGUSER"
                .into(),
        ));
    }
    match std::process::Command::new("git")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => Err(ServeError::Gitops(
            "--gitops-repo needs the git command on PATH".into(),
        )),
    }
}

/// The AWS provider and the apply engine.
async fn prepare(
    cfg: &ServeConfig,
    store: &Store,
    playground: Option<&Playground>,
    hook: Option<Arc<dyn CommitHook>>,
) -> Result<(Arc<dyn CommitHook>, Option<String>, Resources, Arc<Syncer>), ServeError> {
    let endpoint = playground
        .map(|p| p.endpoint_url.clone())
        .or_else(|| cfg.aws_endpoint_url.clone());
    let settings = infrasql_aws::AwsSettings {
        endpoint_url: endpoint.clone(),
        static_credentials: playground.map(|_| {
            (
                crate::playground::ACCESS_KEY.to_owned(),
                crate::playground::SECRET_KEY.to_owned(),
            )
        }),
        region: playground.map(|_| "us-east-1".to_owned()),
        max_concurrency: Some(cfg.aws_concurrency),
        limiter: cfg.aws_limiter,
        timeouts: cfg.aws_timeouts,
    };
    let clients = Arc::new(infrasql_aws::Clients::new(&settings).await);
    let resources = registry::index(crate::providers::aws(clients.clone()));
    let mut client = store.session().await?;
    registry::install(&mut client, &resources, &clients.default_region()).await?;
    let regions = if cfg.sync_regions.is_empty() {
        vec![clients.default_region()]
    } else {
        cfg.sync_regions.clone()
    };
    let engine_db = store.engine();
    let watched = watched_tables(&cfg.sync_tables, &resources)?;
    let syncer =
        Arc::new(Syncer::new(resources.clone(), engine_db.clone(), regions).watching(watched));
    let hook = match hook {
        Some(h) => h,
        None => {
            let secret: String = client
                .query_one("SELECT value FROM infra.secret WHERE key = 'seal'", &[])
                .await
                .map_err(ServeError::Secret)?
                .get(0);
            Arc::new(
                Engine::new(resources.clone(), engine_db.clone(), secret)
                    .with_syncer(syncer.clone()),
            )
        }
    };
    // Applies a previous run left unfinished are settled before anyone connects.
    match recover::recover_once(&client, &resources).await {
        Ok(r) if !r.undone.is_empty() || !r.finished.is_empty() => {
            tracing::warn!("recovery: finished {:?}, undid {:?}", r.finished, r.undone)
        }
        Ok(_) => {}
        Err(e) => tracing::error!("recovery failed: {e}"),
    }
    Ok((hook, endpoint, resources, syncer))
}

/// `--sync-tables` checked against the registry: a name that is no
/// resource table refuses to start (a typo would silently stop syncing the
/// table meant). `None`: every table.
fn watched_tables(
    names: &[String],
    resources: &Resources,
) -> Result<Option<std::collections::HashSet<String>>, ServeError> {
    if names.is_empty() {
        return Ok(None);
    }
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !resources.contains_key(n.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let mut known: Vec<&str> = resources.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(ServeError::SyncTables(format!(
            "no resource table {}; the tables are {}",
            unknown.join(", "),
            known.join(", ")
        )));
    }
    Ok(Some(names.iter().cloned().collect()))
}
