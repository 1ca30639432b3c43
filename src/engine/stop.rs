//! What stops an apply before it is done: the client's cancel request,
//! `infra.cancel_apply(id)` from another session, or `infra.apply_timeout`.
//!
//! A stop is not an error of AWS's: the apply stops starting steps, stops
//! waiting, undoes what it did (as after a failure) and the COMMIT fails
//! with 57014. One watcher task per apply turns the three sources into one
//! [`Stop`] the apply selects on.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::hook::CancelSignal;
use super::journal::ApplyId;

/// How often the watcher looks for `infra.cancel_apply`'s request in the
/// journal: a cancel from another session takes effect within this.
const POLL_CANCEL_APPLY: Duration = Duration::from_millis(500);

/// Why an apply was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The client's CancelRequest (Ctrl-C, `Statement.cancel()`).
    CancelRequest,
    /// `SELECT infra.cancel_apply(id)`, from any session of the same role.
    CancelApply,
    /// `infra.apply_timeout` expired.
    Timeout(Duration),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::CancelRequest => write!(f, "canceled at the client's request"),
            StopReason::CancelApply => write!(f, "canceled by infra.cancel_apply()"),
            StopReason::Timeout(d) => {
                write!(f, "canceled: infra.apply_timeout ({}) expired", seconds(*d))
            }
        }
    }
}

fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// The apply's view: `None` while it may go on.
pub type Stop = watch::Receiver<Option<StopReason>>;

/// A stop that never comes (the sync loop's reverts, recovery).
pub fn never() -> Stop {
    watch::channel(None).1
}

/// Resolves with the reason once `stop` says so; never while it does not.
pub async fn stopped(stop: &mut Stop) -> StopReason {
    loop {
        if let Some(r) = stop.borrow_and_update().clone() {
            return r;
        }
        if stop.changed().await.is_err() {
            // The watcher is gone without stopping: nothing will.
            std::future::pending::<()>().await;
        }
    }
}

/// Starts the watcher; abort the handle when the apply is over.
pub fn watch(
    signal: CancelSignal,
    timeout: Option<Duration>,
    db: Arc<tokio_postgres::Client>,
    id: ApplyId,
) -> (Stop, JoinHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let timer = async {
            match timeout {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            _ = signal.raised() => StopReason::CancelRequest,
            _ = timer => StopReason::Timeout(timeout.unwrap_or_default()),
            _ = cancel_apply_requested(&db, &id) => StopReason::CancelApply,
        };
        tx.send_replace(Some(reason));
        // Keep the sender: a dropped one would read as "never stopped".
        std::future::pending::<()>().await;
    });
    (rx, task)
}

/// Resolves once `infra.cancel_apply(id)` has marked the apply. A failed
/// read is tried again: infrasql's own database being slow must not stop
/// an apply.
async fn cancel_apply_requested(db: &tokio_postgres::Client, id: &ApplyId) {
    let sql = "SELECT cancel_requested_at IS NOT NULL FROM infra.apply WHERE apply_id = $1";
    let id = id.to_string();
    loop {
        tokio::time::sleep(POLL_CANCEL_APPLY).await;
        if let Ok(Some(row)) = db.query_opt(sql, &[&id]).await {
            if row.get::<_, Option<bool>>(0) == Some(true) {
                return;
            }
        }
    }
}
