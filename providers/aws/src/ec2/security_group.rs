//! `aws.security_group`: a VPC security group.
//!
//! Its rules are rows of `aws.security_group_rule`. AWS gives every new
//! group an allow-all egress rule (two in a VPC with IPv6); `create` revokes
//! them at once so that the group has exactly the rules the user wrote.
//! Listing includes each VPC's `default` group.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, SecurityGroup as AwsSecurityGroup};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Props, PropsExt, ProviderError, ReplaceOrder, Resource,
    ResourceSchema,
};
use serde_json::json;

use super::{changed, opt_str, put_tags, tag_spec_once, token_filter, update_tags};
use crate::create_once::{create_once, create_token, no_sdk_retry};
use crate::sdk::{all_pages, all_pages_map, classify, deleted, described, missing_id, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "security_group",
    display: "security group",
    doc: "A VPC security group. Its rules are rows of aws.security_group_rule; a new group starts with none (AWS's default egress rule is removed).",
    columns: &[
        Column::new(
            "group_id",
            Identity,
            "Security group id (sg-...); provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("name", Desired, "The Name tag"),
        Column::new(
            "group_name",
            ReplaceOnChange,
            "Group name, unique in its VPC",
        ),
        Column::new("description", ReplaceOnChange, "Group description"),
        Column::reference(
            "vpc_id",
            ReplaceOnChange,
            "vpc",
            "The VPC the group belongs to",
        ),
        Column::new("tags", Desired, "Tags other than Name, as a JSON object"),
        Column::new("owner_id", CloudAssigned, "Owning AWS account"),
        Column::new("security_group_arn", CloudAssigned, "The group's ARN"),
        Column::new(
            "synced_at",
            CloudAssigned,
            "When sync or a COMMIT last wrote this row: a sync round writes only rows that changed; infra.resource_confirmed says when it was last confirmed equal to AWS",
        ),
    ],
    // group_name is unique in its VPC: a replace that keeps it (a new
    // description) deletes the old group first. A group holds no data.
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region", "vpc_id", "group_name"],
        why: "a group name is unique in its VPC",
    },
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["name"],
    stateful: None,
};

pub struct SecurityGroup {
    clients: Arc<Clients>,
}

impl SecurityGroup {
    pub fn new(clients: Arc<Clients>) -> Self {
        SecurityGroup { clients }
    }
}

fn props(g: &AwsSecurityGroup, region: &str) -> Props {
    let mut p = Props::new();
    p.insert("group_id".into(), opt_str(g.group_id()));
    p.insert("region".into(), json!(region));
    p.insert("group_name".into(), opt_str(g.group_name()));
    p.insert("description".into(), opt_str(g.description()));
    p.insert("vpc_id".into(), opt_str(g.vpc_id()));
    p.insert("owner_id".into(), opt_str(g.owner_id()));
    p.insert("security_group_arn".into(), opt_str(g.security_group_arn()));
    put_tags(&mut p, g.tags());
    p
}

async fn describe(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<AwsSecurityGroup, ProviderError> {
    described(
        ec2.describe_security_groups().group_ids(id).send().await,
        |out| out.security_groups().first().cloned(),
        || not_found(&SCHEMA, "InvalidGroup.NotFound", id),
    )
}

/// Revoke every egress rule of a group (AWS's defaults on a new one).
async fn revoke_all_egress(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), ProviderError> {
    let rules = all_pages(
        ec2.describe_security_group_rules()
            .filters(Filter::builder().name("group-id").values(id).build())
            .into_paginator()
            .items()
            .send(),
    )
    .await?;
    let rule_ids: Vec<String> = rules
        .iter()
        .filter(|r| r.is_egress() == Some(true) && r.group_id() == Some(id))
        .filter_map(|r| r.security_group_rule_id().map(str::to_owned))
        .collect();
    if rule_ids.is_empty() {
        return Ok(());
    }
    // A revoke whose answer was lost is resent by the SDK and then finds
    // the rule gone: done, as for any delete.
    deleted(
        ec2.revoke_security_group_egress()
            .group_id(id)
            .set_security_group_rule_ids(Some(rule_ids))
            .send()
            .await,
    )
}

#[async_trait]
impl Resource for SecurityGroup {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Vec<Props>, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        all_pages_map(
            ec2.describe_security_groups()
                .into_paginator()
                .items()
                .send(),
            |g| props(&g, region),
        )
        .await
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let group_name = desired.req_str("group_name")?;
        let description = desired.str("description").unwrap_or("Managed by infrasql");
        let vpc_id = desired.req_str("vpc_id")?;
        let ec2 = self.clients.ec2(&ctx.region).await;
        let token = &create_token(ctx);
        let client = &ec2.client;
        let id = create_once(
            move || async move {
                client
                    .create_security_group()
                    .group_name(group_name)
                    .description(description)
                    .vpc_id(vpc_id)
                    .tag_specifications(tag_spec_once(
                        ResourceType::SecurityGroup,
                        desired,
                        ctx,
                        token,
                    ))
                    .customize()
                    .config_override(no_sdk_retry())
                    .send()
                    .await
                    .map_err(classify)?
                    .group_id()
                    .map(str::to_owned)
                    .ok_or_else(|| missing_id("CreateSecurityGroup", "group id"))
            },
            move || async move {
                let out = client
                    .describe_security_groups()
                    .filters(token_filter(token))
                    .send()
                    .await
                    .map_err(classify)?;
                Ok(out
                    .security_groups()
                    .first()
                    .and_then(|g| g.group_id())
                    .map(str::to_owned))
            },
        )
        .await?;
        // Egress rules are rows of aws.security_group_rule: only those the
        // user wrote may exist. Should that fail, do not leave a group the
        // engine does not know about.
        if let Err(e) = revoke_all_egress(&ec2, &id).await {
            let _ = ec2.delete_security_group().group_id(&id).send().await;
            return Err(e);
        }
        Ok(props(&describe(&ec2, &id).await?, &ctx.region))
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        if changed(before, after, &crate::tags::TAG_COLUMNS) {
            update_tags(&ec2, id, before, after).await?;
        }
        Ok(props(&describe(&ec2, id).await?, &ctx.region))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        deleted(ec2.delete_security_group().group_id(id).send().await)
    }
}
