//! Sets of references ([`MemberSet`]) in a round: the listing reports an
//! owner's set as an array, the database keeps it as join rows. Pure:
//! memberships in AWS without a row → insert (drift `appeared`), rows AWS no
//! longer has → delete (drift `disappeared`), per the owner's policy;
//! `revert` puts the set back through an update of the owner.
//!
//! Only the sets of owners whose rows this round compared (written or kept)
//! are compared (a row an open transaction holds, or one an apply in flight
//! owns, is left alone, and so is its set: a change to a set locks its
//! owner's row first). A member that is not a
//! row yet waits for a later round (the foreign key).

use std::collections::{BTreeSet, HashMap, HashSet};

use infrasql_provider::{Column, MemberSet, Props};
use serde_json::{json, Value};

use super::diff::{DriftKind, DriftRecord, Revert, RowWrite};
use super::policy::{policy_for, stack_of, Policy, PolicyRow};
use super::row::RowText;
use crate::engine::plan::Action;

/// One set column of the type and what the round knows of it.
pub struct Input<'a> {
    pub column: &'static Column,
    pub set: MemberSet,
    pub id_column: &'static str,
    pub observed: &'a [Props],
    /// The round's row writes: owners updated or kept are compared, owners
    /// inserted get their rows without drift of their own.
    pub writes: &'a [RowWrite],
    /// The owners' rows this round holds.
    pub owners: &'a std::collections::BTreeMap<String, RowText>,
    /// The join rows of those owners: owner → members.
    pub rows: &'a HashMap<String, BTreeSet<String>>,
    /// Members (of what the listing reports) that are rows.
    pub members: &'a HashSet<String>,
    pub policies: &'a [PolicyRow],
    /// Open drift of the join table: (resource id, kind).
    pub open: &'a HashSet<(String, DriftKind)>,
    pub first: bool,
}

#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    /// (owner, member) rows to insert.
    pub inserts: Vec<(String, String)>,
    pub deletes: Vec<(String, String)>,
    pub drift: Vec<DriftRecord>,
}

/// How drift of one membership is named in `infra.drift.resource_id`.
pub fn membership_id(owner: &str, member: &str) -> String {
    format!("{owner}/{member}")
}

fn listed(p: &Props, column: &Column) -> BTreeSet<String> {
    column.ids(p).into_iter().map(str::to_owned).collect()
}

fn array(set: &BTreeSet<String>) -> Value {
    Value::Array(set.iter().cloned().map(Value::String).collect())
}

/// The memberships to write and the drift; reverts are added to `reverts`
/// (merged into an update of the owner the round reverts anyway).
pub fn diff(input: &Input, reverts: &mut Vec<Revert>) -> Diff {
    let mut out = Diff::default();
    let by_id: HashMap<&str, &Props> = input
        .observed
        .iter()
        .filter_map(|p| {
            p.get(input.id_column)
                .and_then(Value::as_str)
                .map(|id| (id, p))
        })
        .collect();
    let record = |kind, owner: &str, member: &str, policy| {
        let v = json!({ input.set.owner: owner, input.set.member: member });
        let (known, actual) = match kind {
            DriftKind::Appeared => (Value::Null, v),
            _ => (v, Value::Null),
        };
        DriftRecord {
            kind,
            id: membership_id(owner, member),
            field: None,
            known,
            actual,
            policy,
        }
    };
    for w in input.writes {
        let (id, updated) = match w {
            RowWrite::Update { id, .. } | RowWrite::Keep { id } => (id, true),
            RowWrite::Insert { id, .. } => (id, false),
            RowWrite::Delete { .. } => continue,
        };
        let Some(p) = by_id.get(id.as_str()) else {
            continue;
        };
        let in_aws: BTreeSet<String> = listed(p, input.column)
            .into_iter()
            .filter(|m| input.members.contains(m))
            .collect();
        let empty = BTreeSet::new();
        let rows = input.rows.get(id).unwrap_or(&empty);
        if !updated {
            // A new row: its set comes with it, as what it was imported with.
            out.inserts
                .extend(in_aws.iter().map(|m| (id.clone(), m.clone())));
            continue;
        }
        let appeared: Vec<&String> = in_aws.difference(rows).collect();
        let gone: Vec<&String> = rows.difference(&in_aws).collect();
        if appeared.is_empty() && gone.is_empty() {
            continue;
        }
        let row = input.owners.get(id).map(RowText::props);
        let row = row.as_ref();
        let policy = if input.first {
            Policy::Adopt
        } else {
            policy_for(
                input.policies,
                row.and_then(|r| r.get("tags")),
                row.and_then(stack_of),
            )
        };
        if !input.first {
            for m in &appeared {
                out.drift.push(record(DriftKind::Appeared, id, m, policy));
            }
            for m in &gone {
                out.drift
                    .push(record(DriftKind::Disappeared, id, m, policy));
            }
        }
        match policy {
            Policy::Adopt => {
                out.inserts
                    .extend(appeared.iter().map(|m| (id.clone(), (*m).clone())));
                out.deletes
                    .extend(gone.iter().map(|m| (id.clone(), (*m).clone())));
            }
            Policy::Report => {}
            Policy::Revert => {
                let prop = input.column.name.to_owned();
                match reverts
                    .iter_mut()
                    .find(|r| r.id == *id && r.action == Action::Update)
                {
                    Some(r) => {
                        if let Some(d) = r.desired.as_mut() {
                            d.insert(prop, array(rows));
                        }
                    }
                    None => {
                        let mut desired = row.cloned().unwrap_or_default();
                        desired.insert(prop, array(rows));
                        reverts.push(Revert {
                            action: Action::Update,
                            id: id.clone(),
                            actual: Some((*p).clone()),
                            desired: Some(desired),
                        });
                    }
                }
            }
        }
    }
    // A re-created owner comes back with its set.
    for r in reverts.iter_mut().filter(|r| r.action == Action::Create) {
        if let (Some(d), Some(rows)) = (r.desired.as_mut(), input.rows.get(&r.id)) {
            d.insert(input.column.name.to_owned(), array(rows));
        }
    }
    out.drift
        .retain(|d| !input.open.contains(&(d.id.clone(), d.kind)));
    out
}

#[cfg(test)]
mod tests;
