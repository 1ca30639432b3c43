//! `aws.vpc`: a VPC.
//!
//! DNS attributes are set at create and changed in place, but DescribeVpcs
//! does not report them, so listing leaves them out (no drift is reported
//! for them) rather than spend one API call per VPC.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, ResourceType, Tenancy, Vpc as AwsVpc, VpcCidrBlockStateCode, VpcState,
};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema,
};
use serde_json::{json, Value};

use super::{changed, opt_str, put_tags, tag_spec_once, token_filter, update_tags};
use crate::create_once::{create_once, create_token, no_sdk_retry};
use crate::sdk::{all_pages_map, classify, deleted, described, missing_id, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "vpc",
    display: "VPC",
    doc: "A virtual private cloud.",
    columns: &[
        Column::new(
            "vpc_id",
            Identity,
            "VPC id (vpc-...); provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("name", Desired, "The Name tag"),
        Column::new("cidr_block", ReplaceOnChange, "Primary IPv4 CIDR block"),
        Column::new("instance_tenancy", ReplaceOnChange, "default or dedicated"),
        Column::new(
            "enable_dns_support",
            Desired,
            "Amazon DNS resolution (not observed by sync)",
        ),
        Column::new(
            "enable_dns_hostnames",
            Desired,
            "Public DNS hostnames (not observed by sync)",
        ),
        Column::new("tags", Desired, "Tags other than Name, as a JSON object"),
        Column::new("state", CloudAssigned, "pending or available"),
        Column::new("owner_id", CloudAssigned, "Owning AWS account"),
        Column::new(
            "is_default",
            CloudAssigned,
            "Whether this is the region's default VPC",
        ),
        Column::new(
            "dhcp_options_id",
            CloudAssigned,
            "Associated DHCP options set",
        ),
        Column::new(
            "cidr_blocks",
            CloudAssigned,
            "Every IPv4 CIDR block associated, the primary first (secondary blocks are associated outside infrasql); a subnet's CIDR must lie in one",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["name"],
    stateful: None,
};

pub struct Vpc {
    clients: Arc<Clients>,
}

impl Vpc {
    pub fn new(clients: Arc<Clients>) -> Self {
        Vpc { clients }
    }
}

fn props(v: &AwsVpc, region: &str) -> Props {
    let mut p = Props::new();
    p.insert("vpc_id".into(), opt_str(v.vpc_id()));
    p.insert("region".into(), json!(region));
    p.insert("cidr_block".into(), opt_str(v.cidr_block()));
    // The primary block first, then secondary ones in AWS's order: the
    // local check of a subnet's CIDR reads them (schema/0530_local_checks.sql).
    let mut blocks: Vec<&str> = v.cidr_block().into_iter().collect();
    for a in v.cidr_block_association_set() {
        let live = a
            .cidr_block_state()
            .and_then(|s| s.state())
            .is_some_and(|s| {
                matches!(
                    s,
                    VpcCidrBlockStateCode::Associated | VpcCidrBlockStateCode::Associating
                )
            });
        match a.cidr_block() {
            Some(c) if live && !blocks.contains(&c) => blocks.push(c),
            _ => {}
        }
    }
    p.insert("cidr_blocks".into(), json!(blocks));
    p.insert(
        "instance_tenancy".into(),
        opt_str(v.instance_tenancy().map(|t| t.as_str())),
    );
    p.insert("state".into(), opt_str(v.state().map(|s| s.as_str())));
    p.insert("owner_id".into(), opt_str(v.owner_id()));
    p.insert("is_default".into(), json!(v.is_default().unwrap_or(false)));
    p.insert("dhcp_options_id".into(), opt_str(v.dhcp_options_id()));
    put_tags(&mut p, v.tags());
    p
}

impl Vpc {
    async fn describe(&self, region: &str, id: &str) -> Result<AwsVpc, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        described(
            ec2.describe_vpcs().vpc_ids(id).send().await,
            |out| out.vpcs().first().cloned(),
            || not_found(&SCHEMA, "InvalidVpcID.NotFound", id),
        )
    }

    async fn set_dns(
        &self,
        region: &str,
        id: &str,
        p: &Props,
        before: Option<&Props>,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        // AWS accepts one attribute per ModifyVpcAttribute call.
        for (key, default) in [
            ("enable_dns_support", true),
            ("enable_dns_hostnames", false),
        ] {
            let want = p.bool(key).unwrap_or(default);
            let had = before
                .map(|b| b.bool(key).unwrap_or(default))
                .unwrap_or(default);
            if want == had {
                continue;
            }
            let v = AttributeBooleanValue::builder().value(want).build();
            let req = ec2.modify_vpc_attribute().vpc_id(id);
            let req = if key == "enable_dns_support" {
                req.enable_dns_support(v)
            } else {
                req.enable_dns_hostnames(v)
            };
            req.send().await.map_err(classify)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Resource for Vpc {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        all_pages_map(ec2.describe_vpcs().into_paginator().items().send(), |v| {
            props(&v, region)
        })
        .await
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let cidr = desired.req_str("cidr_block")?;
        let tenancy = desired.str("instance_tenancy").unwrap_or("default");
        let token = &create_token(ctx);
        let mut vpc = {
            let ec2 = &self.clients.ec2(&ctx.region).await.client;
            create_once(
                move || async move {
                    let out = ec2
                        .create_vpc()
                        .cidr_block(cidr)
                        .instance_tenancy(Tenancy::from(tenancy))
                        .tag_specifications(tag_spec_once(ResourceType::Vpc, desired, ctx, token))
                        .customize()
                        .config_override(no_sdk_retry())
                        .send()
                        .await
                        .map_err(classify)?;
                    out.vpc()
                        .filter(|v| v.vpc_id().is_some())
                        .cloned()
                        .ok_or_else(|| missing_id("CreateVpc", "VPC id"))
                },
                move || async move {
                    let out = ec2
                        .describe_vpcs()
                        .filters(token_filter(token))
                        .send()
                        .await
                        .map_err(classify)?;
                    Ok(out.vpcs().first().cloned())
                },
            )
            .await?
        };
        let id = vpc.vpc_id().expect("checked above").to_owned();
        self.set_dns(&ctx.region, &id, desired, None).await?;
        // Wait until available so dependants can be created.
        for attempt in 0..120u64 {
            if vpc.state() == Some(&VpcState::Available) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1).min(10))).await;
            vpc = self.describe(&ctx.region, &id).await?;
        }
        let mut p = props(&vpc, &ctx.region);
        for k in ["enable_dns_support", "enable_dns_hostnames"] {
            p.insert(k.into(), desired.get(k).cloned().unwrap_or(Value::Null));
        }
        Ok(p)
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        if changed(before, after, &crate::tags::TAG_COLUMNS) {
            let ec2 = self.clients.ec2(&ctx.region).await;
            update_tags(&ec2, id, before, after).await?;
        }
        self.set_dns(&ctx.region, id, after, Some(before)).await?;
        let mut p = props(&self.describe(&ctx.region, id).await?, &ctx.region);
        for k in ["enable_dns_support", "enable_dns_hostnames"] {
            p.insert(k.into(), after.get(k).cloned().unwrap_or(Value::Null));
        }
        Ok(p)
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        deleted(ec2.delete_vpc().vpc_id(id).send().await)
    }
}
