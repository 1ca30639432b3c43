//! An in-place change as one ModifyDBInstance: only what changed between
//! `before` and `after`, so an unchanged value is never sent (AWS would
//! queue or apply it again, and some, like the class, restart the
//! database).
//!
//! The rename (`NewDBInstanceIdentifier`) goes in the same call: the call
//! names the database by its old identifier (`before`'s), AWS answers to the
//! new one afterwards. The engine passes the new name as the update's id.

use aws_sdk_rds::operation::modify_db_instance::builders::ModifyDBInstanceFluentBuilder;
use infrasql_provider::{Props, PropsExt};
use serde_json::Value;

fn differs(before: &Props, after: &Props, key: &str) -> bool {
    let null = |v: Option<&Value>| matches!(v, None | Some(Value::Null));
    let (b, a) = (before.get(key), after.get(key));
    !(b == a || null(b) && null(a))
}

/// The new text value of `key`, if it changed to a value.
fn new_str(before: &Props, after: &Props, key: &str) -> Option<String> {
    differs(before, after, key)
        .then(|| after.str(key).map(str::to_owned))
        .flatten()
}

fn new_bool(before: &Props, after: &Props, key: &str) -> Option<bool> {
    differs(before, after, key)
        .then(|| after.bool(key))
        .flatten()
}

fn new_i32(before: &Props, after: &Props, key: &str) -> Option<i32> {
    differs(before, after, key)
        .then(|| after.i64(key).and_then(|n| i32::try_from(n).ok()))
        .flatten()
}

/// What one ModifyDBInstance carries; `None` fields are left as they are.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Modification {
    pub new_identifier: Option<String>,
    pub engine_version: Option<String>,
    pub db_instance_class: Option<String>,
    pub allocated_storage: Option<i32>,
    pub storage_type: Option<String>,
    pub master_user_password: Option<String>,
    pub manage_master_user_password: Option<bool>,
    pub publicly_accessible: Option<bool>,
    pub multi_az: Option<bool>,
    pub backup_retention_period: Option<i32>,
    pub deletion_protection: Option<bool>,
    pub db_subnet_group_name: Option<String>,
    pub db_parameter_group_name: Option<String>,
    pub vpc_security_group_ids: Option<Vec<String>>,
}

impl Modification {
    /// The change from `before` to `after`; `id` is the (possibly new) name.
    pub fn between(id: &str, before: &Props, after: &Props) -> Modification {
        let old_id = before.str("db_instance_identifier").unwrap_or(id);
        let groups = after
            .id_set("vpc_security_group_ids")
            .filter(|g| before.id_set("vpc_security_group_ids").as_ref() != Some(g));
        Modification {
            new_identifier: (old_id != id).then(|| id.to_owned()),
            engine_version: new_str(before, after, "engine_version"),
            db_instance_class: new_str(before, after, "db_instance_class"),
            allocated_storage: new_i32(before, after, "allocated_storage"),
            storage_type: new_str(before, after, "storage_type"),
            // Write-only: any value in `after` is a new password to set.
            master_user_password: after.str("master_user_password").map(str::to_owned),
            manage_master_user_password: new_bool(before, after, "manage_master_user_password"),
            publicly_accessible: new_bool(before, after, "publicly_accessible"),
            multi_az: new_bool(before, after, "multi_az"),
            backup_retention_period: new_i32(before, after, "backup_retention_period"),
            deletion_protection: new_bool(before, after, "deletion_protection"),
            db_subnet_group_name: new_str(before, after, "db_subnet_group_name"),
            db_parameter_group_name: new_str(before, after, "db_parameter_group_name"),
            vpc_security_group_ids: groups,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Modification::default()
    }

    /// The call, on the database's current (old) identifier.
    pub fn request(
        self,
        call: ModifyDBInstanceFluentBuilder,
        apply_immediately: bool,
    ) -> ModifyDBInstanceFluentBuilder {
        call.apply_immediately(apply_immediately)
            .set_new_db_instance_identifier(self.new_identifier)
            .set_engine_version(self.engine_version)
            .set_db_instance_class(self.db_instance_class)
            .set_allocated_storage(self.allocated_storage)
            .set_storage_type(self.storage_type)
            .set_master_user_password(self.master_user_password)
            .set_manage_master_user_password(self.manage_master_user_password)
            .set_publicly_accessible(self.publicly_accessible)
            .set_multi_az(self.multi_az)
            .set_backup_retention_period(self.backup_retention_period)
            .set_deletion_protection(self.deletion_protection)
            .set_db_subnet_group_name(self.db_subnet_group_name)
            .set_db_parameter_group_name(self.db_parameter_group_name)
            .set_vpc_security_group_ids(self.vpc_security_group_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Props {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn only_what_changed_is_sent() {
        let before = row(
            json!({"db_instance_identifier": "shop", "db_instance_class": "db.t3.micro",
            "allocated_storage": 20, "multi_az": false, "vpc_security_group_ids": ["sg-1"]}),
        );
        let after = row(
            json!({"db_instance_identifier": "shop", "db_instance_class": "db.t3.large",
            "allocated_storage": 20, "multi_az": false, "vpc_security_group_ids": ["sg-1"]}),
        );
        let m = Modification::between("shop", &before, &after);
        assert_eq!(
            m,
            Modification {
                db_instance_class: Some("db.t3.large".into()),
                ..Modification::default()
            }
        );
    }

    #[test]
    fn a_rename_names_the_new_identifier_and_an_instruction_alone_sends_nothing() {
        let before = row(json!({"db_instance_identifier": "shop", "apply_immediately": true}));
        let renamed = row(json!({"db_instance_identifier": "store", "apply_immediately": true}));
        assert_eq!(
            Modification::between("store", &before, &renamed).new_identifier,
            Some("store".into())
        );
        let told = row(
            json!({"db_instance_identifier": "shop", "apply_immediately": false,
            "skip_final_snapshot": true}),
        );
        assert!(Modification::between("shop", &before, &told).is_empty());
    }

    #[test]
    fn the_group_set_is_sent_whole_when_it_changed() {
        let before = row(json!({"vpc_security_group_ids": ["sg-2", "sg-1"]}));
        let same = row(json!({"vpc_security_group_ids": ["sg-1", "sg-2"]}));
        let more = row(json!({"vpc_security_group_ids": ["sg-1", "sg-3", "sg-2"]}));
        assert!(Modification::between("x", &before, &same).is_empty());
        assert_eq!(
            Modification::between("x", &before, &more).vpc_security_group_ids,
            Some(vec!["sg-1".into(), "sg-2".into(), "sg-3".into()])
        );
    }
}
