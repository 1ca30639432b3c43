//! What the providers count for infrasql's `/metrics` (issue 16): every AWS
//! request by service, action and outcome, the throttling answers, and
//! each concurrency limit as it stands.
//!
//! The counters live here, below the server, because every SDK call passes
//! through the provider crates' interceptor and none of them may depend on
//! the server. They are a few process-wide maps, not a metrics library:
//! the server's `metrics` module reads [`snapshot`] at scrape time and
//! encodes it, so the provider crates build no exporter of their own.
//! Process-wide like the process's AWS clients; a lock per answer costs
//! nothing next to the HTTP request it counts.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// How one HTTP request to AWS ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallOutcome {
    /// A 2xx answer.
    Success,
    /// AWS said slow down (`limiter::is_throttle`).
    Throttled,
    /// Any other error answer (not found, denied, invalid, 5xx...).
    Error,
    /// No answer: a timeout or a broken connection.
    NoAnswer,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Throttled => "throttled",
            CallOutcome::Error => "error",
            CallOutcome::NoAnswer => "no_answer",
        }
    }

    /// The outcome of an answer with this HTTP status.
    pub fn of_answer(status: u16, throttled: bool) -> CallOutcome {
        if throttled {
            CallOutcome::Throttled
        } else if (200..300).contains(&status) {
            CallOutcome::Success
        } else {
            CallOutcome::Error
        }
    }
}

/// One AWS API's requests: the SDK's service name (`ec2`, `iam`...) and
/// the operation's name (`DescribeVpcs`). Both come from the SDK's own
/// model, never from a request's content, so the set stays bounded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    pub service: String,
    pub action: String,
    pub outcome: CallOutcome,
}

/// A (service, region) pair, as the limiter keys its limits.
pub type ServiceRegion = (String, String);

/// What [`snapshot`] hands the exporter, each map in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub calls: BTreeMap<CallKey, u64>,
    pub throttles: BTreeMap<ServiceRegion, u64>,
    /// The operations allowed in flight now.
    pub limits: BTreeMap<ServiceRegion, usize>,
}

static STATE: Mutex<Snapshot> = Mutex::new(Snapshot {
    calls: BTreeMap::new(),
    throttles: BTreeMap::new(),
    limits: BTreeMap::new(),
});

fn state() -> MutexGuard<'static, Snapshot> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Count one request's outcome; a throttle is also counted for the
/// (service, region), whose limiter it cuts.
pub fn note_outcome(service: &str, region: &str, action: &str, outcome: CallOutcome) {
    let mut st = state();
    let key = CallKey {
        service: service.to_owned(),
        action: action.to_owned(),
        outcome,
    };
    *st.calls.entry(key).or_default() += 1;
    if outcome == CallOutcome::Throttled {
        *st.throttles
            .entry((service.to_owned(), region.to_owned()))
            .or_default() += 1;
    }
}

/// The concurrency limit of a (service, region) is now `limit`.
pub fn set_limit(service: &str, region: &str, limit: usize) {
    state()
        .limits
        .insert((service.to_owned(), region.to_owned()), limit);
}

/// Everything counted so far.
pub fn snapshot() -> Snapshot {
    state().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_sorted_by_status_and_throttle() {
        assert_eq!(CallOutcome::of_answer(200, false), CallOutcome::Success);
        assert_eq!(CallOutcome::of_answer(204, false), CallOutcome::Success);
        assert_eq!(CallOutcome::of_answer(400, false), CallOutcome::Error);
        assert_eq!(CallOutcome::of_answer(503, false), CallOutcome::Error);
        assert_eq!(CallOutcome::of_answer(400, true), CallOutcome::Throttled);
    }

    #[test]
    fn outcomes_are_counted_per_action_and_throttles_per_region() {
        // Names no other test uses: the state is the process's.
        note_outcome("svc-t", "r-1", "ListThings", CallOutcome::Success);
        note_outcome("svc-t", "r-1", "ListThings", CallOutcome::Success);
        note_outcome("svc-t", "r-1", "ListThings", CallOutcome::Throttled);
        note_outcome("svc-t", "r-2", "ListThings", CallOutcome::NoAnswer);
        set_limit("svc-t", "r-1", 3);
        set_limit("svc-t", "r-1", 2);
        let s = snapshot();
        let calls = |o| {
            s.calls[&CallKey {
                service: "svc-t".into(),
                action: "ListThings".into(),
                outcome: o,
            }]
        };
        assert_eq!(calls(CallOutcome::Success), 2);
        assert_eq!(calls(CallOutcome::Throttled), 1);
        assert_eq!(calls(CallOutcome::NoAnswer), 1);
        assert_eq!(s.throttles[&("svc-t".into(), "r-1".into())], 1);
        assert!(!s.throttles.contains_key(&("svc-t".into(), "r-2".into())));
        assert_eq!(s.limits[&("svc-t".into(), "r-1".into())], 2);
    }
}
