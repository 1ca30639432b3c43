//! One stack of one commit: decide whether it needs applying (pure,
//! unit-tested), then apply it as any client would, through infrasql's own
//! listener, in one transaction (`client::stack::declare`), so every
//! change takes the normal commit path.

use std::path::Path;

use anyhow::Context;
use tokio_postgres::Client;

use super::config::{prune_needs_confirmation, StackSpec};
use crate::client::sql::server_error;
use crate::client::stack::{declare, fill, Origin, Stack};

/// What the database knows of a stack (`infra.stack_state`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Known {
    pub status: String,
    pub revision: Option<String>,
    pub pending: Option<String>,
    pub confirmed: Option<String>,
    /// A failed stack's backoff has passed.
    pub retry_due: bool,
}

/// The stack directory's tree now, at the revision last applied, and at
/// the revision that failed or waits (None: unknown to this checkout).
#[derive(Debug, Clone, Default)]
pub struct Trees {
    pub now: String,
    pub applied: Option<String>,
    pub pending: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Skip,
    /// Apply; `confirmed`: a person allowed this revision's prune.
    Apply {
        confirmed: bool,
    },
}

pub fn decide(spec: &StackSpec, known: Option<&Known>, trees: &Trees) -> Decision {
    let apply = Decision::Apply { confirmed: false };
    let Some(k) = known else {
        // A stack to delete that the database does not have is done.
        return if spec.delete { Decision::Skip } else { apply };
    };
    let same_as_pending = trees.pending.as_deref() == Some(trees.now.as_str());
    match k.status.as_str() {
        "waiting" if same_as_pending => {
            if k.confirmed.is_some() && k.confirmed == k.pending {
                Decision::Apply { confirmed: true }
            } else {
                Decision::Skip
            }
        }
        // New files are tried at once; the same ones after the backoff.
        "failed" if same_as_pending && !k.retry_due => Decision::Skip,
        "failed" | "waiting" => apply,
        _ if k.revision.is_none() || trees.applied.as_deref() != Some(trees.now.as_str()) => apply,
        _ => Decision::Skip,
    }
}

pub async fn known(client: &Client, name: &str) -> anyhow::Result<Option<Known>> {
    let row = client
        .query_opt(
            "SELECT status, revision, pending_revision, confirmed_revision, \
                    coalesce(next_attempt_at <= now(), true) \
             FROM infra.stack_state WHERE name = $1",
            &[&name],
        )
        .await?;
    Ok(row.map(|r| Known {
        status: r.get(0),
        revision: r.get(1),
        pending: r.get(2),
        confirmed: r.get(3),
        retry_due: r.get(4),
    }))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Applied {
        declared: i64,
        pruned: i64,
    },
    Deleted,
    /// Held back: its prune needs `infrasql stack confirm`.
    Waiting(String),
}

/// Apply one stack at `origin.revision`: the directory's `*.sql` (none
/// when the stack is being deleted) in one transaction. A failure is
/// recorded with `infra.stack_failed` and returned; it does not stop the
/// other stacks.
pub async fn apply(
    client: &Client,
    dir: &Path,
    spec: &StackSpec,
    origin: Origin,
    confirmed: bool,
) -> anyhow::Result<Outcome> {
    let revision = origin.revision.clone();
    let r = apply_once(client, dir, spec, origin, confirmed).await;
    match &r {
        Ok(Outcome::Waiting(why)) => {
            client
                .execute(
                    "SELECT infra.stack_wait($1, $2, $3)",
                    &[&spec.name, &revision, why],
                )
                .await?;
        }
        Ok(_) => {}
        Err(e) => {
            // After a refused COMMIT the server has rolled back; then a no-op.
            let _ = client.batch_execute("ROLLBACK").await;
            let why = format!("{e:#}");
            client
                .execute(
                    "SELECT infra.stack_failed($1, $2, $3)",
                    &[&spec.name, &why, &revision],
                )
                .await
                .with_context(|| format!("cannot record that stack {} failed", spec.name))?;
        }
    }
    r
}

async fn apply_once(
    client: &Client,
    dir: &Path,
    spec: &StackSpec,
    origin: Origin,
    confirmed: bool,
) -> anyhow::Result<Outcome> {
    let sources = if spec.delete {
        Vec::new()
    } else {
        fill(
            crate::client::sql::read_sources(&[dir.to_owned()])?,
            &spec.vars,
        )?
    };
    let before: i64 = client
        .query_one("SELECT infra.stack_size($1)::int8", &[&spec.name])
        .await?
        .get(0);
    let stack = Stack {
        name: spec.name.clone(),
        adopt: false,
        prune: true,
        origin: Some(origin),
    };
    client.batch_execute("BEGIN").await?;
    // `declare` records the source `stack <name>@<sha>` in infra.apply.
    if spec.delete || confirmed {
        // A person asked for this prune: delete = true, or stack confirm.
        client
            .batch_execute("SET LOCAL infra.allow_mass_delete = on")
            .await?;
    }
    let summary = declare(client, &stack, &sources).await?;
    let declared = summary["declared"].as_i64().unwrap_or(0);
    let pruned = summary["pruned"].as_i64().unwrap_or(0);
    if !spec.delete && !confirmed && prune_needs_confirmation(pruned, before, spec.max_prune_share)
    {
        // Nothing has reached AWS: the plan is only rows until COMMIT.
        client.batch_execute("ROLLBACK").await?;
        return Ok(Outcome::Waiting(format!(
            "revision {} would delete {pruned} of the stack's {before} resources \
             (more than max_prune_share {}); confirm with: infrasql stack confirm {}",
            short(&stack_revision(&stack)),
            spec.max_prune_share,
            spec.name
        )));
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| anyhow::anyhow!("COMMIT failed: {}", server_error(&e)))?;
    if spec.delete {
        client
            .execute("SELECT infra.stack_drop($1)", &[&spec.name])
            .await
            .map_err(|e| anyhow::anyhow!("{}", server_error(&e)))?;
        return Ok(Outcome::Deleted);
    }
    client
        .execute(
            "SELECT infra.stack_heal($1, $2)",
            &[&spec.name, &spec.self_heal],
        )
        .await?;
    Ok(Outcome::Applied { declared, pruned })
}

fn stack_revision(s: &Stack) -> String {
    s.origin
        .as_ref()
        .map(|o| o.revision.clone())
        .unwrap_or_default()
}

pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(delete: bool) -> StackSpec {
        super::super::config::StackSpec {
            dir: "web".into(),
            name: "web".into(),
            vars: Default::default(),
            self_heal: false,
            delete,
            max_prune_share: 0.5,
        }
    }

    fn trees(now: &str, applied: Option<&str>, pending: Option<&str>) -> Trees {
        Trees {
            now: now.into(),
            applied: applied.map(Into::into),
            pending: pending.map(Into::into),
        }
    }

    fn known(status: &str, retry_due: bool) -> Known {
        Known {
            status: status.into(),
            revision: Some("c1".into()),
            pending: Some("c2".into()),
            confirmed: None,
            retry_due,
        }
    }

    const APPLY: Decision = Decision::Apply { confirmed: false };

    #[test]
    fn new_and_changed_stacks_apply_unchanged_ones_do_not() {
        let t = trees("t2", Some("t1"), None);
        assert_eq!(decide(&spec(false), None, &t), APPLY);
        assert_eq!(decide(&spec(true), None, &t), Decision::Skip);
        let synced = Known {
            pending: None,
            ..known("synced", false)
        };
        assert_eq!(decide(&spec(false), Some(&synced), &t), APPLY);
        let same = trees("t1", Some("t1"), None);
        assert_eq!(decide(&spec(false), Some(&synced), &same), Decision::Skip);
        // An unknown earlier revision (a fresh checkout): apply again.
        let unknown = trees("t1", None, None);
        assert_eq!(decide(&spec(false), Some(&synced), &unknown), APPLY);
    }

    #[test]
    fn a_failed_stack_waits_for_its_backoff_or_new_files() {
        let same = trees("t2", Some("t1"), Some("t2"));
        assert_eq!(
            decide(&spec(false), Some(&known("failed", false)), &same),
            Decision::Skip
        );
        assert_eq!(
            decide(&spec(false), Some(&known("failed", true)), &same),
            APPLY
        );
        let fixed = trees("t3", Some("t1"), Some("t2"));
        assert_eq!(
            decide(&spec(false), Some(&known("failed", false)), &fixed),
            APPLY
        );
    }

    #[test]
    fn a_waiting_stack_applies_only_once_confirmed() {
        let same = trees("t2", Some("t1"), Some("t2"));
        let waiting = known("waiting", false);
        assert_eq!(decide(&spec(false), Some(&waiting), &same), Decision::Skip);
        let confirmed = Known {
            confirmed: Some("c2".into()),
            ..waiting.clone()
        };
        assert_eq!(
            decide(&spec(false), Some(&confirmed), &same),
            Decision::Apply { confirmed: true }
        );
        let changed = trees("t3", Some("t1"), Some("t2"));
        assert_eq!(decide(&spec(false), Some(&confirmed), &changed), APPLY);
    }
}
