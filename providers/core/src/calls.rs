//! Counting the requests a provider sends, per task.
//!
//! The sync loop records how many API calls each listing took
//! (`infra.sync_status.api_calls`), while other tables' listings run at the
//! same time. So the count is task-local: [`count_calls`] opens a scope and
//! every request sent from inside it, on the same task, is added to it.
//! Providers call [`note_call`] once per HTTP request they send, retries
//! included (a retry costs the account's rate limit like any request); the
//! engine never sees how a provider talks to its cloud.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

tokio::task_local! {
    static TASK_CALLS: Arc<AtomicU64>;
}

/// Run `f` and count the requests it sends itself (retries included), apart
/// from any other work running at the same time. Requests sent from tasks
/// `f` spawns are not counted.
pub async fn count_calls<F: Future>(f: F) -> (F::Output, u64) {
    let counter = Arc::new(AtomicU64::new(0));
    let out = TASK_CALLS.scope(counter.clone(), f).await;
    (out, counter.load(Ordering::Relaxed))
}

/// Report one request about to be sent. Outside a [`count_calls`] scope it
/// does nothing.
pub fn note_call() {
    let _ = TASK_CALLS.try_with(|c| c.fetch_add(1, Ordering::Relaxed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_counted_per_scope_and_not_outside_one() {
        note_call();
        let ((), outer) = count_calls(async {
            note_call();
            let ((), inner) = count_calls(async {
                note_call();
                note_call();
            })
            .await;
            assert_eq!(inner, 2);
            note_call();
        })
        .await;
        // The inner scope's calls are its own: the outer one saw two.
        assert_eq!(outer, 2);
    }

    #[tokio::test]
    async fn concurrent_scopes_do_not_see_each_other() {
        let one = count_calls(async {
            for _ in 0..3 {
                note_call();
                tokio::task::yield_now().await;
            }
        });
        let two = count_calls(async {
            for _ in 0..5 {
                note_call();
                tokio::task::yield_now().await;
            }
        });
        let (((), a), ((), b)) = tokio::join!(one, two);
        assert_eq!((a, b), (3, 5));
    }
}
