//! `aws.lb`: an application or network load balancer (ELBv2).
//!
//! The ARN is the id, assigned by AWS. The name, type and scheme are fixed
//! at create (a change replaces); the IP address type, the subnets
//! (SetSubnets) and the security groups (SetSecurityGroups) change in place.
//! Subnets and security groups are sets kept as rows of `aws.lb_subnet` and
//! `aws.lb_security_group`: CreateLoadBalancer gets both whole.
//! A new load balancer is `provisioning` for a while; `ready` waits for
//! `active`. Deleting it deletes its listeners (and their rules) in AWS.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    IpAddressType, LoadBalancer, LoadBalancerSchemeEnum, LoadBalancerTypeEnum,
};
use aws_sdk_elasticloadbalancingv2::Client;
use infrasql_aws::fields::{changed, opt_str};
use infrasql_aws::sdk::{all_pages, classify, deleted, described, missing_id, not_found};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, MemberSet, Props, PropsExt, ProviderError,
    Readiness, ReplaceOrder, Resource, ResourceSchema, Scope, APPLY_TAG, STACK,
};
use serde_json::{json, Value};

use crate::{client, tags};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "lb",
    display: "load balancer",
    doc: "An application or network load balancer (ELBv2). Its subnets are rows of aws.lb_subnet, its security groups rows of aws.lb_security_group; both change in place. Its listeners are rows of aws.lb_listener (deleting the load balancer deletes them in AWS).",
    columns: &[
        Column::new(
            "lb_arn",
            Identity,
            "The load balancer's ARN; provisional until created",
        ),
        Column::new(
            "name",
            ReplaceOnChange,
            "Its name, unique in its region (AWS cannot rename a load balancer)",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("type", ReplaceOnChange, "application or network"),
        Column::new("scheme", ReplaceOnChange, "internet-facing or internal"),
        Column::new(
            "ip_address_type",
            Desired,
            "ipv4 or dualstack; changed in place (SetIpAddressType); observed by sync",
        ),
        Column::member_set(
            "subnet_ids",
            "subnet",
            MemberSet {
                table: "lb_subnet",
                owner: "lb_arn",
                member: "subnet_id",
            },
            "Its subnets, one row each, at most one per availability zone (an application load balancer needs two zones); changed in place (SetSubnets); observed by sync",
        ),
        Column::member_set(
            "security_group_ids",
            "security_group",
            MemberSet {
                table: "lb_security_group",
                owner: "lb_arn",
                member: "group_id",
            },
            "Its security groups, one row each; changed in place (SetSecurityGroups); observed by sync",
        ),
        Column::new(
            "tags",
            Desired,
            "Tags, as a JSON object; observed by sync (DescribeTags, one call per 20 load balancers)",
        ),
        Column::new("dns_name", CloudAssigned, "The DNS name AWS gave it"),
        Column::new(
            "canonical_hosted_zone_id",
            CloudAssigned,
            "The Route53 zone of its DNS name (for alias records)",
        ),
        Column::new("vpc_id", CloudAssigned, "The VPC of its subnets"),
        Column::new("state", CloudAssigned, "provisioning, active, failed..."),
        infrasql_provider::SYNCED_AT,
    ],
    // The name is unique in its region: a replace that keeps it (another
    // scheme or type) deletes the old load balancer first. It holds no data.
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region", "name"],
        why: "a load balancer name is unique in its region",
    },
    scope: Scope::Regional,
    natural_key: &["name"],
    stateful: None,
};

pub struct Lb {
    clients: Arc<Clients>,
}

impl Lb {
    pub fn new(clients: Arc<Clients>) -> Self {
        Lb { clients }
    }
}

/// The row's columns from AWS's load balancer; the tags come from DescribeTags.
fn props(lb: &LoadBalancer, region: &str) -> Props {
    let mut subnets: Vec<&str> = lb
        .availability_zones()
        .iter()
        .filter_map(|z| z.subnet_id())
        .collect();
    subnets.sort_unstable();
    let mut groups: Vec<&str> = lb.security_groups().iter().map(String::as_str).collect();
    groups.sort_unstable();
    let mut p = Props::new();
    p.insert("lb_arn".into(), opt_str(lb.load_balancer_arn()));
    p.insert("name".into(), opt_str(lb.load_balancer_name()));
    p.insert("region".into(), json!(region));
    // AWS always reports these; an answer without them (moto, for a load
    // balancer created without saying) means AWS's defaults, which is what
    // the table's defaults say too.
    p.insert(
        "type".into(),
        json!(lb.r#type().map_or("application", |t| t.as_str())),
    );
    p.insert(
        "scheme".into(),
        json!(lb.scheme().map_or("internet-facing", |s| s.as_str())),
    );
    p.insert(
        "ip_address_type".into(),
        json!(lb.ip_address_type().map_or("ipv4", |t| t.as_str())),
    );
    p.insert("subnet_ids".into(), json!(subnets));
    p.insert("security_group_ids".into(), json!(groups));
    p.insert("dns_name".into(), opt_str(lb.dns_name()));
    p.insert(
        "canonical_hosted_zone_id".into(),
        opt_str(lb.canonical_hosted_zone_id()),
    );
    p.insert("vpc_id".into(), opt_str(lb.vpc_id()));
    p.insert(
        "state".into(),
        opt_str(lb.state().and_then(|s| s.code()).map(|c| c.as_str())),
    );
    p
}

/// The ids of a set column a row carries, sorted; `None` when it carries none.
pub(crate) fn set_of(p: &Props, column: &str) -> Option<Vec<String>> {
    match p.get(column) {
        Some(Value::Array(a)) => {
            let mut ids: Vec<String> = a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            ids.sort_unstable();
            Some(ids)
        }
        _ => None,
    }
}

/// Whether `after` asks for another set than `before` has.
fn set_changed(before: &Props, after: &Props, column: &str) -> Option<Vec<String>> {
    let wanted = set_of(after, column)?;
    (set_of(before, column).unwrap_or_default() != wanted).then_some(wanted)
}

async fn describe(elb: &Client, arn: &str) -> Result<LoadBalancer, ProviderError> {
    described(
        elb.describe_load_balancers()
            .load_balancer_arns(arn)
            .send()
            .await,
        |out| out.load_balancers().first().cloned(),
        || not_found(&SCHEMA, "LoadBalancerNotFound", arn),
    )
}

#[async_trait]
impl Resource for Lb {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// Every load balancer (DescribeLoadBalancers, all pages of up to 400),
    /// then their tags (DescribeTags, one call per 20, concurrently).
    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let elb = client(&self.clients, region).await;
        let lbs = all_pages(
            elb.describe_load_balancers()
                .into_paginator()
                .items()
                .send(),
        )
        .await?;
        let arns: Vec<String> = lbs
            .iter()
            .filter_map(|l| l.load_balancer_arn().map(str::to_owned))
            .collect();
        let found = tags::describe(&elb, &arns).await?;
        Ok(lbs
            .iter()
            .map(|l| {
                let mut p = props(l, region);
                tags::put(&mut p, &found, l.load_balancer_arn().unwrap_or(""));
                p
            })
            .collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let name = desired.req_str("name")?;
        let sent = tags::for_create(desired, ctx);
        let groups = set_of(desired, "security_group_ids").filter(|g| !g.is_empty());
        let elb = client(&self.clients, &ctx.region).await;
        let lb = elb
            .create_load_balancer()
            .name(name)
            .set_subnets(set_of(desired, "subnet_ids"))
            .set_security_groups(groups)
            .set_scheme(desired.str("scheme").map(LoadBalancerSchemeEnum::from))
            .set_type(desired.str("type").map(LoadBalancerTypeEnum::from))
            .set_ip_address_type(desired.str("ip_address_type").map(IpAddressType::from))
            .set_tags(Some(sent.clone()))
            .send()
            .await
            .map_err(classify)?
            .load_balancers()
            .first()
            .cloned()
            .ok_or_else(|| missing_id("CreateLoadBalancer", "load balancer"))?;
        let mut p = props(&lb, &ctx.region);
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
        if changed(before, after, &["ip_address_type"]) {
            if let Some(t) = after.str("ip_address_type") {
                elb.set_ip_address_type()
                    .load_balancer_arn(id)
                    .ip_address_type(IpAddressType::from(t))
                    .send()
                    .await
                    .map_err(classify)?;
            }
        }
        if let Some(subnets) = set_changed(before, after, "subnet_ids") {
            elb.set_subnets()
                .load_balancer_arn(id)
                .set_subnets(Some(subnets))
                .send()
                .await
                .map_err(classify)?;
        }
        if let Some(groups) = set_changed(before, after, "security_group_ids") {
            elb.set_security_groups()
                .load_balancer_arn(id)
                .set_security_groups(Some(groups))
                .send()
                .await
                .map_err(classify)?;
        }
        if tags::changed(before, after) {
            tags::update(&elb, id, before, after).await?;
        }
        let mut p = props(&describe(&elb, id).await?, &ctx.region);
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
        deleted(
            elb.delete_load_balancer()
                .load_balancer_arn(id)
                .send()
                .await,
        )
    }

    /// Ready once AWS says it is no longer `provisioning`.
    async fn ready(
        &self,
        ctx: &ApplyContext,
        id: &str,
        created: &Props,
    ) -> Result<Readiness, ProviderError> {
        let elb = client(&self.clients, &ctx.region).await;
        let mut p = props(&describe(&elb, id).await?, &ctx.region);
        let state = p.str("state").unwrap_or("").to_owned();
        if state == "provisioning" {
            return Ok(Readiness::Pending { status: state });
        }
        // The tags are the ones create sent.
        for k in ["tags", STACK.name, APPLY_TAG] {
            if let Some(v) = created.get(k) {
                p.insert(k.into(), v.clone());
            }
        }
        Ok(Readiness::Ready(Some(p)))
    }
}
