//! A fault and latency proxy for tests against moto.
//!
//! moto answers every call at once and never fails on its own, so the paths
//! that matter most in production never run in a test: throttling that
//! outlasts the SDK's retries, an undo that fails, an answer lost after AWS
//! already did the work. This proxy sits between the code under test (as its
//! AWS endpoint URL) and moto, and makes those happen on purpose, per AWS
//! action or per call number. It works at the HTTP level, so the real SDK,
//! its retries and its error parsing stay in the loop; nothing is mocked.
//!
//! ```no_run
//! use infrasql_fault_proxy::{Effect, Fault, FaultProxy};
//! # let moto_url = "http://127.0.0.1:5000";
//! let proxy = FaultProxy::start(moto_url);
//! // ... point infrasql's --aws-endpoint-url at proxy.url, set things up ...
//! proxy.arm(Fault::on("CreateSubnet").times(6).with(Effect::Status503));
//! // ... COMMIT: the SDK tries 3 times, then gives up ...
//! assert_eq!(proxy.calls("CreateSubnet"), 3);
//! proxy.clear();
//! ```
//!
//! Design choices:
//! - It runs on its own thread and tokio runtime, so it keeps answering while
//!   a test blocks (a sync helper, `std::thread::sleep`), and its API is plain
//!   `&self` methods usable from sync and async tests. Rules can change while
//!   it runs: a test arms a fault after its setup.
//! - The client side is a small HTTP/1.1 server over `httparse`, not hyper's
//!   server: resetting a connection at a chosen moment is then one
//!   `set_zero_linger` on a socket it owns, and the workspace's hyper features
//!   stay as they are (hyper's `server` feature would rebuild the AWS SDK for
//!   every test build). Upstream it uses hyper-util's pooled client, as the
//!   SDK does. Request bodies need a Content-Length (every AWS SDK request
//!   for the query and JSON protocols has one).

mod aws;
mod http;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper_util::client::legacy::{connect::HttpConnector, Client};

pub use aws::Protocol;

/// What happens to a call a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// moto gets the call at once; the answer reaches the client this much
    /// later (like a slow AWS response). Delays of several rules add up and
    /// combine with any other effect.
    Delay(Duration),
    /// AWS's throttling error for the protocol: EC2 503 `RequestLimitExceeded`,
    /// query 400 `Throttling`, JSON 400 `ThrottlingException`.
    Throttle,
    /// 500: EC2 `InternalError`, others `InternalFailure`.
    Status500,
    /// 503: EC2 `Unavailable`, others `ServiceUnavailable`.
    Status503,
    /// Any other AWS error, in the protocol's error format.
    Error {
        status: u16,
        code: String,
        message: String,
    },
    /// Reset the client's connection; moto never sees the call.
    ResetBefore,
    /// Forward to moto, drop its answer, reset the client's connection: the
    /// call took effect but the client cannot know.
    ResetAfter,
    /// Answer 200 with this body (XML for the query protocols) instead of
    /// moto, which never sees the call: AWS's answer to an action moto does
    /// not implement (moto 5.2.1 has no ResetDBParameterGroup), so the
    /// code that sends it still runs against the real SDK, and the test
    /// reads what was sent from [`FaultProxy::log`].
    Answer(String),
}

/// A rule: which calls (by action and position), and what happens to them.
///
/// Positions count the calls that match the rule's action from the moment
/// the rule is armed, starting at 1. Without `nth` or `times` a rule applies
/// to every matching call until cleared.
#[derive(Debug, Clone)]
pub struct Fault {
    action: Option<String>,
    nth: Option<usize>,
    times: Option<usize>,
    effect: Option<Effect>,
}

impl Fault {
    /// Calls of one action: `CreateVpc` (query protocols' `Action=`), the
    /// operation of an `X-Amz-Target` (`GetParameter`), or `METHOD /path`.
    pub fn on(action: &str) -> Fault {
        Fault {
            action: Some(action.to_owned()),
            nth: None,
            times: None,
            effect: None,
        }
    }

    /// Every call, whatever its action (with `nth`: the Nth call overall).
    pub fn any() -> Fault {
        Fault {
            action: None,
            nth: None,
            times: None,
            effect: None,
        }
    }

    /// Start at the Nth matching call (1-based); alone, only that call.
    pub fn nth(mut self, n: usize) -> Fault {
        assert!(n >= 1, "calls are counted from 1");
        self.nth = Some(n);
        self
    }

    /// Only K matching calls (from the first, or from `nth`).
    pub fn times(mut self, k: usize) -> Fault {
        self.times = Some(k);
        self
    }

    pub fn with(mut self, effect: Effect) -> Fault {
        self.effect = Some(effect);
        self
    }
}

/// One call as the proxy saw it, in arrival order.
#[derive(Debug, Clone)]
pub struct Call {
    /// 1-based position among all calls since start (or `reset_log`).
    pub n: usize,
    pub service: String,
    pub action: String,
    /// The error or reset injected, if any (delays are in `delay`).
    pub effect: Option<Effect>,
    pub delay: Duration,
    /// moto received the call.
    pub forwarded: bool,
    /// The status the client got; `None` after a reset or while in flight.
    pub status: Option<u16>,
    /// The request body as sent (a Query protocol call's parameters).
    pub body: String,
}

struct Rule {
    fault: Fault,
    effect: Effect,
    seen: usize,
}

impl Rule {
    fn fires(&mut self, action: &str) -> bool {
        if self.fault.action.as_deref().is_some_and(|a| a != action) {
            return false;
        }
        self.seen += 1;
        let first = self.fault.nth.unwrap_or(1);
        let count = self.fault.times.unwrap_or(if self.fault.nth.is_some() {
            1
        } else {
            usize::MAX
        });
        self.seen >= first && self.seen - first < count
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    calls: Vec<Call>,
    ids: u64,
}

struct Shared {
    upstream: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record an arriving call and decide its fate: (log index, delay, effect).
    fn arrive(&self, id: &aws::Identity, body: &[u8]) -> (usize, Duration, Option<Effect>) {
        let mut st = self.state();
        let (mut delay, mut effect) = (Duration::ZERO, None);
        for r in st
            .rules
            .iter_mut()
            .filter_map(|r| r.fires(&id.action).then_some(&r.effect))
        {
            match r {
                Effect::Delay(d) => delay += *d,
                e if effect.is_none() => effect = Some(e.clone()),
                _ => {}
            }
        }
        let n = st.calls.len() + 1;
        st.calls.push(Call {
            n,
            service: id.service.clone(),
            action: id.action.clone(),
            effect: effect.clone(),
            delay,
            forwarded: false,
            status: None,
            body: String::from_utf8_lossy(body).into_owned(),
        });
        (n - 1, delay, effect)
    }
}

/// The proxy; stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: the AWS endpoint URL to give the client.
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward to `upstream` (moto's URL).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            state: Mutex::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let mut http = HttpConnector::new();
                    http.set_nodelay(true);
                    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(http);
                    tokio::pin!(stopped);
                    loop {
                        tokio::select! {
                            accepted = listener.accept() => {
                                if let Ok((sock, _)) = accepted {
                                    let _ = sock.set_nodelay(true);
                                    tokio::spawn(http::serve(sock, sh.clone(), client.clone()));
                                }
                            }
                            _ = &mut stopped => return,
                        }
                    }
                });
            })
            .expect("spawn the fault proxy thread");
        FaultProxy {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Add a rule; it applies from the next call on.
    pub fn arm(&self, fault: Fault) {
        let effect = fault.effect.clone().expect("a Fault needs .with(effect)");
        self.shared.state().rules.push(Rule {
            fault,
            effect,
            seen: 0,
        });
    }

    /// Delay every answer to `action` by `by`.
    pub fn delay(&self, action: &str, by: Duration) {
        self.arm(Fault::on(action).with(Effect::Delay(by)));
    }

    /// Remove every rule; calls pass unchanged again. Counts are kept.
    pub fn clear(&self) {
        self.shared.state().rules.clear();
    }

    /// Calls of `action` that reached the proxy (SDK retries included).
    pub fn calls(&self, action: &str) -> usize {
        self.shared
            .state()
            .calls
            .iter()
            .filter(|c| c.action == action)
            .count()
    }

    /// Calls of `action` that moto received (and so may have carried out).
    pub fn forwarded(&self, action: &str) -> usize {
        let st = self.shared.state();
        st.calls
            .iter()
            .filter(|c| c.action == action && c.forwarded)
            .count()
    }

    /// Every call so far, in arrival order.
    pub fn log(&self) -> Vec<Call> {
        self.shared.state().calls.clone()
    }

    /// Forget the calls seen so far (rules and their positions are kept).
    pub fn reset_log(&self) {
        self.shared.state().calls.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(fault: Fault, actions: &[&str]) -> Vec<bool> {
        let effect = fault.effect.clone().unwrap();
        let mut rule = Rule {
            fault,
            effect,
            seen: 0,
        };
        actions.iter().map(|a| rule.fires(a)).collect()
    }

    #[test]
    fn rules_count_matching_calls_from_when_they_are_armed() {
        let e = Effect::Status503;
        let all = ["A", "B", "A", "A", "A"];
        assert_eq!(
            fired(Fault::on("A").with(e.clone()), &all),
            [true, false, true, true, true]
        );
        assert_eq!(
            fired(Fault::on("A").times(2).with(e.clone()), &all),
            [true, false, true, false, false]
        );
        assert_eq!(
            fired(Fault::on("A").nth(2).with(e.clone()), &all),
            [false, false, true, false, false]
        );
        assert_eq!(
            fired(Fault::on("A").nth(2).times(2).with(e.clone()), &all),
            [false, false, true, true, false]
        );
        assert_eq!(
            fired(Fault::any().nth(2).with(e), &all),
            [false, true, false, false, false]
        );
    }
}
