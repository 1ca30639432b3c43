//! One step of an apply: journal it, make the call (reporting progress
//! while it takes long), and for a create, wait until the resource is ready.

use std::time::Instant;

use infrasql_provider::{request_ids, Props, Resource};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{ctx, storable, wait, Control, StepError};
use crate::engine::journal::Journal;
use crate::engine::plan::{Action, Step};
use crate::engine::settings::WaitMode;

/// Why a step failed and, for a create that AWS carried out before the
/// failure (while waiting for readiness), what it created.
type StepFailure = (StepError, Option<Props>);

/// One cloud action; returns the observed props for non-deletes.
pub(super) async fn run_step(
    s: &Step,
    r: &dyn Resource,
    after: Option<&Props>,
    journal: &Journal<'_>,
    progress: &mpsc::UnboundedSender<String>,
    control: &Control,
) -> Result<Option<Props>, StepFailure> {
    let what = s.describe();
    journal
        .step_started(s, r)
        .await
        .map_err(|e| (StepError::Journal(e), None))?;
    let _ = progress.send(format!("step {}: started {what}", s.step));
    let t = Instant::now();
    let c = ctx(s, journal);
    let empty = Props::new();
    let creates = matches!(
        (s.action, s.last_phase),
        (Action::Create, _) | (Action::Replace, false) | (Action::RecreateCreate, _)
    );
    // AWS's request ids of this call (not of the readiness polls after it)
    // go to the journal with the step's outcome.
    let call = request_ids::scope(async {
        match (s.action, s.last_phase) {
            _ if creates => r.create(&c, after.unwrap_or(&empty)).await.map(Some),
            (Action::Update, _) => r
                .update(
                    &c,
                    &s.id,
                    s.before.as_ref().unwrap_or(&empty),
                    after.unwrap_or(&empty),
                )
                .await
                .map(Some),
            _ => r
                .delete(&c, &s.id, s.before.as_ref().unwrap_or(&empty))
                .await
                .map(|_| None),
        }
    });
    // A create in flight may be abandoned (its tag lets recovery find what
    // it made); an update or a delete half-done would leave the resource in
    // a state nobody knows, so it is let finish and undone after.
    let label = match &s.name {
        Some(n) => format!("{} \"{n}\"", s.table),
        None => format!("{} {}", s.table, s.id),
    };
    let still = |secs| {
        format!(
            "step {}: still waiting for AWS on {label} ({secs} s)",
            s.step
        )
    };
    let stop = creates.then_some(&control.stop);
    let (result, ids) = match wait::watched(call, stop, progress, still).await {
        Ok(r) => r,
        Err(reason) => {
            // The abandoned call's ids went with it.
            let why = format!("{reason} while AWS was carrying out the call");
            journal
                .step_finished(s.step, "failed", None, None, Some(why.clone()), &[])
                .await;
            let _ = progress.send(format!("step {}: {why}", s.step));
            let in_call = true;
            return Err((StepError::Stopped { reason, in_call }, None));
        }
    };
    let ms = t.elapsed().as_millis();
    let props = match result {
        Ok(props) => props,
        Err(e) => {
            journal
                .step_finished(s.step, "failed", None, None, Some(e.to_string()), &ids)
                .await;
            let _ = progress.send(format!("step {}: failed after {ms} ms: {e}", s.step));
            return Err((StepError::Cloud(e), None));
        }
    };
    let idc = r.schema().id_column();
    let new_id = props
        .as_ref()
        .and_then(|p| p.get(idc))
        .and_then(Value::as_str)
        .map(str::to_owned);
    journal
        .step_finished(
            s.step,
            "done",
            new_id.as_deref(),
            storable(r, props.as_ref()),
            None,
            &ids,
        )
        .await;
    let id = new_id
        .as_deref()
        .map(|i| format!(" as {i}"))
        .unwrap_or_default();
    let _ = progress.send(format!("step {}: done{id} in {ms} ms", s.step));
    match (creates, control.wait, props, new_id) {
        (true, WaitMode::Ready, Some(created), Some(id)) => {
            match wait::until_ready(r, &c, &id, &created, &control.stop, progress).await {
                Ok(Ok(now)) => {
                    if t.elapsed() >= wait::PROGRESS_EVERY {
                        let secs = t.elapsed().as_secs();
                        let _ = progress.send(format!("step {}: {id} is ready ({secs} s)", s.step));
                    }
                    Ok(Some(now.unwrap_or(created)))
                }
                Ok(Err(e)) => {
                    let _ = progress.send(format!("step {}: {id} did not get ready: {e}", s.step));
                    Err((StepError::Cloud(e), Some(created)))
                }
                Err(reason) => {
                    let _ =
                        progress.send(format!("step {}: {reason} while waiting for {id}", s.step));
                    let in_call = false;
                    Err((StepError::Stopped { reason, in_call }, Some(created)))
                }
            }
        }
        (_, _, props, _) => Ok(props),
    }
}
