//! `infrasql revert APPLY_ID [--yes]`: the SQL that `infra.revert()`
//! returns for an apply, shown as a plan (run in a plan-only session,
//! exactly as `infrasql plan` runs a file), or with `--yes` applied in one
//! transaction with the engine's notices printed as they come.
//!
//! The script is written by the database (`schema/0730_revert.sql`), so
//! `psql` users and this command undo an apply the same way; this module
//! only runs it.

use std::path::PathBuf;

use tokio_postgres::Client;

use super::connect;
use super::plan::{plan_sources, run_file};
use super::render::PlanView;
use super::sql::SourceFile;

/// The opt-ins of the session that runs the script.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consent {
    /// `SET infra.allow_replace = on`: the script re-creates a resource
    /// whose data (or write-only values) cannot come back.
    pub allow_replace: bool,
}

/// The script's name in errors: a failing statement is reported as
/// `infra.revert('apply-...'):LINE: ...`, as `plan` names a file.
fn source(apply_id: &str, sql: &str) -> SourceFile {
    SourceFile {
        path: PathBuf::from(format!("infra.revert('{apply_id}')")),
        text: sql.to_owned(),
    }
}

/// The script's leading comment lines: which apply it undoes and what does
/// not come back. Shown before the plan, since the plan cannot say it.
pub fn header(script: &str) -> impl Iterator<Item = &str> {
    script.lines().take_while(|l| l.starts_with("--"))
}

/// The server's error as `plan` shows one: SQLSTATE, message, DETAIL, HINT.
fn server_error(e: tokio_postgres::Error) -> anyhow::Error {
    anyhow::anyhow!(super::sql::server_error(&e))
}

async fn script(client: &Client, apply_id: &str, consent: Consent) -> anyhow::Result<String> {
    if consent.allow_replace {
        client
            .batch_execute("SET infra.allow_replace = on")
            .await
            .map_err(server_error)?;
    }
    let row = client
        .query_one("SELECT infra.revert($1)", &[&apply_id])
        .await
        .map_err(server_error)?;
    Ok(row.get(0))
}

/// The script and the plan it makes; nothing is applied (the server keeps
/// the session plan-only).
pub async fn plan(
    url: Option<&str>,
    apply_id: &str,
    consent: Consent,
) -> anyhow::Result<(String, PlanView)> {
    let cfg = connect::config(url, connect::PLAN_ONLY_OPTION)?;
    let client = connect::connect(&cfg).await?;
    let sql = script(&client, apply_id, consent).await?;
    let view = plan_sources(&client, &[source(apply_id, &sql)], None)
        .await
        .map_err(|e| with_flag_hint(e, consent))?;
    Ok((sql, view))
}

/// The script's guard names the setting; here the flag sets it.
fn with_flag_hint(e: anyhow::Error, consent: Consent) -> anyhow::Error {
    if !consent.allow_replace && format!("{e:#}").contains("infra.allow_replace = on") {
        anyhow::anyhow!("{e:#}\n(infrasql revert sets it with --allow-replace)")
    } else {
        e
    }
}

/// Runs the script in one transaction and commits; `notice` gets each of
/// the engine's notices (the plan, the apply's progress) as it arrives.
pub async fn apply(
    url: Option<&str>,
    apply_id: &str,
    consent: Consent,
    mut notice: impl FnMut(String) + Send + 'static,
) -> anyhow::Result<String> {
    let cfg = connect::config(url, "")?;
    let (client, mut notices) = connect::connect_with_notices(&cfg).await?;
    let printer = tokio::spawn(async move {
        while let Some(n) = notices.recv().await {
            let mut line = format!("{}: {}", n.severity(), n.message());
            if let Some(d) = n.detail() {
                line.push_str(&format!("\nDETAIL: {d}"));
            }
            notice(line);
        }
    });
    let result = run(&client, apply_id, consent)
        .await
        .map_err(|e| with_flag_hint(e, consent));
    // The connection ends with its last client, which closes the channel:
    // every notice is printed before the outcome.
    drop(client);
    let _ = printer.await;
    result
}

async fn run(client: &Client, apply_id: &str, consent: Consent) -> anyhow::Result<String> {
    let sql = script(client, apply_id, consent).await?;
    client.batch_execute("BEGIN").await.map_err(server_error)?;
    if let Err(e) = run_file(client, &source(apply_id, &sql)).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(e.into());
    }
    client.batch_execute("COMMIT").await.map_err(server_error)?;
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_leading_comment_lines() {
        let sql = "-- Undoes apply a.\n-- What does not come back:\nSELECT 1;\n-- step 1\nDELETE FROM t;\n";
        assert_eq!(
            header(sql).collect::<Vec<_>>(),
            ["-- Undoes apply a.", "-- What does not come back:"]
        );
    }
}
