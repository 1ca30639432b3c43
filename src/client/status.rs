//! `infrasql status`: what a person or a scheduled CI job asks first. The
//! server's version, the sync state per table and region, the open drift
//! per table, the last applies. Read with ordinary queries, so it shows
//! what any user may read; rendering is pure.

use std::fmt::Write;

use anyhow::Context;
use serde::Serialize;
use tokio_postgres::Client;

use super::connect;
use super::sql::text_rows;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub version: String,
    pub sync: Vec<SyncRow>,
    pub drift: Vec<DriftRow>,
    pub applies: Vec<ApplyRow>,
    pub stacks: Vec<StackRow>,
}

/// A row of `infra.stack`.
#[derive(Debug, Clone, Serialize)]
pub struct StackRow {
    pub name: String,
    pub revision: Option<String>,
    pub status: String,
    pub resources: i64,
    pub open_drift: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncRow {
    pub table: String,
    pub region: String,
    pub last_finished: Option<String>,
    /// Seconds since the last round finished.
    pub age_s: Option<i64>,
    pub failures: i64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftRow {
    pub table: String,
    pub open: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplyRow {
    pub apply_id: String,
    pub user: String,
    pub status: String,
    pub started_at: String,
    pub actions: i64,
    pub source: String,
    pub error: Option<String>,
}

impl Status {
    pub fn open_drift(&self) -> i64 {
        self.drift.iter().map(|d| d.open).sum()
    }
}

pub async fn read(url: Option<&str>) -> anyhow::Result<Status> {
    let client = connect::connect(&connect::config(url, "")?).await?;
    read_from(&client).await
}

async fn read_from(client: &Client) -> anyhow::Result<Status> {
    let version = text_rows(client, "SELECT infra.version()")
        .await
        .context("cannot read infra.version()")?
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
        .unwrap_or_default();
    let rows = |sql: &'static str| async move {
        text_rows(client, sql)
            .await
            .with_context(|| format!("cannot run {sql}"))
    };
    let int = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok());
    let sync = rows(
        "SELECT table_name, region, \
                to_char(last_finished AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                floor(extract(epoch FROM now() - last_finished))::bigint, failures, last_error \
         FROM infra.sync_status ORDER BY table_name, region",
    )
    .await?
    .into_iter()
    .map(|r| {
        let mut r = r.into_iter();
        SyncRow {
            table: r.next().flatten().unwrap_or_default(),
            region: r.next().flatten().unwrap_or_default(),
            last_finished: r.next().flatten(),
            age_s: int(r.next().flatten()),
            failures: int(r.next().flatten()).unwrap_or(0),
            error: r.next().flatten(),
        }
    })
    .collect();
    let drift = rows(
        "SELECT table_name, count(*) FROM infra.drift WHERE resolution = 'open' \
         GROUP BY table_name ORDER BY table_name",
    )
    .await?
    .into_iter()
    .map(|r| {
        let mut r = r.into_iter();
        DriftRow {
            table: r.next().flatten().unwrap_or_default(),
            open: int(r.next().flatten()).unwrap_or(0),
        }
    })
    .collect();
    let applies = rows(
        "SELECT apply_id, username, status, \
                to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                actions, source, error \
         FROM infra.apply ORDER BY started_at DESC LIMIT 10",
    )
    .await?
    .into_iter()
    .map(|r| {
        let mut r = r.into_iter();
        ApplyRow {
            apply_id: r.next().flatten().unwrap_or_default(),
            user: r.next().flatten().unwrap_or_default(),
            status: r.next().flatten().unwrap_or_default(),
            started_at: r.next().flatten().unwrap_or_default(),
            actions: int(r.next().flatten()).unwrap_or(0),
            source: r.next().flatten().unwrap_or_default(),
            error: r.next().flatten(),
        }
    })
    .collect();
    let stacks = rows(
        "SELECT name, revision, status, resources, open_drift, error FROM infra.stack ORDER BY name",
    )
    .await?
    .into_iter()
    .map(|r| {
        let mut r = r.into_iter();
        StackRow {
            name: r.next().flatten().unwrap_or_default(),
            revision: r.next().flatten(),
            status: r.next().flatten().unwrap_or_default(),
            resources: int(r.next().flatten()).unwrap_or(0),
            open_drift: int(r.next().flatten()).unwrap_or(0),
            error: r.next().flatten(),
        }
    })
    .collect();
    Ok(Status {
        version,
        sync,
        drift,
        applies,
        stacks,
    })
}

pub fn render(s: &Status, format: StatusFormat) -> String {
    match format {
        StatusFormat::Json => {
            let mut j = serde_json::to_string_pretty(s).expect("plain data");
            j.push('\n');
            j
        }
        StatusFormat::Table => table(s),
    }
}

fn table(s: &Status) -> String {
    let mut out = format!("server: {}\n\nsync:\n", s.version);
    if s.sync.is_empty() {
        out.push_str("  no sync round has run yet\n");
    }
    let sync: Vec<Vec<String>> = s
        .sync
        .iter()
        .map(|r| {
            vec![
                r.table.clone(),
                r.region.clone(),
                r.last_finished.clone().unwrap_or_else(|| "never".into()),
                r.age_s.map_or_else(|| "-".into(), age),
                match &r.error {
                    Some(e) => format!("error ({} in a row): {}", r.failures, first_line(e)),
                    None => "ok".into(),
                },
            ]
        })
        .collect();
    columns(
        &mut out,
        &["table", "region", "last run", "age", "state"],
        &sync,
    );

    let _ = writeln!(out, "\nopen drift: {}", s.open_drift());
    let drift: Vec<Vec<String>> = s
        .drift
        .iter()
        .map(|d| vec![d.table.clone(), d.open.to_string()])
        .collect();
    columns(&mut out, &["table", "open"], &drift);

    // Only where stacks are used: a server without them shows what it did.
    if !s.stacks.is_empty() {
        out.push_str("\nstacks:\n");
        let stacks: Vec<Vec<String>> = s
            .stacks
            .iter()
            .map(|st| {
                vec![
                    st.name.clone(),
                    st.revision
                        .as_deref()
                        .map_or("-".into(), |r| r[..r.len().min(12)].to_owned()),
                    st.status.clone(),
                    st.resources.to_string(),
                    st.open_drift.to_string(),
                    st.error.as_deref().map(first_line).unwrap_or_default(),
                ]
            })
            .collect();
        columns(
            &mut out,
            &["stack", "revision", "status", "resources", "drift", "error"],
            &stacks,
        );
    }

    out.push_str("\nlast applies:\n");
    if s.applies.is_empty() {
        out.push_str("  none\n");
    }
    let applies: Vec<Vec<String>> = s
        .applies
        .iter()
        .map(|a| {
            vec![
                a.apply_id.clone(),
                a.user.clone(),
                a.status.clone(),
                a.started_at.clone(),
                a.actions.to_string(),
                a.source.clone(),
                a.error.as_deref().map(first_line).unwrap_or_default(),
            ]
        })
        .collect();
    columns(
        &mut out,
        &[
            "apply", "user", "status", "started", "actions", "source", "error",
        ],
        &applies,
    );
    out
}

/// Aligned columns, two spaces in; nothing when there are no rows.
fn columns(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        return;
    }
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&head).chain(rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// 42 s, 5 min, 3 h, 2 d: enough to see whether sync is keeping up.
fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            version: "infrasql 0.1.0".into(),
            sync: vec![SyncRow {
                table: "aws.vpc".into(),
                region: "us-east-1".into(),
                last_finished: Some("2026-01-01T00:00:00Z".into()),
                age_s: Some(300),
                failures: 0,
                error: None,
            }],
            drift: vec![DriftRow {
                table: "aws.subnet".into(),
                open: 2,
            }],
            applies: vec![],
            stacks: vec![],
        }
    }

    #[test]
    fn the_table_aligns_and_says_what_is_missing() {
        let t = render(&sample(), StatusFormat::Table);
        assert!(t.starts_with("server: infrasql 0.1.0\n"), "{t}");
        assert!(
            t.contains("  table    region     last run              age    state\n"),
            "{t}"
        );
        assert!(
            t.contains("  aws.vpc  us-east-1  2026-01-01T00:00:00Z  5 min  ok\n"),
            "{t}"
        );
        assert!(t.contains("open drift: 2\n"), "{t}");
        assert!(t.contains("last applies:\n  none\n"), "{t}");
        assert!(!t.contains("stacks:"), "{t}");
    }

    #[test]
    fn stacks_show_their_revision_status_and_error() {
        let mut s = sample();
        s.stacks = vec![StackRow {
            name: "web.prod".into(),
            revision: Some("0123456789abcdef0123".into()),
            status: "failed".into(),
            resources: 3,
            open_drift: 1,
            error: Some("net.sql:2: 42601: syntax error\nmore".into()),
        }];
        let t = render(&s, StatusFormat::Table);
        assert!(
            t.contains("stacks:\n  stack     revision      status  resources  drift  error\n  web.prod  0123456789ab  failed  3          1      net.sql:2: 42601: syntax error\n"),
            "{t}"
        );
    }

    #[test]
    fn json_has_every_part() {
        let j: serde_json::Value =
            serde_json::from_str(&render(&sample(), StatusFormat::Json)).unwrap();
        assert_eq!(j["sync"][0]["age_s"], 300);
        assert_eq!(j["drift"][0]["open"], 2);
        assert_eq!(j["applies"], serde_json::json!([]));
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(42), "42 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(3 * 3600), "3 h");
        assert_eq!(age(3 * 86_400), "3 d");
    }
}
