//! Folding join-table changes into their owners' plan steps.

use super::super::tests::{ins, p, schemas};
use super::super::{plan, Action};
use super::*;
use infrasql_provider::{ColumnKind::*, ReplaceOrder};
use serde_json::json;

static SERVER: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "server",
    display: "server",
    doc: "",
    columns: &[
        Column::new("server_id", Identity, ""),
        Column::new("region", ReplaceOnChange, ""),
        Column::new("name", Desired, ""),
        Column::member_set(
            "group_ids",
            "security_group",
            MemberSet {
                table: "server_group",
                owner: "server_id",
                member: "group_id",
            },
            "",
        ),
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &[],
    stateful: None,
};

fn all() -> HashMap<String, &'static ResourceSchema> {
    let mut s = schemas();
    s.insert("aws.server".into(), &SERVER);
    s
}

type Raw = (String, Option<Props>, Option<Props>);

fn join_ins(server: &str, group: &str) -> Raw {
    (
        "aws.server_group".into(),
        None,
        Some(p(json!({"server_id": server, "group_id": group}))),
    )
}
fn join_del(server: &str, group: &str) -> Raw {
    (
        "aws.server_group".into(),
        Some(p(json!({"server_id": server, "group_id": group}))),
        None,
    )
}

fn now(server: &str, members: &[&str], row: Option<Value>) -> HashMap<SetKey, Current> {
    HashMap::from([(
        ("aws.server_group".to_string(), server.to_string()),
        Current {
            members: members.iter().map(|m| m.to_string()).collect(),
            row: row.map(p),
        },
    )])
}

#[test]
fn a_server_created_with_its_groups_is_one_create_carrying_every_group_after_the_groups() {
    let schemas = all();
    let sets = sets_by_join_table(&schemas);
    let changes = vec![
        ins(
            "aws.server",
            json!({"server_id": "pending-s-1", "name": "web"}),
        ),
        ins(
            "aws.security_group",
            json!({"group_id": "pending-sg-1", "group_name": "a"}),
        ),
    ];
    let raw = vec![
        join_ins("pending-s-1", "sg-c"),
        join_ins("pending-s-1", "pending-sg-1"),
        join_ins("pending-s-1", "sg-a"),
    ];
    assert_eq!(
        needed(&raw, &changes, &sets),
        vec![("aws.server_group".to_string(), "pending-s-1".to_string())]
    );
    let current = now(
        "pending-s-1",
        &["sg-c", "pending-sg-1", "sg-a"],
        Some(json!({})),
    );
    let folded = fold_sets(changes, &raw, &sets, &current);
    assert_eq!(folded.len(), 2, "the join rows are no steps of their own");
    assert_eq!(
        folded[0].after.as_ref().unwrap()["group_ids"],
        json!(["pending-sg-1", "sg-a", "sg-c"])
    );
    let planned = plan(&folded, &schemas).unwrap();
    let server = planned
        .steps
        .iter()
        .find(|s| s.table == "aws.server")
        .unwrap();
    let group = planned
        .steps
        .iter()
        .find(|s| s.table == "aws.security_group")
        .unwrap();
    assert_eq!(server.action, Action::Create);
    assert_eq!(
        server.depends_on,
        vec![group.step],
        "launched after its new group"
    );
}

#[test]
fn a_set_changed_by_itself_is_an_in_place_update_of_its_owner() {
    let schemas = all();
    let sets = sets_by_join_table(&schemas);
    let raw = vec![join_ins("s-1", "sg-b"), join_del("s-1", "sg-a")];
    let row = json!({"server_id": "s-1", "name": "web", "region": "us-east-1"});
    let current = now("s-1", &["sg-b", "sg-c"], Some(row));
    let folded = fold_sets(Vec::new(), &raw, &sets, &current);
    let planned = plan(&folded, &schemas).unwrap();
    assert_eq!(planned.steps.len(), 1);
    let s = &planned.steps[0];
    assert_eq!((s.action, s.id.as_str()), (Action::Update, "s-1"));
    assert_eq!(s.changes.len(), 1);
    assert_eq!(s.changes[0].field, "group_ids");
    assert_eq!(s.changes[0].before, json!(["sg-a", "sg-c"]));
    assert_eq!(s.changes[0].after, json!(["sg-b", "sg-c"]));
}

#[test]
fn a_member_added_and_removed_again_changes_nothing() {
    let schemas = all();
    let sets = sets_by_join_table(&schemas);
    let raw = vec![join_ins("s-1", "sg-b"), join_del("s-1", "sg-b")];
    let current = now("s-1", &["sg-a"], Some(json!({"server_id": "s-1"})));
    assert!(fold_sets(Vec::new(), &raw, &sets, &current).is_empty());
}

#[test]
fn deleting_the_owner_deletes_its_rows_without_an_update_and_after_its_groups() {
    let schemas = all();
    let sets = sets_by_join_table(&schemas);
    let changes = vec![
        RowChange {
            table: "aws.security_group".into(),
            before: Some(p(json!({"group_id": "sg-a"}))),
            after: None,
        },
        RowChange {
            table: "aws.server".into(),
            before: Some(p(json!({"server_id": "s-1"}))),
            after: None,
        },
    ];
    // ON DELETE CASCADE removed the join row.
    let raw = vec![join_del("s-1", "sg-a")];
    let current = now("s-1", &[], None);
    let folded = fold_sets(changes, &raw, &sets, &current);
    let planned = plan(&folded, &schemas).unwrap();
    let actions: Vec<_> = planned
        .steps
        .iter()
        .map(|s| (s.action, s.table.as_str(), s.depends_on.clone()))
        .collect();
    assert_eq!(
        actions,
        vec![
            (Action::Delete, "aws.server", vec![]),
            (Action::Delete, "aws.security_group", vec![1]),
        ],
        "the group goes after the server that used it"
    );
}

#[test]
fn a_server_created_and_deleted_in_one_transaction_plans_nothing() {
    let schemas = all();
    let sets = sets_by_join_table(&schemas);
    let raw = vec![
        join_ins("pending-s-1", "sg-a"),
        join_del("pending-s-1", "sg-a"),
    ];
    let current = now("pending-s-1", &[], None);
    assert!(fold_sets(Vec::new(), &raw, &sets, &current).is_empty());
}

#[test]
fn a_renamed_owner_keeps_its_members_through_the_cascade() {
    let schemas = all();
    let sets = sets_by_join_table(&schemas);
    // The owner's name changed s-1 → s-2; ON UPDATE CASCADE moved its join row.
    let changes = vec![RowChange {
        table: "aws.server".into(),
        before: Some(p(json!({"server_id": "s-1", "name": "web"}))),
        after: Some(p(json!({"server_id": "s-2", "name": "web"}))),
    }];
    let raw = vec![(
        "aws.server_group".to_string(),
        Some(p(json!({"server_id": "s-1", "group_id": "sg-a"}))),
        Some(p(json!({"server_id": "s-2", "group_id": "sg-a"}))),
    )];
    let mut current = now("s-2", &["sg-a"], Some(json!({"server_id": "s-2"})));
    current.extend(now("s-1", &[], None));
    let folded = fold_sets(changes, &raw, &sets, &current);
    assert_eq!(folded.len(), 1, "no change for the old name");
    let c = &folded[0];
    assert_eq!(c.before.as_ref().unwrap()["group_ids"], json!(["sg-a"]));
    assert_eq!(c.after.as_ref().unwrap()["group_ids"], json!(["sg-a"]));
}
