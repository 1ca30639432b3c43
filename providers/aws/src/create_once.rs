//! Creates that AWS cannot deduplicate (CreateVpc, CreateSubnet,
//! CreateSecurityGroup, AuthorizeSecurityGroupIngress... take no client
//! token), sent so that a lost answer never makes a second resource.
//!
//! The SDK retries a call whose connection broke or whose answer timed out,
//! and it cannot know whether AWS carried the first one out: for these
//! creates a resend after a lost answer makes a duplicate (the SDK's resend
//! after a reset is seen in `tests/faults.rs`, where DeleteSubnet arrives
//! twice; `tests/fault_sweep.rs` checks that no create leaves a second
//! resource). So these calls go out with the SDK's
//! retries off ([`no_sdk_retry`]) and [`create_once`] retries instead: before
//! each new attempt it looks for what the earlier one may have made (each
//! type says how: a per-create token tag, [`CREATE_TOKEN_TAG`], or the
//! resource's identity) and adopts it when found.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use infrasql_provider::{ApplyContext, ErrorClass, ProviderError};

/// The tag that marks one create call's resource, so a retry can find it
/// (hidden from the `tags` column, as every `infrasql:` tag).
pub const CREATE_TOKEN_TAG: &str = "infrasql:create-token";

/// Attempts of one create, as the SDK's standard retry makes.
const ATTEMPTS: u32 = 3;

/// A token unique to one create call: the apply, the moment, a counter.
pub fn create_token(ctx: &ApplyContext) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{seq}", ctx.apply_id)
}

/// An EC2 call's settings with the SDK's retries off (for
/// `.customize().config_override(..)`): [`create_once`] retries instead.
pub fn no_sdk_retry() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default()
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
}

/// Whether a failed call may still have been carried out (its answer lost,
/// or AWS failed after the work) or was refused for load and can be resent.
fn worth_retrying(e: &ProviderError) -> bool {
    matches!(e.class, ErrorClass::Retryable | ErrorClass::Throttled)
}

/// Wait before attempt `n` (1-based, after the first): 1 s, then 2 s, as the
/// SDK's standard backoff, so throttling gets room to clear.
fn backoff(n: u32) -> Duration {
    Duration::from_secs(1 << (n - 1).min(4))
}

/// Send a create up to [`ATTEMPTS`] times; before each resend, and after
/// the last failure, `find` looks for what an earlier attempt made: found
/// is adopted (the create succeeded, its answer was lost). A failure whose
/// outcome stays unknown is returned `Retryable`, so the engine leaves the
/// apply to recovery, which deletes by the apply-id tag whatever it made.
pub async fn create_once<T, S, SF, F, FF>(send: S, find: F) -> Result<T, ProviderError>
where
    S: Fn() -> SF,
    SF: Future<Output = Result<T, ProviderError>>,
    F: Fn() -> FF,
    FF: Future<Output = Result<Option<T>, ProviderError>>,
{
    let mut uncertain = false;
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt - 1)).await;
            if uncertain {
                match find().await {
                    Ok(Some(found)) => return Ok(found),
                    Ok(None) => {}
                    // Not knowing whether it exists, a resend could duplicate it.
                    Err(e) => return Err(unknown(e)),
                }
            }
        }
        match send().await {
            Ok(made) => return Ok(made),
            // A conflict after an attempt that may have worked: that attempt
            // made it (a rule AWS now calls a duplicate).
            Err(e) if uncertain && e.class == ErrorClass::Conflict => {
                return match find().await {
                    Ok(Some(found)) => Ok(found),
                    _ => Err(e),
                };
            }
            Err(e) if worth_retrying(&e) => {
                uncertain |= e.class == ErrorClass::Retryable;
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    let last = last.expect("every attempt failed");
    if !uncertain {
        return Err(last);
    }
    match find().await {
        Ok(Some(found)) => Ok(found),
        _ => Err(unknown(last)),
    }
}

/// The error of a create that may have happened: `Retryable`, whatever
/// the last attempt's class, so the apply is left to recovery.
fn unknown(mut e: ProviderError) -> ProviderError {
    e.class = ErrorClass::Retryable;
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn err(class: ErrorClass) -> ProviderError {
        ProviderError::new(class, "X", "x")
    }

    /// Runs `create_once` over scripted answers; (result, sends, finds).
    async fn run(
        sends: Vec<Result<u32, ProviderError>>,
        found: Option<u32>,
    ) -> (Result<u32, ProviderError>, usize, usize) {
        let sends = Mutex::new(sends.into_iter());
        let (s, f) = (Mutex::new(0), Mutex::new(0));
        let r = create_once(
            || {
                *s.lock().unwrap() += 1;
                let next = sends.lock().unwrap().next().expect("a scripted answer");
                async move { next }
            },
            || {
                *f.lock().unwrap() += 1;
                async move { Ok(found) }
            },
        )
        .await;
        let (s, f) = (*s.lock().unwrap(), *f.lock().unwrap());
        (r, s, f)
    }

    #[tokio::test]
    async fn a_lost_answer_is_adopted_not_resent() {
        let (r, sends, finds) = run(vec![Err(err(ErrorClass::Retryable))], Some(7)).await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!((sends, finds), (1, 1));
    }

    #[tokio::test]
    async fn throttling_is_resent_without_a_look() {
        let (r, sends, finds) = run(vec![Err(err(ErrorClass::Throttled)), Ok(3)], None).await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!((sends, finds), (2, 0));
    }

    #[tokio::test]
    async fn nothing_found_is_resent_and_a_refusal_is_final() {
        let (r, sends, _) = run(vec![Err(err(ErrorClass::Retryable)), Ok(4)], None).await;
        assert_eq!((r.unwrap(), sends), (4, 2));
        let (r, sends, finds) = run(vec![Err(err(ErrorClass::Invalid))], None).await;
        assert_eq!(r.unwrap_err().class, ErrorClass::Invalid);
        assert_eq!((sends, finds), (1, 0));
    }

    #[tokio::test]
    async fn an_unknown_outcome_stays_retryable_for_recovery() {
        let answers = vec![
            Err(err(ErrorClass::Retryable)),
            Err(err(ErrorClass::Throttled)),
            Err(err(ErrorClass::Throttled)),
        ];
        let (r, sends, finds) = run(answers, None).await;
        assert_eq!(r.unwrap_err().class, ErrorClass::Retryable);
        assert_eq!((sends, finds), (3, 3));
    }
}
