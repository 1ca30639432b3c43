//! The IAM types of infrasql's AWS provider, over aws-sdk-iam.
//!
//! IAM is global ([`Scope::Global`](infrasql_provider::Scope)): every table's
//! `region` is `'global'`, the sync loop lists each type once per round, and
//! the client is made for us-east-1 (`client(clients, "global")`).
//!
//! # API calls per full sync
//! Bulk listings are one call per page (IAM's `Marker`/`IsTruncated`, 100
//! items a page); the per-resource calls run 8 at a time ([`each`]):
//!
//! | table | bulk | per resource |
//! | --- | --- | --- |
//! | `aws.iam_role` | ListRoles | ListRoleTags per role (`tags`, `stack`, the apply id recovery reads) |
//! | `aws.iam_policy` | ListPolicies (`Scope=Local`) | GetPolicyVersion of the default version (`policy_document`) and ListPolicyTags (`tags`) per policy |
//! | `aws.iam_role_policy_attachment` | ListRoles | ListAttachedRolePolicies per role |
//! | `aws.iam_role_inline_policy` | ListRoles | ListRolePolicies per role, GetRolePolicy per inline policy |
//! | `aws.iam_instance_profile` | ListInstanceProfiles (with each profile's role) | ListInstanceProfileTags per profile (`tags`) |
//!
//! With R roles, P customer policies, I inline policies and F profiles:
//! about 3·R + 2·P + I + F calls, plus pages. Every column is observed:
//! the attached and inline policies are security-relevant, and the tags
//! carry the apply id recovery finds crashed creates by.

use std::future::Future;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use infrasql_aws::{Clients, Permitted};
use infrasql_provider::{ProviderError, Resource};

pub use aws_sdk_iam;

pub mod attachment;
pub mod inline_policy;
pub mod instance_profile;
pub mod policy;
pub mod role;

/// Every resource type of this service.
pub fn resources(clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    vec![
        Arc::new(role::Role::new(clients.clone())),
        Arc::new(policy::Policy::new(clients.clone())),
        Arc::new(attachment::Attachment::new(clients.clone())),
        Arc::new(inline_policy::InlinePolicy::new(clients.clone())),
        Arc::new(instance_profile::InstanceProfile::new(clients)),
    ]
}

/// The aws_sdk_iam client for `region`, once a concurrency slot is free.
pub async fn client(clients: &Clients, region: &str) -> Permitted<aws_sdk_iam::Client> {
    clients
        .service(region, |s| {
            aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(s.sdk)
                    .region(s.region)
                    .interceptor(s.count_calls)
                    .interceptor(s.request_ids)
                    .build(),
            )
        })
        .await
}

/// IAM has no regional endpoint: every call goes to the global client.
pub(crate) async fn iam(clients: &Clients) -> Permitted<aws_sdk_iam::Client> {
    client(clients, infrasql_provider::GLOBAL_REGION).await
}

/// How many per-resource calls of one listing run at once; each still takes
/// its own permit from [`Clients::service`].
const PER_RESOURCE: usize = 8;

/// `f` over every item, [`PER_RESOURCE`] at a time (a listing's per-resource
/// calls: one after another they would take R round trips). Any failure
/// fails the whole: half a listing would read as deletions.
pub(crate) async fn each<T, O, F, Fut>(items: Vec<T>, f: F) -> Result<Vec<O>, ProviderError>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<O, ProviderError>>,
{
    futures_util::stream::iter(items)
        .map(f)
        .buffer_unordered(PER_RESOURCE)
        .try_collect()
        .await
}

/// IAM's tags from a row's (key, value) pairs.
pub(crate) fn sdk_tags(pairs: Vec<(String, String)>) -> Vec<aws_sdk_iam::types::Tag> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

/// The (key, value) pairs of IAM's tags, for `tags::put_tags`.
pub(crate) fn tag_pairs<'a>(
    tags: &'a [aws_sdk_iam::types::Tag],
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    tags.iter().map(|t| (t.key(), t.value()))
}

/// An SDK date as the RFC 3339 text a timestamptz column takes.
pub(crate) fn date(d: Option<&aws_sdk_iam::primitives::DateTime>) -> serde_json::Value {
    d.and_then(|t| {
        t.fmt(aws_sdk_iam::primitives::DateTimeFormat::DateTime)
            .ok()
    })
    .map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// The policy document of a row's column, as the JSON text IAM takes.
pub(crate) fn doc_text(p: &infrasql_provider::Props, col: &str) -> Result<String, ProviderError> {
    match p.get(col) {
        Some(v) if !v.is_null() => Ok(infrasql_aws::policy_doc::to_text(v)),
        _ => Err(ProviderError::invalid(format!("{col} is required"))),
    }
}

/// A policy document IAM returned (URL-encoded), canonical.
pub(crate) fn doc(text: Option<&str>) -> Result<serde_json::Value, ProviderError> {
    match text {
        Some(t) => infrasql_aws::policy_doc::parse(t),
        None => Ok(serde_json::Value::Null),
    }
}
