//! Which replaces may run: dependents and data, decided from the rows.

use serde_json::json;

use super::super::tests::{ins, p, schemas, upd};
use super::super::{plan, PlanError, RowChange};
use super::*;

fn dep(table: &str, id: &str, parent_table: &str, parent_id: &str) -> Dependent {
    Dependent {
        table: table.into(),
        id: id.into(),
        name: Some("a".into()),
        parent_table: parent_table.into(),
        parent_id: parent_id.into(),
    }
}

fn vpc_cidr_change() -> RowChange {
    upd(
        "aws.vpc",
        json!({"vpc_id": "vpc-1", "name": "main", "cidr_block": "10.0.0.0/16"}),
        json!({"vpc_id": "vpc-1", "name": "main", "cidr_block": "10.1.0.0/16"}),
    )
}

fn group_description_change() -> RowChange {
    upd(
        "aws.security_group",
        json!({"group_id": "sg-1", "group_name": "web", "description": "a", "vpc_id": "vpc-1"}),
        json!({"group_id": "sg-1", "group_name": "web", "description": "b", "vpc_id": "vpc-1"}),
    )
}

fn check(changes: &[RowChange], facts: &Facts) -> Result<(), PlanError> {
    check_replaces(&plan(changes, &schemas()).unwrap(), &schemas(), facts)
}

#[test]
fn a_parent_replace_with_rows_still_using_it_is_refused_and_says_why() {
    let facts = Facts {
        dependents: vec![dep("aws.subnet", "subnet-1", "aws.vpc", "vpc-1")],
        allow_replace: true,
    };
    let err = check(&[vpc_cidr_change()], &facts).unwrap_err();
    assert_eq!(err.sqlstate(), "2BP01");
    let text = format!(
        "{err} | {} | {}",
        err.detail().unwrap(),
        err.hint().unwrap()
    );
    for want in [
        "cannot replace VPC \"main\" (aws.vpc vpc-1): 1 row still uses it",
        "A change of cidr_block replaces the VPC: a new one is created, then the old one deleted",
        "aws.subnet \"a\" (subnet-1)",
        "Nothing was applied",
        "Delete those rows in the same transaction",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    // The dependent of another resource is no obstacle.
    let other = Facts {
        dependents: vec![dep("aws.subnet", "subnet-1", "aws.vpc", "vpc-9")],
        allow_replace: false,
    };
    assert_eq!(check(&[vpc_cidr_change()], &other), Ok(()));
}

#[test]
fn children_created_or_replaced_with_a_create_first_parent_go_along() {
    let new_child = ins(
        "aws.subnet",
        json!({"subnet_id": "pending-s", "vpc_id": "vpc-1", "cidr_block": "10.1.1.0/24"}),
    );
    let replaced_child = upd(
        "aws.subnet",
        json!({"subnet_id": "subnet-1", "vpc_id": "vpc-1", "cidr_block": "10.0.1.0/24"}),
        json!({"subnet_id": "subnet-1", "vpc_id": "vpc-1", "cidr_block": "10.1.1.0/24"}),
    );
    let facts = Facts {
        dependents: vec![
            dep("aws.subnet", "pending-s", "aws.vpc", "vpc-1"),
            dep("aws.subnet", "subnet-1", "aws.vpc", "vpc-1"),
        ],
        allow_replace: false,
    };
    assert_eq!(
        check(&[vpc_cidr_change(), new_child, replaced_child], &facts),
        Ok(())
    );
}

#[test]
fn a_delete_first_replace_refuses_every_old_user_even_replaced_or_deleted_ones() {
    let in_use = Facts {
        dependents: vec![dep("aws.disk", "disk-1", "aws.security_group", "sg-1")],
        allow_replace: true,
    };
    let err = check(&[group_description_change()], &in_use).unwrap_err();
    let text = format!(
        "{err} | {} | {}",
        err.detail().unwrap(),
        err.hint().unwrap()
    );
    for want in [
        "cannot replace security group (aws.security_group sg-1)",
        "while vpc_id and group_name stay the same, the old one must be deleted before the new one is created (a group name is unique in its VPC)",
        "aws.disk \"a\" (disk-1)",
        "or also change vpc_id or group_name",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }

    // Replacing the disk too does not help: its old half is deleted last,
    // after the group had to be gone.
    let disk_too = upd(
        "aws.disk",
        json!({"disk_id": "disk-1", "size": 1, "group_id": "sg-1"}),
        json!({"disk_id": "disk-1", "size": 2, "group_id": "sg-1"}),
    );
    assert!(check(&[group_description_change(), disk_too], &in_use).is_err());

    // A disk deleted in the same transaction is not in the facts (they are
    // the rows after it), but it still used the group until the last phase.
    let gone = RowChange {
        table: "aws.disk".into(),
        before: Some(p(json!({"disk_id": "disk-1", "group_id": "sg-1"}))),
        after: None,
    };
    let err = check(&[group_description_change(), gone], &Facts::default()).unwrap_err();
    assert!(err.to_string().contains("1 row still uses it"), "{err}");

    // A new disk in the new group is fine.
    let new_disk = ins(
        "aws.disk",
        json!({"disk_id": "pending-d", "group_id": "sg-1"}),
    );
    let facts = Facts {
        dependents: vec![dep("aws.disk", "pending-d", "aws.security_group", "sg-1")],
        allow_replace: false,
    };
    assert_eq!(
        check(&[group_description_change(), new_disk], &facts),
        Ok(())
    );
}

#[test]
fn long_lists_of_dependents_are_cut_short() {
    let facts = Facts {
        dependents: (0..8)
            .map(|i| dep("aws.subnet", &format!("subnet-{i}"), "aws.vpc", "vpc-1"))
            .collect(),
        allow_replace: false,
    };
    let err = check(&[vpc_cidr_change()], &facts).unwrap_err();
    let detail = err.detail().unwrap();
    assert!(
        detail.contains("subnet-4") && !detail.contains("subnet-5"),
        "{detail}"
    );
    assert!(detail.contains("and 3 more"), "{detail}");
    assert!(err.to_string().contains("8 rows still use it"));
}

#[test]
fn replacing_data_needs_the_setting_and_deleting_it_does_not() {
    let resize = upd(
        "aws.disk",
        json!({"disk_id": "disk-1", "name": "db", "size": 1}),
        json!({"disk_id": "disk-1", "name": "db", "size": 2}),
    );
    let pl = plan(std::slice::from_ref(&resize), &schemas()).unwrap();
    assert!(needs_consent(&pl, &schemas()));
    let err = check(std::slice::from_ref(&resize), &Facts::default()).unwrap_err();
    assert_eq!(err.sqlstate(), "55000");
    assert_eq!(
        err.to_string(),
        "replacing disk \"db\" (aws.disk disk-1) would destroy the files on it"
    );
    assert!(err
        .detail()
        .unwrap()
        .contains("A change of size replaces the disk"));
    assert!(err.hint().unwrap().contains("SET infra.allow_replace = on"));
    let allowed = Facts {
        allow_replace: true,
        ..Facts::default()
    };
    assert_eq!(check(&[resize], &allowed), Ok(()));

    let delete = RowChange {
        table: "aws.disk".into(),
        before: Some(p(json!({"disk_id": "disk-1", "size": 1}))),
        after: None,
    };
    let pl = plan(std::slice::from_ref(&delete), &schemas()).unwrap();
    assert!(!needs_consent(&pl, &schemas()));
    assert_eq!(check(&[delete], &Facts::default()), Ok(()));
}

#[test]
fn every_aws_description_keeps_its_promises() {
    use infrasql_aws::ec2::*;
    let all = [
        &elastic_ip::SCHEMA,
        &instance::SCHEMA,
        &internet_gateway::SCHEMA,
        &key_pair::SCHEMA,
        &route::SCHEMA,
        &route_table::SCHEMA,
        &route_table_association::SCHEMA,
        &security_group::SCHEMA,
        &security_group_rule::SCHEMA,
        &subnet::SCHEMA,
        &vpc::SCHEMA,
    ];
    for s in all {
        assert_eq!(s.check(), Ok(()), "{}", s.qualified());
    }
    // The decisions docs/architecture.md explains.
    let deletes_first: Vec<&str> = all
        .iter()
        .filter(|s| matches!(s.replace_order, ReplaceOrder::DeleteFirst { .. }))
        .map(|s| s.table)
        .collect();
    assert_eq!(
        deletes_first,
        [
            "key_pair",
            "route_table_association",
            "security_group",
            "subnet"
        ]
    );
    let stateful: Vec<&str> = all
        .iter()
        .filter(|s| s.stateful.is_some())
        .map(|s| s.table)
        .collect();
    assert_eq!(stateful, ["elastic_ip", "instance"]);
}

#[test]
fn the_dependents_query_asks_every_table_that_references_the_replaced_type() {
    let pl = plan(&[vpc_cidr_change()], &schemas()).unwrap();
    let sql = dependents_query(&pl, &schemas()).unwrap();
    assert!(
        sql.contains(r#"FROM "aws"."subnet" WHERE "vpc_id" = E'vpc-1'"#),
        "{sql}"
    );
    assert!(
        sql.contains(r#"FROM "aws"."security_group" WHERE "vpc_id" = E'vpc-1'"#),
        "{sql}"
    );
    assert!(!sql.contains("disk"), "the disk references no VPC: {sql}");
    let update_only = upd(
        "aws.vpc",
        json!({"vpc_id": "vpc-1", "name": "a"}),
        json!({"vpc_id": "vpc-1", "name": "b"}),
    );
    let pl = plan(&[update_only], &schemas()).unwrap();
    assert_eq!(dependents_query(&pl, &schemas()), None);

    let s = |v: &str| Some(v.to_owned());
    let rows = vec![
        vec![
            s("aws.subnet"),
            s("subnet-1"),
            None,
            s("aws.vpc"),
            s("vpc-1"),
        ],
        vec![s("short")],
    ];
    assert_eq!(
        dependents_from(&rows),
        vec![Dependent {
            table: "aws.subnet".into(),
            id: "subnet-1".into(),
            name: None,
            parent_table: "aws.vpc".into(),
            parent_id: "vpc-1".into(),
        }]
    );
}
