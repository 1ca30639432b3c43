//! The embedded PostgreSQL cluster that infrasql owns.
//!
//! # Guarantees
//! - One infrasql per data dir: an exclusive `flock` on `infrasql.lock` is
//!   held for the life of the process; a second one fails with the owner's pid.
//! - The cluster listens only on a Unix socket inside its own data directory
//!   (mode 0700), never on TCP.
//! - A `postmaster.pid` left by a crash is handled: a postgres still running
//!   on this data dir (orphaned when infrasql was killed) is shut down; a
//!   pid file naming any other process is removed.
//! - If the cluster dies, it is restarted with backoff; clients see a
//!   connection error meanwhile and can reconnect once it is back.
//!
//! # Caveats
//! - PostgreSQL refuses to run as root, so as root the cluster runs as the
//!   `postgres` OS user, which must be able to reach the data dir.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::fcntl::Flock;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::BackendAddr;

mod binaries;
mod data_dir;
mod supervise;

pub use binaries::find_pg_bin;
use data_dir::{check_traversable, lock_data_dir};
pub use data_dir::{generate_password, read_or_create_secret, DataDir};
use supervise::supervise;
pub use supervise::Supervisor;

/// The bootstrap superuser, used only by infrasql's engine.
pub const ENGINE_ROLE: &str = "infrasql_engine";
/// Database created for the user on first start.
pub const DATABASE: &str = "infrasql";
const PORT: u16 = 5432;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no PostgreSQL server binaries found: {0}")]
    NoBinaries(String),
    #[error("data directory {path} is already used by another infrasql (pid {pid})")]
    Locked { path: PathBuf, pid: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("PostgreSQL did not start: {0}")]
    Start(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ClusterError + 'a {
    move |source| ClusterError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Who the cluster's processes run as.
#[derive(Debug, Clone)]
struct RunAs {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

/// A prepared (initialised, locked) but not yet running cluster.
pub struct Cluster {
    pub dir: DataDir,
    bin: PathBuf,
    run_as: Option<RunAs>,
    settings: Vec<(String, String)>,
    /// Held for the life of the process.
    _lock: Flock<File>,
    /// True when this start ran initdb.
    pub created: bool,
}

impl Cluster {
    /// Lock the data dir and run initdb if the cluster does not exist yet.
    pub fn prepare(
        root: &Path,
        pg_bin: Option<&Path>,
        settings: Vec<(String, String)>,
    ) -> Result<Cluster, ClusterError> {
        let bin = find_pg_bin(pg_bin)?;
        let run_as = if nix::unistd::geteuid().is_root() {
            let u = User::from_name("postgres").ok().flatten().ok_or_else(|| {
                ClusterError::Setup(
                    "infrasql runs as root, and PostgreSQL refuses to; no `postgres` OS user \
                     exists to run it as. Create one (useradd --system postgres) or run \
                     infrasql as an ordinary user."
                        .into(),
                )
            })?;
            Some(RunAs {
                uid: u.uid,
                gid: u.gid,
            })
        } else {
            None
        };
        fs::create_dir_all(root).map_err(io("cannot create data dir", root))?;
        let root = root
            .canonicalize()
            .map_err(io("cannot resolve data dir", root))?;
        // As root the postgres user must pass through the data dir (but not
        // read it: the password files stay private).
        let mode = if run_as.is_some() { 0o711 } else { 0o700 };
        fs::set_permissions(&root, fs::Permissions::from_mode(mode))
            .map_err(io("cannot set permissions on", &root))?;
        if run_as.is_some() {
            check_traversable(&root)?;
        }
        let dir = DataDir { root: root.clone() };
        let lock = lock_data_dir(&root)?;
        let socket = dir.socket();
        if socket.as_os_str().len() > 100 {
            return Err(ClusterError::Setup(format!(
                "data dir path is too long for a Unix socket ({}); choose a shorter --data-dir",
                socket.display()
            )));
        }
        let mut cluster = Cluster {
            dir,
            bin,
            run_as,
            settings,
            _lock: lock,
            created: false,
        };
        if !cluster.dir.pgdata().join("PG_VERSION").is_file() {
            cluster.initdb()?;
            cluster.created = true;
        }
        Ok(cluster)
    }

    pub fn engine_password(&self) -> Result<String, ClusterError> {
        read_or_create_secret(&self.dir.engine_password_file()).map(|(s, _)| s)
    }

    pub fn addr(&self) -> BackendAddr {
        BackendAddr::Unix(self.dir.socket())
    }

    fn chown(&self, path: &Path) -> Result<(), ClusterError> {
        if let Some(r) = &self.run_as {
            nix::unistd::chown(path, Some(r.uid), Some(r.gid))
                .map_err(|e| io("cannot chown", path)(e.into()))?;
        }
        Ok(())
    }

    /// infrasql decides who may connect; the file is rewritten on every start.
    fn write_hba(&self, trust_users: bool) -> Result<(), ClusterError> {
        let path = self.dir.pgdata().join("pg_hba.conf");
        let users = if trust_users {
            "trust"
        } else {
            "scram-sha-256"
        };
        let text = format!(
            "# Written by infrasql at every start; edits are overwritten.\n\
             # The cluster listens only on a Unix socket in its data directory.\n\
             local all {ENGINE_ROLE} scram-sha-256\n\
             local all all {users}\n"
        );
        fs::write(&path, text).map_err(io("cannot write", &path))?;
        self.chown(&path)
    }

    /// Clear what a crashed run left behind.
    fn clear_stale_pid(&self) -> Result<(), ClusterError> {
        let pidfile = self.dir.pgdata().join("postmaster.pid");
        let Ok(text) = fs::read_to_string(&pidfile) else {
            return Ok(());
        };
        let pid: i32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        if pid > 0 && is_our_postmaster(pid, &self.dir.pgdata()) {
            // We hold the data-dir lock, so this postgres belongs to an
            // infrasql that died: shut it down cleanly and take over.
            tracing::warn!("stopping PostgreSQL (pid {pid}) left running by a previous infrasql");
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
            for _ in 0..300 {
                if !process_alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if process_alive(pid) {
                return Err(ClusterError::Start(format!(
                    "an old PostgreSQL (pid {pid}) on this data dir did not stop"
                )));
            }
        }
        if pidfile.exists() {
            tracing::warn!(
                "removing stale {} (pid {pid} is not running it)",
                pidfile.display()
            );
            fs::remove_file(&pidfile).map_err(io("cannot remove", &pidfile))?;
        }
        Ok(())
    }

    fn spawn(&self, trust_users: bool) -> Result<Child, ClusterError> {
        self.write_hba(trust_users)?;
        self.clear_stale_pid()?;
        let log_path = self.dir.log_file();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(io("cannot open", &log_path))?;
        let pgdata = self.dir.pgdata();
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D").arg(&pgdata);
        let fixed = [
            ("listen_addresses".to_string(), String::new()),
            (
                "unix_socket_directories".into(),
                pgdata.display().to_string(),
            ),
            ("unix_socket_permissions".into(), "0700".into()),
            ("port".into(), PORT.to_string()),
            ("password_encryption".into(), "scram-sha-256".into()),
        ];
        // A statement's text can hold a secret (`INSERT ... master_user_password`):
        // PostgreSQL's log never gets it, whatever `--pg-option` says, so
        // these come last. Errors are still logged, without the statement.
        let never_log_statements = [
            ("log_min_error_statement".to_string(), "panic".to_string()),
            ("log_statement".into(), "none".into()),
            ("log_min_duration_statement".into(), "-1".into()),
            ("log_min_duration_sample".into(), "-1".into()),
            ("log_parameter_max_length_on_error".into(), "0".into()),
        ];
        for (k, v) in fixed
            .iter()
            .cloned()
            .chain(self.settings.iter().cloned())
            .chain(never_log_statements)
        {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.current_dir(&pgdata)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("cannot open", &log_path))?)
            .stderr(log)
            // Own process group: a Ctrl-C at the terminal reaches infrasql,
            // which then stops the cluster in order, not both at once.
            .process_group(0)
            .kill_on_drop(false);
        if let Some(r) = &self.run_as {
            cmd.uid(r.uid.as_raw()).gid(r.gid.as_raw());
        }
        // SAFETY: prctl is async-signal-safe and touches only the child.
        // If infrasql dies without stopping the cluster, the kernel sends
        // SIGINT (fast shutdown) to the postmaster.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn()
            .map_err(|e| ClusterError::Start(format!("cannot run postgres: {e}")))
    }

    /// Start the cluster and keep it running until `stop` turns true.
    /// Returns once it accepts connections.
    pub async fn start(self, trust_users: bool) -> Result<Supervisor, ClusterError> {
        let mut child = self.spawn(trust_users)?;
        self.wait_ready(&mut child).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(supervise(self, child, trust_users, stop_rx));
        Ok(Supervisor {
            stop: stop_tx,
            task,
        })
    }

    async fn wait_ready(&self, child: &mut Child) -> Result<(), ClusterError> {
        let socket = self.dir.socket();
        for _ in 0..600 {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ClusterError::Start(format!(
                    "postgres exited with {status}; last lines of {}:\n{}",
                    self.dir.log_file().display(),
                    tail(&self.dir.log_file(), 15)
                )));
            }
            // PostgreSQL creates the socket only once it accepts connections
            // (after crash recovery), and the pid file's status line says so.
            if socket.exists() && postmaster_ready(&self.dir.pgdata()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ClusterError::Start(format!(
            "postgres did not accept connections within 30 s; see {}",
            self.dir.log_file().display()
        )))
    }
}

fn postmaster_ready(pgdata: &Path) -> bool {
    // Line 8 of postmaster.pid is the status: "ready" once connections are accepted.
    fs::read_to_string(pgdata.join("postmaster.pid"))
        .map(|t| {
            t.lines()
                .nth(7)
                .map(|l| l.trim() == "ready")
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

/// Alive and not a zombie: an orphaned postmaster that exited stays a zombie
/// until whatever adopted it reaps it, which in a container may be never.
pub fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn is_our_postmaster(pid: i32, pgdata: &Path) -> bool {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if !comm.trim().starts_with("postgres") {
        return false;
    }
    fs::read_link(format!("/proc/{pid}/cwd"))
        .map(|cwd| cwd == pgdata)
        .unwrap_or(false)
}

/// The last `n` lines of a log file, for an error message.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
