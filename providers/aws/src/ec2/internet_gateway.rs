//! `aws.internet_gateway`: an internet gateway and its VPC attachment.
//!
//! The attachment is a column, not a resource of its own: `vpc_id` NULL
//! means detached, and changing it detaches the gateway from the old VPC
//! and attaches it to the new one in place. Deleting a gateway detaches it
//! first.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttachmentStatus, InternetGateway as AwsInternetGateway, InternetGatewayAttachment,
    ResourceType,
};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema,
};
use serde_json::json;

use super::{changed, opt_str, put_tags, tag_spec_once, token_filter, update_tags};
use crate::create_once::{create_once, create_token, no_sdk_retry};
use crate::sdk::{
    all_pages, classify, deleted, described, if_found, ignore_not_found, missing_id, not_found,
};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "internet_gateway",
    display: "internet gateway",
    doc: "A gateway between a VPC and the internet.",
    columns: &[
        Column::new(
            "internet_gateway_id",
            Identity,
            "Internet gateway id (igw-...); provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("name", Desired, "The Name tag"),
        Column::reference(
            "vpc_id",
            Desired,
            "vpc",
            "The VPC it is attached to; NULL when detached. Changed in place",
        ),
        Column::new("tags", Desired, "Tags other than Name, as a JSON object"),
        Column::new("owner_id", CloudAssigned, "Owning AWS account"),
        Column::new(
            "attachment_state",
            CloudAssigned,
            "State of the VPC attachment (available when attached); NULL when detached",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["name"],
    stateful: None,
};

pub struct InternetGateway {
    clients: Arc<Clients>,
}

impl InternetGateway {
    pub fn new(clients: Arc<Clients>) -> Self {
        InternetGateway { clients }
    }
}

fn props(g: &AwsInternetGateway, region: &str) -> Props {
    let attachment = g.attachments().first();
    let mut p = Props::new();
    p.insert(
        "internet_gateway_id".into(),
        opt_str(g.internet_gateway_id()),
    );
    p.insert("region".into(), json!(region));
    p.insert(
        "vpc_id".into(),
        opt_str(attachment.and_then(|a| a.vpc_id())),
    );
    p.insert("owner_id".into(), opt_str(g.owner_id()));
    p.insert(
        "attachment_state".into(),
        opt_str(attachment.and_then(|a| a.state()).map(|s| s.as_str())),
    );
    put_tags(&mut p, g.tags());
    p
}

/// Detaching from a VPC the gateway is no longer attached to reaches the goal.
fn ignore_not_attached(r: Result<(), ProviderError>) -> Result<(), ProviderError> {
    match r {
        Err(e) if e.code == "Gateway.NotAttached" => Ok(()),
        other => ignore_not_found(other),
    }
}

impl InternetGateway {
    async fn describe(&self, region: &str, id: &str) -> Result<AwsInternetGateway, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        described(
            ec2.describe_internet_gateways()
                .internet_gateway_ids(id)
                .send()
                .await,
            |out| out.internet_gateways().first().cloned(),
            || not_found(&SCHEMA, "InvalidInternetGatewayID.NotFound", id),
        )
    }

    async fn attach(&self, region: &str, id: &str, vpc_id: &str) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        ec2.attach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc_id)
            .send()
            .await
            .map(drop)
            .map_err(classify)
    }

    async fn detach(&self, region: &str, id: &str, vpc_id: &str) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        ignore_not_attached(
            ec2.detach_internet_gateway()
                .internet_gateway_id(id)
                .vpc_id(vpc_id)
                .send()
                .await
                .map(drop)
                .map_err(classify),
        )
    }

    /// The VPCs the gateway is attached to now, as AWS reports it.
    fn attached(g: &AwsInternetGateway) -> Vec<String> {
        g.attachments()
            .iter()
            .filter_map(|a| a.vpc_id().map(str::to_owned))
            .collect()
    }
}

#[async_trait]
impl Resource for InternetGateway {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        let gateways = all_pages(
            ec2.describe_internet_gateways()
                .into_paginator()
                .items()
                .send(),
        )
        .await?;
        Ok(gateways.iter().map(|g| props(g, region)).collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let token = &create_token(ctx);
        let gateway = {
            let ec2 = &self.clients.ec2(&ctx.region).await.client;
            // Sent once in effect: a resend after a lost answer would make a
            // second gateway (CreateInternetGateway takes no client token).
            create_once(
                move || async move {
                    let out = ec2
                        .create_internet_gateway()
                        .tag_specifications(tag_spec_once(
                            ResourceType::InternetGateway,
                            desired,
                            ctx,
                            token,
                        ))
                        .customize()
                        .config_override(no_sdk_retry())
                        .send()
                        .await
                        .map_err(classify)?;
                    out.internet_gateway()
                        .filter(|g| g.internet_gateway_id().is_some())
                        .cloned()
                        .ok_or_else(|| missing_id("CreateInternetGateway", "gateway id"))
                },
                move || async move {
                    let out = ec2
                        .describe_internet_gateways()
                        .filters(token_filter(token))
                        .send()
                        .await
                        .map_err(classify)?;
                    Ok(out.internet_gateways().first().cloned())
                },
            )
            .await?
        };
        let id = gateway
            .internet_gateway_id()
            .expect("checked above")
            .to_owned();
        let Some(vpc_id) = desired.str("vpc_id") else {
            return Ok(props(&gateway, &ctx.region));
        };
        if let Err(e) = self.attach(&ctx.region, &id, vpc_id).await {
            // Leave nothing half-made behind: the engine only undoes
            // creates that succeeded.
            let ec2 = self.clients.ec2(&ctx.region).await;
            let _ = ec2
                .delete_internet_gateway()
                .internet_gateway_id(&id)
                .send()
                .await;
            return Err(e);
        }
        // Attached: AWS reports an attached gateway's attachment as
        // `available`, so the row is the create's answer plus that, unread.
        let mut gateway = gateway;
        gateway.attachments = Some(vec![InternetGatewayAttachment::builder()
            .vpc_id(vpc_id)
            .state(AttachmentStatus::from("available"))
            .build()]);
        Ok(props(&gateway, &ctx.region))
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        if changed(before, after, &["vpc_id"]) {
            // Go by what AWS reports rather than `before`, so that an
            // attachment changed outside infrasql does not block the change.
            let now = Self::attached(&self.describe(&ctx.region, id).await?);
            let want = after.str("vpc_id");
            for vpc in now.iter().filter(|v| Some(v.as_str()) != want) {
                self.detach(&ctx.region, id, vpc).await?;
            }
            if let Some(want) = want {
                if !now.iter().any(|v| v == want) {
                    self.attach(&ctx.region, id, want).await?;
                }
            }
        }
        if changed(before, after, &crate::tags::TAG_COLUMNS) {
            let ec2 = self.clients.ec2(&ctx.region).await;
            update_tags(&ec2, id, before, after).await?;
        }
        Ok(props(&self.describe(&ctx.region, id).await?, &ctx.region))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let Some(gateway) = if_found(self.describe(&ctx.region, id).await)? else {
            return Ok(());
        };
        for vpc in Self::attached(&gateway) {
            self.detach(&ctx.region, id, &vpc).await?;
        }
        let ec2 = self.clients.ec2(&ctx.region).await;
        deleted(
            ec2.delete_internet_gateway()
                .internet_gateway_id(id)
                .send()
                .await,
        )
    }
}
