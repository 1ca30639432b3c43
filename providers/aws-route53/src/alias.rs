//! An alias to a load balancer (`alias_lb_arn`), resolved at create and
//! update into the DNS name and zone AWS's alias target needs: one
//! DescribeLoadBalancers in the load balancer's region, taken from its ARN.

use infrasql_aws::sdk::classify;
use infrasql_aws::Clients;
use infrasql_provider::{ErrorClass, Props, PropsExt, ProviderError};
use serde_json::json;

use crate::names::fqdn;

/// The load balancer's alias target: DescribeLoadBalancers in its region.
async fn lb_alias(clients: &Clients, arn: &str) -> Result<(String, String), ProviderError> {
    // arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/...
    let region = arn
        .split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ProviderError::invalid(format!("alias_lb_arn {arn} is not a load balancer ARN"))
        })?;
    let elb = infrasql_aws_elb::client(clients, region).await;
    let out = elb
        .describe_load_balancers()
        .load_balancer_arns(arn)
        .send()
        .await
        .map_err(classify)?;
    let lb = out.load_balancers().first().ok_or_else(|| {
        ProviderError::new(
            ErrorClass::NotFound,
            "LoadBalancerNotFound",
            format!("load balancer {arn} not found"),
        )
    })?;
    match (lb.dns_name(), lb.canonical_hosted_zone_id()) {
        (Some(dns), Some(zone)) => Ok((fqdn(dns), zone.to_owned())),
        _ => Err(ProviderError::invalid(format!(
            "load balancer {arn} has no DNS name or zone to alias"
        ))),
    }
}

/// The row's values with an alias to a load balancer resolved: what is
/// sent to AWS and what the row reads afterwards.
pub(crate) async fn resolved(clients: &Clients, p: &Props) -> Result<Props, ProviderError> {
    let mut p = p.clone();
    if let Some(arn) = p.str("alias_lb_arn").map(str::to_owned) {
        let (dns, zone) = lb_alias(clients, &arn).await?;
        p.insert("alias_dns_name".into(), json!(dns));
        p.insert("alias_hosted_zone_id".into(), json!(zone));
    }
    if let Some(name) = p.str("name").map(fqdn) {
        p.insert("name".into(), json!(name));
    }
    if let Some(dns) = p.str("alias_dns_name").map(fqdn) {
        p.insert("alias_dns_name".into(), json!(dns));
    }
    Ok(p)
}
