//! What every resource type does with the SDK's answers: sort an error by
//! AWS's code, follow every page of a listing, pick the one resource a
//! describe-by-id answered, take a delete of something already gone for
//! done. The SDK calls themselves stay in each type's module, where a reader
//! looks for them; these helpers take what `.send()` returned.

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_async::future::pagination_stream::PaginationStream;
use infrasql_provider::{ErrorClass, ProviderError, ResourceSchema};

/// Sort an SDK error by its AWS error code.
pub fn classify<E, R>(e: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    if let Some(code) = e.code() {
        let message = e.message().unwrap_or("").to_owned();
        return ProviderError::new(class_of(code), code, message);
    }
    // No AWS error code: say what happened in one line, not the whole
    // response (which DisplayErrorContext would print).
    let context = DisplayErrorContext(&e).to_string();
    if context.contains("loading credentials") || context.contains("no credentials") {
        return ProviderError::new(
            ErrorClass::Denied,
            "NoCredentials",
            "no AWS credentials: the standard AWS chain (environment, profile, SSO, \
             instance role) found none; set AWS_PROFILE or AWS_ACCESS_KEY_ID, or try \
             infrasql with --playground",
        );
    }
    let message = match &e {
        SdkError::TimeoutError(_) => "the request to AWS timed out".to_owned(),
        SdkError::DispatchFailure(f) => format!(
            "could not reach the AWS endpoint: {}",
            DisplayErrorContext(
                f.as_connector_error()
                    .map(|c| c as &dyn std::error::Error)
                    .unwrap_or(&e)
            )
        ),
        SdkError::ResponseError(_) => "the AWS endpoint sent an unreadable response".to_owned(),
        SdkError::ServiceError(_) => {
            "the AWS endpoint answered with an error but no AWS error code (an internal error?)"
                .to_owned()
        }
        _ => DisplayErrorContext(&e).to_string(),
    };
    ProviderError::new(ErrorClass::Retryable, "RequestFailed", message)
}

pub fn class_of(code: &str) -> ErrorClass {
    // IAM, S3 and Route53 say NoSuchEntity, NoSuchBucket, NoSuchHostedZone.
    if code.contains("NotFound") || code.starts_with("NoSuch") {
        ErrorClass::NotFound
    } else if code.contains("Throttl") || code == "RequestLimitExceeded" || code == "SlowDown" {
        ErrorClass::Throttled
    } else if code.contains("Unauthorized")
        || code.contains("AuthFailure")
        || code.contains("AccessDenied")
        || code == "OptInRequired"
    {
        ErrorClass::Denied
    } else if code.contains("Duplicate")
        || code.contains("Conflict")
        || code.contains("AlreadyExists")
        || code.contains("InUse")
        || code.contains("DependencyViolation")
        || code.contains("LimitExceeded")
        || code.contains("AlreadyAssociated")
        || code.contains("AlreadyOwnedByYou")
        || code.contains("NotEmpty")
        || code == "IncorrectState"
    {
        ErrorClass::Conflict
    } else if code.contains("InternalError")
        || code.contains("Unavailable")
        || code == "InternalFailure"
    {
        ErrorClass::Retryable
    } else {
        ErrorClass::Invalid
    }
}

/// Every item of a listing, all pages followed: pass the SDK's item stream
/// (`ec2.describe_x().into_paginator().items().send()`), which sends each
/// next token. A page that fails fails the listing: half a listing would
/// read as deletions to the sync loop.
pub async fn all_pages<T, E, R>(
    items: PaginationStream<Result<T, SdkError<E, R>>>,
) -> Result<Vec<T>, ProviderError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    items.try_collect().await.map_err(classify)
}

/// [`all_pages`], each item turned by `f` into what the caller keeps as it
/// arrives: a listing of 40,000 resources never holds the SDK's copies and
/// the caller's at once, and the SDK's are freed page by page.
///
/// The items go into any collection (`C`): a provider's `list` collects
/// into [`infrasql_provider::Listed`], which keeps each as text at once.
pub async fn all_pages_map<T, U, C, E, R>(
    mut items: PaginationStream<Result<T, SdkError<E, R>>>,
    mut f: impl FnMut(T) -> U,
) -> Result<C, ProviderError>
where
    C: Default + Extend<U>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let mut out = C::default();
    while let Some(item) = items.next().await {
        out.extend(std::iter::once(f(item.map_err(classify)?)));
    }
    Ok(out)
}

/// The resource a describe-by-id call answered with (`pick` finds it in the
/// answer). Missing is always a NotFound error, so callers test its class:
/// AWS's own error when it refuses the id (`InvalidVpcID.NotFound`), or
/// `gone()` when the answer is empty (a filter found nothing, or EC2 does
/// not list a resource just created yet).
pub fn described<O, T, E, R>(
    sent: Result<O, SdkError<E, R>>,
    pick: impl FnOnce(&O) -> Option<T>,
    gone: impl FnOnce() -> ProviderError,
) -> Result<T, ProviderError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    pick(&sent.map_err(classify)?).ok_or_else(gone)
}

/// NotFound for resource `id` of a type, with the code AWS gives it.
pub fn not_found(schema: &ResourceSchema, code: &str, id: &str) -> ProviderError {
    ProviderError::new(
        ErrorClass::NotFound,
        code,
        format!("{} {id} not found", schema.display),
    )
}

/// A NotFound error as `None`, where "gone" is an answer, not a failure.
pub fn if_found<T>(r: Result<T, ProviderError>) -> Result<Option<T>, ProviderError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.class == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A delete call's answer. Deleting something already gone is success:
/// the goal is reached.
pub fn deleted<O, E, R>(sent: Result<O, SdkError<E, R>>) -> Result<(), ProviderError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    ignore_not_found(sent.map(drop).map_err(classify))
}

/// Deleting something already gone is success: the goal is reached.
pub fn ignore_not_found(r: Result<(), ProviderError>) -> Result<(), ProviderError> {
    if_found(r).map(drop)
}

/// A create call answered without the id of what it made ("CreateVpc
/// returned no VPC id"). Retryable: the answer was cut short, not refused.
pub fn missing_id(op: &str, what: &str) -> ProviderError {
    ProviderError::new(
        ErrorClass::Retryable,
        "MissingId",
        format!("{op} returned no {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_error_codes_are_sorted_into_classes() {
        assert_eq!(class_of("InvalidVpcID.NotFound"), ErrorClass::NotFound);
        assert_eq!(class_of("RequestLimitExceeded"), ErrorClass::Throttled);
        assert_eq!(class_of("Throttling"), ErrorClass::Throttled);
        assert_eq!(class_of("InvalidSubnet.Conflict"), ErrorClass::Conflict);
        assert_eq!(class_of("InvalidGroup.Duplicate"), ErrorClass::Conflict);
        assert_eq!(class_of("DependencyViolation"), ErrorClass::Conflict);
        assert_eq!(class_of("UnauthorizedOperation"), ErrorClass::Denied);
        assert_eq!(class_of("InvalidParameterValue"), ErrorClass::Invalid);
        assert_eq!(class_of("InternalError"), ErrorClass::Retryable);
        assert_eq!(class_of("NoSuchEntity"), ErrorClass::NotFound);
        assert_eq!(class_of("NoSuchBucket"), ErrorClass::NotFound);
        assert_eq!(class_of("BucketNotEmpty"), ErrorClass::Conflict);
        assert_eq!(class_of("BucketAlreadyOwnedByYou"), ErrorClass::Conflict);
        assert_eq!(class_of("HostedZoneNotEmpty"), ErrorClass::Conflict);
    }

    #[test]
    fn gone_is_none_and_other_errors_stay_errors() {
        let gone = not_found(&crate::ec2::vpc::SCHEMA, "InvalidVpcID.NotFound", "vpc-1");
        assert_eq!(gone.message, "VPC vpc-1 not found");
        assert!(matches!(if_found::<()>(Err(gone.clone())), Ok(None)));
        assert!(matches!(if_found(Ok(7)), Ok(Some(7))));
        let denied = ProviderError::new(ErrorClass::Denied, "UnauthorizedOperation", "no");
        let kept = if_found::<()>(Err(denied)).unwrap_err();
        assert_eq!(kept.code, "UnauthorizedOperation");
        assert!(ignore_not_found(Err(gone)).is_ok());
    }
}
