//! What the other modules call when something happens. Each outcome is a
//! closed enum, so a label's values are known in advance.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{
    metrics, ApplyLabels, OutcomeLabels, PairLabels, PolicyLabels, RoundLabels, TableLabels,
};

/// How a COMMIT that went through the hook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The transaction committed after its apply.
    Committed,
    /// The transaction committed with nothing to apply.
    NoChange,
    /// A dry run (`infra.dry_run`, a plan-only session): rolled back.
    PlanOnly,
    /// Refused before any AWS call: a policy, the planner, a setting.
    Refused,
    /// The apply began and the COMMIT failed (undone, or left to recovery).
    Failed,
}

impl CommitOutcome {
    pub const ALL: [CommitOutcome; 5] = [
        CommitOutcome::Committed,
        CommitOutcome::NoChange,
        CommitOutcome::PlanOnly,
        CommitOutcome::Refused,
        CommitOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommitOutcome::Committed => "committed",
            CommitOutcome::NoChange => "no_change",
            CommitOutcome::PlanOnly => "plan_only",
            CommitOutcome::Refused => "refused",
            CommitOutcome::Failed => "failed",
        }
    }
}

/// Who ran an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplySource {
    Commit,
    /// The sync loop setting drift back (`revert` policy).
    SyncRevert,
}

impl ApplySource {
    pub const ALL: [ApplySource; 2] = [ApplySource::Commit, ApplySource::SyncRevert];

    pub fn as_str(self) -> &'static str {
        match self {
            ApplySource::Commit => "commit",
            ApplySource::SyncRevert => "sync_revert",
        }
    }
}

/// How an apply ended, as its journal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied,
    /// Failed and settled: what it did was undone.
    Failed,
    /// Left to the recovery loop (an undo that could not finish, or a
    /// transaction that could not commit after the apply).
    Recovering,
}

impl ApplyOutcome {
    pub const ALL: [ApplyOutcome; 3] = [
        ApplyOutcome::Applied,
        ApplyOutcome::Failed,
        ApplyOutcome::Recovering,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Applied => "applied",
            ApplyOutcome::Failed => "failed",
            ApplyOutcome::Recovering => "recovering",
        }
    }
}

/// A client session past authentication; the open-sessions gauge counts
/// it until this is dropped.
#[must_use = "the session counts as open while this lives"]
pub struct OpenSession(());

impl Drop for OpenSession {
    fn drop(&mut self) {
        metrics().sessions_open.dec();
    }
}

/// A TCP connection on the wire listener, before its startup: a session,
/// a cancel request or one refused.
pub fn connection_accepted() {
    metrics().connections.inc();
}

pub fn session_opened() -> OpenSession {
    let m = metrics();
    m.sessions.inc();
    m.sessions_open.inc();
    OpenSession(())
}

pub fn commit_finished(outcome: CommitOutcome) {
    let labels = OutcomeLabels {
        outcome: outcome.as_str(),
    };
    metrics().commits.get_or_create(&labels).inc();
}

pub fn apply_finished(source: ApplySource, outcome: ApplyOutcome, took: Duration) {
    let labels = ApplyLabels {
        source: source.as_str(),
        outcome: outcome.as_str(),
    };
    let m = metrics();
    m.applies.get_or_create(&labels).inc();
    m.apply_seconds
        .get_or_create(&labels)
        .observe(took.as_secs_f64());
}

/// A deny policy refused a COMMIT (not a dry run's notice).
pub fn policy_denied(policy: &str) {
    let labels = PolicyLabels {
        policy: policy.to_owned(),
    };
    metrics().policy_denials.get_or_create(&labels).inc();
}

/// One (table, region)'s round ended; `took` excludes its wait for the
/// parents' writes, as `infra.sync_status.duration` does.
pub fn sync_round_finished(table: &str, region: &str, ok: bool, took: Duration) {
    let m = metrics();
    let outcome = if ok { "success" } else { "failed" };
    let round = RoundLabels {
        table: table.to_owned(),
        region: region.to_owned(),
        outcome,
    };
    m.sync_rounds.get_or_create(&round).inc();
    let pair = PairLabels {
        table: table.to_owned(),
        region: region.to_owned(),
    };
    m.sync_seconds
        .get_or_create(&pair)
        .observe(took.as_secs_f64());
    if ok {
        m.ages.succeeded(table, region, Instant::now());
    }
}

/// The open drift records per table, as the database counted them; a
/// table absent from `counts` has none: every table in `tables`, and any
/// that had a count before (a join table), is set to 0, not left at its
/// old count or missing.
pub fn set_open_drift(tables: impl IntoIterator<Item = String>, counts: &[(String, i64)]) {
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.extend(tables);
    seen.extend(counts.iter().map(|(t, _)| t.clone()));
    let family = &metrics().drift_open;
    for table in seen.iter() {
        let n = counts
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n);
        let labels = TableLabels {
            table: table.clone(),
        };
        family.get_or_create(&labels).set(n);
    }
}
