//! Recovery: settle every apply whose outcome is not final.
//!
//! An apply holds a session advisory lock (keyed by its id) on the engine's
//! connection while it runs; recovery leaves alone an apply whose lock is
//! held (its process is alive and still working). Otherwise:
//! - `applied` and its transaction committed → `succeeded`;
//! - `applied` and its transaction aborted (the COMMIT failed after the
//!   apply), or `running` with a free lock (the process died) → the cloud is
//!   made equal to the rows as committed now ([`super::converge`]) →
//!   `recovered`;
//! - `undoing` (a refused COMMIT whose undo failed, or whose failed create
//!   may have happened) → converged the same way → `failed`, the outcome the
//!   COMMIT already reported.
//!
//! A row an open transaction holds is waited for: retried at the next pass,
//! not counted as a try. What cannot be converged yet is retried with exponential backoff
//! (`next_attempt_at`); the apply shows `undoing` and why. An undo that
//! needs a person (denied, invalid, or still failing after
//! [`ATTENTION_AFTER`] tries) shows `attention` and is still retried, at the
//! slowest pace.

use std::time::Duration;

use infrasql_provider::ErrorClass;

use super::apply::Resources;
use super::converge::converge;
use super::journal::{self, ApplyStatus, Journal, Unsettled};

/// Failed passes after which an undo is shown as needing a person.
pub const ATTENTION_AFTER: i32 = 8;
/// The wait when only a row lock held the undo back.
const BUSY_RETRY: Duration = Duration::from_secs(1);
/// The slowest retry pace.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub struct Recovered {
    pub finished: Vec<String>,
    pub undone: Vec<String>,
    /// Applies still being undone after this pass.
    pub pending: Vec<String>,
}

/// The wait before the next try, after `attempts` failed ones.
pub fn backoff(attempts: i32) -> Duration {
    let secs = 1u64 << attempts.clamp(0, 16);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// Classes no retry can fix: a person must change permissions or values.
fn needs_person(class: ErrorClass) -> bool {
    matches!(class, ErrorClass::Denied | ErrorClass::Invalid)
}

/// One pass over unsettled applies whose next try is due.
pub async fn recover_once(
    db: &tokio_postgres::Client,
    resources: &Resources,
) -> Result<Recovered, tokio_postgres::Error> {
    let mut out = Recovered::default();
    for u in journal::unsettled(db).await? {
        let claimed = Journal::claim(db, &u.id).await.map_err(|e| {
            tracing::warn!("recovery cannot claim apply {}: {e}", u.id);
            e
        });
        let Ok(Some(journal)) = claimed else {
            continue; // its process is alive and still working
        };
        let result = settle(&journal, resources, &u, &mut out).await;
        journal.release().await;
        result?;
    }
    Ok(out)
}

async fn settle(
    journal: &Journal<'_>,
    resources: &Resources,
    u: &Unsettled,
    out: &mut Recovered,
) -> Result<(), tokio_postgres::Error> {
    let apply_id = u.id.as_str();
    match (u.status, u.xact.as_str()) {
        // The transaction is still open: its COMMIT or ROLLBACK decides.
        (ApplyStatus::Running | ApplyStatus::Applied, "in progress") => return Ok(()),
        (ApplyStatus::Applied, "committed") => {
            journal.committed().await?;
            out.finished.push(apply_id.to_owned());
            return Ok(());
        }
        _ => {}
    }
    let c = converge(journal, resources).await?;
    let lost = match u.status {
        ApplyStatus::Running => "its process was lost",
        ApplyStatus::Applied => "its COMMIT failed",
        _ => "the COMMIT was refused",
    };
    if c.pending.is_empty() && c.busy.is_empty() {
        // A refused COMMIT keeps the outcome it reported; a lost one is
        // recovered.
        let final_status = match u.status {
            ApplyStatus::Undoing | ApplyStatus::Attention => ApplyStatus::Failed,
            _ => ApplyStatus::Recovered,
        };
        let summary = if c.notes.is_empty() {
            "nothing was left to undo".to_owned()
        } else {
            c.notes.join("; ")
        };
        tracing::warn!("settled apply {apply_id} ({lost}): {summary}");
        journal
            .settled(final_status, &format!("settled after {lost}: {summary}"))
            .await?;
        out.undone.push(apply_id.to_owned());
        return Ok(());
    }
    if c.pending.is_empty() {
        // Only rows held by open transactions: retried at the next pass,
        // and not counted, so a busy row never grows the backoff.
        let why = format!(
            "still being undone after {lost}: waiting for {}",
            c.busy.join("; ")
        );
        let status = match u.status {
            ApplyStatus::Attention => ApplyStatus::Attention,
            _ => ApplyStatus::Undoing,
        };
        journal
            .retry_later(status, u.attempts, BUSY_RETRY, &why)
            .await?;
        out.pending.push(apply_id.to_owned());
        return Ok(());
    }
    let tries = u.attempts + 1;
    let person =
        c.pending.iter().any(|(_, class)| needs_person(*class)) || tries >= ATTENTION_AFTER;
    let new_status = if person {
        ApplyStatus::Attention
    } else {
        ApplyStatus::Undoing
    };
    let wait = if person { MAX_BACKOFF } else { backoff(tries) };
    let reasons: Vec<&str> = c
        .pending
        .iter()
        .map(|(r, _)| r.as_str())
        .chain(c.busy.iter().map(String::as_str))
        .collect();
    tracing::warn!(
        "apply {apply_id} ({lost}) is still being undone (try {tries}, next in {} s): {}",
        wait.as_secs(),
        reasons.join("; ")
    );
    let why = format!(
        "still being undone after {lost} (try {tries}): {}",
        reasons.join("; ")
    );
    journal.retry_later(new_status, tries, wait, &why).await?;
    out.pending.push(apply_id.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(9), MAX_BACKOFF);
        assert_eq!(backoff(i32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(-3), Duration::from_secs(1));
    }

    #[test]
    fn only_permissions_and_bad_values_need_a_person() {
        assert!(needs_person(ErrorClass::Denied));
        assert!(needs_person(ErrorClass::Invalid));
        assert!(!needs_person(ErrorClass::Retryable));
        assert!(!needs_person(ErrorClass::Throttled));
        assert!(!needs_person(ErrorClass::Conflict));
    }
}
