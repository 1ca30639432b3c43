//! The PostgreSQL server binaries: where they are, and `initdb` of a new
//! cluster with them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{io, Cluster, ClusterError, ENGINE_ROLE};

/// Locate `initdb` and `postgres`.
pub fn find_pg_bin(explicit: Option<&Path>) -> Result<PathBuf, ClusterError> {
    let ok = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = explicit {
        return if ok(d) {
            Ok(d.to_owned())
        } else {
            Err(ClusterError::NoBinaries(format!(
                "{} does not hold initdb and postgres",
                d.display()
            )))
        };
    }
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && ok(&d) {
            return Ok(d);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            ok(&bin).then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, d)| d).ok_or_else(|| {
        ClusterError::NoBinaries(
            "tried --pg-bin, PG_BIN, `pg_config --bindir` and /usr/lib/postgresql/*/bin; \
             install PostgreSQL (Debian: apt-get install postgresql) or pass --pg-bin"
                .into(),
        )
    })
}

impl Cluster {
    pub(super) fn initdb(&self) -> Result<(), ClusterError> {
        let pgdata = self.dir.pgdata();
        if pgdata.exists() {
            // A half-made cluster from an interrupted first start.
            fs::remove_dir_all(&pgdata).map_err(io("cannot clear", &pgdata))?;
        }
        fs::create_dir(&pgdata).map_err(io("cannot create", &pgdata))?;
        fs::set_permissions(&pgdata, fs::Permissions::from_mode(0o700))
            .map_err(io("cannot set permissions on", &pgdata))?;
        let password = self.engine_password()?;
        // initdb reads the password from a file it can open as the cluster user.
        let pwfile = self.dir.root.join("initdb.pw");
        fs::write(&pwfile, &password).map_err(io("cannot write", &pwfile))?;
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))
            .map_err(io("cannot set permissions on", &pwfile))?;
        self.chown(&pgdata)?;
        self.chown(&pwfile)?;
        tracing::info!("creating PostgreSQL cluster in {}", pgdata.display());
        let mut cmd = std::process::Command::new(self.bin.join("initdb"));
        cmd.arg("-D")
            .arg(&pgdata)
            .args([
                "-U",
                ENGINE_ROLE,
                "-E",
                "UTF8",
                "--no-locale",
                "--auth=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(&self.dir.root)
            .stdin(Stdio::null());
        if let Some(r) = &self.run_as {
            use std::os::unix::process::CommandExt;
            cmd.uid(r.uid.as_raw()).gid(r.gid.as_raw());
        }
        let out = cmd.output();
        let _ = fs::remove_file(&pwfile);
        let out = out.map_err(|e| ClusterError::Setup(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            return Err(ClusterError::Setup(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}
