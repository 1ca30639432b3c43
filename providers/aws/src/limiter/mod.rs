//! How many AWS operations run at once (issue 15). One fixed number cannot
//! suit both AWS, which serves many calls in parallel and throttles past an
//! account's rate, and a single-process emulator such as moto, where calls
//! past two or three only queue. So by default each (service, region) has
//! an adaptive limit ([`algorithm`]), under `--aws-concurrency` as its
//! ceiling, starting at 1. `--aws-limiter fixed` keeps the old rule: the
//! ceiling, shared by every service of a region.
//!
//! The permits are a tokio [`Semaphore`] whose size follows the limit: its
//! waiters are served first come first served, and a dropped wait takes no
//! slot, so waiting is fair and cancellation-safe. A cut below the permits
//! in use cannot take them back; it becomes a debt paid by the next permits
//! returned.
//!
//! **Nested permits.** A provider operation that holds a permit and asks
//! the same limiter for another (a listing that describes each item on a
//! fresh client, a create that looks itself up, a helper taking `&Clients`)
//! waits forever once the limit is 1, which the adaptive limit starts at.
//! Auditing every call site cannot keep it from coming back, so the rule is
//! structural: every provider operation runs in [`operation`] (the engine's
//! resource list is wrapped once, `Operations`), which keeps, task-locally,
//! the limiters whose permits it holds; a further acquire on one of them in
//! the same operation borrows the permit already held and does not wait.
//! The operation then runs no more of its own calls than before in one
//! slot, as when it fans out eight calls on one client. A permit taken per
//! HTTP request inside the SDK's connector would avoid the question too,
//! but its wait would count against the SDK's attempt and operation
//! timeouts, so a long queue would fail calls AWS never saw.

mod algorithm;
mod operations;
mod throttle;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use algorithm::{Adaptive, Sample};
pub use operations::Operations;
pub use throttle::is_throttle;

/// The log target of every change of a limit (fields `service`, `region`,
/// `limit`, `from`, `reason`).
pub const LOG_TARGET: &str = "infrasql::aws::limiter";

/// `--aws-limiter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimiterMode {
    /// Per (service, region), between 1 and the ceiling.
    #[default]
    Adaptive,
    /// The ceiling, per region, whatever happens.
    Fixed,
}

impl LimiterMode {
    /// `adaptive` or `fixed`; anything else is an error, never a default.
    pub fn parse(v: &str) -> Result<LimiterMode, String> {
        match v.trim() {
            "adaptive" => Ok(LimiterMode::Adaptive),
            "fixed" => Ok(LimiterMode::Fixed),
            _ => Err(format!("{v:?} is neither adaptive nor fixed")),
        }
    }
}

/// One (service, region)'s limit as it stands, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitView {
    /// The SDK crate's service name: `ec2`, `rds`, `iam`...
    pub service: String,
    pub region: String,
    pub limit: usize,
    pub in_flight: usize,
    pub ceiling: usize,
}

/// The concurrency limit of one (service, region), or in fixed mode of a
/// region.
pub struct Limiter {
    semaphore: Arc<Semaphore>,
    state: Mutex<State>,
    ceiling: usize,
    /// For the log: who this limiter is.
    service: String,
    region: String,
}

struct State {
    /// `None` in fixed mode.
    adaptive: Option<Adaptive>,
    /// The semaphore's size: permits in use plus free, less the debt.
    limit: usize,
    /// Permits in use that are forgotten, not returned, when dropped.
    debt: usize,
    in_flight: usize,
}

/// One operation's slot; returned (or, after a cut, retired) on drop. A
/// borrowed one (`permit` is `None`) rides on a slot its operation holds.
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    limiter: Arc<Limiter>,
    held: Option<Held>,
}

tokio::task_local! {
    /// The limiters whose permits the running provider operation holds.
    static HELD: Held;
}

/// Per operation: each limiter it holds permits of (by address), and how
/// many. Shared by the futures the operation runs concurrently, as a
/// task-local is; a `Vec` as an operation uses one or two limiters.
#[derive(Clone, Default)]
struct Held(Arc<Mutex<Vec<(usize, usize)>>>);

impl Held {
    fn lock(&self) -> MutexGuard<'_, Vec<(usize, usize)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count one more permit of `key`; whether one was held already.
    fn take(&self, key: usize, only_if_held: bool) -> bool {
        let mut all = self.lock();
        match all.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) if *n > 0 => {
                *n += 1;
                true
            }
            Some((_, n)) if !only_if_held => {
                *n = 1;
                false
            }
            None if !only_if_held => {
                all.push((key, 1));
                false
            }
            _ => false,
        }
    }

    fn give_back(&self, key: usize) {
        if let Some((_, n)) = self.lock().iter_mut().find(|(k, _)| *k == key) {
            *n -= 1;
        }
    }
}

/// Run one provider operation (a list, create, update, delete or ready
/// look): a permit it asks for while it holds one of the same limiter is
/// borrowed, not waited for (see the module's doc).
pub fn operation<F: Future>(f: F) -> impl Future<Output = F::Output> {
    HELD.scope(Held::default(), f)
}

impl Limiter {
    pub fn new(mode: LimiterMode, ceiling: usize, service: &str, region: &str) -> Limiter {
        let ceiling = ceiling.max(1);
        let adaptive = (mode == LimiterMode::Adaptive).then(|| Adaptive::new(ceiling));
        let limit = adaptive.as_ref().map_or(ceiling, Adaptive::limit);
        Limiter {
            semaphore: Arc::new(Semaphore::new(limit)),
            state: Mutex::new(State {
                adaptive,
                limit,
                debt: 0,
                in_flight: 0,
            }),
            ceiling,
            service: service.to_owned(),
            region: region.to_owned(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for a slot (first come, first served); within an [`operation`]
    /// that holds one of this limiter already, borrow that one at once.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        let key = Arc::as_ptr(self) as usize;
        let held = HELD.try_with(Held::clone).ok();
        if held.as_ref().is_some_and(|h| h.take(key, true)) {
            self.state().in_flight += 1;
            return Permit {
                permit: None,
                limiter: self.clone(),
                held,
            };
        }
        let permit = self
            .semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if let Some(h) = &held {
            h.take(key, false);
        }
        self.state().in_flight += 1;
        Permit {
            permit: Some(permit),
            limiter: self.clone(),
            held,
        }
    }

    /// The epoch to stamp a call with when it is sent.
    pub fn epoch(&self) -> u64 {
        self.state().adaptive.as_ref().map_or(0, Adaptive::epoch)
    }

    /// One call's outcome: adapt the limit (adaptive mode only).
    pub fn observe(&self, operation: &str, latency: Duration, throttled: bool, epoch: u64) {
        let mut st = self.state();
        let in_flight = st.in_flight;
        let Some(a) = st.adaptive.as_mut() else {
            return;
        };
        let sample = Sample {
            operation,
            latency,
            throttled,
            epoch,
            in_flight,
        };
        let Some(reason) = a.on_sample(sample) else {
            return;
        };
        let to = a.limit();
        let from = st.limit;
        self.resize(&mut st, to);
        // An adaptive limiter is its (service, region)'s alone.
        infrasql_provider::metrics::set_limit(&self.service, &self.region, to);
        tracing::debug!(
            target: LOG_TARGET,
            service = %self.service,
            region = %self.region,
            limit = to,
            from,
            reason = %reason.as_str(),
            "AWS concurrency limit changed"
        );
    }

    /// Grow or shrink the semaphore to `to` permits in all.
    fn resize(&self, st: &mut State, to: usize) {
        if to > st.limit {
            let mut grow = to - st.limit;
            let repaid = grow.min(st.debt);
            st.debt -= repaid;
            grow -= repaid;
            self.semaphore.add_permits(grow);
        } else {
            let shrink = st.limit - to;
            let forgotten = self.semaphore.forget_permits(shrink);
            st.debt += shrink - forgotten;
        }
        st.limit = to;
    }

    pub fn view(&self) -> LimitView {
        let st = self.state();
        LimitView {
            service: self.service.clone(),
            region: self.region.clone(),
            limit: st.limit,
            in_flight: st.in_flight,
            ceiling: self.ceiling,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(h) = &self.held {
            h.give_back(Arc::as_ptr(&self.limiter) as usize);
        }
        let mut st = self.limiter.state();
        st.in_flight -= 1;
        // A borrowed permit has no slot to return.
        let Some(permit) = self.permit.take() else {
            return;
        };
        if st.debt > 0 {
            st.debt -= 1;
            permit.forget();
        } else {
            drop(permit);
        }
    }
}

/// When a call was sent and in which epoch, kept in the SDK's per-operation
/// config bag between the interceptor's two hooks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallStart {
    pub at: Instant,
    pub epoch: u64,
}

impl aws_smithy_types::config_bag::Storable for CallStart {
    type Storer = aws_smithy_types::config_bag::StoreReplace<CallStart>;
}

#[cfg(test)]
mod tests;
