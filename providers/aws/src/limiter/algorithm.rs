//! The adaptive limit itself, as pure state fed one sample at a time: no
//! clock, no I/O, so the unit tests below drive it through a synthetic
//! latency and throttle sequence.
//!
//! It is TCP's congestion control applied to operations in flight:
//! - **slow start**: from [`LATENCY_FLOOR`], the limit grows by one per good
//!   sample (doubling per round of calls) until the first sign of
//!   overload; then
//! - **additive increase**: by `1/limit` per good sample (one per round);
//! - **multiplicative decrease**: halved on a throttle (AWS said so
//!   outright), cut to 3/4 when latency climbs over its baseline (the
//!   endpoint is queueing our calls: more in flight only adds waiting, as a
//!   single-process emulator such as moto shows from 2 or 3 calls on).
//!
//! Latency is judged per AWS operation, as a ratio to that operation's own
//! baseline: a DescribeInstances over a large account is slower than a
//! CreateTags at any load, and a mix of the two must not read as
//! congestion. The baseline is the fastest recent sample, drifting up
//! slowly ([`BASELINE_DRIFT`]) so that an endpoint that became slower for
//! good is learnt rather than punished forever (Netflix's gradient limiter
//! keeps a long-term average for the same reason). The ratio is smoothed
//! ([`SMOOTHING`]) and compared with [`TOLERANCE`], as Netflix's Gradient2
//! does (its `rttTolerance` is 1.5 too).
//!
//! One cut per round, as TCP: each cut starts a new *epoch*, and only calls
//! that started in the current epoch count. The throttles of a burst that
//! was already in flight when the first one arrived are one signal, not ten.

use std::collections::HashMap;
use std::time::Duration;

/// Smoothed latency over this multiple of its baseline is overload.
pub const TOLERANCE: f64 = 1.5;
/// Weight of a new sample in the smoothed latency ratio.
pub const SMOOTHING: f64 = 0.25;
/// A baseline grows by this fraction per sample of its operation, unless a
/// faster sample pulls it down: it doubles in about 140 slow samples.
pub const BASELINE_DRIFT: f64 = 0.005;
/// Samples of an epoch before its latency is judged: one slow call right
/// after a cut is noise, not a trend.
pub const MIN_SAMPLES: u32 = 4;
/// Latency alone never cuts the limit below this (or the ceiling, if
/// lower): a few calls in flight overlap infrasql's and PostgreSQL's work
/// per step with the endpoint's, even when the endpoint queues them (moto
/// answers one at a time, and the 200-group COMMIT ran 2.2× slower when
/// latency held the limit at 1–3; bench/README.md). AWS says "too many"
/// outright, with a throttle, and a throttle still halves down to 1.
pub const LATENCY_FLOOR: f64 = 4.0;

/// What ended one AWS call, as the limiter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The SDK's operation name (`CreateVpc`); baselines are per operation.
    pub operation: &'a str,
    pub latency: Duration,
    /// AWS refused the call for load (see `throttle.rs`).
    pub throttled: bool,
    /// The epoch when the call was sent ([`Adaptive::epoch`]).
    pub epoch: u64,
    /// Operations holding a permit when the call ended.
    pub in_flight: usize,
}

/// Why the limit changed (logged as `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Throttle,
    Latency,
    Rising,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Throttle => "throttle",
            Reason::Latency => "latency",
            Reason::Rising => "rising",
        }
    }
}

/// The adaptive limit of one (service, region).
#[derive(Debug, Clone)]
pub struct Adaptive {
    /// Fractional, so additive increase can add `1/limit` per sample.
    limit: f64,
    ceiling: f64,
    slow_start: bool,
    epoch: u64,
    /// Samples of the current epoch.
    samples: u32,
    /// Smoothed latency / baseline over the current epoch.
    ratio: Option<f64>,
    /// Seconds, per operation.
    baselines: HashMap<String, f64>,
}

impl Adaptive {
    /// Starts at [`LATENCY_FLOOR`] (or the ceiling, if lower), as TCP's
    /// initial window is 10 segments rather than 1 (RFC 6928): latency
    /// never takes the limit below the floor, so starting under it only
    /// cost the climb: one step per answer, and the first answers of a
    /// sync are its slowest pages (from 1 to 4 took the first 0.6 s of a
    /// 4-second import against moto, the EC2 listings queued one behind
    /// another; bench/README.md). A throttle still halves it down to 1, and
    /// the per-operation baseline is the fastest sample seen, so loaded
    /// first samples do not set it.
    pub fn new(ceiling: usize) -> Adaptive {
        let ceiling = ceiling.max(1) as f64;
        Adaptive {
            limit: LATENCY_FLOOR.min(ceiling),
            ceiling,
            slow_start: true,
            epoch: 0,
            samples: 0,
            ratio: None,
            baselines: HashMap::new(),
        }
    }

    /// Operations allowed in flight: 1 to the ceiling.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// Stamp a call with this when it is sent, and pass it back in its
    /// [`Sample`].
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Take one call's outcome; `Some(reason)` when the whole-number limit
    /// changed.
    pub fn on_sample(&mut self, s: Sample<'_>) -> Option<Reason> {
        let before = self.limit();
        let ratio = self.latency_ratio(s.operation, s.latency);
        if s.epoch != self.epoch {
            // Sent before the last cut: its news is already acted on.
            return None;
        }
        if s.throttled {
            self.cut(0.5);
            return (self.limit() != before).then_some(Reason::Throttle);
        }
        self.samples += 1;
        let smoothed = match self.ratio {
            Some(r) => r + SMOOTHING * (ratio - r),
            None => ratio,
        };
        self.ratio = Some(smoothed);
        if smoothed > TOLERANCE {
            // Too slow: cut once the epoch has shown it is a trend, and
            // never raise meanwhile.
            if self.samples < MIN_SAMPLES {
                return None;
            }
            let floor = LATENCY_FLOOR.min(self.ceiling);
            if self.limit <= floor {
                return None;
            }
            self.cut(0.75);
            self.limit = self.limit.max(floor);
            return (self.limit() != before).then_some(Reason::Latency);
        }
        // Raise only a limit in use: an idle limiter has learnt nothing
        // about higher loads (TCP's rule for an application-limited sender).
        if (s.in_flight as f64) * 2.0 >= self.limit {
            let step = if self.slow_start {
                1.0
            } else {
                1.0 / self.limit
            };
            self.limit = (self.limit + step).min(self.ceiling);
        }
        (self.limit() != before).then_some(Reason::Rising)
    }

    /// This latency over its operation's baseline, updating the baseline.
    fn latency_ratio(&mut self, operation: &str, latency: Duration) -> f64 {
        // A floor of 1 ms: a sub-millisecond baseline (a local emulator's
        // first answer) would make every later jitter look like overload.
        let secs = latency.as_secs_f64().max(0.001);
        let base = match self.baselines.get_mut(operation) {
            Some(b) => {
                *b = (*b * (1.0 + BASELINE_DRIFT)).min(secs);
                *b
            }
            None => {
                self.baselines.insert(operation.to_owned(), secs);
                secs
            }
        };
        secs / base
    }

    fn cut(&mut self, factor: f64) {
        self.limit = (self.limit * factor).max(1.0);
        self.slow_start = false;
        self.epoch += 1;
        self.samples = 0;
        self.ratio = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `n` samples of one operation at `ms`, all in flight at the
    /// current limit (a busy limiter), and return every change.
    fn feed(a: &mut Adaptive, n: usize, ms: u64, throttled: bool) -> Vec<(usize, Reason)> {
        (0..n)
            .filter_map(|_| {
                let s = Sample {
                    operation: "DescribeVpcs",
                    latency: Duration::from_millis(ms),
                    throttled,
                    epoch: a.epoch(),
                    in_flight: a.limit(),
                };
                a.on_sample(s).map(|r| (a.limit(), r))
            })
            .collect()
    }

    #[test]
    fn the_limit_rises_while_latency_holds_and_never_passes_the_ceiling() {
        let mut a = Adaptive::new(16);
        assert_eq!(a.limit(), LATENCY_FLOOR as usize);
        let changes = feed(&mut a, 200, 100, false);
        assert!(changes.iter().all(|(_, r)| *r == Reason::Rising));
        // Slow start: one per sample, so the ceiling is reached at once.
        assert_eq!(changes.len(), 16 - LATENCY_FLOOR as usize);
        assert_eq!(a.limit(), 16);
        // A ceiling under the floor is where it starts.
        assert_eq!(Adaptive::new(2).limit(), 2);
    }

    #[test]
    fn a_throttle_halves_the_limit_once_per_round_and_never_below_1() {
        let mut a = Adaptive::new(16);
        feed(&mut a, 20, 100, false);
        assert_eq!(a.limit(), 16);
        let sent_before = a.epoch();
        assert_eq!(feed(&mut a, 1, 100, true), [(8, Reason::Throttle)]);
        // The rest of that burst was in flight before the cut: ignored.
        let late = Sample {
            operation: "DescribeVpcs",
            latency: Duration::from_millis(100),
            throttled: true,
            epoch: sent_before,
            in_flight: 8,
        };
        assert_eq!(a.on_sample(late), None);
        assert_eq!(a.limit(), 8);
        // Throttled again and again: 4, 2, 1, and 1 stays.
        let changes = feed(&mut a, 5, 100, true);
        assert_eq!(
            changes,
            [
                (4, Reason::Throttle),
                (2, Reason::Throttle),
                (1, Reason::Throttle)
            ]
        );
        assert_eq!(a.limit(), 1);
    }

    #[test]
    fn after_a_cut_the_limit_grows_by_one_per_round_not_per_sample() {
        let mut a = Adaptive::new(16);
        feed(&mut a, 20, 100, false);
        feed(&mut a, 1, 100, true);
        assert_eq!(a.limit(), 8);
        // Additive increase: about `limit` samples per step.
        feed(&mut a, 8, 100, false);
        assert_eq!(a.limit(), 8);
        feed(&mut a, 1, 100, false);
        assert_eq!(a.limit(), 9);
        feed(&mut a, 63, 100, false);
        assert_eq!(a.limit(), 14);
    }

    #[test]
    fn the_limit_falls_when_latency_doubles_and_steadies_when_it_settles() {
        let mut a = Adaptive::new(16);
        feed(&mut a, 20, 100, false);
        assert_eq!(a.limit(), 16);
        let changes = feed(&mut a, 6, 200, false);
        assert_eq!(changes, [(12, Reason::Latency)]);
        // Still twice the baseline: cut again once the new epoch has shown it.
        let changes = feed(&mut a, 1, 200, false);
        assert_eq!(changes, [(9, Reason::Latency)]);
        // Back to the baseline: it climbs again, one step per round.
        let changes = feed(&mut a, 30, 100, false);
        assert!(changes.iter().all(|(_, r)| *r == Reason::Rising));
        assert_eq!(a.limit(), 11);
    }

    #[test]
    fn latency_alone_stops_at_the_floor_and_a_throttle_goes_below_it() {
        let mut a = Adaptive::new(16);
        feed(&mut a, 20, 100, false);
        assert_eq!(a.limit(), 16);
        // Ever slower answers: cut after cut, but never under the floor.
        for ms in [200, 400, 800, 1600, 3200, 6400] {
            feed(&mut a, 8, ms, false);
        }
        assert_eq!(a.limit(), LATENCY_FLOOR as usize);
        // AWS throttles: that goes below the floor.
        let changes = feed(&mut a, 1, 6400, true);
        assert_eq!(changes, [(2, Reason::Throttle)]);
        // With a ceiling under the floor, latency never cuts at all.
        let mut low = Adaptive::new(2);
        feed(&mut low, 10, 100, false);
        assert!(feed(&mut low, 20, 1000, false).is_empty());
        assert_eq!(low.limit(), 2);
    }

    #[test]
    fn latency_is_judged_per_operation_so_a_slow_kind_of_call_is_not_overload() {
        let mut a = Adaptive::new(8);
        for i in 0..100 {
            let (op, ms) = if i % 2 == 0 {
                ("CreateTags", 20)
            } else {
                ("DescribeInstances", 400)
            };
            let s = Sample {
                operation: op,
                latency: Duration::from_millis(ms),
                throttled: false,
                epoch: a.epoch(),
                in_flight: a.limit(),
            };
            assert_ne!(a.on_sample(s), Some(Reason::Latency), "sample {i}");
        }
        assert_eq!(a.limit(), 8);
    }

    #[test]
    fn an_idle_limiter_does_not_rise_and_a_ceiling_of_0_is_1() {
        let mut a = Adaptive::new(16);
        feed(&mut a, 3, 100, false);
        let before = a.limit();
        for _ in 0..50 {
            let s = Sample {
                operation: "DescribeVpcs",
                latency: Duration::from_millis(100),
                throttled: false,
                epoch: a.epoch(),
                in_flight: 1,
            };
            a.on_sample(s);
        }
        assert_eq!(a.limit(), before.max(2));
        let mut one = Adaptive::new(0);
        assert_eq!(feed(&mut one, 10, 100, false), []);
        assert_eq!(one.limit(), 1);
    }
}
