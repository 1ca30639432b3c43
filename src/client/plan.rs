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
use std::path::PathBuf;

use anyhow::Context;
use tokio_postgres::Client;

use super::connect;
use super::render::{PlanRow, PlanView};
use super::sql::{read_sources, text_rows, SourceFile, StatementError};
use super::stack::{Stack, StackOpts};
use super::verdict::Verdict;

/// Connects in plan-only mode, runs the files and returns the plan.
/// `pending`: only the files `infrasql apply` has not recorded yet, so a
/// pull request's plan shows what its merge would apply.
/// With a stack, the files are its whole declaration
/// ([`super::stack`]): the plan is what applying them as that stack does.
pub async fn run(
    url: Option<&str>,
    paths: &[PathBuf],
    pending: bool,
    stack: &StackOpts,
) -> anyhow::Result<PlanView> {
    let mut sources = super::stack::fill(read_sources(paths)?, &stack.vars()?)?;
    let cfg = connect::config(url, connect::PLAN_ONLY_OPTION)?;
    let client = connect::connect(&cfg).await?;
    if pending {
        if stack.stack.is_some() {
            anyhow::bail!("--pending is for migration files; a stack's files are applied whole");
        }
        sources = super::apply::unapplied(&client, sources).await?;
    }
    plan_sources(&client, &sources, stack.stack().as_ref()).await
}

/// Runs the sources in one transaction of `client` (a plan-only session),
/// as a stack's declaration if given, reads the plan and the policies'
/// verdicts, and rolls back.
pub async fn plan_sources(
    client: &Client,
    sources: &[SourceFile],
    stack: Option<&Stack>,
) -> anyhow::Result<PlanView> {
    let kinds = column_kinds(client).await?;
    client.batch_execute("BEGIN").await?;
    let ran = match stack {
        Some(stack) => super::stack::declare(client, stack, sources)
            .await
            .map(|_| ()),
        None => run_files(client, sources).await,
    };
    if let Err(e) = ran {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(e);
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

async fn run_files(client: &Client, sources: &[SourceFile]) -> anyhow::Result<()> {
    for file in sources {
        run_file(client, file).await?;
    }
    Ok(())
}

/// Runs a file's statements one by one; a failure names the file and line.
pub async fn run_file(client: &Client, file: &SourceFile) -> Result<(), StatementError> {
    for stmt in file.statements() {
        client
            .batch_execute(stmt)
            .await
            .map_err(|e| file.error_at(stmt, &e))?;
    }
    Ok(())
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
        "SELECT step, action, \"table\", resource_id, name, region, changes::text,
                array_to_string(depends_on, ',') FROM infra.plan",
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
                depends_on: get(7)
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|d| d.trim().parse().ok())
                    .collect(),
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
