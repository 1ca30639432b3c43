//! `aws.route`: one IPv4 route in a route table.
//!
//! A route is not a standalone AWS resource: it is named by its table and
//! destination, so its identity here is synthetic,
//! `<route_table_id>|<destination_cidr_block>`. The target (internet gateway,
//! NAT gateway or VPC peering connection) changes in place with ReplaceRoute.
//!
//! Listing reads every route table once per page (not once per table) and
//! reports only the routes this table can hold: the `local` route AWS
//! makes for the VPC's own CIDR is skipped, and so are routes whose
//! destination is not an IPv4 CIDR (IPv6, prefix lists) or whose target is
//! none of the three kinds above (virtual private gateway, instance,
//! network interface, transit gateway...). Such routes are left alone.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::Route as AwsRoute;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, ErrorClass, Listed, Props, PropsExt, ProviderError,
    ReplaceOrder, Resource, ResourceSchema,
};
use serde_json::json;

use super::route_table::{describe_route_table, route_tables};
use super::{changed, opt_str};
use crate::sdk::{classify, deleted};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "route",
    display: "route",
    doc: "An IPv4 route in a route table, to an internet gateway, a NAT gateway or a VPC peering connection.",
    columns: &[
        Column::new(
            "route_id",
            Identity,
            "<route_table_id>|<destination_cidr_block>; provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::reference(
            "route_table_id",
            ReplaceOnChange,
            "route_table",
            "The route table holding the route",
        ),
        Column::new(
            "destination_cidr_block",
            ReplaceOnChange,
            "IPv4 destination CIDR block",
        ),
        Column::reference(
            "gateway_id",
            Desired,
            "internet_gateway",
            "Target internet gateway",
        ),
        Column::new("nat_gateway_id", Desired, "Target NAT gateway"),
        Column::new(
            "vpc_peering_connection_id",
            Desired,
            "Target VPC peering connection",
        ),
        Column::new(
            "origin",
            CloudAssigned,
            "CreateRoute, CreateRouteTable or EnableVgwRoutePropagation",
        ),
        Column::new(
            "state",
            CloudAssigned,
            "active, or blackhole when the target is gone",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // Only a new table or destination replaces a route: no collision.
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["route_table_id", "destination_cidr_block"],
    stateful: None,
};

/// The target columns; exactly one is set.
const TARGETS: [&str; 3] = ["gateway_id", "nat_gateway_id", "vpc_peering_connection_id"];

pub struct Route {
    clients: Arc<Clients>,
}

impl Route {
    pub fn new(clients: Arc<Clients>) -> Self {
        Route { clients }
    }
}

pub fn route_id(route_table_id: &str, destination: &str) -> String {
    format!("{route_table_id}|{destination}")
}

/// `(route_table_id, destination_cidr_block)` of a route: from its id, or
/// from its properties when the id is not a synthetic one.
fn key<'a>(id: &'a str, p: &'a Props) -> Result<(&'a str, &'a str), ProviderError> {
    if let Some((table, dest)) = id.split_once('|') {
        return Ok((table, dest));
    }
    Ok((
        p.req_str("route_table_id")?,
        p.req_str("destination_cidr_block")?,
    ))
}

/// Whether `aws.route` can hold this route (see the module docs).
fn representable(r: &AwsRoute) -> bool {
    let Some(_) = r.destination_cidr_block() else {
        return false;
    };
    let others = [
        r.instance_id(),
        r.network_interface_id(),
        r.transit_gateway_id(),
        r.egress_only_internet_gateway_id(),
        r.local_gateway_id(),
        r.carrier_gateway_id(),
        r.core_network_arn(),
        r.odb_network_arn(),
    ];
    if others.iter().any(Option::is_some) {
        return false;
    }
    let igw = r.gateway_id().filter(|g| g.starts_with("igw-"));
    if r.gateway_id().is_some() && igw.is_none() {
        // `local`, a virtual private gateway, a gateway endpoint...
        return false;
    }
    [igw, r.nat_gateway_id(), r.vpc_peering_connection_id()]
        .iter()
        .filter(|t| t.is_some())
        .count()
        == 1
}

fn props(table_id: &str, r: &AwsRoute, region: &str) -> Props {
    let dest = r.destination_cidr_block().unwrap_or_default();
    let mut p = Props::new();
    p.insert("route_id".into(), json!(route_id(table_id, dest)));
    p.insert("region".into(), json!(region));
    p.insert("route_table_id".into(), json!(table_id));
    p.insert("destination_cidr_block".into(), json!(dest));
    p.insert("gateway_id".into(), opt_str(r.gateway_id()));
    p.insert("nat_gateway_id".into(), opt_str(r.nat_gateway_id()));
    p.insert(
        "vpc_peering_connection_id".into(),
        opt_str(r.vpc_peering_connection_id()),
    );
    p.insert("origin".into(), opt_str(r.origin().map(|o| o.as_str())));
    p.insert("state".into(), opt_str(r.state().map(|s| s.as_str())));
    p
}

/// The one target a row names, as (column, id).
fn target(p: &Props) -> Result<(&'static str, &str), ProviderError> {
    let set: Vec<(&'static str, &str)> = TARGETS
        .iter()
        .filter_map(|k| p.str(k).map(|v| (*k, v)))
        .collect();
    match set.as_slice() {
        [one] => Ok(*one),
        _ => Err(ProviderError::invalid(
            "a route needs exactly one of gateway_id, nat_gateway_id, vpc_peering_connection_id",
        )),
    }
}

async fn observe(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    table_id: &str,
    dest: &str,
) -> Result<Props, ProviderError> {
    let table = describe_route_table(ec2, table_id).await?;
    table
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some(dest))
        .map(|r| props(table_id, r, region))
        .ok_or_else(|| {
            ProviderError::new(
                ErrorClass::NotFound,
                "InvalidRoute.NotFound",
                format!("no route to {dest} in route table {table_id}"),
            )
        })
}

#[async_trait]
impl Resource for Route {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        let mut out = Listed::new();
        for t in route_tables(&ec2, None).await? {
            let Some(table_id) = t.route_table_id() else {
                continue;
            };
            for r in t.routes().iter().filter(|r| representable(r)) {
                out.push(props(table_id, r, region));
            }
        }
        Ok(out)
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let table_id = desired.req_str("route_table_id")?;
        let dest = desired.req_str("destination_cidr_block")?;
        let (column, target_id) = target(desired)?;
        let ec2 = self.clients.ec2(&ctx.region).await;
        let req = ec2
            .create_route()
            .route_table_id(table_id)
            .destination_cidr_block(dest);
        let req = match column {
            "gateway_id" => req.gateway_id(target_id),
            "nat_gateway_id" => req.nat_gateway_id(target_id),
            _ => req.vpc_peering_connection_id(target_id),
        };
        req.send().await.map_err(classify)?;
        observe(&ec2, &ctx.region, table_id, dest).await
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let (table_id, dest) = key(id, after)?;
        let ec2 = self.clients.ec2(&ctx.region).await;
        if changed(before, after, &TARGETS) {
            let (column, target_id) = target(after)?;
            let req = ec2
                .replace_route()
                .route_table_id(table_id)
                .destination_cidr_block(dest);
            let req = match column {
                "gateway_id" => req.gateway_id(target_id),
                "nat_gateway_id" => req.nat_gateway_id(target_id),
                _ => req.vpc_peering_connection_id(target_id),
            };
            req.send().await.map_err(classify)?;
        }
        observe(&ec2, &ctx.region, table_id, dest).await
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        let (table_id, dest) = key(id, current)?;
        let ec2 = self.clients.ec2(&ctx.region).await;
        deleted(
            ec2.delete_route()
                .route_table_id(table_id)
                .destination_cidr_block(dest)
                .send()
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_id_names_table_and_destination() {
        let id = route_id("rtb-1", "0.0.0.0/0");
        assert_eq!(id, "rtb-1|0.0.0.0/0");
        assert_eq!(key(&id, &Props::new()).unwrap(), ("rtb-1", "0.0.0.0/0"));
    }

    #[test]
    fn only_routes_the_table_can_hold_are_listed() {
        let igw = AwsRoute::builder()
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id("igw-1")
            .build();
        let local = AwsRoute::builder()
            .destination_cidr_block("10.0.0.0/16")
            .gateway_id("local")
            .build();
        let vgw = AwsRoute::builder()
            .destination_cidr_block("192.168.0.0/16")
            .gateway_id("vgw-1")
            .build();
        let v6 = AwsRoute::builder()
            .destination_ipv6_cidr_block("::/0")
            .gateway_id("igw-1")
            .build();
        let tgw = AwsRoute::builder()
            .destination_cidr_block("172.16.0.0/12")
            .transit_gateway_id("tgw-1")
            .build();
        let nat = AwsRoute::builder()
            .destination_cidr_block("0.0.0.0/0")
            .nat_gateway_id("nat-1")
            .build();
        assert!(representable(&igw));
        assert!(representable(&nat));
        for r in [&local, &vgw, &v6, &tgw] {
            assert!(!representable(r), "{r:?}");
        }
    }
}
