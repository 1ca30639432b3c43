//! The ACM certificate type of infrasql's AWS provider, over aws-sdk-acm.
//!
//! # API calls per full sync (per region)
//! `aws.acm_certificate`: one ListCertificates per page (NextToken; every
//! key type), plus two calls per certificate, eight certificates at a time:
//! DescribeCertificate (every column but `tags`) and ListTagsForCertificate
//! (`tags`, and the apply id recovery reads). Every column is observed.

use std::sync::Arc;

pub mod certificate;

use infrasql_aws::{Clients, Permitted};
use infrasql_provider::Resource;

pub use aws_sdk_acm;

/// Every resource type of this service.
pub fn resources(clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    vec![Arc::new(certificate::Certificate::new(clients))]
}

/// The aws_sdk_acm client for `region`, once a concurrency slot is free.
pub async fn client(clients: &Clients, region: &str) -> Permitted<aws_sdk_acm::Client> {
    clients
        .service(region, |s| {
            aws_sdk_acm::Client::from_conf(
                aws_sdk_acm::config::Builder::from(s.sdk)
                    .region(s.region)
                    .interceptor(s.count_calls)
                    .interceptor(s.request_ids)
                    .build(),
            )
        })
        .await
}
