//! `infrasql plan`: run SQL files in one transaction of a plan-only
//! session, read the plan, roll back.
//!
//! The client's BEGIN/ROLLBACK are a convenience; the guarantee that
//! nothing is applied is the server's (`wire::frontend::mode`): a
//! `COMMIT`, `SET infra.dry_run = off` or `RESET ALL` in a file cannot
//! leave the plan-only session. A `COMMIT` in a file ends the transaction
//! there (the server rolls it back), so the plan shown is what the
//! statements after the last one would do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::connect;
use super::render::{PlanRow, PlanView};
use super::verdict::Verdict;
use crate::wire::classify::split_statements;

/// A statement of a file failed: the file, the line it starts on (or the
/// line of the error's position) and the server's message.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct StatementError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// The SQL files to run, in order: each FILE as given, each DIR's `*.sql`
/// files sorted by name (as numbered migrations are).
pub fn sql_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "sql") && f.is_file())
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Connects in plan-only mode, runs the files and returns the plan.
pub async fn run(url: Option<&str>, paths: &[PathBuf]) -> anyhow::Result<PlanView> {
    let files = sql_files(paths)?;
    let mut sources = Vec::with_capacity(files.len());
    for f in &files {
        let sql =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        sources.push((f.clone(), sql));
    }
    let cfg = connect::config(url, connect::PLAN_ONLY_OPTION)?;
    let client = connect::connect(&cfg).await?;
    plan_sources(&client, &sources).await
}

/// Runs `(name, SQL)` sources in one transaction of `client` (a plan-only
/// session), reads the plan and rolls back.
pub async fn plan_sources(
    client: &Client,
    sources: &[(PathBuf, String)],
) -> anyhow::Result<PlanView> {
    let kinds = column_kinds(client).await?;
    client.batch_execute("BEGIN").await?;
    for (file, sql) in sources {
        if let Err(e) = run_file(client, file, sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e.into());
        }
    }
    let rows = read_plan(client).await?;
    // Filled by the server when infra.plan was read, in this transaction.
    let verdicts = read_verdicts(client).await?;
    client.batch_execute("ROLLBACK").await?;
    Ok(PlanView {
        rows,
        kinds,
        verdicts,
    })
}

/// Runs a file's statements one by one; a failure names the file and line.
pub async fn run_file(client: &Client, file: &Path, sql: &str) -> Result<(), StatementError> {
    for stmt in split_statements(sql) {
        if stmt.trim().is_empty() {
            continue;
        }
        if let Err(e) = client.batch_execute(stmt).await {
            let offset = stmt.as_ptr() as usize - sql.as_ptr() as usize;
            let (line, message) = match e.as_db_error() {
                Some(db) => {
                    let at = match db.position() {
                        Some(tokio_postgres::error::ErrorPosition::Original(p)) => {
                            offset + char_offset(stmt, *p as usize)
                        }
                        _ => offset + leading_blank(stmt),
                    };
                    let mut m = format!("{}: {}", db.code().code(), db.message());
                    if let Some(d) = db.detail() {
                        m.push_str(&format!("\nDETAIL: {d}"));
                    }
                    if let Some(h) = db.hint() {
                        m.push_str(&format!("\nHINT: {h}"));
                    }
                    (line_at(sql, at), m)
                }
                None => (line_at(sql, offset + leading_blank(stmt)), e.to_string()),
            };
            return Err(StatementError {
                file: file.to_path_buf(),
                line,
                message,
            });
        }
    }
    Ok(())
}

/// The byte offset of PostgreSQL's 1-based character position.
fn char_offset(stmt: &str, position: usize) -> usize {
    stmt.char_indices()
        .nth(position.saturating_sub(1))
        .map_or(stmt.len(), |(i, _)| i)
}

/// Bytes of whitespace and comments before the statement's first word,
/// so the line reported is the statement's, not the comment's above it.
fn leading_blank(stmt: &str) -> usize {
    let mut rest = stmt;
    loop {
        let trimmed = rest.trim_start();
        if let Some(c) = trimmed.strip_prefix("--") {
            rest = c.find('\n').map_or("", |n| &c[n..]);
        } else if let Some(c) = trimmed.strip_prefix("/*") {
            rest = c.find("*/").map_or("", |n| &c[n + 2..]);
        } else {
            return stmt.len() - trimmed.len();
        }
    }
}

fn line_at(sql: &str, offset: usize) -> usize {
    1 + sql.as_bytes()[..offset.min(sql.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// Column kinds (`cloud`, `write_only`, ...) per table, for the renderer.
async fn column_kinds(client: &Client) -> anyhow::Result<HashMap<(String, String), String>> {
    let rows = text_rows(
        client,
        "SELECT table_name, column_name, kind FROM infra.resource_column",
    )
    .await
    .context("cannot read infra.resource_column")?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter().map(Option::unwrap_or_default);
            let (t, c, k) = (r.next(), r.next(), r.next());
            (
                (t.unwrap_or_default(), c.unwrap_or_default()),
                k.unwrap_or_default(),
            )
        })
        .collect())
}

async fn read_plan(client: &Client) -> anyhow::Result<Vec<PlanRow>> {
    let rows = text_rows(
        client,
        "SELECT step, action, \"table\", resource_id, name, region, changes::text FROM infra.plan",
    )
    .await
    .context("cannot read infra.plan")?;
    rows.into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten();
            Ok(PlanRow {
                step: get(0).and_then(|s| s.parse().ok()).unwrap_or_default(),
                action: get(1).unwrap_or_default(),
                table: get(2).unwrap_or_default(),
                resource_id: get(3).unwrap_or_default(),
                name: get(4),
                region: get(5).unwrap_or_default(),
                changes: serde_json::from_str(&get(6).unwrap_or_else(|| "{}".into()))?,
            })
        })
        .collect()
}

async fn read_verdicts(client: &Client) -> anyhow::Result<Vec<Verdict>> {
    let rows = text_rows(
        client,
        "SELECT policy, severity, message, resource_id, offending::text, error FROM infra.plan_policy",
    )
    .await
    .context("cannot read infra.plan_policy")?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten();
            Verdict {
                policy: get(0).unwrap_or_default(),
                severity: get(1).unwrap_or_default(),
                message: get(2).unwrap_or_default(),
                resource_id: get(3),
                offending: get(4).and_then(|j| serde_json::from_str(&j).ok()),
                error: get(5),
            }
        })
        .collect())
}

async fn text_rows(client: &Client, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    Ok(client
        .simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_line_skips_comments_above_it() {
        let sql = "SELECT 1;\n-- why\n\nINSERT INTO t VALUES (1);";
        let stmts = split_statements(sql);
        let s = stmts[1];
        let offset = s.as_ptr() as usize - sql.as_ptr() as usize;
        assert_eq!(line_at(sql, offset + leading_blank(s)), 4);
    }
}
