//! The decision of a round, without I/O: what the cloud listed and what the
//! database holds in → row writes, drift records and reverts out.
//!
//! Every rule of the round is here, so it is unit-tested: resources owned
//! by an apply in flight or by recovery are left alone; rows an open
//! transaction holds wait; the first round imports without drift; a
//! resource whose parent is not a row yet waits; the policy (by tag, then
//! table) says whether drift is adopted, reported or reverted; drift already
//! open for the same value is not recorded again.

use std::collections::{BTreeMap, HashMap, HashSet};

use infrasql_provider::{ColumnKind, Props, ResourceSchema, APPLY_TAG, STACK};
use serde_json::Value;

use super::known::{ListedHashes, Version};
use super::policy::{policy_for, stack_of, Policy, PolicyRow};
use super::row::RowText;
use super::Stats;
use crate::engine::plan::Action;

mod drift;

use drift::{already_open, appeared, changed};

/// What the database holds for one (table, region), read in the round's
/// transaction.
#[derive(Debug, Default)]
pub struct Current {
    /// The region's rows this round may judge, by AWS id. Read without a
    /// lock; a round decides again after locking the rows it would touch
    /// (`read::relock`), and those an open transaction holds are dropped
    /// from here. Types with sets lock them all as they read them.
    pub locked: BTreeMap<String, RowText>,
    /// Rows not read: the last round kept them, and neither they nor their
    /// listed resource changed since (`known`). Kept again.
    pub unchanged: HashSet<String>,
    /// The tuple version of each row read or unchanged, for `known`.
    pub versions: HashMap<String, Version>,
    /// Every row's AWS id in the region, held by a transaction or not.
    pub all: HashSet<String>,
    pub policies: Vec<PolicyRow>,
    /// Ids of applies not settled yet (their resources carry `APPLY_TAG`).
    pub in_flight: HashSet<String>,
    /// An unsettled apply touches this table: what appeared or disappeared
    /// may be its doing (not every type carries the apply tag).
    pub table_busy: bool,
    /// Resources an unsettled apply updated or deleted: recovery's until
    /// it has made them equal the committed rows.
    pub unsettled_ids: HashSet<String>,
    /// Per reference column the listing reports: the parent ids, among
    /// those the appeared resources name, that are rows.
    pub parents: Vec<(&'static str, HashSet<String>)>,
    /// Open drift of the table: (resource id, kind, field) → actual values.
    pub open_drift: HashMap<(String, DriftKind, Option<String>), Vec<Option<Value>>>,
    /// The listed resources' hashes, each computed once (`known`).
    pub hashes: ListedHashes,
}

/// One round's input.
pub struct Input<'a> {
    pub schema: &'static ResourceSchema,
    pub observed: &'a [Props],
    pub current: &'a Current,
    /// No successful round of this pair yet: what exists is imported, not drift.
    pub first: bool,
}

/// Which columns an update writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// Every column the listing reports (`Diff::observed_cols`).
    Observed,
    /// Only the cloud-assigned and identity ones (`Diff::cloud_cols`): the
    /// row keeps its desired values.
    CloudAssigned,
}

/// A row to write. Its values are the listed resource `Input::observed[at]`,
/// not a copy: a round that imports 40,000 resources would otherwise hold
/// them twice (issue #15, peak RSS).
#[derive(Debug, Clone, PartialEq)]
pub enum RowWrite {
    Update {
        id: String,
        columns: Columns,
        at: usize,
    },
    Insert {
        id: String,
        at: usize,
    },
    /// Deleted only if nothing references it any more (else a later round).
    Delete {
        id: String,
    },
    /// The row already holds what the listing reports: compared, not
    /// written (a steady round writes nothing, issue #15). Its sets are
    /// still compared (`members`).
    Keep {
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriftKind {
    Changed,
    Appeared,
    Disappeared,
}

impl DriftKind {
    /// The spelling in `infra.drift.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Changed => "changed",
            DriftKind::Appeared => "appeared",
            DriftKind::Disappeared => "disappeared",
        }
    }
}

/// A row of `infra.drift` to be.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftRecord {
    pub kind: DriftKind,
    pub id: String,
    /// The column that differs (`Changed` only).
    pub field: Option<&'static str>,
    /// What the row held: the field's value, or the whole row when the
    /// resource disappeared; JSON null when there was none.
    pub known: Value,
    /// What the cloud shows: the field's value, or the whole resource when
    /// it appeared; JSON null when it disappeared.
    pub actual: Value,
    pub policy: Policy,
}

/// A change to make to AWS so it equals the rows again (policy `revert`).
#[derive(Debug, Clone, PartialEq)]
pub struct Revert {
    pub action: Action,
    pub id: String,
    pub actual: Option<Props>,
    pub desired: Option<Props>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    pub writes: Vec<RowWrite>,
    pub drift: Vec<DriftRecord>,
    pub reverts: Vec<Revert>,
    pub stats: Stats,
    pub observed_cols: Vec<&'static str>,
    pub cloud_cols: Vec<&'static str>,
    /// Rows of the region the round did not compare with the listing (held
    /// by an open transaction, owned by an apply in flight or recovery, not
    /// listed): their confirmed time stays what it was (`status::confirm`).
    pub unconfirmed: Vec<String>,
}

/// How a drift record is resolved once the round's reverts have run.
pub fn resolution(policy: Policy, revert_ok: bool) -> &'static str {
    match policy {
        Policy::Adopt => "adopted",
        Policy::Revert if revert_ok => "reverted",
        _ => "open",
    }
}

/// Columns the listing reports for every resource: only those are written.
/// Columns a listing reports for some resources only (a VPC's DNS
/// attributes) are unobserved: never overwritten, never drift.
pub fn observed_columns(schema: &ResourceSchema, observed: &[Props]) -> Vec<&'static str> {
    if observed.is_empty() {
        return Vec::new();
    }
    // The stack, where the provider reads it from the infrasql:stack tag:
    // a resource imported into an empty database finds its stack again.
    let mut cols: Vec<&'static str> = std::iter::once(&STACK)
        .chain(schema.columns.iter())
        // Sets are written as join rows (`members`), not as columns.
        .filter(|c| !matches!(c.kind, ColumnKind::WriteOnly | ColumnKind::Set))
        .filter(|c| c.name != "synced_at")
        .map(|c| c.name)
        .collect();
    // Resource by resource, all columns in one merge with the resource's
    // keys (both in order: serde_json's map is sorted unless its
    // `preserve_order` feature is on, which this workspace does not turn
    // on): each map is walked once, front to back. Column
    // by column, with a lookup each, a 40,000-resource listing was walked a
    // dozen times, and this took a third of a steady round's CPU (issue #15).
    let mut present = cols.clone();
    present.sort_unstable();
    for p in observed {
        let mut keys = p.keys().map(String::as_str).peekable();
        present.retain(|c| {
            while keys.next_if(|k| k < c).is_some() {}
            keys.next_if_eq(c).is_some()
        });
        if present.is_empty() {
            break;
        }
    }
    cols.retain(|c| present.binary_search(c).is_ok());
    cols
}

fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let null = |v: Option<&Value>| matches!(v, None | Some(Value::Null));
    a == b || (null(a) && null(b))
}

pub fn diff(input: &Input) -> Diff {
    let Input {
        schema,
        observed,
        current: cur,
        first,
    } = *input;
    let idc = schema.id_column();
    let observed_cols = observed_columns(schema, observed);
    let cloud_cols = observed_cols
        .iter()
        .copied()
        .filter(|c| {
            schema
                .column(c)
                .is_some_and(|c| matches!(c.kind, ColumnKind::CloudAssigned | ColumnKind::Identity))
        })
        .collect();
    let mut out = Diff {
        stats: Stats {
            seen: observed.len(),
            ..Default::default()
        },
        observed_cols,
        cloud_cols,
        ..Default::default()
    };
    let mut seen_ids = HashSet::new();
    for (at, p) in observed.iter().enumerate() {
        let Some(id) = p.get(idc).and_then(Value::as_str) else {
            continue;
        };
        seen_ids.insert(id);
        if p.get(APPLY_TAG)
            .and_then(Value::as_str)
            .is_some_and(|a| cur.in_flight.contains(a))
        {
            continue; // a commit in progress owns it
        }
        if cur.unsettled_ids.contains(id) {
            continue; // recovery owns it until it is settled
        }
        match cur.locked.get(id) {
            Some(row) => changed(&mut out, schema, cur, id, &row.props(), (at, p)),
            None if cur.unchanged.contains(id) => {
                out.writes.push(RowWrite::Keep { id: id.to_owned() })
            }
            None if cur.all.contains(id) => out.stats.skipped_locked += 1,
            None if cur.table_busy => {}
            None => appeared(&mut out, cur, id, (at, p), first),
        }
    }
    for (id, row) in &cur.locked {
        if seen_ids.contains(id.as_str())
            || id.starts_with("pending-")
            || cur.table_busy
            || cur.unsettled_ids.contains(id)
        {
            continue;
        }
        let row = &row.props();
        out.stats.drift += 1;
        let policy = policy_for(&cur.policies, row.get("tags"), stack_of(row));
        out.drift.push(DriftRecord {
            kind: DriftKind::Disappeared,
            id: id.clone(),
            field: None,
            known: Value::Object(row.clone()),
            actual: Value::Null,
            policy,
        });
        match policy {
            Policy::Adopt => out.writes.push(RowWrite::Delete { id: id.clone() }),
            Policy::Report => {}
            Policy::Revert => out.reverts.push(Revert {
                action: Action::Create,
                id: id.clone(),
                actual: None,
                desired: Some(row.clone()),
            }),
        }
    }
    // Drift already open for the same value is not repeated.
    out.drift.retain(|d| !already_open(cur, d));
    let compared: HashSet<&str> = out
        .writes
        .iter()
        .filter_map(|w| match w {
            RowWrite::Update { id, .. } | RowWrite::Keep { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let mut unconfirmed: Vec<String> = cur
        .all
        .iter()
        .filter(|id| !compared.contains(id.as_str()))
        .cloned()
        .collect();
    unconfirmed.sort();
    out.unconfirmed = unconfirmed;
    out
}

#[cfg(test)]
mod tests;
