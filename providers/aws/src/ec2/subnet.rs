//! `aws.subnet`: a subnet of a VPC.
//!
//! Everything but the name, the tags and `map_public_ip_on_launch` is fixed
//! at create: changing the VPC, CIDR block or availability zone replaces the
//! subnet. `availability_zone` may be left NULL for AWS to choose; the zone
//! it chose is written back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Subnet as AwsSubnet, SubnetState};
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
    table: "subnet",
    display: "subnet",
    doc: "A range of IP addresses in a VPC, in one availability zone.",
    columns: &[
        Column::new(
            "subnet_id",
            Identity,
            "Subnet id (subnet-...); provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("name", Desired, "The Name tag"),
        Column::reference("vpc_id", ReplaceOnChange, "vpc", "The VPC it belongs to"),
        Column::new(
            "cidr_block",
            ReplaceOnChange,
            "IPv4 CIDR block, inside the VPC's",
        ),
        Column::new(
            "availability_zone",
            ReplaceOnChange,
            "Availability zone (us-east-1a...); NULL lets AWS choose",
        ),
        Column::new(
            "map_public_ip_on_launch",
            Desired,
            "Whether instances launched here get a public IPv4 address",
        ),
        Column::new("tags", Desired, "Tags other than Name, as a JSON object"),
        Column::new("state", CloudAssigned, "pending or available"),
        Column::new(
            "availability_zone_id",
            CloudAssigned,
            "Zone id (use1-az1...), the same in every account",
        ),
        Column::new(
            "available_ip_address_count",
            CloudAssigned,
            "Unused private IPv4 addresses",
        ),
        Column::new(
            "default_for_az",
            CloudAssigned,
            "Whether this is its zone's default subnet",
        ),
        Column::new("owner_id", CloudAssigned, "Owning AWS account"),
        Column::new("subnet_arn", CloudAssigned, "The subnet's ARN"),
        infrasql_provider::SYNCED_AT,
    ],
    // A subnet's CIDR may not overlap any other in its VPC, the old subnet's
    // included, so a replace in the same VPC deletes first. It holds no data;
    // what runs in it (instances, associations) blocks the replace at plan time.
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region", "vpc_id"],
        why: "the subnets of a VPC may not overlap, the old one included",
    },
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["name"],
    stateful: None,
};

pub struct Subnet {
    clients: Arc<Clients>,
}

impl Subnet {
    pub fn new(clients: Arc<Clients>) -> Self {
        Subnet { clients }
    }
}

fn props(s: &AwsSubnet, region: &str) -> Props {
    let mut p = Props::new();
    p.insert("subnet_id".into(), opt_str(s.subnet_id()));
    p.insert("region".into(), json!(region));
    p.insert("vpc_id".into(), opt_str(s.vpc_id()));
    p.insert("cidr_block".into(), opt_str(s.cidr_block()));
    p.insert("availability_zone".into(), opt_str(s.availability_zone()));
    p.insert(
        "map_public_ip_on_launch".into(),
        json!(s.map_public_ip_on_launch().unwrap_or(false)),
    );
    p.insert("state".into(), opt_str(s.state().map(|v| v.as_str())));
    p.insert(
        "availability_zone_id".into(),
        opt_str(s.availability_zone_id()),
    );
    p.insert(
        "available_ip_address_count".into(),
        s.available_ip_address_count()
            .map(|n| json!(n))
            .unwrap_or(Value::Null),
    );
    p.insert(
        "default_for_az".into(),
        s.default_for_az().map(|b| json!(b)).unwrap_or(Value::Null),
    );
    p.insert("owner_id".into(), opt_str(s.owner_id()));
    p.insert("subnet_arn".into(), opt_str(s.subnet_arn()));
    put_tags(&mut p, s.tags());
    p
}

impl Subnet {
    async fn describe(&self, region: &str, id: &str) -> Result<AwsSubnet, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        described(
            ec2.describe_subnets().subnet_ids(id).send().await,
            |out| out.subnets().first().cloned(),
            || not_found(&SCHEMA, "InvalidSubnetID.NotFound", id),
        )
    }

    async fn set_map_public_ip(
        &self,
        region: &str,
        id: &str,
        want: bool,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        ec2.modify_subnet_attribute()
            .subnet_id(id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(want).build())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Sets a new subnet's attributes and waits until it is available; the
    /// caller deletes the subnet if this fails.
    async fn finish_create(
        &self,
        ctx: &ApplyContext,
        id: &str,
        desired: &Props,
        mut subnet: AwsSubnet,
    ) -> Result<Props, ProviderError> {
        let want_public = desired.bool("map_public_ip_on_launch").unwrap_or(false);
        if subnet.map_public_ip_on_launch().unwrap_or(false) != want_public {
            self.set_map_public_ip(&ctx.region, id, want_public).await?;
            // Set as asked: no need to read it back.
            subnet.map_public_ip_on_launch = Some(want_public);
        }
        // Wait until available so dependants can be created.
        for _ in 0..60 {
            if subnet.state() == Some(&SubnetState::Available) {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            subnet = self.describe(&ctx.region, id).await?;
        }
        Ok(props(&subnet, &ctx.region))
    }
}

#[async_trait]
impl Resource for Subnet {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        all_pages_map(
            ec2.describe_subnets().into_paginator().items().send(),
            |s| props(&s, region),
        )
        .await
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let vpc_id = desired.req_str("vpc_id")?;
        let cidr = desired.req_str("cidr_block")?;
        let token = &create_token(ctx);
        let subnet = {
            let ec2 = &self.clients.ec2(&ctx.region).await.client;
            create_once(
                move || async move {
                    let out = ec2
                        .create_subnet()
                        .vpc_id(vpc_id)
                        .cidr_block(cidr)
                        .set_availability_zone(desired.str("availability_zone").map(str::to_owned))
                        .tag_specifications(tag_spec_once(
                            ResourceType::Subnet,
                            desired,
                            ctx,
                            token,
                        ))
                        .customize()
                        .config_override(no_sdk_retry())
                        .send()
                        .await
                        .map_err(classify)?;
                    out.subnet()
                        .filter(|s| s.subnet_id().is_some())
                        .cloned()
                        .ok_or_else(|| missing_id("CreateSubnet", "subnet id"))
                },
                move || async move {
                    let out = ec2
                        .describe_subnets()
                        .filters(token_filter(token))
                        .send()
                        .await
                        .map_err(classify)?;
                    Ok(out.subnets().first().cloned())
                },
            )
            .await?
        };
        let id = subnet.subnet_id().expect("checked above").to_owned();
        match self.finish_create(ctx, &id, desired, subnet).await {
            Ok(p) => Ok(p),
            Err(e) => {
                // Leave nothing half-made behind: the engine only undoes
                // creates that succeeded.
                let _ = self.delete(ctx, &id, desired).await;
                Err(e)
            }
        }
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
        let had = before.bool("map_public_ip_on_launch").unwrap_or(false);
        let want = after.bool("map_public_ip_on_launch").unwrap_or(false);
        if had != want {
            self.set_map_public_ip(&ctx.region, id, want).await?;
        }
        Ok(props(&self.describe(&ctx.region, id).await?, &ctx.region))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        deleted(ec2.delete_subnet().subnet_id(id).send().await)
    }
}
