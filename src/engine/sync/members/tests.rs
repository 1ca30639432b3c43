//! Memberships in a round: drift per membership, by the owner's policy.

use std::collections::BTreeMap;

use super::*;
use infrasql_provider::ColumnKind;

static GROUPS: Column = Column::member_set(
    "group_ids",
    "security_group",
    MemberSet {
        table: "server_group",
        owner: "server_id",
        member: "group_id",
    },
    "",
);

fn p(v: Value) -> Props {
    v.as_object().unwrap().clone()
}

struct World {
    observed: Vec<Props>,
    writes: Vec<RowWrite>,
    owners: BTreeMap<String, RowText>,
    rows: HashMap<String, BTreeSet<String>>,
    members: HashSet<String>,
    policies: Vec<PolicyRow>,
    open: HashSet<(String, DriftKind)>,
}

/// Server s-1 is a row holding sg-a; AWS lists `listed`.
fn world(listed: &[&str]) -> World {
    let row = p(json!({"server_id": "s-1", "name": "web", "tags": {}}));
    let mut seen = row.clone();
    seen.insert("group_ids".into(), json!(listed));
    World {
        observed: vec![seen],
        writes: vec![RowWrite::Update {
            id: "s-1".into(),
            columns: super::super::diff::Columns::CloudAssigned,
            at: 0,
        }],
        owners: BTreeMap::from([("s-1".to_string(), (&row).into())]),
        rows: HashMap::from([("s-1".to_string(), BTreeSet::from(["sg-a".to_string()]))]),
        members: ["sg-a", "sg-b"].iter().map(|s| s.to_string()).collect(),
        policies: Vec::new(),
        open: HashSet::new(),
    }
}

fn run(w: &World, first: bool, reverts: &mut Vec<Revert>) -> Diff {
    assert_eq!(GROUPS.kind, ColumnKind::Set);
    diff(
        &Input {
            column: &GROUPS,
            set: GROUPS.set.unwrap(),
            id_column: "server_id",
            observed: &w.observed,
            writes: &w.writes,
            owners: &w.owners,
            rows: &w.rows,
            members: &w.members,
            policies: &w.policies,
            open: &w.open,
            first,
        },
        reverts,
    )
}

#[test]
fn a_group_attached_in_the_console_is_an_appeared_membership_and_adopted() {
    let w = world(&["sg-a", "sg-b"]);
    let d = run(&w, false, &mut Vec::new());
    assert_eq!(d.inserts, vec![("s-1".to_string(), "sg-b".to_string())]);
    assert!(d.deletes.is_empty());
    assert_eq!(d.drift.len(), 1);
    assert_eq!(d.drift[0].kind, DriftKind::Appeared);
    assert_eq!(d.drift[0].id, "s-1/sg-b");
    assert_eq!(
        d.drift[0].actual,
        json!({"server_id": "s-1", "group_id": "sg-b"})
    );
}

#[test]
fn a_group_detached_in_the_console_is_a_disappeared_membership() {
    let w = world(&[]);
    let d = run(&w, false, &mut Vec::new());
    assert_eq!(d.deletes, vec![("s-1".to_string(), "sg-a".to_string())]);
    assert_eq!(d.drift[0].kind, DriftKind::Disappeared);
}

#[test]
fn a_member_that_is_not_a_row_waits() {
    let w = world(&["sg-a", "sg-unknown"]);
    assert_eq!(run(&w, false, &mut Vec::new()), Diff::default());
}

#[test]
fn the_first_round_imports_memberships_without_drift() {
    let w = world(&["sg-a", "sg-b"]);
    let d = run(&w, true, &mut Vec::new());
    assert_eq!(d.inserts.len(), 1);
    assert!(d.drift.is_empty());
}

#[test]
fn report_keeps_the_rows_and_open_drift_is_not_repeated() {
    let mut w = world(&["sg-a", "sg-b"]);
    w.policies = vec![PolicyRow::table(Policy::Report)];
    let d = run(&w, false, &mut Vec::new());
    assert!(d.inserts.is_empty());
    assert_eq!(d.drift.len(), 1);
    w.open.insert(("s-1/sg-b".into(), DriftKind::Appeared));
    assert!(run(&w, false, &mut Vec::new()).drift.is_empty());
}

#[test]
fn revert_puts_the_set_back_through_an_update_of_the_owner() {
    let mut w = world(&["sg-a", "sg-b"]);
    w.policies = vec![PolicyRow::table(Policy::Revert)];
    let mut reverts = Vec::new();
    let d = run(&w, false, &mut reverts);
    assert!(d.inserts.is_empty() && d.deletes.is_empty());
    assert_eq!(reverts.len(), 1);
    let r = &reverts[0];
    assert_eq!((r.action, r.id.as_str()), (Action::Update, "s-1"));
    assert_eq!(r.desired.as_ref().unwrap()["group_ids"], json!(["sg-a"]));
    assert_eq!(
        r.actual.as_ref().unwrap()["group_ids"],
        json!(["sg-a", "sg-b"])
    );
}

#[test]
fn a_new_owner_gets_its_rows_with_it() {
    let mut w = world(&["sg-b"]);
    w.rows.clear();
    w.owners.clear();
    w.writes = vec![RowWrite::Insert {
        id: "s-1".into(),
        at: 0,
    }];
    let d = run(&w, false, &mut Vec::new());
    assert_eq!(d.inserts, vec![("s-1".to_string(), "sg-b".to_string())]);
    assert!(
        d.drift.is_empty(),
        "the owner's own appeared drift covers it"
    );
}
