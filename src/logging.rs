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

use tracing_subscriber::EnvFilter;

/// The default filter when `INFRASQL_LOG` is not set.
const DEFAULT: &str = "info,aws_config=error";

/// Payload-logging libraries and the most they may log.
const CAPS: [&str; 9] = [
    "aws_smithy_runtime=debug",
    "aws_smithy_runtime_api=debug",
    "aws_smithy_http_client=debug",
    "aws_smithy_http=debug",
    "aws_sigv4=debug",
    "hyper=debug",
    "hyper_util=debug",
    "h2=debug",
    "tokio_postgres=warn",
];

/// The filter for a given `INFRASQL_LOG` value (`None`: unset). An invalid
/// value is refused rather than taken for "log everything".
pub fn filter(spec: Option<&str>) -> Result<EnvFilter, String> {
    let spec = spec.unwrap_or(DEFAULT);
    // Caps come last, so they override the same targets in `spec`.
    let full = std::iter::once(spec)
        .chain(CAPS)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    EnvFilter::try_new(&full).map_err(|e| format!("invalid INFRASQL_LOG {spec:?}: {e}"))
}

/// Install the global subscriber: stderr, filtered by `INFRASQL_LOG`.
pub fn init() -> Result<(), String> {
    let spec = std::env::var("INFRASQL_LOG").ok();
    tracing_subscriber::fmt()
        .with_env_filter(filter(spec.as_deref())?)
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an event of `target` at `level` gets through the filter.
    fn passes(spec: &str, target_is_smithy: bool, level: tracing::Level) -> bool {
        use tracing_subscriber::layer::SubscriberExt;
        let sub = tracing_subscriber::registry().with(filter(Some(spec)).unwrap());
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
            assert!(!passes(spec, true, tracing::Level::TRACE), "{spec}");
            assert!(passes(spec, true, tracing::Level::DEBUG), "{spec}");
            assert!(passes(spec, false, tracing::Level::TRACE), "{spec}");
        }
    }

    #[test]
    fn an_invalid_filter_is_refused() {
        assert!(filter(Some("info,=[")).is_err());
    }
}
