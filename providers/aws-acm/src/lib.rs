//! The ACM certificate type of infrasql's AWS provider, over aws-sdk-acm.

use std::sync::Arc;

use infrasql_aws::{Clients, Permitted};
use infrasql_provider::Resource;

pub use aws_sdk_acm;

/// Every resource type of this service.
pub fn resources(_clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    vec![]
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
