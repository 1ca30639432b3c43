//! `aws.db_instance`: an RDS database instance.
//!
//! In place (ModifyDBInstance, only what changed, see `modify`): class,
//! storage, engine version, groups (the whole set of
//! `aws.db_instance_security_group`), parameter and subnet group, backup
//! retention, multi-AZ, public access, deletion protection, the password
//! (write-only) and whether AWS manages it, and the identifier (a rename,
//! `NewDBInstanceIdentifier`). Tags by ARN. The engine, master username,
//! encryption and region force a replace; a database holds data, so that
//! needs `SET infra.allow_replace = on`, and the new one needs a new
//! identifier (the schema's trigger says so at the statement).
//!
//! `apply_immediately` (default true: COMMIT means done) is sent with every
//! modification; when false AWS queues the change for the maintenance
//! window and the listing reports the queued values (see `observe`). It
//! and the two final-snapshot columns are the user's instructions: never
//! reported, and an UPDATE of only them makes no AWS call.
//!
//! Delete uses the row's choice: `final_snapshot_identifier` (a snapshot is
//! kept; it wins if both are set) or `skip_final_snapshot`. The schema's
//! trigger refuses a delete with neither, or with deletion protection on,
//! before COMMIT; a delete not made from a row (the undo of a create,
//! recovery, sync's revert of a database made outside infrasql) keeps a
//! snapshot named `<identifier>-final-<unix time>`, so nothing is lost
//! unasked. The delete waits until AWS no longer lists the database, so a
//! subnet group deleted after it in the same plan is no longer in use.

mod delete;
mod modify;
mod observe;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_rds::types::DbInstance as AwsDbInstance;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, MemberSet, Props, PropsExt, ProviderError,
    Readiness, ReplaceOrder, Resource, ResourceSchema,
};

use self::modify::Modification;
use self::observe::props;
use super::{create_tags, update_tags};
use crate::sdk::{all_pages, classify, described, missing_id, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "db_instance",
    display: "DB instance",
    doc: "An RDS database instance. Class, storage, groups, backup retention and the password change in place (at once, or in the maintenance window when apply_immediately is false); a new identifier renames it; a new engine, master username or encryption replaces it (needs infra.allow_replace). A DELETE needs skip_final_snapshot or final_snapshot_identifier set, and deletion protection off, in an earlier COMMIT.",
    columns: &[
        Column::new(
            "db_instance_identifier",
            Name,
            "The identifier you choose (lower case; unique among this account's DB instances in the region; unique across all regions here, since references name it alone); an UPDATE renames the database in place",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new("engine", ReplaceOnChange, "Database engine (postgres, mysql, mariadb...)"),
        Column::new(
            "engine_version",
            Desired,
            "Engine version; NULL at create means AWS's default (then filled in); an upgrade is in place",
        ),
        Column::new(
            "db_instance_class",
            Desired,
            "Instance class (db.t3.micro...); changed in place",
        ),
        Column::new(
            "allocated_storage",
            Desired,
            "Storage in GiB; grows in place (AWS never shrinks it)",
        ),
        Column::new(
            "storage_type",
            Desired,
            "gp2, gp3, io1, io2 or standard; NULL at create means AWS's default (then filled in)",
        ),
        Column::new(
            "storage_encrypted",
            ReplaceOnChange,
            "Whether the storage is encrypted; NULL at create means AWS's default (then filled in)",
        ),
        Column::new("master_username", ReplaceOnChange, "The master user's name"),
        Column::new(
            "master_user_password",
            WriteOnly,
            "The master user's password: used at create, or set to change it; never stored",
        ),
        Column::new(
            "manage_master_user_password",
            Desired,
            "true: AWS keeps the master password in Secrets Manager (see master_user_secret_arn) instead of master_user_password",
        ),
        Column::reference(
            "db_subnet_group_name",
            Desired,
            "db_subnet_group",
            "The DB subnet group (its VPC and subnets); NULL means AWS's default (sync fills in which); changed in place",
        ),
        Column::reference(
            "db_parameter_group_name",
            Desired,
            "db_parameter_group",
            "The DB parameter group; NULL means the engine's default group (sync fills in which); changed in place (some parameters need a reboot, which infrasql does not do)",
        ),
        // Desired, not replace: a rename of the cluster reaches the row by
        // ON UPDATE CASCADE, and AWS renames the membership itself, so that
        // change makes no call. Moving an instance to another cluster is
        // refused in schema/0640 (AWS has no such call).
        Column::reference(
            "db_cluster_identifier",
            Desired,
            "db_cluster",
            "The Aurora DB cluster it joins, set at INSERT (its engine must be the cluster's; the cluster holds the data, so its delete takes no final snapshot); NULL for a standalone instance; follows a rename of the cluster, and cannot be changed otherwise",
        ),
        Column::member_set(
            "vpc_security_group_ids",
            "security_group",
            MemberSet {
                table: "db_instance_security_group",
                owner: "db_instance_identifier",
                member: "group_id",
            },
            "Its VPC security groups, one row each; none means the VPC's default group (sync then adds its row)",
        ),
        Column::new(
            "publicly_accessible",
            Desired,
            "Whether it has a public address; NULL at create means AWS's default (then filled in)",
        ),
        Column::new(
            "multi_az",
            Desired,
            "A standby in another availability zone; NULL at create means off (then filled in)",
        ),
        Column::new(
            "backup_retention_period",
            Desired,
            "Days of automated backups (0 turns them off); NULL at create means AWS's default (then filled in)",
        ),
        Column::new(
            "deletion_protection",
            Desired,
            "While true, AWS refuses to delete it (and infrasql refuses the DELETE)",
        ),
        Column::new(
            "apply_immediately",
            Desired,
            "Your instruction, not AWS state: true (the default) applies a change at COMMIT; false queues it for the maintenance window (the row shows the queued values, which are not drift)",
        ),
        Column::new(
            "skip_final_snapshot",
            Desired,
            "Your instruction, not AWS state: true deletes it without a final snapshot; a DELETE needs this or final_snapshot_identifier, set in an earlier COMMIT",
        ),
        Column::new(
            "final_snapshot_identifier",
            Desired,
            "Your instruction, not AWS state: the name of the snapshot taken when it is deleted; a DELETE needs this or skip_final_snapshot, set in an earlier COMMIT",
        ),
        Column::new("tags", Desired, "Tags, as a JSON object"),
        Column::new("endpoint_address", CloudAssigned, "The address to connect to"),
        Column::new("endpoint_port", CloudAssigned, "The port to connect to"),
        Column::new(
            "status",
            CloudAssigned,
            "creating, available, modifying, backing-up, deleting...",
        ),
        Column::new("arn", CloudAssigned, "The instance's ARN"),
        Column::new(
            "resource_id",
            CloudAssigned,
            "AWS's own id for it (DbiResourceId, db-...), which a rename keeps",
        ),
        Column::new("availability_zone", CloudAssigned, "Its availability zone"),
        Column::new("create_time", CloudAssigned, "When it was created"),
        Column::new(
            "pending_modified_values",
            CloudAssigned,
            "Changes AWS has queued for the maintenance window, by column name ({} when none)",
        ),
        Column::new(
            "master_user_secret_arn",
            CloudAssigned,
            "The Secrets Manager secret holding the master password, when manage_master_user_password is true",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["db_instance_identifier"],
    stateful: Some("the data in the database (the old instance is deleted, with a final snapshot only if its row asks for one)"),
};

/// DescribeDBInstances page size: AWS's maximum, for the fewest calls per sync.
const PAGE_SIZE: i32 = 100;

pub struct DbInstance {
    clients: Arc<Clients>,
}

impl DbInstance {
    pub fn new(clients: Arc<Clients>) -> Self {
        DbInstance { clients }
    }

    /// The database named `id`, as AWS reports it now.
    async fn describe(&self, region: &str, id: &str) -> Result<AwsDbInstance, ProviderError> {
        let rds = self.clients.rds(region).await;
        described(
            rds.describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await,
            |o| o.db_instances().first().cloned(),
            || gone(id),
        )
    }
}

/// What `create`, `ready` and `update` report: the cloud's view, except a
/// group the row left NULL stays NULL (AWS's default group need not be a
/// row yet, and the foreign key would fail the COMMIT; sync adopts it).
fn observed(db: &AwsDbInstance, region: &str, row: &Props) -> Props {
    let mut p = props(db, region);
    for k in ["db_subnet_group_name", "db_parameter_group_name"] {
        if row.str(k).is_none() {
            p.insert(k.into(), serde_json::Value::Null);
        }
    }
    p
}

fn gone(id: &str) -> ProviderError {
    not_found(&SCHEMA, "DBInstanceNotFound", id)
}

#[async_trait]
impl Resource for DbInstance {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let rds = self.clients.rds(region).await;
        let found = all_pages(
            rds.describe_db_instances()
                .max_records(PAGE_SIZE)
                .into_paginator()
                .items()
                .send(),
        )
        .await?;
        Ok(found
            .iter()
            // AWS lists a database it is deleting for a while: gone already.
            .filter(|db| db.db_instance_status() != Some("deleting"))
            .map(|db| props(db, region))
            .collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let id = desired.req_str("db_instance_identifier")?;
        let int = |k: &str| desired.i64(k).and_then(|n| i32::try_from(n).ok());
        let made = {
            let rds = self.clients.rds(&ctx.region).await;
            rds.create_db_instance()
                .db_instance_identifier(id)
                .engine(desired.req_str("engine")?)
                .set_engine_version(desired.str("engine_version").map(str::to_owned))
                .db_instance_class(desired.req_str("db_instance_class")?)
                .set_allocated_storage(int("allocated_storage"))
                .set_storage_type(desired.str("storage_type").map(str::to_owned))
                .set_storage_encrypted(desired.bool("storage_encrypted"))
                .set_master_username(desired.str("master_username").map(str::to_owned))
                .set_master_user_password(desired.str("master_user_password").map(str::to_owned))
                .set_manage_master_user_password(desired.bool("manage_master_user_password"))
                .set_db_subnet_group_name(desired.str("db_subnet_group_name").map(str::to_owned))
                .set_db_parameter_group_name(
                    desired.str("db_parameter_group_name").map(str::to_owned),
                )
                .set_db_cluster_identifier(desired.str("db_cluster_identifier").map(str::to_owned))
                // The whole set in the one create call; empty: the default group.
                .set_vpc_security_group_ids(
                    desired
                        .id_set("vpc_security_group_ids")
                        .filter(|g| !g.is_empty()),
                )
                .set_publicly_accessible(desired.bool("publicly_accessible"))
                .set_multi_az(desired.bool("multi_az"))
                .set_backup_retention_period(int("backup_retention_period"))
                .set_deletion_protection(desired.bool("deletion_protection"))
                // The row's tags and the apply id (for crash recovery).
                .set_tags(Some(create_tags(desired, ctx)))
                .send()
                .await
                .map_err(classify)?
        };
        // Readiness (`available`, minutes on AWS) is the engine's to wait
        // for (`ready`), with progress and a way to stop waiting.
        let db = made
            .db_instance()
            .filter(|d| d.db_instance_identifier().is_some())
            .ok_or_else(|| missing_id("CreateDBInstance", "DB instance"))?;
        Ok(observed(db, &ctx.region, desired))
    }

    async fn ready(
        &self,
        ctx: &ApplyContext,
        id: &str,
        created: &Props,
    ) -> Result<Readiness, ProviderError> {
        let db = self.describe(&ctx.region, id).await?;
        Ok(match db.db_instance_status() {
            Some("available") => Readiness::Ready(Some(observed(&db, &ctx.region, created))),
            status => Readiness::Pending {
                status: status.unwrap_or("unknown").to_owned(),
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
        // `id` is the new name on a rename; AWS knows the old one until the
        // call below.
        let old_id = before.str("db_instance_identifier").unwrap_or(id);
        let change = Modification::between(id, before, after);
        let tags = super::desired_tags(before) != super::desired_tags(after);
        if change.is_empty() && !tags {
            // Only the user's instructions changed: nothing to tell AWS.
            return Ok(Props::new());
        }
        if tags {
            // By the ARN before a rename (the ARN holds the identifier).
            let arn = match before.str("arn") {
                Some(a) => a.to_owned(),
                None => self
                    .describe(&ctx.region, old_id)
                    .await?
                    .db_instance_arn()
                    .map(str::to_owned)
                    .ok_or_else(|| gone(old_id))?,
            };
            let rds = self.clients.rds(&ctx.region).await;
            update_tags(&rds, &arn, before, after).await?;
        }
        if change.is_empty() {
            let db = self.describe(&ctx.region, id).await?;
            return Ok(observed(&db, &ctx.region, after));
        }
        let now = after.bool("apply_immediately").unwrap_or(true);
        let rds = self.clients.rds(&ctx.region).await;
        let answer = change
            .request(rds.modify_db_instance().db_instance_identifier(old_id), now)
            .send()
            .await
            .map_err(classify)?;
        let db = answer
            .db_instance()
            .ok_or_else(|| missing_id("ModifyDBInstance", "DB instance"))?;
        Ok(observed(db, &ctx.region, after))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        self.delete_with_choice(ctx, id, current).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_but_the_instructions_and_the_password_is_listed() {
        let p = props(
            &AwsDbInstance::builder()
                .db_instance_identifier("shop")
                .build(),
            "us-east-1",
        );
        for c in SCHEMA.columns {
            let instruction = matches!(
                c.name,
                "apply_immediately" | "skip_final_snapshot" | "final_snapshot_identifier"
            );
            if c.kind != WriteOnly && c.name != "synced_at" && !instruction {
                assert!(p.contains_key(c.name), "the listing reports {}", c.name);
            }
        }
    }
}
