//! What a DB instance looks like as a row: AWS's `DBInstance` → [`Props`].
//!
//! A change AWS has queued for the maintenance window (`ApplyImmediately`
//! false) is reported as the column's value: the row asked for it and AWS
//! accepted it, so it is not drift. Every queued value is also listed in
//! `pending_modified_values`, keyed by column name.
//!
//! The user's instructions (`apply_immediately`, `skip_final_snapshot`,
//! `final_snapshot_identifier`) and the password are never reported: they
//! are not AWS state, so sync neither overwrites them nor calls them drift.

use aws_sdk_rds::primitives::DateTimeFormat;
use aws_sdk_rds::types::{DbInstance, PendingModifiedValues};
use infrasql_provider::Props;
use serde_json::{json, Map, Value};

use crate::rds::put_tags;

fn text(s: Option<&str>) -> Value {
    match s {
        Some(s) if !s.is_empty() => Value::String(s.to_owned()),
        _ => Value::Null,
    }
}

/// The attached VPC security groups' ids, sorted, without those AWS is
/// removing (a detach in progress is the row's wish already).
pub(super) fn group_ids(db: &DbInstance) -> Vec<String> {
    let mut ids: Vec<String> = db
        .vpc_security_groups()
        .iter()
        .filter(|g| g.status() != Some("removing"))
        .filter_map(|g| g.vpc_security_group_id())
        .map(str::to_owned)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The queued values, keyed by the columns they will change.
fn pending(p: &PendingModifiedValues) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.to_owned(), v);
        }
    };
    put("db_instance_class", text(p.db_instance_class()));
    put("allocated_storage", json!(p.allocated_storage()));
    put("storage_type", text(p.storage_type()));
    put("engine", text(p.engine()));
    put("engine_version", text(p.engine_version()));
    put("multi_az", json!(p.multi_az()));
    put(
        "backup_retention_period",
        json!(p.backup_retention_period()),
    );
    put("db_subnet_group_name", text(p.db_subnet_group_name()));
    put("db_instance_identifier", text(p.db_instance_identifier()));
    put("endpoint_port", json!(p.port()));
    put("iops", json!(p.iops()));
    // AWS reports only that a new password waits, never the password.
    if p.master_user_password().is_some() {
        put("master_user_password", json!("(pending)"));
    }
    m
}

/// Columns whose queued value is reported as the column's value. The
/// identifier is not among them: the row is keyed by the name AWS answers to.
const PENDING_AS_VALUE: &[&str] = &[
    "db_instance_class",
    "allocated_storage",
    "storage_type",
    "engine_version",
    "multi_az",
    "backup_retention_period",
    "db_subnet_group_name",
];

/// The row AWS reports for `db`, in `region`.
pub(crate) fn props(db: &DbInstance, region: &str) -> Props {
    let mut p = Props::new();
    p.insert(
        "db_instance_identifier".into(),
        text(db.db_instance_identifier()),
    );
    p.insert("region".into(), json!(region));
    p.insert("engine".into(), text(db.engine()));
    p.insert("engine_version".into(), text(db.engine_version()));
    p.insert("db_instance_class".into(), text(db.db_instance_class()));
    p.insert("allocated_storage".into(), json!(db.allocated_storage()));
    p.insert("storage_type".into(), text(db.storage_type()));
    p.insert("storage_encrypted".into(), json!(db.storage_encrypted()));
    p.insert("master_username".into(), text(db.master_username()));
    p.insert(
        "manage_master_user_password".into(),
        json!(db.master_user_secret().is_some()),
    );
    p.insert(
        "publicly_accessible".into(),
        json!(db.publicly_accessible()),
    );
    p.insert("multi_az".into(), json!(db.multi_az()));
    p.insert(
        "backup_retention_period".into(),
        json!(db.backup_retention_period()),
    );
    p.insert(
        "deletion_protection".into(),
        json!(db.deletion_protection().unwrap_or(false)),
    );
    p.insert("vpc_security_group_ids".into(), json!(group_ids(db)));
    p.insert(
        "db_subnet_group_name".into(),
        text(db.db_subnet_group().and_then(|g| g.db_subnet_group_name())),
    );
    p.insert(
        "db_parameter_group_name".into(),
        text(
            db.db_parameter_groups()
                .first()
                .and_then(|g| g.db_parameter_group_name()),
        ),
    );
    p.insert(
        "db_cluster_identifier".into(),
        text(db.db_cluster_identifier()),
    );
    let endpoint = db.endpoint();
    p.insert(
        "endpoint_address".into(),
        text(endpoint.and_then(|e| e.address())),
    );
    p.insert(
        "endpoint_port".into(),
        json!(endpoint.and_then(|e| e.port())),
    );
    p.insert("status".into(), text(db.db_instance_status()));
    p.insert("arn".into(), text(db.db_instance_arn()));
    p.insert("resource_id".into(), text(db.dbi_resource_id()));
    p.insert("availability_zone".into(), text(db.availability_zone()));
    p.insert(
        "create_time".into(),
        db.instance_create_time()
            .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    p.insert(
        "master_user_secret_arn".into(),
        text(db.master_user_secret().and_then(|s| s.secret_arn())),
    );
    let queued = db
        .pending_modified_values()
        .map(pending)
        .unwrap_or_default();
    for k in PENDING_AS_VALUE {
        if let Some(v) = queued.get(*k) {
            p.insert((*k).to_owned(), v.clone());
        }
    }
    p.insert("pending_modified_values".into(), Value::Object(queued));
    put_tags(&mut p, db.tag_list());
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::types::{Endpoint, VpcSecurityGroupMembership};

    fn db() -> aws_sdk_rds::types::builders::DbInstanceBuilder {
        DbInstance::builder()
            .db_instance_identifier("shop")
            .db_instance_class("db.t3.micro")
            .allocated_storage(20)
            .endpoint(Endpoint::builder().address("shop.x.rds").port(5432).build())
    }

    #[test]
    fn a_queued_change_is_the_columns_value_and_listed_as_pending() {
        let d = db()
            .pending_modified_values(
                PendingModifiedValues::builder()
                    .db_instance_class("db.t3.large")
                    .allocated_storage(50)
                    .master_user_password("****")
                    .build(),
            )
            .build();
        let p = props(&d, "us-east-1");
        assert_eq!(p["db_instance_class"], json!("db.t3.large"));
        assert_eq!(p["allocated_storage"], json!(50));
        assert_eq!(
            p["pending_modified_values"],
            json!({"db_instance_class": "db.t3.large", "allocated_storage": 50,
                   "master_user_password": "(pending)"})
        );
        assert!(!p.contains_key("master_user_password"), "never a password");
    }

    #[test]
    fn nothing_queued_is_an_empty_object_and_the_current_values() {
        let p = props(&db().build(), "us-east-1");
        assert_eq!(p["db_instance_class"], json!("db.t3.micro"));
        assert_eq!(p["pending_modified_values"], json!({}));
        assert_eq!(p["endpoint_address"], json!("shop.x.rds"));
        assert_eq!(p["endpoint_port"], json!(5432));
    }

    #[test]
    fn groups_being_removed_are_not_reported_and_the_rest_are_sorted() {
        let g = |id: &str, status: &str| {
            VpcSecurityGroupMembership::builder()
                .vpc_security_group_id(id)
                .status(status)
                .build()
        };
        let d = db()
            .vpc_security_groups(g("sg-b", "active"))
            .vpc_security_groups(g("sg-c", "removing"))
            .vpc_security_groups(g("sg-a", "adding"))
            .build();
        assert_eq!(group_ids(&d), vec!["sg-a", "sg-b"]);
    }

    #[test]
    fn instructions_and_secrets_are_never_reported() {
        let p = props(&db().build(), "us-east-1");
        for k in [
            "apply_immediately",
            "skip_final_snapshot",
            "final_snapshot_identifier",
            "master_user_password",
        ] {
            assert!(!p.contains_key(k), "{k} is not AWS state");
        }
    }
}
