//! Configuration: flags, each with an `INFRASQL_*` environment variable, and an
//! optional TOML file. A flag or variable beats the file; the file beats the
//! default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

mod defaults;

pub use defaults::is_plain_identifier;
use defaults::{
    default_data_dir, default_user, default_worker_threads, load_file, parse_retention,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// SCRAM-SHA-256 against the backend's roles.
    #[default]
    Scram,
    /// No password; allowed only when listening on a loopback address.
    Trust,
}

/// `infrasql serve` options as given; every field is optional so that the
/// same struct reads flags, environment and the TOML file.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these options (kebab-case keys, e.g. `data-dir`).
    #[arg(long, env = "INFRASQL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:5433]. Port 0 picks a free port.
    #[arg(long, env = "INFRASQL_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Serve HTTP here too: /healthz, /readyz and, with a token
    /// (`infrasql token create`), the web view [default: off]. A
    /// non-loopback address needs --tls-cert and --tls-key (HTTPS).
    #[arg(long, env = "INFRASQL_HTTP")]
    pub http: Option<SocketAddr>,

    /// Where the embedded PostgreSQL and the generated passwords live
    /// [default: $XDG_DATA_HOME/infrasql, or /var/lib/infrasql as root].
    #[arg(long, env = "INFRASQL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Use this PostgreSQL instead of the embedded one
    /// (e.g. postgres://infrasql:secret@db.internal:5432/infrasql).
    #[arg(long, env = "INFRASQL_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory holding initdb and postgres [default: $PG_BIN, then
    /// `pg_config --bindir`, then /usr/lib/postgresql/*/bin].
    #[arg(long, env = "INFRASQL_PG_BIN")]
    pub pg_bin: Option<PathBuf>,

    /// How clients authenticate.
    #[arg(long, env = "INFRASQL_AUTH", value_enum)]
    pub auth: Option<AuthMode>,

    /// PEM certificate chain; with --tls-key, enables TLS.
    #[arg(long, env = "INFRASQL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "INFRASQL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Refuse clients that do not use TLS (28000). Needs --tls-cert and
    /// --tls-key.
    #[arg(long, env = "INFRASQL_TLS_REQUIRED")]
    #[serde(default)]
    pub tls_required: bool,

    /// Login role created for you in the embedded PostgreSQL on first start
    /// [default: your OS user name].
    #[arg(long, env = "INFRASQL_USER")]
    pub user: Option<String>,

    /// Extra setting for the embedded PostgreSQL, as name=value (repeatable).
    #[arg(long = "pg-option", env = "INFRASQL_PG_OPTIONS", value_delimiter = ',')]
    #[serde(default)]
    pub pg_options: Vec<String>,

    /// Seconds to let open sessions finish on shutdown [default: 30].
    #[arg(long, env = "INFRASQL_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,

    /// Send AWS API calls to this AWS-compatible endpoint (moto, LocalStack).
    #[arg(long, env = "INFRASQL_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,

    /// Start a local AWS emulator (moto) with dummy credentials and use it:
    /// try everything without an AWS account.
    #[arg(long, env = "INFRASQL_PLAYGROUND")]
    #[serde(default)]
    pub playground: bool,

    /// The most cloud operations in flight per AWS service and region: the
    /// adaptive limiter's ceiling, or with `--aws-limiter fixed` the limit
    /// per region [default: 16].
    #[arg(long, env = "INFRASQL_AWS_CONCURRENCY")]
    pub aws_concurrency: Option<usize>,

    /// `adaptive`: each AWS service and region finds its own limit under
    /// --aws-concurrency, lower when AWS throttles or slows down; `fixed`:
    /// --aws-concurrency per region, always [default: adaptive].
    #[arg(long, env = "INFRASQL_AWS_LIMITER")]
    pub aws_limiter: Option<String>,

    /// Limits on each AWS call, e.g. `connect=5s,read=30s,attempt=30s,operation=2m`
    /// (any subset; units ms, s, m) [default: those].
    #[arg(long, env = "INFRASQL_AWS_TIMEOUTS")]
    pub aws_timeouts: Option<String>,

    /// Seconds between sync rounds; 0 turns the background loop off
    /// (`SELECT infra.sync()` still works) [default: 30].
    #[arg(long, env = "INFRASQL_SYNC_INTERVAL")]
    pub sync_interval: Option<f64>,

    /// Regions the sync loop watches (comma-separated) [default: the default region].
    #[arg(long, env = "INFRASQL_SYNC_REGIONS", value_delimiter = ',')]
    #[serde(default)]
    pub sync_regions: Vec<String>,

    /// Tables the sync loop watches (comma-separated, e.g.
    /// `aws.vpc,aws.subnet`) [default: every resource table]. An unknown
    /// name refuses to start.
    #[arg(long, env = "INFRASQL_SYNC_TABLES", value_delimiter = ',')]
    #[serde(default)]
    pub sync_tables: Vec<String>,

    /// How long the history of settled applies (`infra.apply`) is kept,
    /// e.g. 90d, 12h or 30m; 0 or off keeps it forever [default: 90d].
    #[arg(long, env = "INFRASQL_HISTORY_RETENTION")]
    pub history_retention: Option<String>,

    /// Threads running the engine, and as many again serving client
    /// sessions [default: half the cores, at least 1; the embedded
    /// PostgreSQL needs the rest].
    #[arg(long, env = "INFRASQL_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// Client connections served at once; the next client is refused with
    /// 53300, as PostgreSQL refuses past its max_connections [default: 100].
    #[arg(long, env = "INFRASQL_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Git repository the GitOps agent applies stacks from: any URL `git`
    /// understands; its own SSH keys and credential helpers log in.
    #[arg(long, env = "INFRASQL_GITOPS_REPO")]
    pub gitops_repo: Option<String>,

    /// Branch or tag the agent follows [default: main].
    #[arg(long, env = "INFRASQL_GITOPS_REF", requires = "gitops_repo")]
    pub gitops_ref: Option<String>,

    /// Directory in the repository whose subdirectories are stacks
    /// [default: the repository's root].
    #[arg(long, env = "INFRASQL_GITOPS_PATH", requires = "gitops_repo")]
    pub gitops_path: Option<String>,

    /// How often the agent fetches: 60s, 5m, 1h, or seconds [default: 60s].
    #[arg(long, env = "INFRASQL_GITOPS_INTERVAL", requires = "gitops_repo")]
    pub gitops_interval: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Resolved configuration for `serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// The HTTP listener, off when `None`.
    pub http: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub pg_bin: Option<PathBuf>,
    pub auth: AuthMode,
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plaintext clients are refused.
    pub tls_required: bool,
    pub user: String,
    pub pg_options: Vec<(String, String)>,
    pub shutdown_grace: Duration,
    pub aws_endpoint_url: Option<String>,
    pub playground: bool,
    pub aws_concurrency: usize,
    pub aws_limiter: infrasql_aws::LimiterMode,
    pub aws_timeouts: infrasql_aws::AwsTimeouts,
    pub sync_interval: Option<Duration>,
    pub sync_regions: Vec<String>,
    /// Resource tables the sync loop watches (`aws.vpc`, ...); empty: all.
    /// Checked against the registry when the server starts.
    pub sync_tables: Vec<String>,
    pub worker_threads: usize,
    /// Client connections served at once (at least 1).
    pub max_connections: usize,
    /// `None`: keep the history forever.
    pub history_retention: Option<Duration>,
    /// The GitOps agent, when a repository is given.
    pub gitops: Option<crate::gitops::config::GitopsConfig>,
}

impl ServeArgs {
    /// Merge with the config file (if any) and fill in defaults.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => load_file(path)?,
            None => ServeArgs::default(),
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:5433".parse().expect("valid literal address"));
        let auth = self.auth.or(file.auth).unwrap_or_default();
        if auth == AuthMode::Trust && !listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "--auth trust is allowed only on a loopback address, but --listen is {listen}"
            )));
        }
        let tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "tls-cert and tls-key must be given together".into(),
                ))
            }
        };
        let http = self.http.or(file.http);
        if let Some(addr) = http.filter(|a| !a.ip().is_loopback() && tls.is_none()) {
            // Unlike the wire (SCRAM keeps passwords off it), every HTTP
            // request carries its bearer token: in plaintext it is anyone's.
            return Err(ConfigError::Invalid(format!(
                "--http {addr} is not a loopback address: give --tls-cert and --tls-key, or every request's token crosses the network in plaintext"
            )));
        }
        let tls_required = self.tls_required || file.tls_required;
        if tls_required && tls.is_none() {
            return Err(ConfigError::Invalid(
                "--tls-required needs a certificate: give --tls-cert and --tls-key".into(),
            ));
        }
        let pg_options = if self.pg_options.is_empty() {
            file.pg_options
        } else {
            self.pg_options
        };
        let pg_options = pg_options
            .iter()
            .map(|o| {
                o.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| {
                        ConfigError::Invalid(format!("--pg-option {o:?} is not name=value"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let retention = self.history_retention.or(file.history_retention);
        let history_retention = parse_retention(retention.as_deref().unwrap_or("90d"))
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "--history-retention {:?} is not a duration such as 90d, 12h or 30m (0 or off keeps the history forever)",
                    retention.unwrap_or_default()
                ))
            })?;
        let aws_timeouts = match self.aws_timeouts.or(file.aws_timeouts) {
            Some(spec) => infrasql_aws::AwsTimeouts::parse(&spec)
                .map_err(|e| ConfigError::Invalid(format!("--aws-timeouts {spec:?}: {e}")))?,
            None => infrasql_aws::AwsTimeouts::default(),
        };
        let aws_limiter = match self.aws_limiter.or(file.aws_limiter) {
            Some(v) => infrasql_aws::LimiterMode::parse(&v)
                .map_err(|e| ConfigError::Invalid(format!("--aws-limiter {v:?}: {e}")))?,
            None => infrasql_aws::LimiterMode::default(),
        };
        let user = self.user.or(file.user).unwrap_or_else(default_user);
        if !is_plain_identifier(&user) {
            return Err(ConfigError::Invalid(format!(
                "--user {user:?} must be a plain lower-case identifier (letters, digits, _)"
            )));
        }
        let gitops = crate::gitops::config::GitopsArgs {
            repo: self.gitops_repo.or(file.gitops_repo),
            git_ref: self.gitops_ref.or(file.gitops_ref),
            path: self.gitops_path.or(file.gitops_path),
            interval: self.gitops_interval.or(file.gitops_interval),
        }
        .resolve()
        .map_err(ConfigError::Invalid)?;
        Ok(ServeConfig {
            gitops,
            listen,
            http,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(default_data_dir),
            database_url: self.database_url.or(file.database_url),
            pg_bin: self
                .pg_bin
                .or(file.pg_bin)
                .or_else(|| std::env::var_os("PG_BIN").map(PathBuf::from)),
            auth,
            tls,
            tls_required,
            user,
            pg_options,
            shutdown_grace: Duration::from_secs(
                self.shutdown_grace.or(file.shutdown_grace).unwrap_or(30),
            ),
            aws_endpoint_url: self.aws_endpoint_url.or(file.aws_endpoint_url),
            playground: self.playground || file.playground,
            aws_concurrency: self
                .aws_concurrency
                .or(file.aws_concurrency)
                .unwrap_or(16)
                .max(1),
            aws_limiter,
            aws_timeouts,
            sync_interval: {
                let secs = self.sync_interval.or(file.sync_interval).unwrap_or(30.0);
                if !secs.is_finite() || secs < 0.0 {
                    return Err(ConfigError::Invalid(format!(
                        "--sync-interval {secs} must be 0 or more seconds"
                    )));
                }
                (secs > 0.0).then(|| Duration::from_secs_f64(secs))
            },
            sync_regions: if self.sync_regions.is_empty() {
                file.sync_regions
            } else {
                self.sync_regions
            },
            sync_tables: {
                let tables = if self.sync_tables.is_empty() {
                    file.sync_tables
                } else {
                    self.sync_tables
                };
                let tables: Vec<String> = tables.iter().map(|t| t.trim().to_owned()).collect();
                // An empty name (a stray comma) would watch nothing by mistake.
                if tables.iter().any(String::is_empty) {
                    return Err(ConfigError::Invalid(
                        "--sync-tables has an empty table name".into(),
                    ));
                }
                tables
            },
            worker_threads: match self.worker_threads.or(file.worker_threads) {
                Some(0) => {
                    return Err(ConfigError::Invalid(
                        "--worker-threads must be at least 1".into(),
                    ))
                }
                Some(n) => n,
                None => default_worker_threads(),
            },
            max_connections: match self.max_connections.or(file.max_connections) {
                // Zero would refuse every client: a typo, not a wish.
                Some(0) => {
                    return Err(ConfigError::Invalid(
                        "--max-connections must be at least 1".into(),
                    ))
                }
                Some(n) => n,
                None => 100,
            },
            history_retention,
        })
    }
}

#[cfg(test)]
mod tests;
