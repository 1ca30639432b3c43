//! How long an AWS call may take. Without limits a response that never
//! comes (a half-open connection, an overloaded endpoint) hangs the COMMIT
//! or the sync round that waits for it; the SDK sets none of these by
//! itself except a connect timeout.
//!
//! The defaults suit AWS: an EC2, RDS or IAM API call answers in well under
//! a second normally and in a few seconds when AWS is slow, so
//! - connect 5 s: a TCP and TLS handshake to a regional endpoint; longer
//!   means the endpoint is unreachable, and the retry may reach another host;
//! - read 30 s: from the request sent to the response's first byte;
//! - attempt 30 s: one attempt whole (a large listing page included);
//! - operation 120 s: every attempt and the backoff between them (the SDK
//!   makes 3 attempts), so a COMMIT learns of a dead endpoint in 2 minutes.
//!
//! Long AWS work (an instance starting, a database being created) is never
//! one call: the engine polls for readiness, so these limits do not cut it.

use std::time::Duration;

/// The SDK's timeouts, set once on the shared SDK settings so that every
/// service's client (`ClientSetup::sdk`) has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsTimeouts {
    pub connect: Duration,
    pub read: Duration,
    pub attempt: Duration,
    pub operation: Duration,
}

impl Default for AwsTimeouts {
    fn default() -> Self {
        AwsTimeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(30),
            attempt: Duration::from_secs(30),
            operation: Duration::from_secs(120),
        }
    }
}

impl AwsTimeouts {
    /// `connect=5s,read=30s,attempt=30s,operation=2m`: any of the four, each
    /// a whole number with `ms`, `s` or `m`; the rest keep their defaults.
    /// Anything else is an error, never a silent default: a typo must not
    /// leave a call without a limit.
    pub fn parse(spec: &str) -> Result<AwsTimeouts, String> {
        let mut t = AwsTimeouts::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not name=duration"))?;
            let d = duration(value.trim())
                .ok_or_else(|| format!("{value:?} is not a duration such as 500ms, 30s or 2m"))?;
            match key.trim() {
                "connect" => t.connect = d,
                "read" => t.read = d,
                "attempt" => t.attempt = d,
                "operation" => t.operation = d,
                k => {
                    return Err(format!(
                        "unknown timeout {k:?} (connect, read, attempt or operation)"
                    ))
                }
            }
        }
        if t.attempt > t.operation {
            return Err(format!(
                "the attempt timeout ({:?}) is longer than the operation's ({:?})",
                t.attempt, t.operation
            ));
        }
        Ok(t)
    }

    pub(crate) fn sdk_config(&self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .read_timeout(self.read)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// A positive whole number of `ms`, `s` or `m`.
fn duration(v: &str) -> Option<Duration> {
    let split = v.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = v[..split].parse().ok().filter(|n| *n > 0)?;
    match &v[split..] {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_take_any_subset_and_refuse_the_rest() {
        let t = AwsTimeouts::parse("connect=1s, attempt=1500ms,operation=1m").unwrap();
        assert_eq!(t.connect, Duration::from_secs(1));
        assert_eq!(t.read, Duration::from_secs(30));
        assert_eq!(t.attempt, Duration::from_millis(1500));
        assert_eq!(t.operation, Duration::from_secs(60));
        assert_eq!(AwsTimeouts::parse("").unwrap(), AwsTimeouts::default());
        for bad in [
            "connect",
            "connect=0s",
            "connect=5",
            "connect=-1s",
            "conect=5s",
            "attempt=3m",
            "read=1h",
        ] {
            assert!(AwsTimeouts::parse(bad).is_err(), "{bad}");
        }
    }
}
