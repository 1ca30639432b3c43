//! Waiting inside an apply: a call or a readiness poll that takes long
//! reports progress at least every [`PROGRESS_EVERY`], and gives way at
//! once to a stop (cancel, timeout).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infrasql_provider::{ApplyContext, ErrorClass, Props, ProviderError, Readiness, Resource};
use tokio::sync::mpsc;

use crate::engine::stop::{self, Stop, StopReason};

/// A NOTICE this often while something takes long: well inside the 10 s a
/// user waits before wondering whether anything happens.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Readiness polls start this far apart and double up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_secs(1);
const POLL_MAX: Duration = Duration::from_secs(10);
/// How long a created resource may take to be ready (terraform's default
/// create timeout), after which the create fails and is undone.
const READY_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Run `fut`; every [`PROGRESS_EVERY`] send `line(seconds elapsed)`. With a
/// `stop`, give up as soon as it says so (the future is dropped).
pub async fn watched<F: Future>(
    fut: F,
    stop: Option<&Stop>,
    progress: &mpsc::UnboundedSender<String>,
    line: impl Fn(u64) -> String,
) -> Result<F::Output, StopReason> {
    every(PROGRESS_EVERY, fut, stop, progress, |d| line(d.as_secs())).await
}

/// [`watched`] without a stop: runs `fut` to its end.
pub async fn reporting<F: Future>(
    fut: F,
    progress: &mpsc::UnboundedSender<String>,
    line: impl Fn(u64) -> String,
) -> F::Output {
    match watched(fut, None, progress, line).await {
        Ok(out) => out,
        Err(reason) => unreachable!("a wait without a stop was stopped: {reason}"),
    }
}

/// [`watched`], reporting every `period`.
async fn every<F: Future>(
    period: Duration,
    fut: F,
    stop: Option<&Stop>,
    progress: &mpsc::UnboundedSender<String>,
    line: impl Fn(Duration) -> String,
) -> Result<F::Output, StopReason> {
    tokio::pin!(fut);
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut stop = stop.cloned();
    let stopped = async {
        match stop.as_mut() {
            Some(s) => stop::stopped(s).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            out = &mut fut => return Ok(out),
            reason = &mut stopped => return Err(reason),
            _ = tick.tick() => {
                let _ = progress.send(line(start.elapsed()));
            }
        }
    }
}

/// Poll `ready` with backoff until the created resource is ready. `Ok(None)`:
/// what `create` returned still holds.
pub async fn until_ready(
    r: &dyn Resource,
    c: &ApplyContext,
    id: &str,
    created: &Props,
    stop: &Stop,
    progress: &mpsc::UnboundedSender<String>,
) -> Result<Result<Option<Props>, ProviderError>, StopReason> {
    let table = r.schema().qualified();
    // The last status seen, for the progress line while a poll is out.
    let status = Arc::new(Mutex::new(String::from("waiting")));
    let seen = status.clone();
    let what = table.clone();
    let poll = async move {
        let start = Instant::now();
        let mut gap = POLL_FIRST;
        loop {
            match r.ready(c, id, created).await {
                Ok(Readiness::Ready(props)) => return Ok(props),
                Ok(Readiness::Pending { status }) => {
                    *seen.lock().expect("status lock") = status;
                }
                Err(e) => return Err(e),
            }
            if start.elapsed() >= READY_LIMIT {
                let last = seen.lock().expect("status lock").clone();
                return Err(ProviderError::new(
                    ErrorClass::Retryable,
                    "WaitTimeout",
                    format!(
                        "{what} {id} was not ready within {} min (still {last})",
                        READY_LIMIT.as_secs() / 60
                    ),
                ));
            }
            tokio::time::sleep(gap).await;
            gap = (gap * 2).min(POLL_MAX);
        }
    };
    watched(poll, Some(stop), progress, |s| {
        let now = status.lock().expect("status lock").clone();
        format!("waiting for {table} {id} ({now}, {s} s)")
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::watch;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn a_long_call_reports_every_period_and_finishes() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let slow = tokio::time::sleep(MS * 550);
        let out = every(MS * 100, slow, None, &tx, |_| "still".to_owned()).await;
        assert!(out.is_ok());
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        // Ticks at 100 .. 500 ms; a loaded machine may lose the last.
        assert!((4..=5).contains(&n), "{n}");
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_at_once() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let (stop_tx, stop) = watch::channel(None);
        tokio::spawn(async move {
            tokio::time::sleep(MS * 200).await;
            stop_tx.send_replace(Some(StopReason::CancelRequest));
            std::future::pending::<()>().await;
        });
        let t = Instant::now();
        let slow = tokio::time::sleep(Duration::from_secs(600));
        let out = every(MS * 50, slow, Some(&stop), &tx, |_| String::new()).await;
        assert_eq!(out, Err(StopReason::CancelRequest));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
