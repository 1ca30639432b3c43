//! `aws.route53_zone`: a Route53 hosted zone, public or private (global).
//!
//! The domain, privacy and (for a private zone) its first VPC are fixed at
//! creation; the comment changes in place (UpdateHostedZoneComment), tags
//! by ChangeTagsForResource. CreateHostedZone's CallerReference is derived
//! from the apply id and the row's defining fields, so a retried create in
//! one apply cannot make a second zone (AWS answers
//! HostedZoneAlreadyExists instead).
//!
//! A zone holding records other than its own SOA and NS cannot be
//! deleted: AWS answers HostedZoneNotEmpty, reported as a conflict naming
//! the zone. Records deleted in the same commit go first (their foreign key
//! orders the plan).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_route53::types::{HostedZone, HostedZoneConfig, Tag, TagResourceType, Vpc, VpcRegion};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use infrasql_aws::fields::{changed, opt_str, present};
use infrasql_aws::sdk::{all_pages, classify, deleted, missing_id};
use infrasql_aws::tags::{self, NameTag, TAG_COLUMNS};
use infrasql_aws::{Clients, GLOBAL_REGION};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, ErrorClass, Listed, Props, PropsExt, ProviderError,
    ReplaceOrder, Resource, ResourceSchema,
};
use serde_json::{json, Value};

use crate::names::{fnv, fqdn, zone_id};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "route53_zone",
    display: "hosted zone",
    doc: "A Route53 hosted zone, public or private (for a private zone, with the VPC it answers in). Its records other than the SOA and apex NS are rows of aws.route53_record. A zone that still holds records cannot be deleted.",
    columns: &[
        Column::new(
            "hosted_zone_id",
            Identity,
            "The zone's id (Z...), without AWS's /hostedzone/ prefix; provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "Always 'global': Route53 is global"),
        Column::new(
            "name",
            ReplaceOnChange,
            "The domain, lower case with a final dot (example.com.): what you write is normalised to that",
        ),
        Column::new(
            "comment",
            Desired,
            "A comment (UpdateHostedZoneComment); observed by sync",
        ),
        Column::new(
            "private_zone",
            ReplaceOnChange,
            "Whether the zone answers only in its VPC (default false)",
        ),
        Column::reference(
            "vpc_id",
            ReplaceOnChange,
            "vpc",
            "For a private zone (required there): the VPC it answers in; observed by sync (one GetHostedZone per zone)",
        ),
        Column::new(
            "vpc_region",
            ReplaceOnChange,
            "The region of vpc_id (default: the default region)",
        ),
        Column::new(
            "tags",
            Desired,
            "Tags, as a JSON object; observed by sync (ListTagsForResources, ten zones a call)",
        ),
        Column::new(
            "name_servers",
            CloudAssigned,
            "A public zone's name servers, as a JSON list (delegate the domain to them)",
        ),
        Column::new(
            "record_count",
            CloudAssigned,
            "How many record sets the zone holds, SOA and NS included",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // Zones of the same name may coexist (AWS assigns new ids).
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Global,
    natural_key: &["name", "private_zone"],
    stateful: None,
};

pub struct Zone {
    clients: Arc<Clients>,
}

impl Zone {
    pub fn new(clients: Arc<Clients>) -> Self {
        Zone { clients }
    }
}

/// The columns ListHostedZones shows.
fn props(z: &HostedZone) -> Props {
    let mut p = Props::new();
    p.insert("hosted_zone_id".into(), json!(zone_id(z.id())));
    p.insert("region".into(), json!(GLOBAL_REGION));
    p.insert("name".into(), json!(fqdn(z.name())));
    p.insert(
        "comment".into(),
        present(z.config().and_then(|c| c.comment())),
    );
    p.insert(
        "private_zone".into(),
        json!(z.config().is_some_and(|c| c.private_zone())),
    );
    p.insert(
        "record_count".into(),
        z.resource_record_set_count()
            .map_or(Value::Null, |n| json!(n)),
    );
    p
}

/// The columns only GetHostedZone (or CreateHostedZone) answers.
fn put_details(p: &mut Props, name_servers: &[String], vpc: Option<&Vpc>) {
    p.insert("name_servers".into(), json!(name_servers));
    p.insert("vpc_id".into(), opt_str(vpc.and_then(|v| v.vpc_id())));
    p.insert(
        "vpc_region".into(),
        opt_str(vpc.and_then(|v| v.vpc_region()).map(|r| r.as_str())),
    );
}

fn sdk_tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// The zone's tags into `p`, from one ListTagsForResource.
async fn with_tags(
    r53: &aws_sdk_route53::Client,
    mut p: Props,
    id: &str,
) -> Result<Props, ProviderError> {
    let out = r53
        .list_tags_for_resource()
        .resource_type(TagResourceType::Hostedzone)
        .resource_id(id)
        .send()
        .await
        .map_err(classify)?;
    let tags = out.resource_tag_set().map(|s| s.tags()).unwrap_or_default();
    tags::put_tags(
        &mut p,
        tags.iter()
            .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
        NameTag::None,
    );
    Ok(p)
}

/// The zone `id` as a row: GetHostedZone and its tags.
async fn observe(r53: &aws_sdk_route53::Client, id: &str) -> Result<Props, ProviderError> {
    let out = r53
        .get_hosted_zone()
        .id(id)
        .send()
        .await
        .map_err(classify)?;
    let z = out
        .hosted_zone()
        .ok_or_else(|| missing_id("GetHostedZone", "hosted zone"))?;
    let mut p = props(z);
    let ns = out
        .delegation_set()
        .map(|d| d.name_servers())
        .unwrap_or_default();
    put_details(&mut p, ns, out.vpcs().first());
    with_tags(r53, p, id).await
}

/// CreateHostedZone's caller reference: one per apply and zone.
fn caller_reference(ctx: &ApplyContext, desired: &Props) -> String {
    let key = format!(
        "{}|{}|{}|{}",
        desired.str("name").unwrap_or(""),
        desired.bool("private_zone").unwrap_or(false),
        desired.str("vpc_id").unwrap_or(""),
        desired.str("comment").unwrap_or(""),
    );
    format!("infrasql-{}-{:016x}", ctx.apply_id, fnv(&key, 0))
}

#[async_trait]
impl Resource for Zone {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// Every zone: ListHostedZones (Marker) pages, then per zone one
    /// GetHostedZone (name servers, VPC) and one ListTagsForResource,
    /// eight zones at a time.
    async fn list(&self, _region: &str) -> Result<Listed, ProviderError> {
        let r53 = crate::client(&self.clients, GLOBAL_REGION).await;
        let zones = all_pages(r53.list_hosted_zones().into_paginator().items().send()).await?;
        let r53 = &r53;
        stream::iter(zones)
            .map(|z| async move {
                infrasql_aws::sdk::if_found(observe(r53, &zone_id(z.id())).await)
            })
            .buffer_unordered(8)
            .try_filter_map(|p| async move { Ok(p) })
            .try_collect()
            .await
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let name = fqdn(desired.req_str("name")?);
        let private = desired.bool("private_zone").unwrap_or(false);
        let vpc = match (private, desired.str("vpc_id")) {
            (true, Some(vpc_id)) => Some(
                Vpc::builder()
                    .vpc_id(vpc_id)
                    .vpc_region(VpcRegion::from(
                        desired
                            .str("vpc_region")
                            .unwrap_or(&self.clients.default_region()),
                    ))
                    .build(),
            ),
            (true, None) => {
                return Err(ProviderError::invalid(format!(
                    "hosted zone {name}: a private zone needs vpc_id"
                )))
            }
            (false, _) => None,
        };
        let mut config = HostedZoneConfig::builder().private_zone(private);
        if let Some(c) = desired.str("comment") {
            config = config.comment(c);
        }
        let r53 = crate::client(&self.clients, GLOBAL_REGION).await;
        let out = r53
            .create_hosted_zone()
            .name(&name)
            .caller_reference(caller_reference(ctx, desired))
            .hosted_zone_config(config.build())
            .set_vpc(vpc)
            .send()
            .await
            .map_err(classify)?;
        let z = out
            .hosted_zone()
            .ok_or_else(|| missing_id("CreateHostedZone", "hosted zone"))?;
        let id = zone_id(z.id());
        let tags = tags::for_create(desired, ctx, NameTag::None);
        // Tags are a second call: should it fail, take the zone away again
        // so nothing half-made is left behind.
        let tagged = r53
            .change_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(&id)
            .set_add_tags(Some(tags.iter().map(|(k, v)| sdk_tag(k, v)).collect()))
            .send()
            .await;
        if let Err(e) = tagged {
            let _ = r53.delete_hosted_zone().id(&id).send().await;
            return Err(classify(e));
        }
        let mut p = props(z);
        let ns = out
            .delegation_set()
            .map(|d| d.name_servers())
            .unwrap_or_default();
        put_details(&mut p, ns, out.vpc());
        tags::put_tags(
            &mut p,
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            NameTag::None,
        );
        Ok(p)
    }

    async fn update(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let r53 = crate::client(&self.clients, GLOBAL_REGION).await;
        if changed(before, after, &["comment"]) {
            r53.update_hosted_zone_comment()
                .id(id)
                .set_comment(after.str("comment").map(str::to_owned))
                .send()
                .await
                .map_err(classify)?;
        }
        if changed(before, after, &TAG_COLUMNS) {
            let (removed, set) = tags::changes(before, after, NameTag::None);
            if !removed.is_empty() || !set.is_empty() {
                r53.change_tags_for_resource()
                    .resource_type(TagResourceType::Hostedzone)
                    .resource_id(id)
                    .set_remove_tag_keys((!removed.is_empty()).then_some(removed))
                    .set_add_tags(
                        (!set.is_empty()).then(|| set.iter().map(|(k, v)| sdk_tag(k, v)).collect()),
                    )
                    .send()
                    .await
                    .map_err(classify)?;
            }
        }
        observe(&r53, id).await
    }

    async fn delete(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        let r53 = crate::client(&self.clients, GLOBAL_REGION).await;
        deleted(r53.delete_hosted_zone().id(id).send().await).map_err(|e| {
            if e.code == "HostedZoneNotEmpty" {
                ProviderError::new(
                    ErrorClass::Conflict,
                    e.code,
                    format!(
                        "hosted zone {} ({id}) still holds records other than its SOA and NS: \
                         AWS deletes only an empty zone. Delete its aws.route53_record rows \
                         (and records made outside infrasql) first, or in the same transaction",
                        current.str("name").unwrap_or("?")
                    ),
                )
            } else {
                e
            }
        })
    }
}
