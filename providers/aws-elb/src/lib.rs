//! The load-balancing (ELBv2) types of infrasql's AWS provider, over
//! aws-sdk-elasticloadbalancingv2: `aws.lb`, `aws.lb_target_group`,
//! `aws.lb_listener`, `aws.lb_listener_rule` and `aws.lb_target`.
//!
//! # API calls per full sync, per region
//! With L load balancers, G target groups, N listeners and R rules
//! (DescribeLoadBalancers and DescribeTargetGroups return up to 400 per page;
//! DescribeTags takes 20 ARNs per call; per-resource calls run 8 at a time):
//! - `aws.lb`: ⌈L/400⌉ DescribeLoadBalancers + ⌈L/20⌉ DescribeTags. Every
//!   column is observed (subnets and security groups are in the listing).
//! - `aws.lb_target_group`: ⌈G/400⌉ DescribeTargetGroups + ⌈G/20⌉
//!   DescribeTags. Every column is observed.
//! - `aws.lb_listener`: listeners are in no bulk listing: ⌈L/400⌉
//!   DescribeLoadBalancers + L DescribeListeners (one per load balancer) +
//!   ⌈N/20⌉ DescribeTags.
//! - `aws.lb_listener_rule`: as for listeners, plus N DescribeRules (one per
//!   listener) + ⌈R/20⌉ DescribeTags.
//! - `aws.lb_target`: ⌈G/400⌉ DescribeTargetGroups + G DescribeTargetHealth
//!   (one per target group; it reports the targets with their health).
//!
//! Listeners and rules whose action is neither one forward nor a fixed
//! response, or rules with conditions without a `Values` list, have no
//! columns: listings leave them out (sync leaves them alone).

use std::sync::Arc;

use infrasql_aws::{Clients, Permitted};
use infrasql_provider::Resource;

pub use aws_sdk_elasticloadbalancingv2;

mod action;
pub mod lb;
pub mod listener;
pub mod listener_rule;
mod tags;
pub mod target;
pub mod target_group;

/// Every resource type of this service.
pub fn resources(clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    vec![
        Arc::new(lb::Lb::new(clients.clone())),
        Arc::new(target_group::TargetGroupType::new(clients.clone())),
        Arc::new(listener::ListenerType::new(clients.clone())),
        Arc::new(listener_rule::ListenerRuleType::new(clients.clone())),
        Arc::new(target::TargetType::new(clients)),
    ]
}

/// The aws_sdk_elasticloadbalancingv2 client for `region`, once a concurrency slot is free.
pub async fn client(
    clients: &Clients,
    region: &str,
) -> Permitted<aws_sdk_elasticloadbalancingv2::Client> {
    clients
        .service(region, |s| {
            aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(s.sdk)
                    .region(s.region)
                    .interceptor(s.count_calls)
                    .interceptor(s.request_ids)
                    .build(),
            )
        })
        .await
}
