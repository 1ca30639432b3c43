//! The Route53 types of infrasql's AWS provider (global), over aws-sdk-route53.
//!
//! # API calls per full sync (once per round: Route53 is global)
//! - `aws.route53_zone`: one ListHostedZones per page (Marker, 100 zones),
//!   plus per zone one GetHostedZone (`name_servers`, `vpc_id`,
//!   `vpc_region`) and one ListTagsForResource (`tags`), eight zones at a
//!   time. Every column is observed.
//! - `aws.route53_record`: one ListHostedZones per page, plus one
//!   ListResourceRecordSets per page of each zone (300 record sets a page,
//!   by StartRecordName/Type/Identifier), eight zones at a time. Every
//!   column but `alias_lb_arn` is observed.

use std::sync::Arc;

mod alias;
mod batch;
pub mod names;
pub mod record;
pub mod zone;

use infrasql_aws::{Clients, Permitted};
use infrasql_provider::Resource;

pub use aws_sdk_route53;

/// Every resource type of this service.
pub fn resources(clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    vec![
        Arc::new(zone::Zone::new(Arc::clone(&clients))),
        Arc::new(record::Record::new(clients)),
    ]
}

/// The aws_sdk_route53 client for `region`, once a concurrency slot is free.
pub async fn client(clients: &Clients, region: &str) -> Permitted<aws_sdk_route53::Client> {
    clients
        .service(region, |s| {
            aws_sdk_route53::Client::from_conf(
                aws_sdk_route53::config::Builder::from(s.sdk)
                    .region(s.region)
                    .interceptor(s.count_calls)
                    .interceptor(s.request_ids)
                    .build(),
            )
        })
        .await
}
