//! The plan's ordering rules.

use super::*;
use infrasql_provider::{Column, ColumnKind::*, ReplaceOrder};
use serde_json::json;

static VPC: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "vpc",
    display: "VPC",
    doc: "",
    columns: &[
        Column::new("vpc_id", Identity, ""),
        Column::new("region", ReplaceOnChange, ""),
        Column::new("name", Desired, ""),
        Column::new("cidr_block", ReplaceOnChange, ""),
        Column::new("tags", Desired, ""),
        Column::new("state", CloudAssigned, ""),
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &[],
    stateful: None,
};
static SUBNET: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "subnet",
    display: "subnet",
    doc: "",
    columns: &[
        Column::new("subnet_id", Identity, ""),
        Column::new("region", ReplaceOnChange, ""),
        Column::new("name", Desired, ""),
        Column::reference("vpc_id", ReplaceOnChange, "vpc", ""),
        Column::new("cidr_block", ReplaceOnChange, ""),
        Column::new("password", WriteOnly, ""),
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &[],
    stateful: None,
};
/// Unique name in its VPC: a replace that keeps it deletes first.
pub(super) static GROUP: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "security_group",
    display: "security group",
    doc: "",
    columns: &[
        Column::new("group_id", Identity, ""),
        Column::new("region", ReplaceOnChange, ""),
        Column::new("name", Desired, ""),
        Column::new("group_name", ReplaceOnChange, ""),
        Column::new("description", ReplaceOnChange, ""),
        Column::reference("vpc_id", ReplaceOnChange, "vpc", ""),
        Column::new("tags", Desired, ""),
    ],
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region", "vpc_id", "group_name"],
        why: "a group name is unique in its VPC",
    },
    scope: infrasql_provider::Scope::Regional,
    natural_key: &[],
    stateful: None,
};
/// Holds data; uses a group.
pub(super) static DISK: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "disk",
    display: "disk",
    doc: "",
    columns: &[
        Column::new("disk_id", Identity, ""),
        Column::new("region", ReplaceOnChange, ""),
        Column::new("name", Desired, ""),
        Column::new("size", ReplaceOnChange, ""),
        Column::reference("subnet_id", ReplaceOnChange, "subnet", ""),
        Column::reference("group_id", Desired, "security_group", ""),
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &[],
    stateful: Some("the files on it"),
};

pub(super) fn schemas() -> HashMap<String, &'static ResourceSchema> {
    HashMap::from([
        ("aws.vpc".to_string(), &VPC),
        ("aws.subnet".to_string(), &SUBNET),
        ("aws.security_group".to_string(), &GROUP),
        ("aws.disk".to_string(), &DISK),
    ])
}
pub(super) fn upd(table: &str, before: Value, after: Value) -> RowChange {
    RowChange {
        table: table.into(),
        before: Some(p(before)),
        after: Some(p(after)),
    }
}
pub(super) fn p(v: Value) -> Props {
    v.as_object().unwrap().clone()
}
pub(super) fn ins(table: &str, v: Value) -> RowChange {
    RowChange {
        table: table.into(),
        before: None,
        after: Some(p(v)),
    }
}

#[test]
fn parents_are_created_before_children_whatever_the_insert_order() {
    let changes = vec![
        ins(
            "aws.subnet",
            json!({"subnet_id": "pending-s1", "vpc_id": "pending-v1", "cidr_block": "10.0.1.0/24", "region": "us-east-1"}),
        ),
        ins(
            "aws.vpc",
            json!({"vpc_id": "pending-v1", "cidr_block": "10.0.0.0/16", "name": "main", "region": "us-east-1"}),
        ),
        ins(
            "aws.subnet",
            json!({"subnet_id": "pending-s2", "vpc_id": "pending-v1", "cidr_block": "10.0.2.0/24", "region": "us-east-1"}),
        ),
    ];
    let plan = plan(&changes, &schemas()).unwrap();
    let order: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order, vec!["pending-v1", "pending-s1", "pending-s2"]);
    assert_eq!(plan.steps[1].depends_on, vec![1]);
    assert_eq!(plan.steps[2].depends_on, vec![1]);
    assert!(plan.steps[0].depends_on.is_empty());
    assert_eq!(
        plan.summary(),
        "3 to create, 0 to update, 0 to replace, 0 to delete"
    );
}

#[test]
fn deletes_run_last_children_first() {
    let changes = vec![
        RowChange {
            table: "aws.vpc".into(),
            before: Some(p(json!({"vpc_id": "vpc-1", "cidr_block": "10.0.0.0/16"}))),
            after: None,
        },
        RowChange {
            table: "aws.subnet".into(),
            before: Some(p(json!({"subnet_id": "subnet-1", "vpc_id": "vpc-1"}))),
            after: None,
        },
        ins(
            "aws.vpc",
            json!({"vpc_id": "pending-v2", "cidr_block": "10.9.0.0/16"}),
        ),
    ];
    let plan = plan(&changes, &schemas()).unwrap();
    let order: Vec<(&str, Action)> = plan
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.action))
        .collect();
    assert_eq!(
        order,
        vec![
            ("pending-v2", Action::Create),
            ("subnet-1", Action::Delete),
            ("vpc-1", Action::Delete)
        ]
    );
    assert_eq!(plan.steps[2].depends_on, vec![2]);
}

#[test]
fn a_replace_on_change_column_makes_a_replace_and_tags_an_update() {
    let before = json!({"vpc_id": "vpc-1", "cidr_block": "10.0.0.0/16", "tags": {"a": "1"}, "state": "available"});
    let tags = RowChange {
        table: "aws.vpc".into(),
        before: Some(p(before.clone())),
        after: Some(p(
            json!({"vpc_id": "vpc-1", "cidr_block": "10.0.0.0/16", "tags": {"a": "2"}, "state": "available"}),
        )),
    };
    let plan1 = plan(&[tags], &schemas()).unwrap();
    assert_eq!(plan1.steps.len(), 1);
    assert_eq!(plan1.steps[0].action, Action::Update);
    assert_eq!(
        plan1.steps[0].changes,
        vec![FieldChange {
            field: "tags".into(),
            before: json!({"a": "1"}),
            after: json!({"a": "2"})
        }]
    );

    let cidr = RowChange {
        table: "aws.vpc".into(),
        before: Some(p(before)),
        after: Some(p(
            json!({"vpc_id": "vpc-1", "cidr_block": "10.1.0.0/16", "tags": {"a": "1"}, "state": "available"}),
        )),
    };
    let plan2 = plan(&[cidr], &schemas()).unwrap();
    let shape: Vec<(Action, bool)> = plan2
        .steps
        .iter()
        .map(|s| (s.action, s.last_phase))
        .collect();
    assert_eq!(
        shape,
        vec![(Action::Replace, false), (Action::Replace, true)]
    );
    assert_eq!(plan2.steps[1].depends_on, vec![1]);
}

#[test]
fn cloud_assigned_changes_alone_plan_nothing_and_secrets_are_redacted() {
    let c = RowChange {
        table: "aws.vpc".into(),
        before: Some(p(json!({"vpc_id": "vpc-1", "state": "pending"}))),
        after: Some(p(json!({"vpc_id": "vpc-1", "state": "available"}))),
    };
    assert!(plan(&[c], &schemas()).unwrap().is_empty());
    let s = ins(
        "aws.subnet",
        json!({"subnet_id": "pending-s", "password": "hunter2"}),
    );
    let pl = plan(&[s], &schemas()).unwrap();
    let text = format!("{} {}", pl.to_rows(), pl.steps[0].describe());
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("(secret)"));
}

#[test]
fn changes_net_per_row_within_a_transaction() {
    let raw = vec![
        (
            "aws.vpc".to_string(),
            None,
            Some(p(json!({"vpc_id": "pending-1", "name": "a"}))),
        ),
        (
            "aws.vpc".to_string(),
            Some(p(json!({"vpc_id": "pending-1", "name": "a"}))),
            Some(p(json!({"vpc_id": "pending-1", "name": "b"}))),
        ),
        (
            "aws.vpc".to_string(),
            None,
            Some(p(json!({"vpc_id": "pending-2"}))),
        ),
        (
            "aws.vpc".to_string(),
            Some(p(json!({"vpc_id": "pending-2"}))),
            None,
        ),
    ];
    let net = net_changes(raw, |_| Some("vpc_id"));
    assert_eq!(net.len(), 1);
    assert!(net[0].before.is_none());
    assert_eq!(
        net[0].after.as_ref().unwrap().get("name"),
        Some(&json!("b"))
    );
}

#[test]
fn a_row_renamed_in_its_own_transaction_is_followed_by_its_row_key() {
    // A chosen name (ColumnKind::Name) inserted, then renamed, then renamed
    // back on an existing row: one change per row, whatever its AWS id did.
    let raw = vec![
        (
            "aws.db".to_string(),
            None,
            Some(p(json!({"id": 1, "db_id": "a"}))),
        ),
        (
            "aws.db".to_string(),
            Some(p(json!({"id": 1, "db_id": "a"}))),
            Some(p(json!({"id": 1, "db_id": "b"}))),
        ),
        (
            "aws.db".to_string(),
            Some(p(json!({"id": 2, "db_id": "x"}))),
            Some(p(json!({"id": 2, "db_id": "y"}))),
        ),
    ];
    let net = net_changes(raw, |_| Some("db_id"));
    assert_eq!(net.len(), 2);
    assert!(net[0].before.is_none());
    assert_eq!(net[0].after.as_ref().unwrap()["db_id"], json!("b"));
    assert_eq!(net[1].before.as_ref().unwrap()["db_id"], json!("x"));
    assert_eq!(net[1].after.as_ref().unwrap()["db_id"], json!("y"));
}

#[test]
fn the_delete_half_of_a_replace_names_the_old_resource_and_region() {
    // A replace that also renames (a chosen name) and moves region: the
    // create half makes the new one, the delete half removes the old one.
    let c = upd(
        "aws.vpc",
        json!({"vpc_id": "old-db", "region": "us-east-1", "cidr_block": "10.0.0.0/16"}),
        json!({"vpc_id": "new-db", "region": "eu-west-1", "cidr_block": "10.1.0.0/16"}),
    );
    let p = plan(&[c], &schemas()).unwrap();
    let create = p.steps.iter().find(|s| !s.last_phase).unwrap();
    let delete = p.steps.iter().find(|s| s.last_phase).unwrap();
    assert_eq!(
        (create.id.as_str(), create.region.as_str()),
        ("new-db", "eu-west-1")
    );
    assert_eq!(
        (delete.id.as_str(), delete.region.as_str()),
        ("old-db", "us-east-1")
    );
}

/// A type whose rows may reference each other (as peering-like resources
/// do), so new rows can form a cycle no order can create.
static PEER: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "peer",
    display: "peer",
    doc: "",
    columns: &[
        Column::new("peer_id", Identity, ""),
        Column::new("region", ReplaceOnChange, ""),
        Column::reference("other_id", Desired, "peer", ""),
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &[],
    stateful: None,
};

#[test]
fn new_rows_that_reference_each_other_are_a_cycle_named_in_the_error() {
    let mut with_peer = schemas();
    with_peer.insert("aws.peer".into(), &PEER);
    let changes = vec![
        ins(
            "aws.peer",
            json!({"peer_id": "pending-a", "other_id": "pending-b", "region": "us-east-1"}),
        ),
        ins(
            "aws.peer",
            json!({"peer_id": "pending-b", "other_id": "pending-a", "region": "us-east-1"}),
        ),
    ];
    let err = plan(&changes, &with_peer).unwrap_err();
    let PlanError::Cycle(at) = &err else {
        panic!("expected a cycle, got {err:?}");
    };
    assert!(at.starts_with("aws.peer pending-"), "{at}");
    assert!(err.to_string().contains("form a cycle"), "{err}");
    // A reference to a row that already exists is no cycle.
    let one = vec![ins(
        "aws.peer",
        json!({"peer_id": "pending-a", "other_id": "pcx-existing", "region": "us-east-1"}),
    )];
    assert_eq!(plan(&one, &with_peer).unwrap().steps.len(), 1);
}

#[test]
fn unknown_tables_are_refused() {
    let c = ins("aws.nope", json!({"x": 1}));
    assert_eq!(
        plan(&[c], &schemas()).unwrap_err(),
        PlanError::UnknownTable("aws.nope".into())
    );
}

fn shape(plan: &Plan) -> Vec<(usize, &str, &str, Vec<usize>)> {
    plan.steps
        .iter()
        .map(|s| (s.step, s.label(), s.id.as_str(), s.depends_on.clone()))
        .collect()
}

#[test]
fn a_replace_that_keeps_a_unique_name_deletes_first_and_says_so() {
    let old = json!({"group_id": "sg-1", "region": "r", "group_name": "web", "description": "a", "vpc_id": "vpc-1"});
    let new = json!({"group_id": "sg-1", "region": "r", "group_name": "web", "description": "b", "vpc_id": "vpc-1"});
    let pl = plan(&[upd("aws.security_group", old, new)], &schemas()).unwrap();
    assert_eq!(
        shape(&pl),
        vec![
            (1, "replace (delete old first)", "sg-1", vec![]),
            (2, "replace (create new)", "sg-1", vec![1]),
        ]
    );
    assert!(pl.steps.iter().all(|s| !s.last_phase));
    assert!(pl.steps[0].deletes() && pl.steps[1].creates());
    assert_eq!(pl.steps[0].journal_action(), "replace-delete");
    assert_eq!(pl.steps[1].journal_action(), "replace-create");
    assert_eq!(
        pl.summary(),
        "0 to create, 0 to update, 1 to replace, 0 to delete"
    );
    assert!(
        pl.steps[0]
            .describe()
            .starts_with("- replace (delete old first) aws.security_group (sg-1)"),
        "{}",
        pl.steps[0].describe()
    );
    assert!(pl.steps[1]
        .describe()
        .contains("description \"a\" -> \"b\""));
    let rows = pl.to_rows();
    assert_eq!(rows[0]["action"], "replace (delete old first)");
    assert_eq!(rows[1]["action"], "replace (create new)");
}

#[test]
fn a_new_unique_name_creates_first() {
    let old = json!({"group_id": "sg-1", "region": "r", "group_name": "web", "description": "a", "vpc_id": "vpc-1"});
    let new = json!({"group_id": "sg-1", "region": "r", "group_name": "web2", "description": "b", "vpc_id": "vpc-1"});
    let pl = plan(&[upd("aws.security_group", old, new)], &schemas()).unwrap();
    assert_eq!(
        shape(&pl),
        vec![
            (1, "replace (create new)", "sg-1", vec![]),
            (2, "replace (delete old)", "sg-1", vec![1]),
        ]
    );
    assert!(pl.steps[1].last_phase);
}

#[test]
fn a_delete_first_replace_waits_for_steps_that_do_not_need_it() {
    // A new VPC, a new subnet in it, a group replaced delete-first and a
    // new disk that uses the replaced group: the old group goes only after
    // the VPC and subnet exist; the disk waits for the new group.
    let changes = vec![
        ins(
            "aws.vpc",
            json!({"vpc_id": "pending-v", "cidr_block": "10.0.0.0/16"}),
        ),
        ins(
            "aws.subnet",
            json!({"subnet_id": "pending-s", "vpc_id": "pending-v", "cidr_block": "10.0.1.0/24"}),
        ),
        upd(
            "aws.security_group",
            json!({"group_id": "sg-1", "group_name": "web", "description": "a", "vpc_id": "vpc-1"}),
            json!({"group_id": "sg-1", "group_name": "web", "description": "b", "vpc_id": "vpc-1"}),
        ),
        ins(
            "aws.disk",
            json!({"disk_id": "pending-d", "subnet_id": "pending-s", "group_id": "sg-1"}),
        ),
    ];
    let pl = plan(&changes, &schemas()).unwrap();
    assert_eq!(
        shape(&pl),
        vec![
            (1, "create", "pending-v", vec![]),
            (2, "create", "pending-s", vec![1]),
            (3, "replace (delete old first)", "sg-1", vec![2]),
            (4, "replace (create new)", "sg-1", vec![3]),
            (5, "create", "pending-d", vec![2, 4]),
        ]
    );
}

/// Two types whose ids the user chooses, so one name can be both a role and
/// a profile (IAM's `web-app` role and `web-app` instance profile).
static ROLE: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "role",
    display: "role",
    doc: "",
    columns: &[
        Column::new("role_name", Name, ""),
        Column::new("region", ReplaceOnChange, ""),
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Global,
    natural_key: &[],
    stateful: None,
};
static PROFILE: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "profile",
    display: "profile",
    doc: "",
    columns: &[
        Column::new("profile_name", Name, ""),
        Column::new("region", ReplaceOnChange, ""),
        Column::reference("role_name", Desired, "role", ""),
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Global,
    natural_key: &[],
    stateful: None,
};

#[test]
fn the_same_id_in_two_tables_still_orders_parent_before_child() {
    let mut s = schemas();
    s.insert("aws.role".into(), &ROLE);
    s.insert("aws.profile".into(), &PROFILE);
    let created = vec![
        ins(
            "aws.profile",
            json!({"profile_name": "web", "role_name": "web", "region": "global"}),
        ),
        ins("aws.role", json!({"role_name": "web", "region": "global"})),
    ];
    let p = plan(&created, &s).unwrap();
    let order: Vec<&str> = p.steps.iter().map(|s| s.table.as_str()).collect();
    assert_eq!(order, vec!["aws.role", "aws.profile"]);
    assert_eq!(p.steps[1].depends_on, vec![1]);

    // Deleted together: the profile first, then the role.
    let deleted = vec![
        RowChange {
            table: "aws.role".into(),
            before: Some(p_of(json!({"role_name": "web", "region": "global"}))),
            after: None,
        },
        RowChange {
            table: "aws.profile".into(),
            before: Some(p_of(
                json!({"profile_name": "web", "role_name": "web", "region": "global"}),
            )),
            after: None,
        },
    ];
    let p = plan(&deleted, &s).unwrap();
    let order: Vec<&str> = p.steps.iter().map(|s| s.table.as_str()).collect();
    assert_eq!(order, vec!["aws.profile", "aws.role"]);
}

fn p_of(v: Value) -> Props {
    p(v)
}
