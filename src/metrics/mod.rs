//! The Prometheus metrics (issue 16): what `/metrics` serves, as
//! [`encode`]'s OpenMetrics text ([`CONTENT_TYPE`]). docs/metrics.md lists
//! every metric; `tests/metrics.rs` keeps the two equal.
//!
//! One process-wide registry in a `OnceLock`: what is counted (sessions,
//! commits, AWS calls) belongs to the process, and the code that counts it
//! (the wire's accept loop, the commit hook, the sync loop) would otherwise
//! need a handle threaded through every constructor between `server` and
//! there. The recording functions here are what the other modules call;
//! they take only bounded values (outcomes, table names, regions, policy
//! names), never a resource id, SQL or a secret.
//!
//! Recorded when it happens: sessions, commits, applies, policy denials,
//! sync rounds (`record`). Read at scrape time (`collect`): the AWS
//! counters and limits the providers keep ([`infrasql_provider::metrics`]),
//! and each sync pair's age. Open drift is counted by the sync loop once
//! per round, as the database says (`engine::sync`).

mod collect;
mod record;

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use record::{
    apply_finished, commit_finished, connection_accepted, policy_denied, session_opened,
    set_open_drift, sync_round_finished, ApplyOutcome, ApplySource, CommitOutcome, OpenSession,
};

/// What `/metrics` answers with: the OpenMetrics text format, which
/// Prometheus scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApplyLabels {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PairLabels {
    table: String,
    region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoundLabels {
    table: String,
    region: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

/// A histogram's buckets, doubling from `start`.
#[derive(Clone, Debug)]
struct Buckets {
    start: f64,
    count: u16,
}

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(self.start, 2.0, self.count))
    }
}

/// Every metric recorded as it happens.
struct Metrics {
    registry: Registry,
    connections: Counter,
    sessions_open: Gauge,
    sessions: Counter,
    commits: Family<OutcomeLabels, Counter>,
    applies: Family<ApplyLabels, Counter>,
    apply_seconds: Family<ApplyLabels, Histogram, Buckets>,
    policy_denials: Family<PolicyLabels, Counter>,
    sync_rounds: Family<RoundLabels, Counter>,
    sync_seconds: Family<PairLabels, Histogram, Buckets>,
    drift_open: Family<TableLabels, Gauge>,
    ages: collect::Ages,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            connections: Counter::default(),
            sessions_open: Gauge::default(),
            sessions: Counter::default(),
            commits: Family::default(),
            applies: Family::default(),
            // 0.1 s to about 14 minutes: an apply waits for AWS.
            apply_seconds: Family::new_with_constructor(Buckets {
                start: 0.1,
                count: 14,
            }),
            policy_denials: Family::default(),
            sync_rounds: Family::default(),
            // 10 ms to about 80 s: one pair's listing and writes.
            sync_seconds: Family::new_with_constructor(Buckets {
                start: 0.01,
                count: 14,
            }),
            drift_open: Family::default(),
            ages: collect::Ages::default(),
        };
        let mut r = Registry::default();
        // A counter's samples get `_total` from the encoder.
        r.register(
            "infrasql_client_connections_accepted",
            "TCP connections accepted on the wire listener: sessions, cancel requests and refused startups",
            m.connections.clone(),
        );
        r.register(
            "infrasql_client_sessions",
            "Client sessions open now (past authentication)",
            m.sessions_open.clone(),
        );
        r.register(
            "infrasql_client_sessions_started",
            "Client sessions that passed authentication since the start",
            m.sessions.clone(),
        );
        r.register(
            "infrasql_commits",
            "COMMITs that reached infrasql's hook, by outcome: committed (after an apply), no_change, plan_only, refused (before any AWS call), failed (after the apply began)",
            m.commits.clone(),
        );
        r.register(
            "infrasql_applies",
            "Applies by source (commit, sync_revert) and outcome: applied, failed (undone, settled), recovering (left to recovery)",
            m.applies.clone(),
        );
        r.register(
            "infrasql_apply_duration_seconds",
            "Wall time of an apply, from its journal's start to its outcome",
            m.apply_seconds.clone(),
        );
        r.register(
            "infrasql_policy_denials",
            "COMMITs refused by a deny policy, by policy name",
            m.policy_denials.clone(),
        );
        r.register(
            "infrasql_sync_rounds",
            "Sync rounds by (table, region) and outcome: success, failed",
            m.sync_rounds.clone(),
        );
        r.register(
            "infrasql_sync_round_duration_seconds",
            "Wall time of one (table, region)'s sync round, less its wait for the parents' writes",
            m.sync_seconds.clone(),
        );
        r.register(
            "infrasql_drift_open",
            "Open drift records per table, as counted after the last sync round",
            m.drift_open.clone(),
        );
        // Every outcome from the start, at 0: a rate or an alert on one
        // that has not happened yet reads 0, not "no data".
        for outcome in CommitOutcome::ALL {
            let _ = m.commits.get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            });
        }
        for source in ApplySource::ALL {
            for outcome in ApplyOutcome::ALL {
                let _ = m.applies.get_or_create(&ApplyLabels {
                    source: source.as_str(),
                    outcome: outcome.as_str(),
                });
            }
        }
        r.register_collector(Box::new(m.ages.clone()));
        r.register_collector(Box::new(collect::Aws));
        Metrics { registry: r, ..m }
    }
}

/// Every metric as OpenMetrics text, for `/metrics`.
pub fn encode() -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &metrics().registry)
        .expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The value of the sample line that starts with `series` (name and
    /// labels, as encoded).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().expect("a number"))
    }

    #[test]
    fn a_counter_sample_ends_in_total_under_its_family_type() {
        commit_finished(CommitOutcome::PlanOnly);
        let text = encode();
        assert!(text.contains("# TYPE infrasql_commits counter\n"), "{text}");
        let series = "infrasql_commits_total{outcome=\"plan_only\"}";
        assert!(sample(&text, series).is_some_and(|n| n >= 1.0), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn every_commit_and_apply_outcome_is_there_from_the_start() {
        let text = encode();
        for o in CommitOutcome::ALL {
            let series = format!("infrasql_commits_total{{outcome=\"{}\"}}", o.as_str());
            assert!(sample(&text, &series).is_some(), "{series}");
        }
        let series = "infrasql_applies_total{source=\"sync_revert\",outcome=\"recovering\"}";
        assert!(sample(&text, series).is_some(), "{text}");
    }

    #[test]
    fn a_session_counts_as_open_until_its_guard_is_dropped() {
        let gauge = || sample(&encode(), "infrasql_client_sessions").unwrap_or(0.0);
        let started = || sample(&encode(), "infrasql_client_sessions_started_total");
        let open = session_opened();
        let (during, total) = (gauge(), started());
        drop(open);
        assert_eq!(gauge(), during - 1.0);
        assert_eq!(started(), total, "a close is no start");
    }

    #[test]
    fn a_table_whose_drift_was_resolved_reads_zero_not_its_old_count() {
        let counts = [
            ("aws.unit_a".to_owned(), 2),
            ("aws.unit_join".to_owned(), 1),
        ];
        set_open_drift(["aws.unit_a".to_owned()], &counts);
        let text = encode();
        assert_eq!(
            sample(&text, "infrasql_drift_open{table=\"aws.unit_a\"}"),
            Some(2.0)
        );
        // The join table is no resource table: known only from its count.
        set_open_drift(["aws.unit_a".to_owned()], &[]);
        let text = encode();
        assert_eq!(
            sample(&text, "infrasql_drift_open{table=\"aws.unit_a\"}"),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "infrasql_drift_open{table=\"aws.unit_join\"}"),
            Some(0.0)
        );
    }

    #[test]
    fn a_failed_round_leaves_the_pairs_age_alone() {
        let age = |t: &str| {
            sample(
                &encode(),
                &format!("infrasql_sync_age_seconds{{table=\"{t}\",region=\"r-unit\"}}"),
            )
        };
        sync_round_finished(
            "aws.unit_failing",
            "r-unit",
            false,
            Duration::from_millis(5),
        );
        assert_eq!(age("aws.unit_failing"), None, "never succeeded: no age");
        sync_round_finished("aws.unit_ok", "r-unit", true, Duration::from_millis(5));
        assert!(age("aws.unit_ok").is_some_and(|a| (0.0..5.0).contains(&a)));
        let failed = "infrasql_sync_rounds_total{table=\"aws.unit_failing\",region=\"r-unit\",outcome=\"failed\"}";
        assert_eq!(sample(&encode(), failed), Some(1.0));
    }
}
