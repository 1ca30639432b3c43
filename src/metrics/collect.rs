//! The metrics read at scrape time rather than recorded as they happen:
//! the AWS counters and limits the provider crates keep (they cannot
//! depend on this crate, so they count in [`infrasql_provider::metrics`]
//! and this encodes the snapshot), and each sync pair's age, which grows
//! with the clock, not with an event.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// One metric family of constant samples: its name (a counter's without
/// `_total`), help (ending in a full stop, as the registry writes its
/// own metrics'), type, and one value per label set.
fn family<S: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (S, M)>,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The AWS requests, throttles and concurrency limits of the process.
#[derive(Debug)]
pub(super) struct Aws;

impl Collector for Aws {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = infrasql_provider::metrics::snapshot();
        family(
            &mut encoder,
            "infrasql_aws_requests",
            "HTTP requests sent to AWS (retries included) by service, action (the API operation) and outcome: success, error, throttled, no_answer.",
            MetricType::Counter,
            s.calls.iter().map(|(k, n)| {
                let labels = [
                    ("service", k.service.as_str()),
                    ("action", k.action.as_str()),
                    ("outcome", k.outcome.as_str()),
                ];
                (labels, ConstCounter::new(*n))
            }),
        )?;
        family(
            &mut encoder,
            "infrasql_aws_throttles",
            "AWS answers that asked to slow down, by service and region.",
            MetricType::Counter,
            s.throttles.iter().map(|((service, region), n)| {
                let labels = [("service", service.as_str()), ("region", region.as_str())];
                (labels, ConstCounter::new(*n))
            }),
        )?;
        family(
            &mut encoder,
            "infrasql_aws_concurrency_limit",
            "AWS operations allowed in flight now per (service, region): the adaptive limit, or --aws-concurrency when fixed.",
            MetricType::Gauge,
            s.limits.iter().map(|((service, region), n)| {
                let labels = [("service", service.as_str()), ("region", region.as_str())];
                (labels, ConstGauge::new(*n as i64))
            }),
        )
    }
}

/// When each (table, region) last finished a round that succeeded.
#[derive(Debug, Clone, Default)]
pub(super) struct Ages(Arc<Mutex<BTreeMap<(String, String), Instant>>>);

impl Ages {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn succeeded(&self, table: &str, region: &str, at: Instant) {
        self.lock()
            .insert((table.to_owned(), region.to_owned()), at);
    }
}

impl Collector for Ages {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let now = Instant::now();
        let ages: Vec<_> = self
            .lock()
            .iter()
            .map(|(pair, at)| (pair.clone(), now.saturating_duration_since(*at)))
            .collect();
        family(
            &mut encoder,
            "infrasql_sync_age_seconds",
            "Seconds since the (table, region)'s last successful sync round ended in this process.",
            MetricType::Gauge,
            ages.iter().map(|((table, region), age)| {
                let labels = [("table", table.as_str()), ("region", region.as_str())];
                (labels, ConstGauge::new(age.as_secs_f64()))
            }),
        )
    }
}
