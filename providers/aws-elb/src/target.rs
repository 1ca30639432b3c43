//! `aws.lb_target`: one target registered with a target group: an instance
//! or an IP address, on a port.
//!
//! A target is no standalone AWS resource: it is named by its group, its
//! instance id or IP address and its port, so its identity here is
//! synthetic, `<target_group_arn>|<instance id or IP>|<port>`. Every
//! column forces a replace (RegisterTargets / DeregisterTargets); health is
//! reported by DescribeTargetHealth, one call per target group
//! (concurrently) in a listing. Lambda targets are left alone.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetHealthDescription};
use aws_sdk_elasticloadbalancingv2::Client;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use infrasql_aws::fields::opt_str;
use infrasql_aws::sdk::{classify, deleted, if_found};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, ErrorClass, Listed, Props, PropsExt, ProviderError,
    ReplaceOrder, Resource, ResourceSchema, Scope,
};
use serde_json::{json, Value};

use crate::{client, target_group};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "lb_target",
    display: "target",
    doc: "A target registered with a target group: an instance (instance_id) or an IP address (ip_address), on a port. Every column forces a replace (deregister, register). Health is observed per target group (DescribeTargetHealth).",
    columns: &[
        Column::new(
            "target_id",
            Identity,
            "<target_group_arn>|<instance id or IP address>|<port>; provisional until registered",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::reference(
            "target_group_arn",
            ReplaceOnChange,
            "lb_target_group",
            "The target group it is registered with",
        ),
        Column::reference(
            "instance_id",
            ReplaceOnChange,
            "instance",
            "The instance, for a group of target type instance (or set ip_address)",
        ),
        Column::new(
            "ip_address",
            ReplaceOnChange,
            "The IP address, for a group of target type ip (or set instance_id)",
        ),
        Column::new("port", ReplaceOnChange, "The port the target receives traffic on"),
        Column::new(
            "availability_zone",
            ReplaceOnChange,
            "For an IP target outside the group's VPC: all, or a zone; NULL otherwise",
        ),
        Column::new(
            "health_state",
            CloudAssigned,
            "initial, healthy, unhealthy, unused, draining or unavailable",
        ),
        Column::new(
            "health_reason",
            CloudAssigned,
            "Why it is not healthy (Target.FailedHealthChecks...), NULL when healthy",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // Registering the same target again is a no-op in AWS, so the new
    // registration would be the old one: deregister first when the group,
    // target and port stay (only the zone changed).
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["target_group_arn", "instance_id", "ip_address", "port"],
        why: "AWS takes a second registration of a target for the first",
    },
    scope: Scope::Regional,
    natural_key: &["target_group_arn", "instance_id", "ip_address", "port"],
    stateful: None,
};

pub struct TargetType {
    clients: Arc<Clients>,
}

impl TargetType {
    pub fn new(clients: Arc<Clients>) -> Self {
        TargetType { clients }
    }
}

/// The synthetic id of a target.
fn target_id(group: &str, target: &str, port: i64) -> String {
    format!("{group}|{target}|{port}")
}

/// (group, target, port) from a synthetic id.
fn parse_id(id: &str) -> Result<(&str, &str, i32), ProviderError> {
    let mut parts = id.rsplitn(3, '|');
    let port = parts.next().and_then(|p| p.parse().ok());
    let target = parts.next();
    let group = parts.next();
    match (group, target, port) {
        (Some(g), Some(t), Some(p)) => Ok((g, t, p)),
        _ => Err(ProviderError::invalid(format!(
            "{id} is not <target_group_arn>|<target>|<port>"
        ))),
    }
}

/// The row from one health description; `ip` says the group's targets are
/// IP addresses. `None` for a target without an id or port.
fn props(h: &TargetHealthDescription, group: &str, ip: bool, region: &str) -> Option<Props> {
    let t = h.target()?;
    let id = t.id()?;
    let port = t.port()?;
    let mut p = Props::new();
    p.insert(
        "target_id".into(),
        json!(target_id(group, id, i64::from(port))),
    );
    p.insert("region".into(), json!(region));
    p.insert("target_group_arn".into(), json!(group));
    let (instance, address) = if ip {
        (Value::Null, json!(id))
    } else {
        (json!(id), Value::Null)
    };
    p.insert("instance_id".into(), instance);
    p.insert("ip_address".into(), address);
    p.insert("port".into(), json!(port));
    p.insert("availability_zone".into(), opt_str(t.availability_zone()));
    let health = h.target_health();
    p.insert(
        "health_state".into(),
        opt_str(health.and_then(|x| x.state()).map(|s| s.as_str())),
    );
    p.insert(
        "health_reason".into(),
        opt_str(health.and_then(|x| x.reason()).map(|r| r.as_str())),
    );
    Some(p)
}

fn description(p: &Props) -> Result<(String, TargetDescription), ProviderError> {
    let target = p
        .str("instance_id")
        .or_else(|| p.str("ip_address"))
        .ok_or_else(|| ProviderError::invalid("instance_id or ip_address is required"))?;
    let port = p
        .i64("port")
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| ProviderError::invalid("port is required"))?;
    // An inet column may come back as 10.0.0.5/32: AWS wants the address.
    let target = target.strip_suffix("/32").unwrap_or(target).to_owned();
    Ok((
        target.clone(),
        TargetDescription::builder()
            .id(target)
            .port(port)
            .set_availability_zone(p.str("availability_zone").map(str::to_owned))
            .build(),
    ))
}

/// The one target as AWS reports it (DescribeTargetHealth for it).
async fn observe(
    elb: &Client,
    group: &str,
    target: TargetDescription,
    ip: bool,
    region: &str,
) -> Result<Props, ProviderError> {
    let out = elb
        .describe_target_health()
        .target_group_arn(group)
        .targets(target)
        .send()
        .await
        .map_err(classify)?;
    out.target_health_descriptions()
        .first()
        .and_then(|h| props(h, group, ip, region))
        .ok_or_else(|| {
            ProviderError::new(
                ErrorClass::NotFound,
                "TargetNotFound",
                format!("no target in {group}"),
            )
        })
}

#[async_trait]
impl Resource for TargetType {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// The target groups (DescribeTargetGroups, all pages), then one
    /// DescribeTargetHealth per group, concurrently.
    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let elb = client(&self.clients, region).await;
        let groups = target_group::all(&elb).await?;
        let elb_ref = &elb;
        let per_group: Vec<Vec<Props>> = stream::iter(groups)
            .map(|g| async move {
                let Some(arn) = g.target_group_arn().map(str::to_owned) else {
                    return Ok(Vec::new());
                };
                let ip = g.target_type().map(|t| t.as_str()) == Some("ip");
                if !ip && g.target_type().map(|t| t.as_str()) != Some("instance") {
                    return Ok(Vec::new()); // Lambda and ALB targets: no columns.
                }
                // A group deleted since the listing has no targets.
                let out = if_found(
                    elb_ref
                        .describe_target_health()
                        .target_group_arn(&arn)
                        .send()
                        .await
                        .map_err(classify),
                )?;
                Ok::<_, ProviderError>(
                    out.map(|o| {
                        o.target_health_descriptions()
                            .iter()
                            .filter_map(|h| props(h, &arn, ip, region))
                            .collect()
                    })
                    .unwrap_or_default(),
                )
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        Ok(per_group.into_iter().flatten().collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let group = desired.req_str("target_group_arn")?;
        let (_, target) = description(desired)?;
        let elb = client(&self.clients, &ctx.region).await;
        elb.register_targets()
            .target_group_arn(group)
            .targets(target.clone())
            .send()
            .await
            .map_err(classify)?;
        let ip = desired.str("ip_address").is_some();
        observe(&elb, group, target, ip, &ctx.region).await
    }

    /// Every column forces a replace: nothing changes in place, so this
    /// only reports the target.
    async fn update(
        &self,
        ctx: &ApplyContext,
        _id: &str,
        _before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let group = after.req_str("target_group_arn")?;
        let (_, target) = description(after)?;
        let elb = client(&self.clients, &ctx.region).await;
        let ip = after.str("ip_address").is_some();
        observe(&elb, group, target, ip, &ctx.region).await
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        let (group, target, port) = parse_id(id)?;
        let zone = current.str("availability_zone").map(str::to_owned);
        let elb = client(&self.clients, &ctx.region).await;
        deleted(
            elb.deregister_targets()
                .target_group_arn(group)
                .targets(
                    TargetDescription::builder()
                        .id(target)
                        .port(port)
                        .set_availability_zone(zone)
                        .build(),
                )
                .send()
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_names_group_target_and_port() {
        let group = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/abc";
        let id = target_id(group, "i-1", 80);
        assert_eq!(parse_id(&id).unwrap(), (group, "i-1", 80));
        assert!(parse_id("nope").is_err());
        assert!(parse_id("a|b|port").is_err());
    }
}
