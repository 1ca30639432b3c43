//! Undo: the completed first-phase steps of a failed or stopped apply, newest
//! first, each journaled; a delete-first replace's deleted original is
//! created again from its old values.

use infrasql_provider::{ApplyContext, Props, ProviderError, Resource};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{ctx, wait, Resources};
use crate::engine::journal::Journal;
use crate::engine::plan::{Action, Plan, Step};

/// Undo completed first-phase steps, newest first.
pub(super) async fn undo(
    plan: &Plan,
    completed: &[(usize, Props)],
    resources: &Resources,
    journal: &Journal<'_>,
    progress: &mpsc::UnboundedSender<String>,
) -> (Vec<String>, Vec<String>) {
    let mut undone = Vec::new();
    let mut not_undone = Vec::new();
    for (n, observed) in completed.iter().rev() {
        let s = &plan.steps[n - 1];
        let r = &resources[&s.table];
        let c = ctx(s, journal);
        let idc = r.schema().id_column();
        let new_id = observed
            .get(idc)
            .and_then(Value::as_str)
            .unwrap_or(&s.id)
            .to_owned();
        let call = async {
            match s.action {
                Action::Create | Action::Replace | Action::RecreateCreate => Some((
                    format!("deleted {} {new_id} (created by this commit)", s.table),
                    r.delete(&c, &new_id, observed).await,
                )),
                Action::Update => Some((
                    format!("restored {} {}", s.table, s.id),
                    r.update(
                        &c,
                        &s.id,
                        observed,
                        s.before.as_ref().expect("updates have a before"),
                    )
                    .await
                    .map(drop),
                )),
                Action::RecreateDelete => Some(recreate(s, r.as_ref(), journal).await),
                Action::Delete => None,
            }
        };
        // An undo is never stopped, but a long one (an instance's
        // termination) still reports progress.
        let still = |secs| format!("undo step {}: still waiting for AWS ({secs} s)", s.step);
        let (undone_call, ids) =
            wait::reporting(infrasql_provider::request_ids::scope(call), progress, still).await;
        let Some((line, result)) = undone_call else {
            continue;
        };
        match result {
            Ok(()) => {
                journal
                    .step_finished(s.step, "undone", None, None, None, &ids)
                    .await;
                let _ = progress.send(format!("undo step {}: {line}", s.step));
                undone.push(line);
            }
            Err(e) => {
                journal
                    .step_finished(s.step, "undo_failed", None, None, Some(e.to_string()), &ids)
                    .await;
                let _ = progress.send(format!("undo step {} failed: {e}", s.step));
                not_undone.push(if s.action == Action::RecreateDelete {
                    format!("{line}: {e}")
                } else {
                    format!("{} {new_id} could not be undone: {e}", s.table)
                });
            }
        }
    }
    (undone, not_undone)
}

/// Undo the delete half of a delete-first replace: the old resource is gone,
/// so it is created again from its old values. Only types that hold no data
/// replace this way (`ReplaceOrder::DeleteFirst`), so nothing is lost but
/// the id: sync brings the new one into the row (the old id disappears, the
/// new one appears). Its apply tag is not this apply's, so
/// recovery never takes it for something this apply left behind.
async fn recreate(
    s: &Step,
    r: &dyn Resource,
    journal: &Journal<'_>,
) -> (String, Result<(), ProviderError>) {
    let c = ApplyContext {
        region: s.region.clone(),
        apply_id: journal.id().undo_tag(),
    };
    let old = s.before.clone().unwrap_or_default();
    match r.create(&c, &old).await {
        Ok(p) => {
            let id = p
                .get(r.schema().id_column())
                .and_then(Value::as_str)
                .unwrap_or("?");
            let line = format!(
                "created {} {} again from its old values, as {id} (the replace had deleted it first)",
                s.table, s.id
            );
            (line, Ok(()))
        }
        Err(e) => (
            format!(
                "{} {} was deleted first and could not be created again",
                s.table, s.id
            ),
            Err(e),
        ),
    }
}
