//! Policies as SQL (`infra.policy`, `schema/0700_policy.sql`): at COMMIT,
//! after the plan is made and before any AWS call, every policy's query runs
//! inside the client's transaction, so it sees the rows as the commit will
//! leave them, `infra.plan` included.
//!
//! - The policies are read on the engine's shared connection: a separate
//!   session sees only what was committed before, so a transaction cannot
//!   disable the policies that judge it.
//! - A query returns offending rows with a `resource_id` column. Only rows
//!   whose `resource_id` is a resource this plan creates, changes or deletes
//!   count: a violation the transaction did not touch never blocks it (it
//!   shows in `infra.policy_violation`).
//! - `deny` refuses the COMMIT ([`errors::POLICY_DENIED`]); `warn` is a
//!   NOTICE. A query that fails refuses the COMMIT ([`errors::POLICY_FAILED`]):
//!   a policy that cannot be checked must not let the change through.
//! - Each query runs in a savepoint that is always rolled back: whatever a
//!   function it calls writes is undone. It runs with the session's rights.

use std::collections::{HashMap, HashSet};

use infrasql_provider::ResourceSchema;
use serde_json::Value;

use super::literal;
use crate::engine::errors;
use crate::engine::hook::{CommitContext, HookError};
use crate::engine::plan::Plan;
use crate::engine::report::Report;

/// At most this many offending rows are listed in an error or notice.
const SHOWN: usize = 10;
/// An offending row is cut to this many characters in DETAIL.
const ROW_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub query: String,
    pub message: String,
    pub deny: bool,
}

/// One row a policy's query returned: the resource and the row as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub resource_id: Option<String>,
    pub row: String,
}

/// The committed policies, read on the engine's own connection.
pub async fn load(db: &tokio_postgres::Client) -> Result<Vec<Policy>, tokio_postgres::Error> {
    let rows = db
        .query(
            "SELECT name, query, message, severity FROM infra.policy ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Policy {
            name: r.get(0),
            query: r.get(1),
            message: r.get(2),
            deny: r.get::<_, String>(3) == "deny",
        })
        .collect())
}

/// The AWS ids of every resource the plan creates, changes or deletes: the
/// step's id and, for renames and replaces, the id before and after.
pub fn touched(plan: &Plan, schemas: &HashMap<String, &'static ResourceSchema>) -> HashSet<String> {
    let mut ids = HashSet::new();
    for s in &plan.steps {
        ids.insert(s.id.clone());
        let Some(col) = schemas.get(&s.table).map(|sc| sc.id_column()) else {
            continue;
        };
        for props in [&s.before, &s.after].into_iter().flatten() {
            if let Some(Value::String(id)) = props.get(col) {
                ids.insert(id.clone());
            }
        }
    }
    ids
}

/// The policy's query, wrapped so only its `resource_id` and the row come
/// back. A trailing semicolon is allowed; the newline ends a trailing
/// `--` comment.
pub fn wrap(query: &str) -> String {
    let q = query.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    format!("SELECT q.resource_id::text, to_jsonb(q)::text FROM ({q}\n) AS q")
}

/// The rows that name a resource this transaction touches.
pub fn offending<'a>(found: &'a [Found], touched: &HashSet<String>) -> Vec<&'a Found> {
    found
        .iter()
        .filter(|f| {
            f.resource_id
                .as_ref()
                .is_some_and(|id| touched.contains(id))
        })
        .collect()
}

/// The offending rows, one a line, at most [`SHOWN`].
pub fn list(rows: &[&Found]) -> String {
    let mut lines: Vec<String> = rows
        .iter()
        .take(SHOWN)
        .map(|f| {
            let id = f.resource_id.as_deref().unwrap_or("?");
            let row: String = f.row.chars().take(ROW_CHARS).collect();
            let cut = if row.len() < f.row.len() { "..." } else { "" };
            format!("{id}: {row}{cut}")
        })
        .collect();
    if rows.len() > SHOWN {
        lines.push(format!("and {} more", rows.len() - SHOWN));
    }
    lines.join("\n")
}

pub fn refusal(p: &Policy, rows: &[&Found]) -> Report {
    Report::error(
        errors::POLICY_DENIED,
        format!("policy \"{}\" denies this change: {}", p.name, p.message),
    )
    .with_detail(format!(
        "Offending rows (resource_id: row):\n{}\nNothing was applied in AWS; the transaction is rolled back.",
        list(rows)
    ))
    .with_hint("Change the rows so the policy's query no longer returns them; infra.policy holds the query.")
}

pub fn warning(p: &Policy, rows: &[&Found]) -> String {
    format!(
        "infrasql: policy \"{}\" warns: {}\n{}",
        p.name,
        p.message,
        list(rows)
    )
}

fn failed(p: &Policy, e: HookError) -> HookError {
    HookError(
        Report::error(
            errors::POLICY_FAILED,
            format!("policy \"{}\" could not be checked: {}", p.name, e.0.message),
        )
        .with_detail(
            "A policy that cannot run refuses the COMMIT. Nothing was applied in AWS; the transaction is rolled back.",
        )
        .with_hint(
            "Fix the policy's query in infra.policy; it must return a column named resource_id.",
        ),
    )
}

/// Run one policy's query in a savepoint that is always rolled back. The
/// error is the query's own.
async fn run(ctx: &mut dyn CommitContext, p: &Policy) -> Result<Vec<Found>, HookError> {
    ctx.query("SAVEPOINT infrasql_policy").await?;
    let result = ctx.query(&wrap(&p.query)).await;
    ctx.query("ROLLBACK TO SAVEPOINT infrasql_policy").await?;
    ctx.query("RELEASE SAVEPOINT infrasql_policy").await?;
    let rows = result?;
    Ok(rows
        .into_iter()
        .map(|mut r| Found {
            resource_id: r.get_mut(0).and_then(Option::take),
            row: r.get_mut(1).and_then(Option::take).unwrap_or_default(),
        })
        .collect())
}

/// What one policy says of a plan: the offending rows of the resources the
/// plan touches, or why its query could not run.
pub struct Judgement<'p> {
    pub policy: &'p Policy,
    pub rows: Vec<Found>,
    /// The query's own error.
    pub failed: Option<HookError>,
}

/// Run every policy against the plan, inside the client's transaction.
/// Only policies that found something (or failed) are returned.
pub async fn judge<'p>(
    ctx: &mut dyn CommitContext,
    policies: &'p [Policy],
    plan: &Plan,
    touched: &HashSet<String>,
) -> Result<Vec<Judgement<'p>>, HookError> {
    let mut out = Vec::new();
    if policies.is_empty() {
        return Ok(out);
    }
    // The queries may read infra.plan; infra.finish() clears it at commit.
    ctx.query(&format!(
        "SELECT infra.put_plan({}::jsonb)",
        literal(&plan.to_rows().to_string())
    ))
    .await?;
    for p in policies {
        match run(ctx, p).await {
            Ok(found) => {
                let rows: Vec<Found> = offending(&found, touched).into_iter().cloned().collect();
                if !rows.is_empty() {
                    out.push(Judgement {
                        policy: p,
                        rows,
                        failed: None,
                    });
                }
            }
            Err(e) => out.push(Judgement {
                policy: p,
                rows: Vec::new(),
                failed: Some(e),
            }),
        }
    }
    Ok(out)
}

/// Judge the plan by every policy. In a dry run a refusal is a NOTICE.
pub async fn check(
    ctx: &mut dyn CommitContext,
    policies: &[Policy],
    plan: &Plan,
    touched: &HashSet<String>,
    dry_run: bool,
) -> Result<(), HookError> {
    for j in judge(ctx, policies, plan, touched).await? {
        if let Some(e) = j.failed {
            return Err(failed(j.policy, e));
        }
        let rows: Vec<&Found> = j.rows.iter().collect();
        let p = j.policy;
        if !p.deny {
            ctx.notice(&warning(p, &rows)).await?;
        } else if dry_run {
            let r = refusal(p, &rows);
            ctx.notice(&format!(
                "infrasql: dry run: {}\n{}",
                r.message,
                list(&rows)
            ))
            .await?;
        } else {
            crate::metrics::policy_denied(&p.name);
            return Err(HookError(refusal(p, &rows)));
        }
    }
    Ok(())
}

/// The judgements as rows for `infra.put_plan_policy` (what
/// `infra.plan_policy` shows): one per offending resource, or one with the
/// error for a policy that could not run.
pub fn to_rows(judgements: &[Judgement<'_>]) -> Value {
    let mut rows = Vec::new();
    for j in judgements {
        let p = j.policy;
        let severity = if p.deny { "deny" } else { "warn" };
        if let Some(e) = &j.failed {
            rows.push(serde_json::json!({
                "policy": p.name, "severity": severity, "message": p.message,
                "resource_id": null, "offending": null, "error": e.0.message,
            }));
        }
        for f in &j.rows {
            let row: Value = serde_json::from_str(&f.row).unwrap_or(Value::Null);
            rows.push(serde_json::json!({
                "policy": p.name, "severity": severity, "message": p.message,
                "resource_id": f.resource_id, "offending": row, "error": null,
            }));
        }
    }
    Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(id: Option<&str>, row: &str) -> Found {
        Found {
            resource_id: id.map(str::to_owned),
            row: row.to_owned(),
        }
    }

    #[test]
    fn only_rows_of_touched_resources_offend() {
        let all = [
            found(Some("sgr-new"), "{}"),
            found(Some("sgr-old"), "{}"),
            found(None, "{}"),
        ];
        let touched: HashSet<String> = ["sgr-new".to_owned()].into();
        let rows = offending(&all, &touched);
        assert_eq!(rows, vec![&all[0]]);
        assert!(offending(&all, &HashSet::new()).is_empty());
    }

    #[test]
    fn the_wrapper_allows_a_trailing_semicolon_and_comment() {
        assert_eq!(
            wrap("SELECT 1 AS resource_id; \n"),
            "SELECT q.resource_id::text, to_jsonb(q)::text FROM (SELECT 1 AS resource_id\n) AS q"
        );
        assert!(wrap("SELECT 1 AS resource_id -- why").ends_with("-- why\n) AS q"));
    }

    #[test]
    fn the_list_is_capped_and_rows_are_cut() {
        let many: Vec<Found> = (0..13)
            .map(|i| found(Some(&format!("vpc-{i}")), "{}"))
            .collect();
        let refs: Vec<&Found> = many.iter().collect();
        let text = list(&refs);
        assert_eq!(text.lines().count(), SHOWN + 1);
        assert!(text.ends_with("and 3 more"), "{text}");
        let long = found(Some("vpc-1"), &"x".repeat(ROW_CHARS + 5));
        let text = list(&[&long]);
        assert!(text.ends_with("x..."), "{text}");
    }

    #[test]
    fn the_refusal_names_the_policy_its_message_and_the_rows() {
        let p = Policy {
            name: "no-ssh".into(),
            query: String::new(),
            message: "no SSH from anywhere".into(),
            deny: true,
        };
        let row = found(Some("sgr-1"), r#"{"from_port": 22}"#);
        let r = refusal(&p, &[&row]);
        assert_eq!(r.code, errors::POLICY_DENIED);
        assert_eq!(
            r.message,
            "policy \"no-ssh\" denies this change: no SSH from anywhere"
        );
        assert!(r.detail.unwrap().contains(r#"sgr-1: {"from_port": 22}"#));
    }
}
