//! Carry out a plan through the providers: in dependency order, independent
//! steps in parallel, every call journaled first, and undone in reverse order
//! if anything fails.
//!
//! # Guarantees
//! - A journal row (`infra.apply_action`, status `started`) is committed on
//!   the engine's own connection before each cloud call, and every created
//!   resource carries the apply's id as a tag: after a crash the journal and
//!   the tags find everything the apply touched.
//! - If a step of the first phase (creates, updates, the create half of
//!   replaces) fails, no further step starts, the completed ones are undone
//!   in reverse order, and nothing of the last phase has run.
//! - If a delete fails, the first phase is undone as well; deletes already
//!   done cannot be undone and are reported as such.
//! - A stop (cancel, timeout) is handled like a failure: no step starts
//!   after it, waits for readiness and creates in flight are abandoned (an
//!   abandoned create is recovery's to find by its tag), updates and
//!   deletes in flight are let finish, and what was done is undone.
//! - A create counts as done when AWS accepted it; unless `infra.wait =
//!   'accepted'`, the step then waits for the resource to be ready
//!   (`Resource::ready`), and one that never gets ready is undone.

mod step;
mod undo;
mod wait;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use infrasql_provider::{ApplyContext, ColumnKind, Props, ProviderError, Resource};
use serde_json::Value;
use tokio::sync::mpsc;

use super::journal::{Journal, JournalError};
use super::plan::{Plan, Step};
use super::settings::WaitMode;
use super::stop::{self, Stop, StopReason};
use step::run_step;
use undo::undo;

/// What steers an apply from outside: when to stop, what to wait for.
pub struct Control {
    pub stop: Stop,
    pub wait: WaitMode,
}

impl Control {
    /// Never stopped, waits until ready (the sync loop's reverts).
    pub fn unattended() -> Self {
        Control {
            stop: stop::never(),
            wait: WaitMode::Ready,
        }
    }
}

pub type Resources = HashMap<String, Arc<dyn Resource>>;

/// Why a step failed.
#[derive(Debug, Clone)]
pub enum StepError {
    /// AWS refused or failed the call.
    Cloud(ProviderError),
    /// infrasql could not journal the step, so it did not make the call.
    Journal(JournalError),
    /// The apply was stopped. `in_call`: while AWS was carrying out the
    /// step's call, whose outcome is then unknown.
    Stopped { reason: StopReason, in_call: bool },
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Cloud(e) => e.fmt(f),
            StepError::Journal(e) => e.fmt(f),
            StepError::Stopped { reason, .. } => reason.fmt(f),
        }
    }
}

/// Strip write-only values before anything is stored.
pub fn storable(resource: &dyn Resource, props: Option<&Props>) -> Option<Value> {
    let schema = resource.schema();
    props.map(|p| {
        Value::Object(
            p.iter()
                .filter(|(k, _)| {
                    schema
                        .column(k)
                        .is_none_or(|c| c.kind != ColumnKind::WriteOnly)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    })
}

/// What a successful apply produced.
#[derive(Debug, Default)]
pub struct Applied {
    /// The cloud's view after each first-phase step, by step number.
    pub observed: HashMap<usize, Props>,
    /// Provisional (or replaced) id → the real new id.
    pub id_map: HashMap<String, String>,
}

#[derive(Debug)]
pub struct ApplyFailure {
    pub step: Step,
    pub error: StepError,
    /// Lines describing what was undone.
    pub undone: Vec<String>,
    /// Lines describing what could not be undone.
    pub not_undone: Vec<String>,
}

/// Run the plan, never stopped, waiting until created resources are ready.
/// Progress lines go to `progress` as they happen.
pub async fn apply(
    plan: &Plan,
    resources: &Resources,
    journal: &Journal<'_>,
    progress: &mpsc::UnboundedSender<String>,
) -> Result<Applied, ApplyFailure> {
    apply_with(plan, resources, journal, progress, &Control::unattended()).await
}

/// Run the plan as `control` says.
pub async fn apply_with(
    plan: &Plan,
    resources: &Resources,
    journal: &Journal<'_>,
    progress: &mpsc::UnboundedSender<String>,
    control: &Control,
) -> Result<Applied, ApplyFailure> {
    let mut applied = Applied::default();
    let first: Vec<&Step> = plan.steps.iter().filter(|s| !s.last_phase).collect();
    let last: Vec<&Step> = plan.steps.iter().filter(|s| s.last_phase).collect();
    let mut completed: Vec<(usize, Props)> = Vec::new();

    if let Err((step, error)) = run_phase(
        &first,
        resources,
        journal,
        progress,
        control,
        &mut applied,
        &mut completed,
    )
    .await
    {
        let (undone, not_undone) = undo(plan, &completed, resources, journal, progress).await;
        return Err(ApplyFailure {
            step,
            error,
            undone,
            not_undone,
        });
    }
    // A stop while the last first-phase steps (updates, which are let
    // finish) ran still undoes them; once deletes ran it is too late.
    let stopped = control.stop.borrow().clone();
    if let (Some(reason), Some(s)) = (stopped, first.last()) {
        let (undone, not_undone) = undo(plan, &completed, resources, journal, progress).await;
        let in_call = false;
        return Err(ApplyFailure {
            step: (*s).clone(),
            error: StepError::Stopped { reason, in_call },
            undone,
            not_undone,
        });
    }
    let mut deleted: Vec<(usize, Props)> = Vec::new();
    if let Err((step, error)) = run_phase(
        &last,
        resources,
        journal,
        progress,
        control,
        &mut applied,
        &mut deleted,
    )
    .await
    {
        let (undone, mut not_undone) = undo(plan, &completed, resources, journal, progress).await;
        for (n, _) in &deleted {
            let s = &plan.steps[n - 1];
            not_undone.push(format!(
                "{} {} was deleted and cannot be restored",
                s.table, s.id
            ));
        }
        return Err(ApplyFailure {
            step,
            error,
            undone,
            not_undone,
        });
    }
    Ok(applied)
}

/// Replace references to rows created earlier in this apply by real ids.
fn resolve(resource: &dyn Resource, props: &Props, id_map: &HashMap<String, String>) -> Props {
    let mut out = props.clone();
    for c in resource.schema().references() {
        match out.get_mut(c.name) {
            Some(Value::String(v)) => {
                if let Some(real) = id_map.get(v.as_str()) {
                    *v = real.clone();
                }
            }
            // A set: each member.
            Some(Value::Array(members)) => {
                for m in members.iter_mut() {
                    if let Some(real) = m.as_str().and_then(|v| id_map.get(v)) {
                        *m = Value::String(real.clone());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn ctx(s: &Step, journal: &Journal<'_>) -> ApplyContext {
    ApplyContext {
        region: s.region.clone(),
        apply_id: journal.id().to_string(),
    }
}

async fn run_phase(
    steps: &[&Step],
    resources: &Resources,
    journal: &Journal<'_>,
    progress: &mpsc::UnboundedSender<String>,
    control: &Control,
    applied: &mut Applied,
    completed: &mut Vec<(usize, Props)>,
) -> Result<(), (Step, StepError)> {
    let mut pending: Vec<&Step> = steps.to_vec();
    let mut done: std::collections::HashSet<usize> = std::collections::HashSet::new();
    // Steps of the other phase count as done for dependency purposes.
    let in_phase: std::collections::HashSet<usize> = steps.iter().map(|s| s.step).collect();
    let mut running = FuturesUnordered::new();
    let mut failure: Option<(Step, StepError)> = None;
    loop {
        if failure.is_none() {
            let (ready, rest): (Vec<&Step>, Vec<&Step>) = pending.into_iter().partition(|s| {
                s.depends_on
                    .iter()
                    .all(|d| done.contains(d) || !in_phase.contains(d))
            });
            pending = rest;
            // Stopped: nothing new starts; the first step that would have
            // carries the reason unless one in flight does.
            let stopped = control.stop.borrow().clone();
            let ready = match stopped {
                Some(reason) => {
                    if let Some(s) = ready.first() {
                        let in_call = false;
                        failure = Some(((*s).clone(), StepError::Stopped { reason, in_call }));
                    }
                    pending.clear();
                    Vec::new()
                }
                None => ready,
            };
            for s in ready {
                let resource = resources
                    .get(&s.table)
                    .cloned()
                    .expect("the plan only holds tables with a provider");
                let after = s
                    .after
                    .as_ref()
                    .map(|a| resolve(resource.as_ref(), a, &applied.id_map));
                let journal = *journal;
                let progress = progress.clone();
                let step = (*s).clone();
                running.push(async move {
                    let r = run_step(
                        &step,
                        resource.as_ref(),
                        after.as_ref(),
                        &journal,
                        &progress,
                        control,
                    )
                    .await;
                    (step, r)
                });
            }
        }
        let Some((step, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(props) => {
                done.insert(step.step);
                if let Some(p) = &props {
                    let idc = resources[&step.table].schema().id_column();
                    if let Some(new_id) = p.get(idc).and_then(Value::as_str) {
                        if new_id != step.id {
                            applied.id_map.insert(step.id.clone(), new_id.to_owned());
                        }
                    }
                    applied.observed.insert(step.step, p.clone());
                }
                completed.push((step.step, props.unwrap_or_default()));
            }
            Err((e, created)) => {
                // Created, but stopped or failed while waiting for it to
                // be ready: undone like any completed create.
                if let Some(p) = created {
                    completed.push((step.step, p));
                }
                if failure.is_none() {
                    failure = Some((step, e));
                }
            }
        }
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}
