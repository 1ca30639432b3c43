//! `aws.db_cluster`: an Aurora DB cluster.
//!
//! Its instances are rows of `aws.db_instance` naming it. Changes in place
//! (ModifyDBCluster, one call): the name (NewDBClusterIdentifier, always
//! applied immediately, since the row names the cluster by it), the engine
//! version, the master password (write-only: sent, never read back) or
//! handing it to Secrets Manager, the port, the backup retention, deletion
//! protection, the set of security groups (the whole list) and the tags.
//! Changing the region, engine, master user name, subnet group, encryption
//! or database name replaces the cluster, which would lose its data.
//!
//! `apply_immediately`, `skip_final_snapshot` and `final_snapshot_identifier`
//! are the user's instructions, not the cluster's state: the listing never
//! reports them (so they never drift), and an UPDATE of only them makes no
//! call. A DELETE needs one of the two snapshot choices, and deletion
//! protection off; `schema/0640_aws_db_cluster.sql` refuses it otherwise,
//! before COMMIT. A delete that undoes a create of the same apply skips the
//! final snapshot (the cluster never held the user's data); other deletes
//! not made from a row keep one (`rds::final_snapshot`).
//!
//! `delete` waits until AWS no longer lists the cluster, so the subnet group
//! and security groups it used can be deleted after it in the same plan.

mod observe;
mod schema;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::DbCluster as AwsCluster;
use infrasql_provider::{
    ApplyContext, ErrorClass, Listed, Props, PropsExt, ProviderError, Readiness, Resource,
    ResourceSchema,
};
use serde_json::Value;

pub use self::schema::SCHEMA;

use self::observe::{observed, props};

use super::{create_tags, update_tags};
use crate::sdk::{all_pages, classify, deleted, described, if_found, missing_id, not_found};
use crate::Clients;

/// The set column of the cluster's security groups.
const GROUPS: &str = "vpc_security_group_ids";

/// Columns the user sets as instructions: never listed, never sent as state.
const INSTRUCTIONS: [&str; 3] = [
    "apply_immediately",
    "skip_final_snapshot",
    "final_snapshot_identifier",
];

/// How long `delete` waits for AWS to finish deleting (a few minutes on AWS).
const DELETE_WAIT: Duration = Duration::from_secs(40 * 60);

pub struct DbCluster {
    clients: Arc<Clients>,
}

impl DbCluster {
    pub fn new(clients: Arc<Clients>) -> Self {
        DbCluster { clients }
    }
}

fn changed(before: &Props, after: &Props, key: &str) -> bool {
    let null = |v: Option<&Value>| matches!(v, None | Some(Value::Null));
    let (b, a) = (before.get(key), after.get(key));
    b != a && !(null(b) && null(a))
}

fn int(p: &Props, key: &str) -> Result<Option<i32>, ProviderError> {
    p.i64(key)
        .map(|v| {
            i32::try_from(v)
                .map_err(|_| ProviderError::invalid(format!("{key} {v} is out of range")))
        })
        .transpose()
}

fn gone(id: &str) -> ProviderError {
    not_found(&SCHEMA, "DBClusterNotFoundFault", id)
}

async fn describe(rds: &aws_sdk_rds::Client, id: &str) -> Result<AwsCluster, ProviderError> {
    described(
        rds.describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await,
        |out| out.db_clusters().first().cloned(),
        || gone(id),
    )
}

#[async_trait]
impl Resource for DbCluster {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let rds = self.clients.rds(region).await;
        let clusters =
            all_pages(rds.describe_db_clusters().into_paginator().items().send()).await?;
        Ok(clusters.iter().map(|c| props(c, region)).collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let id = desired.req_str("db_cluster_identifier")?;
        let manage = desired.bool("manage_master_user_password");
        let rds = self.clients.rds(&ctx.region).await;
        let out = rds
            .create_db_cluster()
            .db_cluster_identifier(id)
            .engine(desired.req_str("engine")?)
            .set_engine_version(desired.str("engine_version").map(str::to_owned))
            .set_master_username(desired.str("master_username").map(str::to_owned))
            .set_master_user_password(desired.str("master_user_password").map(str::to_owned))
            .set_manage_master_user_password(manage)
            .set_db_subnet_group_name(desired.str("db_subnet_group_name").map(str::to_owned))
            .set_vpc_security_group_ids(desired.id_set(GROUPS).filter(|g| !g.is_empty()))
            .set_port(int(desired, "port")?)
            .set_backup_retention_period(int(desired, "backup_retention_period")?)
            .set_deletion_protection(desired.bool("deletion_protection"))
            .set_storage_encrypted(desired.bool("storage_encrypted"))
            .set_database_name(desired.str("database_name").map(str::to_owned))
            .set_tags(Some(create_tags(desired, ctx)))
            .send()
            .await
            .map_err(classify)?;
        // Readiness (`available`, minutes on AWS) is the engine's to wait for.
        let c = out
            .db_cluster()
            .ok_or_else(|| missing_id("CreateDBCluster", "DB cluster"))?;
        Ok(observed(c, &ctx.region, desired))
    }

    async fn ready(
        &self,
        ctx: &ApplyContext,
        id: &str,
        created: &Props,
    ) -> Result<Readiness, ProviderError> {
        let rds = self.clients.rds(&ctx.region).await;
        let c = describe(&rds, id).await?;
        Ok(match c.status() {
            Some("available") => Readiness::Ready(Some(observed(&c, &ctx.region, created))),
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
        let old = before.str("db_cluster_identifier").unwrap_or(id);
        let rename = old != id;
        let stated = |k: &&str| !INSTRUCTIONS.contains(k);
        let keys: Vec<&str> = SCHEMA
            .columns
            .iter()
            .map(|c| c.name)
            .filter(stated)
            .collect();
        let password = after.str("master_user_password");
        if !rename && password.is_none() && !keys.iter().any(|k| changed(before, after, k)) {
            // Only instructions changed: nothing to tell AWS. The row keeps
            // what it has (the keys of the instructions are left out, so
            // the write-back leaves them as the user set them).
            let mut p = after.clone();
            for k in INSTRUCTIONS {
                p.remove(k);
            }
            p.remove("master_user_password");
            return Ok(p);
        }
        let rds = self.clients.rds(&ctx.region).await;
        let set = |k: &str| changed(before, after, k);
        let groups = after
            .id_set(GROUPS)
            .filter(|g| before.id_set(GROUPS).as_ref() != Some(g));
        let modify = rename
            || password.is_some()
            || groups.is_some()
            || [
                "engine_version",
                "manage_master_user_password",
                "port",
                "backup_retention_period",
                "deletion_protection",
            ]
            .iter()
            .any(|k| set(k));
        if modify {
            rds.modify_db_cluster()
                .db_cluster_identifier(old)
                .set_new_db_cluster_identifier(rename.then(|| id.to_owned()))
                // The row names the cluster by its new name at once.
                .apply_immediately(rename || after.bool("apply_immediately").unwrap_or(true))
                .set_engine_version(
                    after
                        .str("engine_version")
                        .filter(|_| set("engine_version"))
                        .map(str::to_owned),
                )
                .set_allow_major_version_upgrade(set("engine_version").then_some(true))
                .set_master_user_password(password.map(str::to_owned))
                .set_manage_master_user_password(
                    after
                        .bool("manage_master_user_password")
                        .filter(|_| set("manage_master_user_password")),
                )
                .set_port(int(after, "port")?.filter(|_| set("port")))
                .set_backup_retention_period(
                    int(after, "backup_retention_period")?
                        .filter(|_| set("backup_retention_period")),
                )
                .set_deletion_protection(
                    after
                        .bool("deletion_protection")
                        .filter(|_| set("deletion_protection")),
                )
                .set_vpc_security_group_ids(groups)
                .send()
                .await
                .map_err(classify)?;
        }
        let c = describe(&rds, id).await?;
        if set("tags") || set(infrasql_provider::STACK.name) {
            let arn = c
                .db_cluster_arn()
                .ok_or_else(|| ProviderError::invalid(format!("DB cluster {id} has no ARN")))?;
            update_tags(&rds, arn, before, after).await?;
            return Ok(observed(&describe(&rds, id).await?, &ctx.region, after));
        }
        Ok(observed(&c, &ctx.region, after))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        let choice = super::final_snapshot(id, current, &ctx.apply_id).ok_or_else(|| {
            ProviderError::invalid(format!(
                "DB cluster {id}: set skip_final_snapshot or final_snapshot_identifier (and COMMIT) before deleting it"
            ))
        })?;
        {
            let rds = self.clients.rds(&ctx.region).await;
            let call = rds.delete_db_cluster().db_cluster_identifier(id);
            let call = match choice {
                super::FinalSnapshot::Keep(name) => call
                    .skip_final_snapshot(false)
                    .final_db_snapshot_identifier(name),
                super::FinalSnapshot::Skip => call.skip_final_snapshot(true),
            };
            deleted(call.send().await)?;
        }
        self.wait_gone(&ctx.region, id).await
    }
}

impl DbCluster {
    /// Until AWS stops listing it, the cluster keeps its subnet group and
    /// security groups in use.
    async fn wait_gone(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_secs(1);
        loop {
            let status = {
                let rds = self.clients.rds(region).await;
                match if_found(describe(&rds, id).await)? {
                    None => return Ok(()),
                    Some(c) => c.status().unwrap_or("unknown").to_owned(),
                }
            };
            if started.elapsed() >= DELETE_WAIT {
                return Err(ProviderError::new(
                    ErrorClass::Retryable,
                    "WaitTimeout",
                    format!(
                        "DB cluster {id} was not deleted within {} min (still {status})",
                        DELETE_WAIT.as_secs() / 60
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    }
}
