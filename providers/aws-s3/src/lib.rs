//! The S3 types of infrasql's AWS provider (regional), over aws-sdk-s3:
//! `aws.s3_bucket`.
//!
//! # API calls per full sync
//! Per region: one `ListBuckets` per page (`BucketRegion` = the region,
//! `ContinuationToken` pages), then per bucket six Get calls, run for up
//! to 8 buckets at once: `GetBucketTagging` (tags, stack, apply id),
//! `GetBucketPolicy` (policy), `GetPublicAccessBlock` (the four
//! public-access columns), `GetBucketEncryption` (sse_algorithm,
//! kms_master_key_id, bucket_key_enabled), `GetBucketOwnershipControls`
//! (object_ownership) and `GetBucketLifecycleConfiguration`
//! (lifecycle_rules). So `regions × pages + 6 × buckets`. Not observed:
//! `versioning` (moto 5.2.1 answers GetBucketVersioning with a root element
//! the SDK cannot read, so the playground could not be synced; it is
//! written by COMMIT, its drift goes unseen) and `force_destroy`,
//! infrasql's own.
//!
//! # Applying
//! A create is `CreateBucket` (with a `LocationConstraint` outside
//! us-east-1; in us-east-1 a `HeadBucket` first, since us-east-1 answers
//! 200 for a bucket the account already owns), then one Put per setting the
//! row sets, and one Get per setting it leaves NULL (AWS sets some by
//! default). An update makes only the calls of the changed settings; a
//! delete is `DeleteBucket`, after `ListObjectVersions` pages and
//! `DeleteObjects` batches of 1000 when `force_destroy` is set.

use std::sync::Arc;

use infrasql_aws::{Clients, Permitted};
use infrasql_provider::Resource;

pub use aws_sdk_s3;

pub mod bucket;
mod empty;
pub mod lifecycle;
pub mod schema;
mod settings;

/// Every resource type of this service.
pub fn resources(clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    vec![Arc::new(bucket::BucketType::new(clients))]
}

/// The aws_sdk_s3 client for `region`, once a concurrency slot is free.
/// Against an endpoint URL (moto, LocalStack) the bucket goes in the path:
/// virtual-host addressing would need DNS for `<bucket>.localhost`. Real
/// AWS keeps virtual hosts.
pub async fn client(clients: &Clients, region: &str) -> Permitted<aws_sdk_s3::Client> {
    clients
        .service(region, |s| {
            let path_style = s.sdk.endpoint_url().is_some();
            aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(s.sdk)
                    .region(s.region)
                    .force_path_style(path_style)
                    .interceptor(s.count_calls)
                    .interceptor(s.request_ids)
                    .build(),
            )
        })
        .await
}
