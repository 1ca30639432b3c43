//! Sets of references kept in join tables ([`MemberSet`]) folded into
//! their owners' changes, so the plan has one step per owner with the whole
//! set: a create carries every member (one launch call), a set changed by
//! itself becomes an in-place update of the owner, and join rows make no
//! cloud calls of their own.
//!
//! Pure: the commit path reads the sets as the transaction leaves them and
//! the owners' rows; [`fold_sets`] works out the sets before the transaction
//! from the captured join-row changes (replayed backwards).

use std::collections::{BTreeSet, HashMap};

use infrasql_provider::{Column, MemberSet, Props, ResourceSchema};
use serde_json::Value;

use super::RowChange;

/// One set: its owner's table and description, the owner's set column, and
/// where the set lives.
#[derive(Debug, Clone, Copy)]
pub struct SetOf {
    pub owner: &'static ResourceSchema,
    pub column: &'static Column,
    pub set: MemberSet,
}

impl SetOf {
    pub fn owner_table(&self) -> String {
        self.owner.qualified()
    }
    pub fn join_table(&self) -> String {
        format!("{}.{}", self.owner.schema, self.set.table)
    }
}

/// Every set of every description, by qualified join table.
pub fn sets_by_join_table(
    schemas: &HashMap<String, &'static ResourceSchema>,
) -> HashMap<String, SetOf> {
    schemas
        .values()
        .flat_map(|s| {
            s.columns.iter().filter_map(move |c| {
                c.set.map(|set| SetOf {
                    owner: s,
                    column: c,
                    set,
                })
            })
        })
        .map(|s| (s.join_table(), s))
        .collect()
}

/// A key of one owner's set: (join table, owner id).
pub type SetKey = (String, String);

/// The owners whose sets the plan needs: every owner a captured join-row
/// change names, and every changed row of a type with sets (a replace must
/// launch the new resource with the set, a delete orders after what its
/// set names).
pub fn needed(
    raw: &[(String, Option<Props>, Option<Props>)],
    changes: &[RowChange],
    sets: &HashMap<String, SetOf>,
) -> Vec<SetKey> {
    let mut out: Vec<SetKey> = Vec::new();
    let mut push = |k: SetKey| {
        if !out.contains(&k) {
            out.push(k);
        }
    };
    for (table, old, new) in raw {
        let Some(s) = sets.get(table) else { continue };
        for row in [old, new].into_iter().flatten() {
            if let Some(owner) = row.get(s.set.owner).and_then(Value::as_str) {
                push((table.clone(), owner.to_owned()));
            }
        }
    }
    for ch in changes {
        for (jt, s) in sets.iter().filter(|(_, s)| s.owner_table() == ch.table) {
            let row = ch.after.as_ref().or(ch.before.as_ref());
            if let Some(id) = row
                .and_then(|r| r.get(s.owner.id_column()))
                .and_then(Value::as_str)
            {
                push((jt.clone(), id.to_owned()));
            }
        }
    }
    out.sort();
    out
}

/// What the database says of one owner now, in the client's transaction.
#[derive(Debug, Clone, Default)]
pub struct Current {
    /// The members as the transaction leaves them.
    pub members: BTreeSet<String>,
    /// The owner's row, if it exists now.
    pub row: Option<Props>,
}

fn array(set: &BTreeSet<String>) -> Value {
    Value::Array(set.iter().cloned().map(Value::String).collect())
}

/// Put each owner's set into its change (`before`: the set before the
/// transaction; `after`: now), adding an in-place update of the owner where
/// only its set changed.
pub fn fold_sets(
    mut changes: Vec<RowChange>,
    raw: &[(String, Option<Props>, Option<Props>)],
    sets: &HashMap<String, SetOf>,
    current: &HashMap<SetKey, Current>,
) -> Vec<RowChange> {
    let mut keys: Vec<&SetKey> = current.keys().collect();
    keys.sort();
    for key in keys {
        let (jt, owner) = key;
        let Some(s) = sets.get(jt) else { continue };
        let now = &current[key].members;
        let idc = s.owner.id_column();
        let owner_table = s.owner_table();
        let prop = s.column.name.to_owned();
        let id_of = |r: &Option<Props>| {
            r.as_ref()
                .and_then(|r| r.get(idc))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let existing = changes.iter_mut().find(|c| {
            c.table == owner_table && id_of(&c.after).or(id_of(&c.before)).as_deref() == Some(owner)
        });
        // A renamed owner (a chosen name changed in this transaction): its
        // join rows followed by ON UPDATE CASCADE, and those under the old
        // name are the same memberships, not a removal and an addition.
        let mut aliases = vec![owner.clone()];
        if let Some(old) = existing.as_ref().and_then(|c| id_of(&c.before)) {
            if old != *owner {
                aliases.push(old);
            }
        }
        let mut before = now.clone();
        for (_, old, new) in raw.iter().rev().filter(|(t, _, _)| t == jt) {
            let member_of = |r: &Option<Props>| {
                r.as_ref()
                    .filter(|r| {
                        r.get(s.set.owner)
                            .and_then(Value::as_str)
                            .is_some_and(|o| aliases.iter().any(|a| a == o))
                    })
                    .and_then(|r| r.get(s.set.member).and_then(Value::as_str))
                    .map(str::to_owned)
            };
            if let Some(m) = member_of(new) {
                before.remove(&m);
            }
            if let Some(m) = member_of(old) {
                before.insert(m);
            }
        }
        match existing {
            Some(c) => {
                if let Some(a) = c.after.as_mut() {
                    a.insert(prop.clone(), array(now));
                }
                if let Some(b) = c.before.as_mut() {
                    b.insert(prop, array(&before));
                }
            }
            None => {
                // Created and deleted in the transaction, or unchanged.
                let Some(row) = &current[key].row else {
                    continue;
                };
                if &before == now {
                    continue;
                }
                let mut b = row.clone();
                b.insert(prop.clone(), array(&before));
                let mut a = row.clone();
                a.insert(prop, array(now));
                changes.push(RowChange {
                    table: owner_table,
                    before: Some(b),
                    after: Some(a),
                });
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests;
