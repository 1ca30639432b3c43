//! What infrasql logs, and what it never logs.
//!
//! `INFRASQL_LOG` takes `tracing`'s usual filter (`info`, `debug`,
//! `infrasql=trace`...). Whatever it says, libraries that log payloads are
//! capped below the level where they do, so a secret (a database's master
//! password, an instance's user data) never reaches the log, even at trace:
//! - the AWS SDK's runtime logs whole response bodies at trace, and SigV4
//!   its canonical requests;
//! - hyper and h2 log connection buffers at trace;
//! - tokio-postgres logs every statement's parameters at debug.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The default filter when `INFRASQL_LOG` is not set.
const DEFAULT: &str = "info,aws_config=error";

/// Payload-logging libraries and the most they may log. These are ceilings
/// applied after the user's filter (an event must pass both), never levels
/// of their own: a ceiling of debug must not turn debug logging on.
const CAPS: [(&str, LevelFilter); 9] = [
    ("aws_smithy_runtime", LevelFilter::DEBUG),
    ("aws_smithy_runtime_api", LevelFilter::DEBUG),
    ("aws_smithy_http_client", LevelFilter::DEBUG),
    ("aws_smithy_http", LevelFilter::DEBUG),
    ("aws_sigv4", LevelFilter::DEBUG),
    ("hyper", LevelFilter::DEBUG),
    ("hyper_util", LevelFilter::DEBUG),
    ("h2", LevelFilter::DEBUG),
    ("tokio_postgres", LevelFilter::WARN),
];

/// The filter for a given `INFRASQL_LOG` value (`None`: unset): the user's
/// filter and the ceilings. An invalid value is refused rather than taken
/// for "log everything".
pub fn filter<S>(spec: Option<&str>) -> Result<impl Filter<S>, String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let spec = spec.unwrap_or(DEFAULT);
    let user =
        EnvFilter::try_new(spec).map_err(|e| format!("invalid INFRASQL_LOG {spec:?}: {e}"))?;
    let caps = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPS);
    Ok(user.and(caps))
}

/// Install the global subscriber: stderr, filtered by `INFRASQL_LOG`.
pub fn init() -> Result<(), String> {
    let spec = std::env::var("INFRASQL_LOG").ok();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter(spec.as_deref())?),
        )
        .init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an event of `target` at `level` gets through the filter.
    fn passes(spec: Option<&str>, target_is_smithy: bool, level: tracing::Level) -> bool {
        let sub = tracing_subscriber::registry()
            .with(tracing_subscriber::layer::Identity::new().with_filter(filter(spec).unwrap()));
        tracing::subscriber::with_default(sub, || match (target_is_smithy, level) {
            (true, tracing::Level::TRACE) => {
                tracing::enabled!(target: "aws_smithy_runtime::client", tracing::Level::TRACE)
            }
            (true, _) => {
                tracing::enabled!(target: "aws_smithy_runtime::client", tracing::Level::DEBUG)
            }
            (false, _) => tracing::enabled!(target: "infrasql::engine", tracing::Level::TRACE),
        })
    }

    #[test]
    fn payload_loggers_stay_capped_whatever_the_filter_says() {
        for spec in ["trace", "trace,aws_smithy_runtime=trace"] {
            assert!(!passes(Some(spec), true, tracing::Level::TRACE), "{spec}");
            assert!(passes(Some(spec), true, tracing::Level::DEBUG), "{spec}");
            assert!(passes(Some(spec), false, tracing::Level::TRACE), "{spec}");
        }
    }

    #[test]
    fn a_ceiling_never_turns_a_library_s_debug_logging_on() {
        // Unset (info) and an explicit info: the SDK's per-request debug
        // lines stay off, as does infrasql's own trace.
        for spec in [None, Some("info")] {
            assert!(!passes(spec, true, tracing::Level::DEBUG), "{spec:?}");
            assert!(!passes(spec, false, tracing::Level::TRACE), "{spec:?}");
        }
    }

    #[test]
    fn an_invalid_filter_is_refused() {
        assert!(filter::<tracing_subscriber::Registry>(Some("info,=[")).is_err());
    }
}
