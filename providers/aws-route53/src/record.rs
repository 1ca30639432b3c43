//! `aws.route53_record`: one record set of a hosted zone (global).
//!
//! A record set has no id in AWS: it is named by its zone, name, type and
//! set identifier, so its identity here is synthetic,
//! `<zone id>|<name>|<type>|<set identifier or empty>`.
//!
//! - An INSERT is a CREATE: AWS refuses it (InvalidChangeBatch) when the
//!   record exists, so infrasql never silently takes over a record made
//!   elsewhere; import that one with `SELECT infra.sync()` instead.
//! - An UPDATE is an UPSERT of the new values; its undo (before and after
//!   swapped) is an UPSERT of the old values, which restores the exact
//!   previous record set. A create's undo is a DELETE with the exact values
//!   created.
//! - Changes to one zone that arrive together go in one
//!   ChangeResourceRecordSets (see `batch.rs`).
//! - `alias_lb_arn` names a load balancer row: at create and update the
//!   provider reads its DNSName and CanonicalHostedZoneId
//!   (DescribeLoadBalancers in the LB's region, taken from its ARN) into
//!   the alias, so an alias to a load balancer made in the same commit
//!   works. It is never observed; `alias_dns_name` and
//!   `alias_hosted_zone_id` are.
//! - `ready` keeps its default: ChangeResourceRecordSets applies a batch
//!   atomically and the records exist once it answers; AWS's PENDING to
//!   INSYNC is propagation to its name servers, which the commit does not
//!   wait for.
//!
//! Listing skips each zone's own SOA and apex NS record sets, which AWS
//! makes and deletes with the zone.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ResourceRecord, ResourceRecordSet, RrType,
};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use infrasql_aws::fields::opt_str;
use infrasql_aws::sdk::{all_pages, classify};
use infrasql_aws::{Clients, GLOBAL_REGION};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, ErrorClass, Listed, Props, PropsExt, ProviderError,
    ReplaceOrder, Resource, ResourceSchema,
};
use serde_json::{json, Value};

use crate::alias::resolved;
use crate::batch::Batcher;
use crate::names::{fqdn, zone_id};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "route53_record",
    display: "DNS record",
    doc: "A record set of a hosted zone: values with a TTL, or an alias (to a load balancer row, or to another AWS target by DNS name and zone). An INSERT creates the record and fails if it exists (import it with SELECT infra.sync() instead); an UPDATE replaces its values (UPSERT). Records changed in one commit go to AWS in one ChangeResourceRecordSets per zone. The zone's own SOA and NS records are not rows.",
    columns: &[
        Column::new(
            "record_id",
            Identity,
            "<hosted_zone_id>|<name>|<type>|<set_identifier or empty>; provisional until created",
        ),
        Column::new("region", ReplaceOnChange, "Always 'global': Route53 is global"),
        Column::reference(
            "hosted_zone_id",
            ReplaceOnChange,
            "route53_zone",
            "The hosted zone holding the record",
        ),
        Column::new(
            "name",
            ReplaceOnChange,
            "The record's domain name, lower case with a final dot (www.example.com.): what you write is normalised to that",
        ),
        Column::new(
            "type",
            ReplaceOnChange,
            "A, AAAA, CNAME, MX, TXT, NS, SRV, CAA, PTR, SPF, NAPTR or DS",
        ),
        Column::new(
            "set_identifier",
            ReplaceOnChange,
            "Tells apart record sets of one name and type under a routing policy; NULL for simple routing",
        ),
        Column::new("ttl", Desired, "Time to live in seconds (not for an alias)"),
        Column::new(
            "records",
            Desired,
            "The values, as a JSON list of strings (not for an alias)",
        ),
        Column::reference(
            "alias_lb_arn",
            Desired,
            "lb",
            "An alias to this load balancer: its DNS name and zone are read at commit into alias_dns_name and alias_hosted_zone_id (which it overrides). Never observed by sync",
        ),
        Column::new(
            "alias_dns_name",
            Desired,
            "The alias target's DNS name, with a final dot; observed",
        ),
        Column::new(
            "alias_hosted_zone_id",
            Desired,
            "The alias target's hosted zone id; observed",
        ),
        Column::new(
            "alias_evaluate_target_health",
            Desired,
            "Whether an alias answers only while its target is healthy (default false)",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // A replace changes the identity (zone, name, type or set id): the new
    // record never collides with the old one.
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Global,
    natural_key: &["hosted_zone_id", "name", "type", "set_identifier"],
    stateful: None,
};

pub struct Record {
    clients: Arc<Clients>,
    batcher: Arc<Batcher>,
}

impl Record {
    pub fn new(clients: Arc<Clients>) -> Self {
        Record {
            batcher: Batcher::new(Arc::clone(&clients)),
            clients,
        }
    }
}

pub fn record_id(zone: &str, name: &str, rtype: &str, set_id: Option<&str>) -> String {
    format!("{zone}|{name}|{rtype}|{}", set_id.unwrap_or(""))
}

fn props(zone: &str, r: &ResourceRecordSet) -> Props {
    let name = fqdn(r.name());
    let rtype = r.r#type().as_str();
    let mut p = Props::new();
    p.insert(
        "record_id".into(),
        json!(record_id(zone, &name, rtype, r.set_identifier())),
    );
    p.insert("region".into(), json!(GLOBAL_REGION));
    p.insert("hosted_zone_id".into(), json!(zone));
    p.insert("name".into(), json!(name));
    p.insert("type".into(), json!(rtype));
    p.insert("set_identifier".into(), opt_str(r.set_identifier()));
    p.insert("ttl".into(), r.ttl().map_or(Value::Null, |t| json!(t)));
    let alias = r.alias_target();
    let records: Vec<&str> = r.resource_records().iter().map(|v| v.value()).collect();
    p.insert(
        "records".into(),
        if alias.is_some() {
            Value::Null
        } else {
            json!(records)
        },
    );
    p.insert(
        "alias_dns_name".into(),
        opt_str(alias.map(|a| fqdn(a.dns_name())).as_deref()),
    );
    p.insert(
        "alias_hosted_zone_id".into(),
        opt_str(alias.map(|a| a.hosted_zone_id())),
    );
    p.insert(
        "alias_evaluate_target_health".into(),
        json!(alias.is_some_and(|a| a.evaluate_target_health())),
    );
    p
}

/// Whether listing shows this record set: not the zone's own SOA, nor the
/// NS at its apex.
fn listed(zone_name: &str, r: &ResourceRecordSet) -> bool {
    let apex = fqdn(r.name()) == fqdn(zone_name);
    !(apex && matches!(r.r#type(), RrType::Soa | RrType::Ns))
}

/// Every record set of one zone, all pages (StartRecordName,
/// StartRecordType and StartRecordIdentifier from each page's Next*).
async fn zone_records(
    r53: &aws_sdk_route53::Client,
    zone: &str,
    zone_name: &str,
) -> Result<Vec<Props>, ProviderError> {
    let mut out = Vec::new();
    let mut next: Option<(String, RrType, Option<String>)> = None;
    loop {
        let mut req = r53.list_resource_record_sets().hosted_zone_id(zone);
        if let Some((name, rtype, set_id)) = next.take() {
            req = req
                .start_record_name(name)
                .start_record_type(rtype)
                .set_start_record_identifier(set_id);
        }
        let page = req.send().await.map_err(classify)?;
        out.extend(
            page.resource_record_sets()
                .iter()
                .filter(|r| listed(zone_name, r))
                .map(|r| props(zone, r)),
        );
        match (page.is_truncated(), page.next_record_name()) {
            (true, Some(name)) => {
                next = Some((
                    name.to_owned(),
                    page.next_record_type().cloned().unwrap_or(RrType::A),
                    page.next_record_identifier().map(str::to_owned),
                ))
            }
            _ => return Ok(out),
        }
    }
}

/// The record set a row describes.
fn record_set(p: &Props) -> Result<ResourceRecordSet, ProviderError> {
    let mut b = ResourceRecordSet::builder()
        .name(p.req_str("name")?)
        .r#type(RrType::from(p.req_str("type")?))
        .set_set_identifier(p.str("set_identifier").map(str::to_owned));
    match (p.str("alias_dns_name"), p.str("alias_hosted_zone_id")) {
        (Some(dns), Some(zone)) => {
            b = b.alias_target(
                AliasTarget::builder()
                    .dns_name(dns)
                    .hosted_zone_id(zone)
                    .evaluate_target_health(p.bool("alias_evaluate_target_health").unwrap_or(false))
                    .build()
                    .map_err(|e| ProviderError::invalid(e.to_string()))?,
            );
        }
        _ => {
            let values = p
                .get("records")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for v in values.iter().filter_map(Value::as_str) {
                b = b.resource_records(
                    ResourceRecord::builder()
                        .value(v)
                        .build()
                        .map_err(|e| ProviderError::invalid(e.to_string()))?,
                );
            }
            b = b.set_ttl(p.i64("ttl"));
        }
    }
    b.build().map_err(|e| ProviderError::invalid(e.to_string()))
}

/// The row as it reads after a change: the values sent, under the
/// synthetic id.
fn written(p: &Props, zone: &str) -> Result<Props, ProviderError> {
    let set = record_set(p)?;
    let mut out = props(zone, &set);
    out.insert(
        "alias_lb_arn".into(),
        p.get("alias_lb_arn").cloned().unwrap_or(Value::Null),
    );
    Ok(out)
}

impl Record {
    /// Send one change of the record `p` (resolved) in its zone's batch.
    async fn change(&self, action: ChangeAction, p: &Props) -> Result<(), ProviderError> {
        let zone = p.req_str("hosted_zone_id")?;
        let change = Change::builder()
            .action(action.clone())
            .resource_record_set(record_set(p)?)
            .build()
            .map_err(|e| ProviderError::invalid(e.to_string()))?;
        self.batcher
            .submit(zone, change)
            .await
            .map_err(|e| explain(e, &action, p))
    }
}

/// AWS's refusal of a batch, said for the record at hand.
fn explain(e: ProviderError, action: &ChangeAction, p: &Props) -> ProviderError {
    let what = format!(
        "DNS record {} {} in zone {}",
        p.str("name").unwrap_or("?"),
        p.str("type").unwrap_or("?"),
        p.str("hosted_zone_id").unwrap_or("?")
    );
    if e.code == "InvalidChangeBatch" && e.message.contains("already exists") {
        return ProviderError::new(
            ErrorClass::Conflict,
            e.code,
            format!(
                "{what}: it already exists in AWS, and an INSERT never takes over an existing \
                 record. Import it with SELECT infra.sync() and UPDATE its row instead. \
                 (AWS: {})",
                e.message
            ),
        );
    }
    ProviderError::new(
        e.class,
        e.code,
        format!(
            "{what}: {} of its batch failed: {}",
            action.as_str(),
            e.message
        ),
    )
}

#[async_trait]
impl Resource for Record {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// ListHostedZones (Marker) pages, then every zone's record sets,
    /// eight zones at a time.
    async fn list(&self, _region: &str) -> Result<Listed, ProviderError> {
        let r53 = crate::client(&self.clients, GLOBAL_REGION).await;
        let zones = all_pages(r53.list_hosted_zones().into_paginator().items().send()).await?;
        let r53 = &r53;
        let per_zone: Vec<Vec<Props>> = stream::iter(zones)
            .map(|z| async move {
                let id = zone_id(z.id());
                infrasql_aws::sdk::if_found(zone_records(r53, &id, z.name()).await)
                    .map(Option::unwrap_or_default)
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        Ok(per_zone.into_iter().flatten().collect())
    }

    async fn create(&self, _ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let p = resolved(&self.clients, desired).await?;
        self.change(ChangeAction::Create, &p).await?;
        written(&p, p.req_str("hosted_zone_id")?)
    }

    async fn update(
        &self,
        _ctx: &ApplyContext,
        _id: &str,
        _before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let p = resolved(&self.clients, after).await?;
        self.change(ChangeAction::Upsert, &p).await?;
        written(&p, p.req_str("hosted_zone_id")?)
    }

    /// DELETE with the row's values (AWS wants the exact record set; after
    /// a create they are the values created). A record already gone is done.
    async fn delete(
        &self,
        _ctx: &ApplyContext,
        _id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        // The values in the row are what was sent: an alias to a load
        // balancer is not read again (the load balancer may be gone already).
        let mut p = current.clone();
        if let Some(name) = p.str("name").map(fqdn) {
            p.insert("name".into(), json!(name));
        }
        match self.change(ChangeAction::Delete, &p).await {
            Err(e) if e.code == "InvalidChangeBatch" && e.message.contains("not found") => Ok(()),
            r => r,
        }
    }
}
