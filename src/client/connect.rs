//! A connection as libpq would make it: `--url` (a URL or `key=value`
//! string), else the standard `PG*` variables, with the password from
//! `PGPASSWORD` or `~/.pgpass` (`PGPASSFILE`).

use std::path::PathBuf;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::config::Host;
use tokio_postgres::error::DbError;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

/// The startup option that asks the server for a plan-only session
/// (`wire::frontend::mode`): the server, not this client, keeps it.
pub const PLAN_ONLY_OPTION: &str = "-c infrasql.mode=plan";

/// Builds the connection's settings; `extra_options` is appended to any
/// `options` the URL carries.
pub fn config(url: Option<&str>, extra_options: &str) -> anyhow::Result<Config> {
    let mut cfg = match url {
        Some(u) => u
            .parse::<Config>()
            .with_context(|| "invalid --url (expected postgresql://... or key=value pairs)")?,
        None => from_env(),
    };
    if !extra_options.is_empty() {
        let options = match cfg.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {extra_options}"),
            _ => extra_options.to_string(),
        };
        cfg.options(&options);
    }
    if cfg.get_password().is_none() {
        if let Some(pw) = pgpass(&cfg) {
            cfg.password(pw);
        }
    }
    Ok(cfg)
}

fn from_env() -> Config {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut cfg = Config::new();
    cfg.host(var("PGHOST").unwrap_or_else(|| "localhost".into()));
    if let Some(p) = var("PGPORT").and_then(|p| p.parse().ok()) {
        cfg.port(p);
    }
    let user = var("PGUSER").or_else(|| var("USER")).unwrap_or_default();
    cfg.user(&user);
    cfg.dbname(var("PGDATABASE").unwrap_or(user));
    if let Some(pw) = var("PGPASSWORD") {
        cfg.password(pw);
    }
    if let Some(o) = var("PGOPTIONS") {
        cfg.options(&o);
    }
    cfg
}

/// The first `~/.pgpass` line matching host, port, database and user
/// (`*` matches anything; `\:` and `\\` are escapes), as libpq reads it.
fn pgpass(cfg: &Config) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let host = match cfg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432).to_string();
    let db = cfg.get_dbname().unwrap_or_default();
    let user = cfg.get_user().unwrap_or_default();
    pgpass_lookup(&text, [&host, &port, db, user])
}

fn pgpass_lookup(text: &str, want: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(want)
                .all(|(f, w)| f == "*" || f == w);
            matches.then(|| fields[4].clone())
        })
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().unwrap().push(n);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// Connects; the connection task runs in the background and its end is
/// logged (a lost server then fails the next query).
pub async fn connect(cfg: &Config) -> anyhow::Result<Client> {
    Ok(connect_with_notices(cfg).await?.0)
}

/// Connects, and passes the server's NOTICEs on as they arrive: the
/// engine reports an apply's progress that way, during the COMMIT. The
/// connection task hands a notice over before the answer of the statement
/// that raised it, so when a statement returns its notices are waiting.
pub async fn connect_with_notices(
    cfg: &Config,
) -> anyhow::Result<(Client, mpsc::UnboundedReceiver<DbError>)> {
    let (client, mut conn) = cfg
        .connect(NoTls)
        .await
        .context("cannot connect to infrasql")?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notice(n)) => {
                    // Nobody listening (plain `connect`) is fine.
                    let _ = tx.send(n);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("connection ended: {e}");
                    return;
                }
            }
        }
    });
    Ok((client, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_matches_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:u:no\nh:5432:*:u:pa\\:ss\n";
        assert_eq!(
            pgpass_lookup(text, ["h", "5432", "db", "u"]).as_deref(),
            Some("pa:ss")
        );
        assert_eq!(pgpass_lookup(text, ["h", "5433", "db", "u"]), None);
    }

    #[test]
    fn url_options_are_kept_and_plan_mode_added() {
        let cfg = config(
            Some("host=h user=u password=p options='-c search_path=x'"),
            PLAN_ONLY_OPTION,
        )
        .unwrap();
        assert_eq!(
            cfg.get_options(),
            Some("-c search_path=x -c infrasql.mode=plan")
        );
    }
}
