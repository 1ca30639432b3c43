//! `aws.route_table`: a VPC route table.
//!
//! Routes and subnet associations are rows of their own tables
//! (`aws.route`, `aws.route_table_association`); this table holds only the
//! route table itself. Listing includes each VPC's main route table
//! (`is_main`), which AWS creates with the VPC.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, RouteTable as AwsRouteTable};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema,
};
use serde_json::json;

use super::{changed, opt_str, put_tags, tag_spec_once, token_filter, update_tags};
use crate::create_once::{create_once, create_token, no_sdk_retry};
use crate::sdk::{all_pages, classify, deleted, described, missing_id, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "route_table",
    display: "route table",
    doc: "A VPC route table. Its routes are rows of aws.route, its subnet associations rows of aws.route_table_association.",
    columns: &[
        Column::new(
            "route_table_id",
            Identity,
            "Route table id (rtb-...); provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("name", Desired, "The Name tag"),
        Column::reference(
            "vpc_id",
            ReplaceOnChange,
            "vpc",
            "The VPC the route table belongs to",
        ),
        Column::new("tags", Desired, "Tags other than Name, as a JSON object"),
        Column::new("owner_id", CloudAssigned, "Owning AWS account"),
        Column::new(
            "is_main",
            CloudAssigned,
            "Whether this is its VPC's main route table",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["name"],
    stateful: None,
};

pub struct RouteTable {
    clients: Arc<Clients>,
}

impl RouteTable {
    pub fn new(clients: Arc<Clients>) -> Self {
        RouteTable { clients }
    }
}

fn props(t: &AwsRouteTable, region: &str) -> Props {
    let mut p = Props::new();
    p.insert("route_table_id".into(), opt_str(t.route_table_id()));
    p.insert("region".into(), json!(region));
    p.insert("vpc_id".into(), opt_str(t.vpc_id()));
    p.insert("owner_id".into(), opt_str(t.owner_id()));
    p.insert(
        "is_main".into(),
        json!(t.associations().iter().any(|a| a.main() == Some(true))),
    );
    put_tags(&mut p, t.tags());
    p
}

/// One route table by id; `InvalidRouteTableID.NotFound` when it is gone.
pub(crate) async fn describe_route_table(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
) -> Result<AwsRouteTable, ProviderError> {
    described(
        ec2.describe_route_tables().route_table_ids(id).send().await,
        |out| out.route_tables().first().cloned(),
        || not_found(&SCHEMA, "InvalidRouteTableID.NotFound", id),
    )
}

/// Every route table in the region matching `filter` (all without one),
/// following all pages.
pub(crate) async fn route_tables(
    ec2: &aws_sdk_ec2::Client,
    filter: Option<Filter>,
) -> Result<Vec<AwsRouteTable>, ProviderError> {
    all_pages(
        ec2.describe_route_tables()
            .set_filters(filter.map(|f| vec![f]))
            .into_paginator()
            .items()
            .send(),
    )
    .await
}

#[async_trait]
impl Resource for RouteTable {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        Ok(route_tables(&ec2, None)
            .await?
            .iter()
            .map(|t| props(t, region))
            .collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let vpc_id = desired.req_str("vpc_id")?;
        let token = &create_token(ctx);
        let ec2 = &self.clients.ec2(&ctx.region).await.client;
        // Sent once in effect: a resend after a lost answer would make a
        // second table (CreateRouteTable takes no client token).
        let table = create_once(
            move || async move {
                let out = ec2
                    .create_route_table()
                    .vpc_id(vpc_id)
                    .tag_specifications(tag_spec_once(
                        ResourceType::RouteTable,
                        desired,
                        ctx,
                        token,
                    ))
                    .customize()
                    .config_override(no_sdk_retry())
                    .send()
                    .await
                    .map_err(classify)?;
                out.route_table()
                    .cloned()
                    .ok_or_else(|| missing_id("CreateRouteTable", "route table"))
            },
            move || async move {
                let out = ec2
                    .describe_route_tables()
                    .filters(token_filter(token))
                    .send()
                    .await
                    .map_err(classify)?;
                Ok(out.route_tables().first().cloned())
            },
        )
        .await?;
        Ok(props(&table, &ctx.region))
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
        Ok(props(&describe_route_table(&ec2, id).await?, &ctx.region))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        deleted(ec2.delete_route_table().route_table_id(id).send().await)
    }
}
