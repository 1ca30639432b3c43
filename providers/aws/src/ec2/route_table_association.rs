//! `aws.route_table_association`: a subnet's explicit association with a
//! route table.
//!
//! A subnet has at most one explicit association. Creating one for a subnet
//! that is already associated with another table moves it there with
//! ReplaceRouteTableAssociation (AWS gives the moved association a new id and
//! the old id disappears), and adopts an existing association with the same
//! table as is. That makes the replace of a row whose `route_table_id`
//! changed work in the engine's create-new-then-delete-old order: the delete
//! of the old id then finds it gone, which is success. (A plain
//! AssociateRouteTable would fail with `Resource.AlreadyAssociated`.)
//!
//! Listing skips main-table associations and gateway associations: they
//! have no subnet.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, RouteTableAssociation as AwsAssociation};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema,
};
use serde_json::json;

use super::opt_str;
use super::route_table::route_tables;
use crate::sdk::{classify, deleted, missing_id, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "route_table_association",
    display: "route table association",
    doc: "Associates a subnet with a route table (instead of its VPC's main route table).",
    columns: &[
        Column::new(
            "route_table_association_id",
            Identity,
            "Association id (rtbassoc-...); provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::reference(
            "route_table_id",
            ReplaceOnChange,
            "route_table",
            "The route table",
        ),
        Column::reference(
            "subnet_id",
            ReplaceOnChange,
            "subnet",
            "The associated subnet",
        ),
        Column::new(
            "association_state",
            CloudAssigned,
            "associating, associated, disassociating, disassociated or failed",
        ),
        Column::new(
            "main",
            CloudAssigned,
            "Whether this is a main-table association (always false here)",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // A subnet has one association: moving it to another route table
    // deletes the old association first (the subnet uses its VPC's main
    // table for that moment).
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region", "subnet_id"],
        why: "a subnet has one route table association",
    },
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["route_table_id", "subnet_id"],
    stateful: None,
};

pub struct RouteTableAssociation {
    clients: Arc<Clients>,
}

impl RouteTableAssociation {
    pub fn new(clients: Arc<Clients>) -> Self {
        RouteTableAssociation { clients }
    }
}

fn props(a: &AwsAssociation, region: &str) -> Props {
    let mut p = Props::new();
    p.insert(
        "route_table_association_id".into(),
        opt_str(a.route_table_association_id()),
    );
    p.insert("region".into(), json!(region));
    p.insert("route_table_id".into(), opt_str(a.route_table_id()));
    p.insert("subnet_id".into(), opt_str(a.subnet_id()));
    p.insert(
        "association_state".into(),
        opt_str(
            a.association_state()
                .and_then(|s| s.state())
                .map(|s| s.as_str()),
        ),
    );
    p.insert("main".into(), json!(a.main().unwrap_or(false)));
    p
}

/// Explicit subnet associations matching `filter` (all of them without one).
async fn associations(
    ec2: &aws_sdk_ec2::Client,
    filter: Option<Filter>,
) -> Result<Vec<AwsAssociation>, ProviderError> {
    let tables = route_tables(ec2, filter).await?;
    Ok(tables
        .iter()
        .flat_map(|t| t.associations())
        .filter(|a| a.main() != Some(true) && a.subnet_id().is_some())
        .cloned()
        .collect())
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

async fn describe(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    id: &str,
) -> Result<Props, ProviderError> {
    associations(
        ec2,
        Some(filter("association.route-table-association-id", id)),
    )
    .await?
    .iter()
    .find(|a| a.route_table_association_id() == Some(id))
    .map(|a| props(a, region))
    .ok_or_else(|| not_found(&SCHEMA, "InvalidAssociationID.NotFound", id))
}

#[async_trait]
impl Resource for RouteTableAssociation {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        Ok(associations(&ec2, None)
            .await?
            .iter()
            .map(|a| props(a, region))
            .collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let table_id = desired.req_str("route_table_id")?;
        let subnet_id = desired.req_str("subnet_id")?;
        let ec2 = self.clients.ec2(&ctx.region).await;
        let existing = associations(&ec2, Some(filter("association.subnet-id", subnet_id)))
            .await?
            .into_iter()
            .find(|a| a.subnet_id() == Some(subnet_id));
        let id = match existing {
            Some(a) if a.route_table_id() == Some(table_id) => a
                .route_table_association_id()
                .ok_or_else(|| missing_id("DescribeRouteTables", "association id"))?
                .to_owned(),
            Some(a) => {
                let old = a
                    .route_table_association_id()
                    .ok_or_else(|| missing_id("DescribeRouteTables", "association id"))?;
                ec2.replace_route_table_association()
                    .association_id(old)
                    .route_table_id(table_id)
                    .send()
                    .await
                    .map_err(classify)?
                    .new_association_id()
                    .ok_or_else(|| missing_id("ReplaceRouteTableAssociation", "association id"))?
                    .to_owned()
            }
            None => ec2
                .associate_route_table()
                .route_table_id(table_id)
                .subnet_id(subnet_id)
                .send()
                .await
                .map_err(classify)?
                .association_id()
                .ok_or_else(|| missing_id("AssociateRouteTable", "association id"))?
                .to_owned(),
        };
        describe(&ec2, &ctx.region, &id).await
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _before: &Props,
        _after: &Props,
    ) -> Result<Props, ProviderError> {
        // Every user column forces a replace; nothing changes in place.
        let ec2 = self.clients.ec2(&ctx.region).await;
        describe(&ec2, &ctx.region, id).await
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let ec2 = self.clients.ec2(&ctx.region).await;
        deleted(
            ec2.disassociate_route_table()
                .association_id(id)
                .send()
                .await,
        )
    }
}
