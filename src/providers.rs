//! Every provider crate's resource types, in one list for the registry.
//!
//! Each AWS service is its own crate (`providers/aws*`), so a change to one
//! service's types rebuilds only that crate; they share the SDK clients
//! and helpers of `infrasql-aws`.

use std::sync::Arc;

use infrasql_aws::Clients;
use infrasql_provider::Resource;

/// Every AWS resource type infrasql manages, each operation in its own
/// limiter scope (`infrasql_aws::limiter::Operations`: a nested permit of
/// the same limiter is borrowed, never waited for).
pub fn aws(clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    let mut all = infrasql_aws::resources(clients.clone());
    all.extend(infrasql_aws_iam::resources(clients.clone()));
    all.extend(infrasql_aws_s3::resources(clients.clone()));
    all.extend(infrasql_aws_elb::resources(clients.clone()));
    all.extend(infrasql_aws_acm::resources(clients.clone()));
    all.extend(infrasql_aws_route53::resources(clients));
    infrasql_aws::limiter::Operations::wrap(all)
}
