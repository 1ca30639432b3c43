//! `aws.lb_target_group`: where a load balancer sends requests.
//!
//! The ARN is the id. Name, protocol, port, VPC and target type are fixed
//! at create (a change replaces); the health check changes in place with
//! one ModifyTargetGroup. A health-check column left NULL at INSERT takes
//! AWS's default, which the row then shows. Its targets are rows of
//! `aws.lb_target`.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{Matcher, ProtocolEnum, TargetGroup, TargetTypeEnum};
use aws_sdk_elasticloadbalancingv2::Client;
use infrasql_aws::fields::{changed, opt_str};
use infrasql_aws::sdk::{all_pages, classify, deleted, described, missing_id, not_found};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema, Scope,
};
use serde_json::json;

use crate::{client, tags};

/// The health-check columns: all changed in place by one ModifyTargetGroup.
const HEALTH: [&str; 8] = [
    "health_check_protocol",
    "health_check_port",
    "health_check_path",
    "health_check_interval_seconds",
    "health_check_timeout_seconds",
    "healthy_threshold_count",
    "unhealthy_threshold_count",
    "matcher",
];

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "lb_target_group",
    display: "target group",
    doc: "A target group of ELBv2 load balancers: its targets are rows of aws.lb_target; listeners and listener rules forward to it. The health check changes in place; a column left NULL at INSERT takes AWS's default.",
    columns: &[
        Column::new(
            "target_group_arn",
            Identity,
            "The target group's ARN; provisional until created",
        ),
        Column::new(
            "name",
            ReplaceOnChange,
            "Its name, unique in its region, at most 32 letters, digits and hyphens",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new(
            "protocol",
            ReplaceOnChange,
            "HTTP, HTTPS, TCP, TLS, UDP or TCP_UDP",
        ),
        Column::new("port", ReplaceOnChange, "The port targets receive traffic on"),
        Column::reference(
            "vpc_id",
            ReplaceOnChange,
            "vpc",
            "The VPC of its targets",
        ),
        Column::new("target_type", ReplaceOnChange, "instance or ip"),
        Column::new(
            "health_check_protocol",
            Desired,
            "Protocol of the health check; observed by sync, like every health-check column",
        ),
        Column::new(
            "health_check_port",
            Desired,
            "Port of the health check: a number, or traffic-port",
        ),
        Column::new("health_check_path", Desired, "Path of an HTTP(S) health check"),
        Column::new(
            "health_check_interval_seconds",
            Desired,
            "Seconds between health checks",
        ),
        Column::new(
            "health_check_timeout_seconds",
            Desired,
            "Seconds without an answer that fail a health check",
        ),
        Column::new(
            "healthy_threshold_count",
            Desired,
            "Passed checks in a row that make a target healthy",
        ),
        Column::new(
            "unhealthy_threshold_count",
            Desired,
            "Failed checks in a row that make a target unhealthy",
        ),
        Column::new(
            "matcher",
            Desired,
            "The HTTP codes of a healthy answer, e.g. 200 or 200-299",
        ),
        Column::new(
            "tags",
            Desired,
            "Tags, as a JSON object; observed by sync (DescribeTags, one call per 20 target groups)",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // The name is unique in its region: a replace that keeps it deletes the
    // old group first (it holds no data; AWS refuses while a listener uses it).
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region", "name"],
        why: "a target group name is unique in its region",
    },
    scope: Scope::Regional,
    natural_key: &["name"],
    stateful: None,
};

pub struct TargetGroupType {
    clients: Arc<Clients>,
}

impl TargetGroupType {
    pub fn new(clients: Arc<Clients>) -> Self {
        TargetGroupType { clients }
    }
}

fn opt_int(v: Option<i32>) -> serde_json::Value {
    v.map_or(serde_json::Value::Null, |v| json!(v))
}

/// The row's columns from AWS's target group; the tags come from DescribeTags.
fn props(tg: &TargetGroup, region: &str) -> Props {
    let mut p = Props::new();
    p.insert("target_group_arn".into(), opt_str(tg.target_group_arn()));
    p.insert("name".into(), opt_str(tg.target_group_name()));
    p.insert("region".into(), json!(region));
    p.insert(
        "protocol".into(),
        opt_str(tg.protocol().map(|x| x.as_str())),
    );
    p.insert("port".into(), opt_int(tg.port()));
    p.insert("vpc_id".into(), opt_str(tg.vpc_id()));
    p.insert(
        "target_type".into(),
        opt_str(tg.target_type().map(|x| x.as_str())),
    );
    p.insert(
        "health_check_protocol".into(),
        opt_str(tg.health_check_protocol().map(|x| x.as_str())),
    );
    p.insert("health_check_port".into(), opt_str(tg.health_check_port()));
    p.insert("health_check_path".into(), opt_str(tg.health_check_path()));
    p.insert(
        "health_check_interval_seconds".into(),
        opt_int(tg.health_check_interval_seconds()),
    );
    p.insert(
        "health_check_timeout_seconds".into(),
        opt_int(tg.health_check_timeout_seconds()),
    );
    p.insert(
        "healthy_threshold_count".into(),
        opt_int(tg.healthy_threshold_count()),
    );
    p.insert(
        "unhealthy_threshold_count".into(),
        opt_int(tg.unhealthy_threshold_count()),
    );
    p.insert(
        "matcher".into(),
        opt_str(tg.matcher().and_then(|m| m.http_code())),
    );
    p
}

fn int(p: &Props, key: &str) -> Option<i32> {
    p.i64(key).and_then(|v| i32::try_from(v).ok())
}

fn matcher(p: &Props) -> Option<Matcher> {
    p.str("matcher")
        .map(|code| Matcher::builder().http_code(code).build())
}

async fn describe(elb: &Client, arn: &str) -> Result<TargetGroup, ProviderError> {
    described(
        elb.describe_target_groups()
            .target_group_arns(arn)
            .send()
            .await,
        |out| out.target_groups().first().cloned(),
        || not_found(&SCHEMA, "TargetGroupNotFound", arn),
    )
}

/// Every target group in the client's region, all pages (also for `aws.lb_target`).
pub(crate) async fn all(elb: &Client) -> Result<Vec<TargetGroup>, ProviderError> {
    all_pages(elb.describe_target_groups().into_paginator().items().send()).await
}

#[async_trait]
impl Resource for TargetGroupType {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// Every target group (DescribeTargetGroups, all pages), then their
    /// tags (DescribeTags, one call per 20, concurrently).
    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let elb = client(&self.clients, region).await;
        // Lambda and alb groups have no port, protocol or VPC: no rows.
        let groups: Vec<TargetGroup> = all(&elb)
            .await?
            .into_iter()
            .filter(|g| {
                matches!(
                    g.target_type(),
                    Some(TargetTypeEnum::Instance | TargetTypeEnum::Ip)
                )
            })
            .collect();
        let arns: Vec<String> = groups
            .iter()
            .filter_map(|g| g.target_group_arn().map(str::to_owned))
            .collect();
        let found = tags::describe(&elb, &arns).await?;
        Ok(groups
            .iter()
            .map(|g| {
                let mut p = props(g, region);
                tags::put(&mut p, &found, g.target_group_arn().unwrap_or(""));
                p
            })
            .collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let sent = tags::for_create(desired, ctx);
        let elb = client(&self.clients, &ctx.region).await;
        let tg = elb
            .create_target_group()
            .name(desired.req_str("name")?)
            .set_protocol(desired.str("protocol").map(ProtocolEnum::from))
            .set_port(int(desired, "port"))
            .set_vpc_id(desired.str("vpc_id").map(str::to_owned))
            .set_target_type(desired.str("target_type").map(TargetTypeEnum::from))
            .set_health_check_protocol(desired.str("health_check_protocol").map(ProtocolEnum::from))
            .set_health_check_port(desired.str("health_check_port").map(str::to_owned))
            .set_health_check_path(desired.str("health_check_path").map(str::to_owned))
            .set_health_check_interval_seconds(int(desired, "health_check_interval_seconds"))
            .set_health_check_timeout_seconds(int(desired, "health_check_timeout_seconds"))
            .set_healthy_threshold_count(int(desired, "healthy_threshold_count"))
            .set_unhealthy_threshold_count(int(desired, "unhealthy_threshold_count"))
            .set_matcher(matcher(desired))
            .set_tags(Some(sent.clone()))
            .send()
            .await
            .map_err(classify)?
            .target_groups()
            .first()
            .cloned()
            .ok_or_else(|| missing_id("CreateTargetGroup", "target group"))?;
        let mut p = props(&tg, &ctx.region);
        tags::put_sent(&mut p, &sent);
        Ok(p)
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let elb = client(&self.clients, &ctx.region).await;
        if tags::changed(before, after) {
            tags::update(&elb, id, before, after).await?;
        }
        let tg = if changed(before, after, &HEALTH) {
            // Only what changed: a NULL in the row is AWS's default, not a value to send.
            let send = |k: &str| before.get(k) != after.get(k);
            let s = |k: &str| after.str(k).filter(|_| send(k)).map(str::to_owned);
            let i = |k: &str| int(after, k).filter(|_| send(k));
            elb.modify_target_group()
                .target_group_arn(id)
                .set_health_check_protocol(
                    s("health_check_protocol").map(|x| ProtocolEnum::from(x.as_str())),
                )
                .set_health_check_port(s("health_check_port"))
                .set_health_check_path(s("health_check_path"))
                .set_health_check_interval_seconds(i("health_check_interval_seconds"))
                .set_health_check_timeout_seconds(i("health_check_timeout_seconds"))
                .set_healthy_threshold_count(i("healthy_threshold_count"))
                .set_unhealthy_threshold_count(i("unhealthy_threshold_count"))
                .set_matcher(matcher(after).filter(|_| send("matcher")))
                .send()
                .await
                .map_err(classify)?
                .target_groups()
                .first()
                .cloned()
                .ok_or_else(|| missing_id("ModifyTargetGroup", "target group"))?
        } else {
            describe(&elb, id).await?
        };
        let mut p = props(&tg, &ctx.region);
        tags::read_into(&elb, &mut p, id).await?;
        Ok(p)
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let elb = client(&self.clients, &ctx.region).await;
        deleted(elb.delete_target_group().target_group_arn(id).send().await)
    }
}
