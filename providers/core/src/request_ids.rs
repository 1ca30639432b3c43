//! Collecting AWS's request ids per task, for the apply history
//! (`infra.apply_action.request_ids`).
//!
//! The engine wraps each provider call of an apply step in [`scope`]; the
//! SDK layer calls [`record`] for every response it gets. So no provider's
//! signature carries the ids, and a step sees only its own calls while
//! other steps run at the same time (task-local, like [`crate::calls`]).

use std::future::Future;
use std::sync::{Arc, Mutex};

tokio::task_local! {
    static TASK_IDS: Arc<Mutex<Vec<String>>>;
}

/// Run `f` and collect the request ids of the responses it got itself
/// (retries included). Ids of calls made from tasks `f` spawns are not
/// collected; an inner scope keeps its ids to itself.
pub async fn scope<F: Future>(f: F) -> (F::Output, Vec<String>) {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let out = TASK_IDS.scope(ids.clone(), f).await;
    let ids = std::mem::take(&mut *ids.lock().expect("request id lock poisoned"));
    (out, ids)
}

/// Report one response's request id. Outside a [`scope`] it does nothing.
pub fn record(id: &str) {
    let _ = TASK_IDS.try_with(|ids| {
        ids.lock()
            .expect("request id lock poisoned")
            .push(id.to_owned())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_are_collected_per_scope_and_not_outside_one() {
        record("lost");
        let ((), outer) = scope(async {
            record("a");
            let ((), inner) = scope(async { record("b") }).await;
            assert_eq!(inner, vec!["b".to_owned()]);
            record("c");
        })
        .await;
        assert_eq!(outer, vec!["a".to_owned(), "c".to_owned()]);
    }

    #[tokio::test]
    async fn concurrent_scopes_do_not_see_each_other() {
        let one = scope(async {
            for i in 0..3 {
                record(&format!("one-{i}"));
                tokio::task::yield_now().await;
            }
        });
        let two = scope(async {
            for i in 0..2 {
                record(&format!("two-{i}"));
                tokio::task::yield_now().await;
            }
        });
        let (((), a), ((), b)) = tokio::join!(one, two);
        assert_eq!(a, ["one-0", "one-1", "one-2"]);
        assert_eq!(b, ["two-0", "two-1"]);
    }
}
