//! The limiter's rules: modes, cuts paid back, nested permits, fixed limits.

use super::*;

fn busy(l: &Limiter, n: usize, ms: u64, throttled: bool) {
    for _ in 0..n {
        l.observe(
            "DescribeVpcs",
            Duration::from_millis(ms),
            throttled,
            l.epoch(),
        );
    }
}

#[test]
fn the_mode_is_adaptive_or_fixed_and_nothing_else() {
    assert_eq!(LimiterMode::parse("adaptive"), Ok(LimiterMode::Adaptive));
    assert_eq!(LimiterMode::parse(" fixed"), Ok(LimiterMode::Fixed));
    for bad in ["", "bogus", "Fixed", "aimd"] {
        assert!(LimiterMode::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_cut_below_the_permits_in_use_is_paid_back_as_they_return() {
    let l = Arc::new(Limiter::new(LimiterMode::Adaptive, 8, "ec2", "r"));
    // Every slot of the starting limit busy, then slow start: one more
    // per sample, to 8.
    let mut held = Vec::new();
    while held.len() < l.view().limit {
        held.push(l.acquire().await);
    }
    while l.view().limit < 8 {
        busy(&l, 1, 10, false);
        held.push(l.acquire().await);
    }
    assert_eq!(held.len(), 8);
    assert_eq!(l.semaphore.available_permits(), 0);
    busy(&l, 1, 10, true);
    assert_eq!(l.view().limit, 4);
    // Four of the eight returned are retired, not handed out again.
    held.truncate(4);
    assert_eq!(l.semaphore.available_permits(), 0);
    held.truncate(3);
    assert_eq!(l.semaphore.available_permits(), 1);
    held.clear();
    assert_eq!(l.semaphore.available_permits(), 4);
    assert_eq!(l.view().in_flight, 0);
}

#[tokio::test]
async fn a_dropped_wait_takes_no_slot() {
    let l = Arc::new(Limiter::new(LimiterMode::Fixed, 1, "ec2", "r"));
    let first = l.acquire().await;
    let abandoned = tokio::spawn({
        let l = l.clone();
        async move { l.acquire().await }
    });
    tokio::task::yield_now().await;
    abandoned.abort();
    assert!(abandoned.await.is_err_and(|e| e.is_cancelled()));
    drop(first);
    let again = tokio::time::timeout(Duration::from_secs(5), l.acquire()).await;
    assert!(again.is_ok(), "the slot came back");
    assert_eq!(l.view().in_flight, 1);
}

#[test]
fn adaptive_is_the_default() {
    assert_eq!(LimiterMode::default(), LimiterMode::Adaptive);
}

#[tokio::test]
async fn a_nested_permit_in_one_operation_is_borrowed_not_waited_for() {
    let l = Arc::new(Limiter::new(LimiterMode::Adaptive, 1, "ec2", "r"));
    assert_eq!(l.view().limit, 1, "a ceiling of 1 is where it starts");
    let nested = operation({
        let l = l.clone();
        async move {
            let outer = l.acquire().await;
            // Before the scope this waited forever: the one slot is ours.
            let inner = tokio::time::timeout(Duration::from_secs(5), l.acquire())
                .await
                .expect("the nested permit is borrowed");
            assert_eq!(l.view().in_flight, 2);
            drop(outer);
            // The operation still holds one: another nested one is free.
            let again = tokio::time::timeout(Duration::from_secs(5), l.acquire()).await;
            assert!(again.is_ok());
            drop(inner);
        }
    });
    nested.await;
    assert_eq!(l.view().in_flight, 0);
    // Outside an operation the same nesting waits: what hung before.
    let outer = l.acquire().await;
    let inner = tokio::time::timeout(Duration::from_millis(50), l.acquire()).await;
    assert!(inner.is_err(), "no operation, no borrowing");
    drop(outer);
    assert_eq!(l.semaphore.available_permits(), 1, "the one slot came back");
}

#[tokio::test]
async fn another_operation_still_waits_for_the_slot() {
    let l = Arc::new(Limiter::new(LimiterMode::Fixed, 1, "ec2", "r"));
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn(operation({
        let l = l.clone();
        async move {
            let _p = l.acquire().await;
            held_tx.send(()).unwrap();
            done_rx.await.unwrap();
        }
    }));
    held_rx.await.unwrap();
    let other = tokio::spawn(operation({
        let l = l.clone();
        async move { drop(l.acquire().await) }
    }));
    // Its own operation holds nothing: it queues on the semaphore.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!other.is_finished(), "a second operation must wait");
    done_tx.send(()).unwrap();
    holder.await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), other)
        .await
        .expect("the slot passes on")
        .unwrap();
}

#[test]
fn a_fixed_limit_ignores_samples() {
    let l = Limiter::new(LimiterMode::Fixed, 5, "ec2", "r");
    busy(&l, 10, 10, true);
    assert_eq!(l.view().limit, 5);
}
