//! infrasql's data directory: where its files are, the lock that makes it
//! one process's, the generated secrets in it, and whether the `postgres`
//! OS user can reach it.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{io, ClusterError, PORT};

/// Files inside infrasql's data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn pgdata(&self) -> PathBuf {
        self.root.join("pgdata")
    }
    /// The generated password of the user's login role.
    pub fn password_file(&self) -> PathBuf {
        self.root.join("password")
    }
    pub fn engine_password_file(&self) -> PathBuf {
        self.root.join("engine.password")
    }
    pub fn socket(&self) -> PathBuf {
        self.pgdata().join(format!(".s.PGSQL.{PORT}"))
    }
    pub fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }
}

/// Read a generated secret, or make one and store it with mode 0600.
pub fn read_or_create_secret(path: &Path) -> Result<(String, bool), ClusterError> {
    if let Ok(s) = fs::read_to_string(path) {
        let s = s.trim().to_owned();
        if !s.is_empty() {
            return Ok((s, false));
        }
    }
    let secret = generate_password();
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io("cannot write", path))?;
    f.write_all(secret.as_bytes())
        .map_err(io("cannot write", path))?;
    f.write_all(b"\n").map_err(io("cannot write", path))?;
    Ok((secret, true))
}

pub fn generate_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

pub(super) fn lock_data_dir(root: &Path) -> Result<Flock<File>, ClusterError> {
    let path = root.join("infrasql.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io("cannot open", &path))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut f) => {
            f.set_len(0).map_err(io("cannot write", &path))?;
            writeln!(&mut *f, "{}", std::process::id()).map_err(io("cannot write", &path))?;
            Ok(f)
        }
        Err((_, _)) => Err(ClusterError::Locked {
            path: root.to_owned(),
            pid: fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }),
    }
}

pub(super) fn check_traversable(dir: &Path) -> Result<(), ClusterError> {
    for a in dir.ancestors().skip(1) {
        let meta = fs::metadata(a).map_err(io("cannot inspect", a))?;
        if meta.permissions().mode() & 0o001 == 0 {
            return Err(ClusterError::Setup(format!(
                "the postgres OS user cannot reach {} (mode {:o}); choose a --data-dir elsewhere \
                 (the default as root is /var/lib/infrasql) or run `chmod o+x {}`",
                a.display(),
                meta.permissions().mode() & 0o777,
                a.display()
            )));
        }
    }
    Ok(())
}
