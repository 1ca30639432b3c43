//! The order of a round's row writes: parents' levels first, while every
//! listing runs at once; and how many listed resources are compared at once.

use infrasql_provider::{Listed, Props};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How many listed resources the pairs of a round read, compare and write
/// at once. A pair holds its listing and its rows (`to_jsonb` of every
/// column) expanded while it compares; two large tables of one level doing
/// so together were a steady round's peak RSS at 100,000 resources (issue
/// #15: 391 MiB, rules and instances). A pair larger than the budget takes
/// all of it and runs alone; small pairs still run side by side.
const BUDGET: usize = 40_000;

/// Orders the row writes of one round by level while the listings run
/// concurrently: level `d` may write once every pair of levels `< d` has
/// finished (written, failed or skipped).
pub(super) struct LevelGate {
    remaining: std::sync::Mutex<Vec<usize>>,
    done: tokio::sync::watch::Sender<usize>,
    /// Listed resources being compared (`BUDGET`).
    budget: Semaphore,
}

/// A pair's place in the gate: it may write once `done >= depth`.
pub(super) struct Turn<'a> {
    depth: usize,
    gate: &'a LevelGate,
}

impl LevelGate {
    pub(super) fn new(depths: impl Iterator<Item = usize>) -> Self {
        let mut remaining = Vec::new();
        for d in depths {
            if remaining.len() <= d {
                remaining.resize(d + 1, 0);
            }
            remaining[d] += 1;
        }
        let gate = LevelGate {
            remaining: std::sync::Mutex::new(remaining),
            done: tokio::sync::watch::channel(0).0,
            budget: Semaphore::new(BUDGET),
        };
        gate.advance(&gate.remaining.lock().expect("gate lock poisoned"));
        gate
    }

    pub(super) fn turn(&self, depth: usize) -> Turn<'_> {
        Turn { depth, gate: self }
    }

    pub(super) fn finished(&self, depth: usize) {
        let mut remaining = self.remaining.lock().expect("gate lock poisoned");
        remaining[depth] -= 1;
        self.advance(&remaining);
    }

    /// Skip past every level with nothing left to run.
    fn advance(&self, remaining: &[usize]) {
        let mut done = *self.done.borrow();
        while done < remaining.len() && remaining[done] == 0 {
            done += 1;
        }
        self.done.send_replace(done);
    }
}

impl<'a> Turn<'a> {
    /// Waits for the turn, and for room in the round's budget (`BUDGET`),
    /// holding `listed` as the provider gave it (compact text, one string
    /// per resource), and gives it back parsed, with the budget's share to
    /// hold while the pair compares and writes. As `Props` (a map with its
    /// keys per resource) 40,000 rules are about 65 MB, as text about a
    /// third of it: a listing is expanded only once the budget has room
    /// (issue #15: a round's peak RSS was every listing at full size next
    /// to the rows being read).
    pub(super) async fn wait_holding(self, listed: Listed) -> (Vec<Props>, SemaphorePermit<'a>) {
        let share = listed.len().min(BUDGET) as u32;
        let budget: &'a Semaphore = &self.gate.budget;
        self.wait().await;
        // The gate owns the semaphore and never closes it.
        let permit = budget
            .acquire_many(share)
            .await
            .expect("the round's budget is never closed");
        (listed.into_props(), permit)
    }

    pub(super) async fn wait(self) {
        let mut rx = self.gate.done.subscribe();
        // The sender lives as long as the gate, which outlives every turn.
        let _ = rx.wait_for(|done| *done >= self.depth).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_wait_for_every_lower_level_and_skip_empty_ones() {
        use futures_util::FutureExt;
        // Levels 0 and 2 have pairs; level 1 has none (filtered out).
        let gate = LevelGate::new([0, 0, 2].into_iter());
        assert!(gate.turn(0).wait().now_or_never().is_some());
        let mut top = Box::pin(gate.turn(2).wait());
        assert!((&mut top).now_or_never().is_none());
        gate.finished(0);
        assert!(
            (&mut top).now_or_never().is_none(),
            "one level-0 pair still runs"
        );
        gate.finished(0);
        assert!(top.now_or_never().is_some());
    }

    #[tokio::test]
    async fn a_listing_held_for_its_turn_comes_back_unchanged() {
        use futures_util::FutureExt;
        let listed: Vec<Props> = [
            serde_json::json!({"id": "sg-1", "n": 443, "tags": {"a": "b"}, "none": null}),
            serde_json::json!({"id": "sg-2", "cidrs": ["10.0.0.0/8"], "ok": true, "f": 0.1}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let gate = LevelGate::new([0, 1].into_iter());
        let mut held = Box::pin(gate.turn(1).wait_holding(Listed::from(listed.clone())));
        assert!((&mut held).now_or_never().is_none(), "level 0 still runs");
        gate.finished(0);
        let (back, share) = held.await;
        assert_eq!(back, listed);
        drop(share);
        // An open turn with room in the budget gives the listing back at once.
        let (back, _share) = gate
            .turn(1)
            .wait_holding(Listed::from(listed.clone()))
            .now_or_never()
            .expect("open turn, budget free");
        assert_eq!(back, listed);
    }

    #[tokio::test]
    async fn a_large_listing_waits_for_the_budget_and_comes_back_whole() {
        use futures_util::FutureExt;
        let big: Vec<Props> = (0..BUDGET + 1)
            .map(|i| {
                serde_json::json!({"id": format!("r-{i}")})
                    .as_object()
                    .unwrap()
                    .clone()
            })
            .collect();
        let small: Vec<Props> = vec![serde_json::json!({"id": "s"}).as_object().unwrap().clone()];
        let gate = LevelGate::new([0, 0].into_iter());
        // More than the budget: it takes all of it, not more (which would
        // never be granted).
        let (first, share) = gate
            .turn(0)
            .wait_holding(Listed::from(big.clone()))
            .now_or_never()
            .expect("the budget is free");
        assert_eq!(first.len(), BUDGET + 1);
        let mut second = Box::pin(gate.turn(0).wait_holding(Listed::from(small.clone())));
        assert!(
            (&mut second).now_or_never().is_none(),
            "the budget is taken"
        );
        drop(share);
        let (back, _share) = second.await;
        assert_eq!(back, small);
    }
}
