//! The values a setting takes when nothing sets it, and the parsing of the
//! few settings that are more than a number or a word.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ConfigError, ServeArgs};

/// `--history-retention`: a whole number and a unit (`d`, `h`, `m`, `s`);
/// `0` or `off` is forever (`Some(None)`). `None` for anything else: a typo
/// must not delete the history sooner than asked.
pub(super) fn parse_retention(v: &str) -> Option<Option<Duration>> {
    let v = v.trim().to_ascii_lowercase();
    if v == "0" || v == "off" {
        return Some(None);
    }
    let split = v.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = v[..split].parse().ok()?;
    let unit = match &v[split..] {
        "d" | "day" | "days" => 86_400,
        "h" | "hour" | "hours" => 3_600,
        "m" | "min" | "minute" | "minutes" => 60,
        "s" | "sec" | "second" | "seconds" => 1,
        _ => return None,
    };
    let secs = n.checked_mul(unit).filter(|s| *s > 0)?;
    Some(Some(Duration::from_secs(secs)))
}

/// Half the cores: infrasql shares the machine with the PostgreSQL it proxies
/// to, whose backends do the heavier work per query. On two cores this also
/// keeps each proxied message on one thread, without a cross-thread wake-up
/// (`bench/pgbench.sh`, in bench/README.md).
pub(super) fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

pub(super) fn load_file(path: &Path) -> Result<ServeArgs, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.into(),
        source,
    })
}

pub fn is_plain_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 64
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub(super) fn default_user() -> String {
    let name = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "infrasql".into())
        .to_ascii_lowercase();
    if is_plain_identifier(&name) {
        name
    } else {
        "infrasql".into()
    }
}

pub(super) fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        // The cluster runs as `postgres`, which cannot reach into /root.
        return PathBuf::from("/var/lib/infrasql");
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("infrasql");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".local/share/infrasql");
    }
    PathBuf::from("infrasql-data")
}
