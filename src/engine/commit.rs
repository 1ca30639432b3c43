//! The commit path: the production [`CommitHook`].
//!
//! At COMMIT, inside the client's transaction: read the changes captured for
//! this transaction, plan, apply through the providers (journaled, undone on
//! failure), seal the transaction, write the cloud-assigned values back into
//! the rows, record the apply, and let the COMMIT through.
//!
//! # Guarantees
//! - When COMMIT returns success, every action of the plan has been carried
//!   out in AWS and the rows hold the ids and states AWS assigned.
//! - When COMMIT fails, what the apply did is undone (reverse order), the
//!   transaction is rolled back, and the error names the resource, AWS's
//!   error code and message, and (in DETAIL) what was undone.
//! - Write-only values never rest in a row ([`secrets`]): they are used for
//!   the call and never journaled, planned, logged or sent in a notice.
//!
//! # Caveats
//! - Deletes run last and cannot be undone; if one fails, earlier deletes of
//!   the same commit stay done, and the error says so.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use infrasql_provider::{ColumnKind, Props, ResourceSchema};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::apply::{self, Resources};
use super::errors;
use super::hook::{CommitContext, CommitHook, HookError, Verdict};
use super::journal::{ApplyId, ApplyStatus, Journal, JournalError, Origin};
use super::plan::{self, Action, Plan};
use super::report::Report;
use super::settings::{self, WaitMode};
use super::stop;
use crate::metrics::{self, ApplyOutcome, ApplySource, CommitOutcome};
use crate::store::engine_db::EngineDb;

mod policy;
mod refusal;
mod run;
mod secrets;
mod sets;
mod who;

/// What the session asked of this apply besides the plan.
struct Steer {
    signal: super::hook::CancelSignal,
    wait: WaitMode,
    timeout: Option<std::time::Duration>,
}

pub struct Engine {
    resources: Resources,
    schemas: HashMap<String, &'static ResourceSchema>,
    db: Arc<EngineDb>,
    seal_secret: String,
    syncer: Option<Arc<super::sync::Syncer>>,
}

/// Quote a string as a SQL literal whatever `standard_conforming_strings` is.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn hook_err(code: &str, msg: impl Into<String>) -> HookError {
    HookError(Report::error(code, msg))
}

fn plan_error(e: plan::PlanError) -> HookError {
    let message = match e {
        plan::PlanError::UnknownTable(_) | plan::PlanError::Cycle(_) => {
            format!("cannot plan this transaction: {e}")
        }
        _ => e.to_string(),
    };
    let mut report = Report::error(e.sqlstate(), message);
    if let Some(d) = e.detail() {
        report = report.with_detail(d.to_owned());
    }
    if let Some(h) = e.hint() {
        report = report.with_hint(h.to_owned());
    }
    HookError(report)
}

impl Engine {
    pub fn new(resources: Resources, db: Arc<EngineDb>, seal_secret: String) -> Self {
        let schemas = resources
            .iter()
            .map(|(k, r)| (k.clone(), r.schema()))
            .collect();
        Engine {
            resources,
            schemas,
            db,
            seal_secret,
            syncer: None,
        }
    }

    /// Let `SELECT infra.sync()` run this syncer.
    pub fn with_syncer(mut self, syncer: Arc<super::sync::Syncer>) -> Self {
        self.syncer = Some(syncer);
        self
    }

    /// The transaction's net changes and their plan.
    async fn plan(&self, ctx: &mut dyn CommitContext) -> Result<Option<Plan>, HookError> {
        let rows = ctx
            .query(
                "SELECT table_name, old_row::text, new_row::text FROM infra.change \
                 WHERE xid = pg_current_xact_id_if_assigned() ORDER BY seq",
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let parse = |v: &Option<String>| -> Option<Props> {
            v.as_deref()
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
                .and_then(|v| match v {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
        };
        let mut raw: Vec<_> = rows
            .iter()
            .map(|r| (r[0].clone().unwrap_or_default(), parse(&r[1]), parse(&r[2])))
            .collect();
        secrets::restore(&mut raw, &secrets::held(ctx).await?);
        let changes =
            plan::net_changes(raw.clone(), |t| self.schemas.get(t).map(|s| s.id_column()));
        // Join-table rows are folded into their owners' steps.
        let changes = sets::fold(ctx, &self.schemas, &raw, changes).await?;
        let planned = plan::plan(&changes, &self.schemas).map_err(plan_error)?;
        // Whether each replace may run is decided here, before any AWS call,
        // from the rows as this transaction leaves them: the plan sees only
        // the changed rows, not the unchanged ones that still use a parent.
        let mut facts = plan::Facts::default();
        if let Some(sql) = plan::dependents_query(&planned, &self.schemas) {
            facts.dependents = plan::dependents_from(&ctx.query(&sql).await?);
        }
        if plan::needs_consent(&planned, &self.schemas) {
            facts.allow_replace = settings::bool_setting(ctx, "infra.allow_replace").await?;
        }
        plan::check_replaces(&planned, &self.schemas, &facts).map_err(plan_error)?;
        if planned.steps.iter().any(|s| s.action == Action::Delete)
            && !settings::bool_setting(ctx, "infra.allow_mass_delete").await?
        {
            let max = settings::max_deletes_setting(ctx).await?;
            plan::check_mass_delete(&planned, max).map_err(plan_error)?;
        }
        Ok(Some(planned))
    }

    async fn seal(&self, ctx: &mut dyn CommitContext) -> Result<(), HookError> {
        let xid = current_xid(ctx).await?;
        let token = hex(&Sha256::digest(
            format!("{}:{xid}", self.seal_secret).as_bytes(),
        ));
        ctx.query(&format!("SELECT infra.seal('{token}')")).await?;
        Ok(())
    }

    /// Write the cloud's values into the row; the provisional id becomes the
    /// real one (foreign keys follow by ON UPDATE CASCADE). Write-only
    /// columns are NULL already ([`secrets`]); they are set so again in
    /// case the trigger was dropped.
    fn write_back_sql(&self, table: &str, old_id: &str, observed: &Props) -> Option<String> {
        let schema = self.schemas.get(table)?;
        let mut sets = Vec::new();
        // A set lives in its join table, whose rows follow the new id.
        for c in schema
            .table_columns()
            // Membership is the database's; the tag only mirrors it.
            .filter(|c| !matches!(c.kind, ColumnKind::RowKey | ColumnKind::Stack))
        {
            let col = ident(c.name);
            match c.kind {
                ColumnKind::WriteOnly => sets.push(format!("{col} = NULL")),
                _ if c.name == "synced_at" => sets.push(format!("{col} = now()")),
                _ if observed.contains_key(c.name) => sets.push(format!("{col} = r.{col}")),
                _ => {}
            }
        }
        if sets.is_empty() {
            return None;
        }
        let json = Value::Object(observed.clone()).to_string();
        Some(format!(
            "UPDATE {table} AS t SET {} FROM jsonb_populate_record(NULL::{table}, {}::jsonb) AS r WHERE t.{} = {}",
            sets.join(", "),
            literal(&json),
            ident(schema.id_column()),
            literal(old_id)
        ))
    }

    /// Every committed policy judges the plan, before any AWS call.
    async fn check_policies(
        &self,
        ctx: &mut dyn CommitContext,
        plan: &Plan,
        dry_run: bool,
    ) -> Result<(), HookError> {
        let db = self.journal_db().await?;
        let policies = policy::load(&db)
            .await
            .map_err(|e| journal_failed(JournalError::from(e)))?;
        let touched = policy::touched(plan, &self.schemas);
        policy::check(ctx, &policies, plan, &touched, dry_run).await
    }

    /// The engine's shared connection, which the apply journal writes on.
    async fn journal_db(&self) -> Result<Arc<tokio_postgres::Client>, HookError> {
        self.db
            .shared()
            .await
            .map_err(|e| journal_failed(JournalError::from(e)))
    }
}

/// infrasql's own database failed before the cloud was touched.
fn journal_failed(e: JournalError) -> HookError {
    HookError(
        Report::error(errors::INFRASQL_FAILED, e.to_string())
            .with_detail("Nothing was applied in AWS; the transaction is rolled back.")
            .with_hint(errors::INFRASQL_FAILED_HINT),
    )
}

/// A COMMIT's apply ended: for `/metrics`.
fn applied_metric(outcome: ApplyOutcome, started: Instant) {
    metrics::apply_finished(ApplySource::Commit, outcome, started.elapsed());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

async fn current_xid(ctx: &mut dyn CommitContext) -> Result<String, HookError> {
    let rows = ctx.query("SELECT pg_current_xact_id()::text").await?;
    Ok(rows.first().and_then(|r| r[0].clone()).unwrap_or_default())
}

/// Anything that would make the backend's COMMIT fail must fail now,
/// before AWS is touched: deferred constraints are checked at once.
/// infrasql's own safety net (`infrasql_commit_path`) is deferred too and
/// must not fire before the seal, so it is left out by name.
async fn check_deferred(ctx: &mut dyn CommitContext) -> Result<(), HookError> {
    let rows = ctx
        .query(
            "SELECT string_agg(DISTINCT format('%I.%I', n.nspname, c.conname), ', ') \
             FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace \
             WHERE c.condeferrable AND c.conname <> 'infrasql_commit_path'",
        )
        .await?;
    if let Some(list) = rows.first().and_then(|r| r[0].clone()) {
        ctx.query(&format!("SET CONSTRAINTS {list} IMMEDIATE"))
            .await?;
    }
    Ok(())
}

#[async_trait]
impl CommitHook for Engine {
    async fn before_commit(&self, ctx: &mut dyn CommitContext) -> Result<Verdict, HookError> {
        let mut applying = false;
        let result = self.commit(ctx, &mut applying).await;
        metrics::commit_finished(match &result {
            Ok(Verdict::Commit) if applying => CommitOutcome::Committed,
            Ok(Verdict::Commit) => CommitOutcome::NoChange,
            Ok(Verdict::Rollback) => CommitOutcome::PlanOnly,
            Err(_) if applying => CommitOutcome::Failed,
            Err(_) => CommitOutcome::Refused,
        });
        result
    }

    async fn before_sync_call(
        &self,
        table: Option<String>,
        region: Option<String>,
    ) -> Result<(), HookError> {
        if let Some(s) = &self.syncer {
            s.sync_all(table.as_deref(), region.as_deref()).await;
        }
        Ok(())
    }

    async fn before_plan_read(&self, ctx: &mut dyn CommitContext) -> Result<(), HookError> {
        let plan = self.plan(ctx).await?;
        let rows = match &plan {
            Some(plan) => plan.to_rows(),
            None => Value::Array(Vec::new()),
        };
        ctx.query(&format!(
            "SELECT infra.put_plan({}::jsonb)",
            literal(&rows.to_string())
        ))
        .await?;
        // What the policies would say of this plan at COMMIT, for
        // infra.plan_policy (and `infrasql plan`).
        let verdicts = match &plan {
            Some(plan) if !plan.is_empty() => {
                let db = self.journal_db().await?;
                let policies = policy::load(&db)
                    .await
                    .map_err(|e| journal_failed(JournalError::from(e)))?;
                let touched = policy::touched(plan, &self.schemas);
                let judged = policy::judge(ctx, &policies, plan, &touched).await?;
                policy::to_rows(&judged)
            }
            _ => Value::Array(Vec::new()),
        };
        ctx.query(&format!(
            "SELECT infra.put_plan_policy({}::jsonb)",
            literal(&verdicts.to_string())
        ))
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_survive_quotes_and_backslashes() {
        assert_eq!(literal("it's"), "E'it\\'s'");
        assert_eq!(literal("a\\b"), "E'a\\\\b'");
    }
}
