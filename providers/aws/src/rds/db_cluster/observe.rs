//! What the cluster's listing reports, as row columns: every column but
//! the write-only password and the user's instructions (`INSTRUCTIONS`),
//! which are not AWS state.

use aws_sdk_rds::primitives::DateTimeFormat;
use aws_sdk_rds::types::DbCluster as AwsCluster;
use infrasql_provider::{Props, PropsExt};
use serde_json::{json, Value};

use crate::rds::put_tags;

fn text(v: Option<&str>) -> Value {
    v.filter(|s| !s.is_empty())
        .map(|s| json!(s))
        .unwrap_or(Value::Null)
}

/// The attached groups' ids, sorted once each.
fn group_ids(c: &AwsCluster) -> Vec<&str> {
    let mut ids: Vec<&str> = c
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

pub(super) fn props(c: &AwsCluster, region: &str) -> Props {
    let mut p = Props::new();
    p.insert(
        "db_cluster_identifier".into(),
        text(c.db_cluster_identifier()),
    );
    p.insert("region".into(), json!(region));
    p.insert("engine".into(), text(c.engine()));
    p.insert("engine_version".into(), text(c.engine_version()));
    p.insert("master_username".into(), text(c.master_username()));
    let secret = c.master_user_secret().and_then(|s| s.secret_arn());
    p.insert(
        "manage_master_user_password".into(),
        json!(c.master_user_secret().is_some()),
    );
    p.insert("master_user_secret_arn".into(), text(secret));
    p.insert("db_subnet_group_name".into(), text(c.db_subnet_group()));
    p.insert("vpc_security_group_ids".into(), json!(group_ids(c)));
    p.insert("port".into(), json!(c.port()));
    p.insert(
        "backup_retention_period".into(),
        json!(c.backup_retention_period()),
    );
    p.insert(
        "deletion_protection".into(),
        json!(c.deletion_protection().unwrap_or(false)),
    );
    p.insert(
        "storage_encrypted".into(),
        json!(c.storage_encrypted().unwrap_or(false)),
    );
    p.insert("database_name".into(), text(c.database_name()));
    p.insert("endpoint".into(), text(c.endpoint()));
    p.insert("reader_endpoint".into(), text(c.reader_endpoint()));
    p.insert("status".into(), text(c.status()));
    p.insert("arn".into(), text(c.db_cluster_arn()));
    p.insert("resource_id".into(), text(c.db_cluster_resource_id()));
    p.insert(
        "create_time".into(),
        c.cluster_create_time()
            .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    put_tags(&mut p, c.tag_list());
    p
}

/// What `create` and `update` report: the cloud's view, except a NULL
/// subnet group stays NULL. AWS reports the default VPC's group
/// (`default`), which need not be a row: writing it back would break the
/// foreign key after the cluster exists; sync adopts it once it is a row.
pub(super) fn observed(c: &AwsCluster, region: &str, desired: &Props) -> Props {
    let mut p = props(c, region);
    if desired.str("db_subnet_group_name").is_none() {
        p.insert("db_subnet_group_name".into(), Value::Null);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::db_cluster::{INSTRUCTIONS, SCHEMA};
    use aws_sdk_rds::types::VpcSecurityGroupMembership;
    use infrasql_provider::ColumnKind::WriteOnly;

    #[test]
    fn the_listing_reports_every_state_column_and_no_instruction() {
        let c = AwsCluster::builder()
            .db_cluster_identifier("c1")
            .vpc_security_groups(
                VpcSecurityGroupMembership::builder()
                    .vpc_security_group_id("sg-b")
                    .build(),
            )
            .vpc_security_groups(
                VpcSecurityGroupMembership::builder()
                    .vpc_security_group_id("sg-a")
                    .build(),
            )
            .build();
        let p = props(&c, "us-east-1");
        for col in SCHEMA.columns {
            let listed = col.kind != WriteOnly
                && col.name != "synced_at"
                && !INSTRUCTIONS.contains(&col.name);
            assert_eq!(p.contains_key(col.name), listed, "{}", col.name);
        }
        assert_eq!(p["vpc_security_group_ids"], json!(["sg-a", "sg-b"]));
        assert_eq!(p["manage_master_user_password"], json!(false));
    }

    #[test]
    fn a_null_subnet_group_stays_null_after_create() {
        let c = AwsCluster::builder()
            .db_cluster_identifier("c1")
            .db_subnet_group("default")
            .build();
        let none = Props::new();
        assert_eq!(
            observed(&c, "us-east-1", &none)["db_subnet_group_name"],
            Value::Null
        );
        let mut named = Props::new();
        named.insert("db_subnet_group_name".into(), json!("default"));
        assert_eq!(
            observed(&c, "us-east-1", &named)["db_subnet_group_name"],
            json!("default")
        );
    }
}
