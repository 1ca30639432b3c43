//! One listed resource against the database: drift in a row's desired
//! columns, or a resource that is not a row; each by policy.

use infrasql_provider::{ColumnKind, Props, ResourceSchema};
use serde_json::Value;

use super::{same, Columns, Current, Diff, DriftKind, DriftRecord, Revert, RowWrite};
use crate::engine::plan::Action;
use crate::engine::sync::policy::{policy_for, stack_of, Policy};

/// A resource that is a row: drift in its desired columns, by policy.
pub(super) fn changed(
    out: &mut Diff,
    schema: &ResourceSchema,
    cur: &Current,
    id: &str,
    row: &Props,
    (at, p): (usize, &Props),
) {
    let update = |columns| RowWrite::Update {
        id: id.to_owned(),
        columns,
        at,
    };
    let diffs: Vec<&'static str> = schema
        .columns
        .iter()
        .filter(|c| matches!(c.kind, ColumnKind::Desired | ColumnKind::ReplaceOnChange))
        .filter(|c| p.contains_key(c.name) && !same(row.get(c.name), p.get(c.name)))
        .map(|c| c.name)
        .collect();
    // Only the cloud's columns are written unless drift is adopted: a row
    // whose cloud columns already hold the listing's values is kept as it
    // is, so a steady round writes no row at all. A row sync never wrote
    // (synced_at NULL, e.g. restored from a dump) is written once.
    let cloud_same = !row.get("synced_at").is_none_or(Value::is_null)
        && out
            .cloud_cols
            .iter()
            .all(|c| *c == schema.id_column() || same(row.get(*c), p.get(*c)));
    let cloud_update = |columns| {
        if cloud_same {
            RowWrite::Keep { id: id.to_owned() }
        } else {
            update(columns)
        }
    };
    if diffs.is_empty() {
        out.writes.push(cloud_update(Columns::CloudAssigned));
        return;
    }
    out.stats.drift += diffs.len();
    let mut policy = policy_for(&cur.policies, row.get("tags"), stack_of(row));
    // A replace-on-change field cannot be set back in place.
    if policy == Policy::Revert
        && diffs.iter().any(|d| {
            schema
                .column(d)
                .is_some_and(|c| c.kind == ColumnKind::ReplaceOnChange)
        })
    {
        policy = Policy::Report;
    }
    for f in &diffs {
        out.drift.push(DriftRecord {
            kind: DriftKind::Changed,
            id: id.to_owned(),
            field: Some(f),
            known: row.get(*f).cloned().unwrap_or(Value::Null),
            actual: p.get(*f).cloned().unwrap_or(Value::Null),
            policy,
        });
    }
    match policy {
        Policy::Adopt => out.writes.push(update(Columns::Observed)),
        Policy::Report => out.writes.push(cloud_update(Columns::CloudAssigned)),
        Policy::Revert => {
            out.writes.push(cloud_update(Columns::CloudAssigned));
            out.reverts.push(Revert {
                action: Action::Update,
                id: id.to_owned(),
                actual: Some(p.clone()),
                desired: Some(row.clone()),
            });
        }
    }
}

/// A resource that is not a row: imported (first round), or drift by policy.
pub(super) fn appeared(
    out: &mut Diff,
    cur: &Current,
    id: &str,
    (at, p): (usize, &Props),
    first: bool,
) {
    let policy = if first {
        Policy::Adopt
    } else {
        policy_for(&cur.policies, p.get("tags"), stack_of(p))
    };
    if !first {
        out.stats.drift += 1;
        out.drift.push(DriftRecord {
            kind: DriftKind::Appeared,
            id: id.to_owned(),
            field: None,
            known: Value::Null,
            actual: Value::Object(p.clone()),
            policy,
        });
    }
    match policy {
        // One whose parent is not a row (a VPC's default group while
        // recovery is still deleting the VPC a refused COMMIT made) waits
        // for a later round instead of failing the round on a foreign key.
        Policy::Adopt if parents_are_rows(cur, p) => out.writes.push(RowWrite::Insert {
            id: id.to_owned(),
            at,
        }),
        Policy::Adopt | Policy::Report => {}
        Policy::Revert => out.reverts.push(Revert {
            action: Action::Delete,
            id: id.to_owned(),
            actual: Some(p.clone()),
            desired: None,
        }),
    }
}

/// Every parent `p` names is a row (a NULL reference names none).
fn parents_are_rows(cur: &Current, p: &Props) -> bool {
    cur.parents.iter().all(|(col, rows)| match p.get(*col) {
        None | Some(Value::Null) => true,
        Some(Value::String(parent)) => rows.contains(parent),
        Some(_) => false,
    })
}

pub(super) fn already_open(cur: &Current, d: &DriftRecord) -> bool {
    let key = (d.id.clone(), d.kind, d.field.map(str::to_owned));
    cur.open_drift
        .get(&key)
        .is_some_and(|actual| actual.iter().any(|a| a.as_ref() == Some(&d.actual)))
}
