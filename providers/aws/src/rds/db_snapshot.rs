//! `aws.db_snapshot`: a snapshot of a DB instance.
//!
//! INSERT takes a manual snapshot (CreateDBSnapshot) and DELETE removes one
//! (DeleteDBSnapshot). The listing holds manual and automated snapshots,
//! and final snapshots of instances already deleted: `db_instance_identifier`
//! has no foreign key, because a snapshot outlives its database. AWS refuses
//! to delete an automated snapshot (it goes with the instance's backup
//! retention); that refusal is AWS's own error. A snapshot cannot be
//! renamed (the schema file refuses it); only its tags change in place.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_rds::primitives::DateTimeFormat;
use aws_sdk_rds::types::DbSnapshot as AwsSnapshot;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, Readiness,
    ReplaceOrder, Resource, ResourceSchema,
};
use serde_json::{json, Value};

use super::{create_tags, put_tags, update_tags};
use crate::sdk::{all_pages, classify, deleted, described, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "db_snapshot",
    display: "DB snapshot",
    doc: "A snapshot of a DB instance: INSERT takes a manual snapshot, DELETE removes one. Sync lists manual and automated snapshots, and those of instances deleted since (db_instance_identifier has no foreign key: a snapshot outlives its database).",
    columns: &[
        Column::new(
            "db_snapshot_identifier",
            Name,
            "The snapshot's name, chosen at INSERT (unique across regions here, as foreign keys name it alone); a snapshot cannot be renamed",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new(
            "db_instance_identifier",
            ReplaceOnChange,
            "The DB instance it is taken of (no foreign key: the snapshot outlives the instance)",
        ),
        Column::new("tags", Desired, "Tags, as a JSON object"),
        Column::new(
            "status",
            CloudAssigned,
            "creating, available...; a new snapshot is ready once available",
        ),
        Column::new(
            "snapshot_type",
            CloudAssigned,
            "manual (taken by a user, or a final snapshot) or automated (AWS's backups; AWS refuses to delete them)",
        ),
        Column::new("engine", CloudAssigned, "The database engine of the instance"),
        Column::new(
            "allocated_storage",
            CloudAssigned,
            "Storage of the instance in GiB when it was taken",
        ),
        Column::new("snapshot_create_time", CloudAssigned, "When it was taken"),
        Column::new("arn", CloudAssigned, "The snapshot's ARN"),
        infrasql_provider::SYNCED_AT,
    ],
    replace_order: ReplaceOrder::CreateFirst,
    // A replace takes a new snapshot first; the old one goes last.
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["db_snapshot_identifier"],
    stateful: Some("the data kept in the old snapshot"),
};

pub struct DbSnapshot {
    clients: Arc<Clients>,
}

impl DbSnapshot {
    pub fn new(clients: Arc<Clients>) -> Self {
        DbSnapshot { clients }
    }
}

fn props(s: &AwsSnapshot, region: &str) -> Props {
    let mut p = Props::new();
    let text = |v: Option<&str>| v.map(|v| json!(v)).unwrap_or(Value::Null);
    p.insert(
        "db_snapshot_identifier".into(),
        text(s.db_snapshot_identifier()),
    );
    p.insert("region".into(), json!(region));
    p.insert(
        "db_instance_identifier".into(),
        text(s.db_instance_identifier()),
    );
    p.insert("status".into(), text(s.status()));
    p.insert("snapshot_type".into(), text(s.snapshot_type()));
    p.insert("engine".into(), text(s.engine()));
    p.insert("allocated_storage".into(), json!(s.allocated_storage()));
    p.insert(
        "snapshot_create_time".into(),
        s.snapshot_create_time()
            .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    p.insert("arn".into(), text(s.db_snapshot_arn()));
    put_tags(&mut p, s.tag_list());
    p
}

fn gone(id: &str) -> ProviderError {
    not_found(&SCHEMA, "DBSnapshotNotFound", id)
}

async fn describe(rds: &aws_sdk_rds::Client, id: &str) -> Result<AwsSnapshot, ProviderError> {
    described(
        rds.describe_db_snapshots()
            .db_snapshot_identifier(id)
            .send()
            .await,
        |out| out.db_snapshots().first().cloned(),
        || gone(id),
    )
}

#[async_trait]
impl Resource for DbSnapshot {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let rds = self.clients.rds(region).await;
        // No snapshot type named: AWS answers with manual and automated ones.
        let snapshots =
            all_pages(rds.describe_db_snapshots().into_paginator().items().send()).await?;
        Ok(snapshots.iter().map(|s| props(s, region)).collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let id = desired.req_str("db_snapshot_identifier")?;
        let instance = desired.req_str("db_instance_identifier")?;
        let rds = self.clients.rds(&ctx.region).await;
        let out = rds
            .create_db_snapshot()
            .db_snapshot_identifier(id)
            .db_instance_identifier(instance)
            .set_tags(Some(create_tags(desired, ctx)))
            .send()
            .await
            .map_err(classify)?;
        match out.db_snapshot() {
            Some(s) => Ok(props(s, &ctx.region)),
            None => Ok(props(&describe(&rds, id).await?, &ctx.region)),
        }
    }

    async fn ready(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _created: &Props,
    ) -> Result<Readiness, ProviderError> {
        let rds = self.clients.rds(&ctx.region).await;
        let s = describe(&rds, id).await?;
        Ok(match s.status() {
            Some("available") => Readiness::Ready(Some(props(&s, &ctx.region))),
            other => Readiness::Pending {
                status: other.unwrap_or("unknown").to_owned(),
            },
        })
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        // Only the tags change in place (every other column replaces, and
        // the name cannot change).
        let rds = self.clients.rds(&ctx.region).await;
        let s = describe(&rds, id).await?;
        let arn = s
            .db_snapshot_arn()
            .ok_or_else(|| ProviderError::invalid(format!("DB snapshot {id} has no ARN")))?;
        update_tags(&rds, arn, before, after).await?;
        Ok(props(&describe(&rds, id).await?, &ctx.region))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let rds = self.clients.rds(&ctx.region).await;
        deleted(
            rds.delete_db_snapshot()
                .db_snapshot_identifier(id)
                .send()
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_reports_every_column_but_synced_at() {
        let s = AwsSnapshot::builder()
            .db_snapshot_identifier("snap-1")
            .db_instance_identifier("db-1")
            .status("available")
            .snapshot_type("manual")
            .build();
        let p = props(&s, "us-east-1");
        for c in SCHEMA.columns {
            if c.name != "synced_at" {
                assert!(p.contains_key(c.name), "the listing reports {}", c.name);
            }
        }
        assert_eq!(p.str("snapshot_type"), Some("manual"));
        assert_eq!(p["allocated_storage"], Value::Null);
    }
}
