//! A round's decisions: what was read in → typed writes, drift and reverts out.

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
        Column::new("dns", Desired, ""),
        Column::new("state", CloudAssigned, ""),
        Column::new("password", WriteOnly, ""),
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
        Column::reference("vpc_id", ReplaceOnChange, "vpc", ""),
    ],
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &[],
    stateful: None,
};

fn props(v: Value) -> Props {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object: {v}"),
    }
}

/// A VPC as the listing reports it (no `dns`: not reported for every VPC).
fn vpc(id: &str, name: &str, tags: Value) -> Props {
    props(json!({"vpc_id": id, "region": "us-east-1", "name": name,
                 "cidr_block": "10.0.0.0/16", "tags": tags, "state": "available"}))
}

/// The same VPC as a row holds it (every column, `dns` included).
fn row(p: &Props) -> Props {
    let mut r = p.clone();
    r.insert("id".into(), json!(7));
    r.insert("dns".into(), json!(true));
    r.insert("synced_at".into(), json!("2024-01-01T00:00:00Z"));
    r
}

fn rows(list: &[Props]) -> Current {
    Current {
        locked: list
            .iter()
            .map(|p| (p["vpc_id"].as_str().unwrap().to_owned(), (&row(p)).into()))
            .collect(),
        all: list
            .iter()
            .map(|p| p["vpc_id"].as_str().unwrap().to_owned())
            .collect(),
        ..Default::default()
    }
}

fn with_policy(mut cur: Current, policy: Policy) -> Current {
    cur.policies = vec![PolicyRow::table(policy)];
    cur
}

fn run(observed: &[Props], cur: &Current) -> Diff {
    diff(&Input {
        schema: &VPC,
        observed,
        current: cur,
        first: false,
    })
}

/// An update of the row from `observed[at]`.
fn update(id: &str, columns: Columns, at: usize) -> RowWrite {
    RowWrite::Update {
        id: id.to_owned(),
        columns,
        at,
    }
}

fn keep(id: &str) -> RowWrite {
    RowWrite::Keep { id: id.to_owned() }
}

fn kinds(d: &Diff) -> Vec<(DriftKind, &str, Option<&str>, Policy)> {
    d.drift
        .iter()
        .map(|r| (r.kind, r.id.as_str(), r.field, r.policy))
        .collect()
}

#[test]
fn a_resource_that_appeared_is_adopted_and_recorded() {
    let new = vpc("vpc-1", "console", json!({}));
    let d = run(std::slice::from_ref(&new), &Current::default());
    assert_eq!(
        d.writes,
        vec![RowWrite::Insert {
            id: "vpc-1".into(),
            at: 0
        }]
    );
    assert_eq!(
        d.drift,
        vec![DriftRecord {
            kind: DriftKind::Appeared,
            id: "vpc-1".into(),
            field: None,
            known: Value::Null,
            actual: Value::Object(new),
            policy: Policy::Adopt,
        }]
    );
    assert_eq!(d.stats.drift, 1);
    assert_eq!(d.stats.seen, 1);
}

#[test]
fn the_first_round_imports_everything_without_drift_whatever_the_policy() {
    let new = vpc("vpc-1", "console", json!({}));
    let cur = with_policy(Current::default(), Policy::Report);
    let d = diff(&Input {
        schema: &VPC,
        observed: std::slice::from_ref(&new),
        current: &cur,
        first: true,
    });
    assert_eq!(
        d.writes,
        vec![RowWrite::Insert {
            id: "vpc-1".into(),
            at: 0
        }]
    );
    assert!(d.drift.is_empty(), "{:?}", d.drift);
    assert_eq!(d.stats.drift, 0);
}

#[test]
fn a_resource_an_apply_in_flight_created_is_left_alone() {
    let mut new = vpc("vpc-1", "made", json!({}));
    new.insert(APPLY_TAG.into(), json!("apply-1"));
    let mut cur = Current::default();
    cur.in_flight.insert("apply-1".into());
    let d = run(std::slice::from_ref(&new), &cur);
    assert!(
        d.writes.is_empty() && d.drift.is_empty() && d.reverts.is_empty(),
        "{d:?}"
    );
    // Once its apply is settled, the tag is only a tag.
    cur.in_flight.clear();
    assert_eq!(run(&[new], &cur).writes.len(), 1);
}

#[test]
fn resources_recovery_or_an_unsettled_apply_owns_are_left_alone() {
    let known = vpc("vpc-1", "a", json!({}));
    let mut console = known.clone();
    console["name"] = json!("renamed");
    let mut cur = rows(&[known, vpc("vpc-2", "b", json!({}))]);
    cur.unsettled_ids.insert("vpc-1".into());
    cur.unsettled_ids.insert("vpc-2".into());
    let d = run(&[console], &cur);
    assert!(d.writes.is_empty() && d.drift.is_empty(), "{d:?}");
    // While an apply touches the table, membership waits; changes do not.
    let mut cur = rows(&[vpc("vpc-2", "b", json!({}))]);
    cur.table_busy = true;
    let d = run(&[vpc("vpc-3", "new", json!({}))], &cur);
    assert!(d.writes.is_empty() && d.drift.is_empty(), "{d:?}");
}

#[test]
fn a_row_whose_resource_disappeared_goes_by_policy() {
    let gone = vpc("vpc-1", "a", json!({}));
    let d = run(&[], &rows(std::slice::from_ref(&gone)));
    assert_eq!(d.writes, vec![RowWrite::Delete { id: "vpc-1".into() }]);
    assert_eq!(
        d.drift,
        vec![DriftRecord {
            kind: DriftKind::Disappeared,
            id: "vpc-1".into(),
            field: None,
            known: Value::Object(row(&gone)),
            actual: Value::Null,
            policy: Policy::Adopt,
        }]
    );
    let d = run(
        &[],
        &with_policy(rows(std::slice::from_ref(&gone)), Policy::Report),
    );
    assert!(d.writes.is_empty() && d.reverts.is_empty());
    assert_eq!(
        kinds(&d),
        vec![(DriftKind::Disappeared, "vpc-1", None, Policy::Report)]
    );
    let d = run(
        &[],
        &with_policy(rows(std::slice::from_ref(&gone)), Policy::Revert),
    );
    assert!(d.writes.is_empty());
    assert_eq!(
        d.reverts,
        vec![Revert {
            action: Action::Create,
            id: "vpc-1".into(),
            actual: None,
            desired: Some(row(&gone)),
        }]
    );
}

#[test]
fn a_row_not_created_yet_has_not_disappeared() {
    let d = run(&[], &rows(&[vpc("pending-1", "new", json!({}))]));
    assert_eq!(
        d,
        Diff {
            unconfirmed: vec!["pending-1".into()],
            ..Diff::default()
        }
    );
}

#[test]
fn a_changed_desired_column_is_adopted_reported_or_reverted() {
    let known = vpc("vpc-1", "app", json!({}));
    let mut console = known.clone();
    console["tags"] = json!({"owner": "console"});
    let changed = |policy| (DriftKind::Changed, "vpc-1", Some("tags"), policy);

    let d = run(
        std::slice::from_ref(&console),
        &rows(std::slice::from_ref(&known)),
    );
    assert_eq!(d.writes, vec![update("vpc-1", Columns::Observed, 0)]);
    assert_eq!(kinds(&d), vec![changed(Policy::Adopt)]);
    assert_eq!(
        (&d.drift[0].known, &d.drift[0].actual),
        (&json!({}), &json!({"owner": "console"}))
    );
    assert_eq!(d.stats.drift, 1);

    // Reported or reverted, the row keeps its values; its cloud columns
    // equal the listing's, so it is not written.
    let cur = with_policy(rows(std::slice::from_ref(&known)), Policy::Report);
    let d = run(std::slice::from_ref(&console), &cur);
    assert_eq!(d.writes, vec![keep("vpc-1")]);
    assert_eq!(kinds(&d), vec![changed(Policy::Report)]);
    assert!(d.reverts.is_empty());

    let cur = with_policy(rows(std::slice::from_ref(&known)), Policy::Revert);
    let d = run(std::slice::from_ref(&console), &cur);
    assert_eq!(d.writes, vec![keep("vpc-1")]);
    assert_eq!(kinds(&d), vec![changed(Policy::Revert)]);
    assert_eq!(
        d.reverts,
        vec![Revert {
            action: Action::Update,
            id: "vpc-1".into(),
            actual: Some(console),
            desired: Some(row(&known)),
        }]
    );
}

#[test]
fn a_replace_on_change_column_cannot_be_reverted_in_place_so_it_is_reported() {
    let known = vpc("vpc-1", "app", json!({}));
    let mut console = known.clone();
    console["cidr_block"] = json!("10.9.0.0/16");
    let d = run(&[console], &with_policy(rows(&[known]), Policy::Revert));
    assert!(d.reverts.is_empty());
    assert_eq!(
        kinds(&d),
        vec![(
            DriftKind::Changed,
            "vpc-1",
            Some("cidr_block"),
            Policy::Report
        )]
    );
}

#[test]
fn a_cloud_assigned_change_is_a_row_write_not_drift() {
    let known = vpc("vpc-1", "app", json!({}));
    let mut now = known.clone();
    now["state"] = json!("pending");
    let d = run(std::slice::from_ref(&now), &rows(&[known]));
    assert_eq!(d.writes, vec![update("vpc-1", Columns::CloudAssigned, 0)]);
    assert!(d.drift.is_empty());
    assert_eq!(d.cloud_cols, vec!["vpc_id", "state"]);
}

#[test]
fn a_column_some_resources_do_not_report_is_never_written_nor_drift() {
    let d = run(
        &[vpc("vpc-1", "app", json!({}))],
        &rows(&[vpc("vpc-1", "app", json!({}))]),
    );
    assert_eq!(
        d.observed_cols,
        vec!["vpc_id", "region", "name", "cidr_block", "tags", "state"]
    );
    assert!(
        d.drift.is_empty(),
        "the row's dns is not compared: {:?}",
        d.drift
    );
    let mut with_dns = vpc("vpc-2", "b", json!({}));
    with_dns.insert("dns".into(), json!(false));
    let d = run(
        &[vpc("vpc-1", "app", json!({})), with_dns],
        &Current::default(),
    );
    assert!(!d.observed_cols.contains(&"dns"), "only one VPC reports it");
}

#[test]
fn a_row_an_open_transaction_holds_is_skipped() {
    let known = vpc("vpc-1", "app", json!({}));
    let mut console = known.clone();
    console["tags"] = json!({"owner": "console"});
    let mut cur = rows(&[known]);
    cur.locked.clear(); // SKIP LOCKED left it out
    let d = run(&[console], &cur);
    assert!(d.writes.is_empty() && d.drift.is_empty(), "{d:?}");
    assert_eq!(d.stats.skipped_locked, 1);
}

#[test]
fn drift_already_open_for_the_same_value_is_not_recorded_again() {
    let known = vpc("vpc-1", "app", json!({}));
    let mut console = known.clone();
    console["tags"] = json!({"owner": "console"});
    let mut cur = with_policy(rows(&[known]), Policy::Report);
    cur.open_drift.insert(
        ("vpc-1".into(), DriftKind::Changed, Some("tags".into())),
        vec![Some(json!({"owner": "console"}))],
    );
    let d = run(std::slice::from_ref(&console), &cur);
    assert!(d.drift.is_empty(), "{:?}", d.drift);
    assert_eq!(d.stats.drift, 1, "still counted: it is still there");
    // Changed again in the console: a new value, a new record.
    console["tags"] = json!({"owner": "someone else"});
    assert_eq!(run(&[console], &cur).drift.len(), 1);
}

#[test]
fn drift_that_went_away_by_itself_leaves_only_the_clouds_columns_to_write() {
    // Reported drift: the console changed the name, then changed it back.
    let known = vpc("vpc-1", "app", json!({}));
    let mut cur = with_policy(rows(std::slice::from_ref(&known)), Policy::Report);
    cur.open_drift.insert(
        ("vpc-1".into(), DriftKind::Changed, Some("name".into())),
        vec![Some(json!("renamed"))],
    );
    let d = run(std::slice::from_ref(&known), &cur);
    assert!(d.drift.is_empty() && d.reverts.is_empty());
    assert_eq!(d.writes, vec![keep("vpc-1")]);
    assert_eq!(d.stats.drift, 0);
}

#[test]
fn a_resource_whose_parent_is_not_a_row_waits_for_a_later_round() {
    let orphan = props(json!({"subnet_id": "subnet-1", "region": "r", "vpc_id": "vpc-gone"}));
    let child = props(json!({"subnet_id": "subnet-2", "region": "r", "vpc_id": "vpc-1"}));
    let loose = props(json!({"subnet_id": "subnet-3", "region": "r", "vpc_id": null}));
    let cur = Current {
        parents: vec![("vpc_id", HashSet::from(["vpc-1".to_owned()]))],
        ..Default::default()
    };
    let observed = [orphan, child.clone(), loose.clone()];
    let d = diff(&Input {
        schema: &SUBNET,
        observed: &observed,
        current: &cur,
        first: false,
    });
    let inserted: Vec<&str> = d
        .writes
        .iter()
        .filter_map(|w| match w {
            RowWrite::Insert { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(inserted, vec!["subnet-2", "subnet-3"]);
    assert_eq!(d.drift.len(), 3, "each appeared one is recorded");
}

#[test]
fn the_policy_of_a_tag_beats_the_tables() {
    let mut cur = with_policy(Current::default(), Policy::Report);
    cur.policies.push(PolicyRow {
        tag_key: "env".into(),
        tag_value: "prod".into(),
        ..PolicyRow::table(Policy::Revert)
    });
    let d = run(
        &[
            vpc("vpc-1", "a", json!({"env": "prod"})),
            vpc("vpc-2", "b", json!({})),
        ],
        &cur,
    );
    assert_eq!(
        kinds(&d),
        vec![
            (DriftKind::Appeared, "vpc-1", None, Policy::Revert),
            (DriftKind::Appeared, "vpc-2", None, Policy::Report)
        ]
    );
    assert_eq!(d.reverts.len(), 1);
    assert_eq!(d.reverts[0].action, Action::Delete);
    assert!(d.writes.is_empty());
}

#[test]
fn drift_is_resolved_by_its_policy_and_the_reverts_outcome() {
    assert_eq!(resolution(Policy::Adopt, false), "adopted");
    assert_eq!(resolution(Policy::Revert, true), "reverted");
    assert_eq!(resolution(Policy::Revert, false), "open");
    assert_eq!(resolution(Policy::Report, true), "open");
}

#[test]
fn a_row_equal_to_the_listing_is_kept_not_written() {
    let a = vpc("vpc-1", "a", json!({"env": "prod"}));
    let b = vpc("vpc-2", "b", json!({}));
    let d = run(&[a.clone(), b.clone()], &rows(&[a.clone(), b]));
    assert_eq!(d.writes, vec![keep("vpc-1"), keep("vpc-2")]);
    assert!(d.drift.is_empty() && d.unconfirmed.is_empty(), "{d:?}");
    // The same tags in another key order, and null for a missing value,
    // are the same.
    let mut spelt = a.clone();
    spelt["tags"] = serde_json::from_str(r#"{"env": "prod"}"#).unwrap();
    let mut cur = rows(std::slice::from_ref(&a));
    let mut r = cur.locked["vpc-1"].props();
    r.insert("state".into(), Value::Null);
    cur.locked.insert("vpc-1".into(), (&r).into());
    spelt.remove("state");
    spelt.insert("state".into(), Value::Null);
    assert_eq!(run(&[spelt], &cur).writes, vec![keep("vpc-1")]);
}

#[test]
fn a_row_sync_never_wrote_is_written_once() {
    let a = vpc("vpc-1", "a", json!({}));
    let mut cur = rows(std::slice::from_ref(&a));
    let mut r = cur.locked["vpc-1"].props();
    r.insert("synced_at".into(), Value::Null);
    cur.locked.insert("vpc-1".into(), (&r).into());
    assert_eq!(
        run(std::slice::from_ref(&a), &cur).writes,
        vec![update("vpc-1", Columns::CloudAssigned, 0)]
    );
}

#[test]
fn rows_the_round_did_not_compare_stay_unconfirmed() {
    let listed = vpc("vpc-1", "a", json!({}));
    let held = vpc("vpc-2", "b", json!({}));
    let owned = vpc("vpc-3", "c", json!({}));
    let gone = vpc("vpc-4", "d", json!({}));
    let mut cur = with_policy(
        rows(&[listed.clone(), held.clone(), owned.clone(), gone]),
        Policy::Report,
    );
    cur.locked.remove("vpc-2"); // an open transaction holds it
    cur.unsettled_ids.insert("vpc-3".into()); // recovery's
    let d = run(&[listed, held, owned], &cur);
    assert_eq!(d.writes, vec![keep("vpc-1")]);
    assert_eq!(d.unconfirmed, vec!["vpc-2", "vpc-3", "vpc-4"]);
    // Adopted, a disappeared row is deleted: unconfirmed until it is gone
    // (a row still referenced stays, and is not confirmed).
    let d = run(&[], &rows(&[vpc("vpc-4", "d", json!({}))]));
    assert_eq!(d.unconfirmed, vec!["vpc-4"]);
}
