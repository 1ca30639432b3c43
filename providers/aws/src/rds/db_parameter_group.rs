//! `aws.db_parameter_group`: a named set of database engine settings.
//!
//! The name is the id, chosen by the user; AWS has no call that renames a
//! group (the schema file refuses a changed name) nor one that changes its
//! family or description, so those replace the group. Only the tags change
//! in place. The parameters the user sets are rows of `aws.db_parameter`
//! (see `db_parameter`), not a column here.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_rds::types::DbParameterGroup;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema,
};
use serde_json::json;

use super::db_subnet_group::with_tags;
use super::{create_tags, put_tags, update_tags};
use crate::ec2::{changed, opt_str};
use crate::sdk::{all_pages, classify, deleted, described, missing_id, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "db_parameter_group",
    display: "DB parameter group",
    doc: "A named set of database engine settings for RDS instances. The parameters you set are rows of aws.db_parameter. The name cannot be changed (AWS has no rename); a new family or description replaces the group, which a group with parameter rows or instances refuses.",
    columns: &[
        Column::new(
            "db_parameter_group_name",
            Name,
            "The group's name and id, chosen by you, lower case (RDS keeps names in lower case); unique across regions in infrasql, since references name the group alone",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new(
            "family",
            ReplaceOnChange,
            "The engine family its parameters are for (postgres16, mysql8.0...)",
        ),
        Column::new(
            "description",
            ReplaceOnChange,
            "What the group is for (AWS requires one and cannot change it)",
        ),
        Column::new("tags", Desired, "Tags, as a JSON object"),
        Column::new("arn", CloudAssigned, "The group's ARN"),
        infrasql_provider::SYNCED_AT,
    ],
    // The name stays the same through a replace (it cannot be changed), so
    // the new group would collide with the old one in its region. Its
    // parameters are rows: a group that has any is not replaced (the plan
    // refuses a replace that would leave them behind).
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region"],
        why: "a parameter group's name is unique in its region",
    },
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["db_parameter_group_name"],
    stateful: None,
};

pub struct DbParameterGroupType {
    clients: Arc<Clients>,
}

impl DbParameterGroupType {
    pub fn new(clients: Arc<Clients>) -> Self {
        DbParameterGroupType { clients }
    }
}

/// The row's columns from AWS's group; the tags come from a separate call.
fn props(g: &DbParameterGroup, region: &str) -> Props {
    let mut p = Props::new();
    p.insert(
        "db_parameter_group_name".into(),
        opt_str(g.db_parameter_group_name()),
    );
    p.insert("region".into(), json!(region));
    p.insert("family".into(), opt_str(g.db_parameter_group_family()));
    p.insert("description".into(), opt_str(g.description()));
    p.insert("arn".into(), opt_str(g.db_parameter_group_arn()));
    p
}

async fn describe(
    rds: &aws_sdk_rds::Client,
    name: &str,
) -> Result<DbParameterGroup, ProviderError> {
    described(
        rds.describe_db_parameter_groups()
            .db_parameter_group_name(name)
            .send()
            .await,
        |out| out.db_parameter_groups().first().cloned(),
        || not_found(&SCHEMA, "DBParameterGroupNotFound", name),
    )
}

#[async_trait]
impl Resource for DbParameterGroupType {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// Every group (AWS's `default.*` groups included), all pages, each
    /// with its tags: one DescribeDBParameterGroups page per 100 groups
    /// plus one ListTagsForResource per group, since RDS returns no tags
    /// with a group (and the apply tag is what recovery reads).
    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let rds = self.clients.rds(region).await;
        let groups = all_pages(
            rds.describe_db_parameter_groups()
                .into_paginator()
                .items()
                .send(),
        )
        .await?;
        let mut out = Listed::new();
        for g in &groups {
            out.push(with_tags(&rds, props(g, region), g.db_parameter_group_arn()).await?);
        }
        Ok(out)
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let name = desired.req_str("db_parameter_group_name")?;
        let family = desired.req_str("family")?;
        let description = desired.req_str("description")?;
        let tags = create_tags(desired, ctx);
        let rds = self.clients.rds(&ctx.region).await;
        let group = rds
            .create_db_parameter_group()
            .db_parameter_group_name(name)
            .db_parameter_group_family(family)
            .description(description)
            .set_tags(Some(tags.clone()))
            .send()
            .await
            .map_err(classify)?
            .db_parameter_group
            .ok_or_else(|| missing_id("CreateDBParameterGroup", "DB parameter group"))?;
        // The tags are the ones just sent: no second call to read them back.
        let mut p = props(&group, &ctx.region);
        put_tags(&mut p, &tags);
        Ok(p)
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let rds = self.clients.rds(&ctx.region).await;
        let group = describe(&rds, id).await?;
        let arn = group
            .db_parameter_group_arn()
            .ok_or_else(|| missing_id("DescribeDBParameterGroups", "ARN"))?;
        if changed(before, after, &crate::tags::TAG_COLUMNS) {
            update_tags(&rds, arn, before, after).await?;
        }
        with_tags(&rds, props(&group, &ctx.region), Some(arn)).await
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let rds = self.clients.rds(&ctx.region).await;
        deleted(
            rds.delete_db_parameter_group()
                .db_parameter_group_name(id)
                .send()
                .await,
        )
    }

    // `ready` keeps its default: a parameter group has no status and can be
    // used as soon as CreateDBParameterGroup answers.
}
