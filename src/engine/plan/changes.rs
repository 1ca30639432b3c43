//! From captured row changes to what the plan acts on: one net change per
//! row, and the desired columns that differ in it.

use std::collections::HashMap;

use infrasql_provider::{ColumnKind, Props, ResourceSchema, ROW_KEY, STACK};
use serde_json::{json, Value};

use super::{FieldChange, RowChange};

/// Net a sequence of per-statement changes (in capture order) to one change
/// per row. Rows inserted and deleted in the same transaction vanish.
pub fn net_changes(
    raw: Vec<(String, Option<Props>, Option<Props>)>,
    id_col: impl Fn(&str) -> Option<&'static str>,
) -> Vec<RowChange> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut net: HashMap<(String, String), RowChange> = HashMap::new();
    for (table, old, new) in raw {
        let Some(idc) = id_col(&table) else { continue };
        // Rows are followed by their row key, which never changes: the AWS
        // id does (a chosen name renamed in the transaction). Rows made
        // without one (unit tests) fall back on the AWS id.
        let row = new.as_ref().or(old.as_ref());
        let id = match row.and_then(|p| p.get(ROW_KEY.name)) {
            Some(k) if !k.is_null() => format!("row {k}"),
            _ => row
                .and_then(|p| p.get(idc))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        let key = (table.clone(), id);
        match net.get_mut(&key) {
            Some(c) => c.after = new,
            None => {
                order.push(key.clone());
                net.insert(
                    key,
                    RowChange {
                        table,
                        before: old,
                        after: new,
                    },
                );
            }
        }
    }
    order
        .into_iter()
        .filter_map(|k| net.remove(&k))
        .filter(|c| !(c.before.is_none() && c.after.is_none()))
        .collect()
}

fn is_null(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// Compare desired columns; cloud-assigned ones are never the user's change.
pub(super) fn diff(
    schema: &ResourceSchema,
    before: Option<&Props>,
    after: Option<&Props>,
) -> (Vec<FieldChange>, bool) {
    let mut out = Vec::new();
    let mut replace = false;
    // A resource's stack is in AWS as a tag where the type has tags: moving
    // it into a stack (adopting) updates the tag. Elsewhere it is the
    // database's alone.
    let stack = schema.column("tags").map(|_| &STACK);
    for c in schema
        .columns
        .iter()
        .filter(|c| c.kind.is_desired())
        .chain(stack)
    {
        let b = before.and_then(|p| p.get(c.name));
        let a = after.and_then(|p| p.get(c.name));
        if b == a || (is_null(b) && is_null(a)) {
            continue;
        }
        if before.is_some() && after.is_some() && c.kind == ColumnKind::ReplaceOnChange {
            replace = true;
        }
        let redact = |v: Option<&Value>| {
            if c.kind == ColumnKind::WriteOnly && !is_null(v) {
                json!("(secret)")
            } else {
                v.cloned().unwrap_or(Value::Null)
            }
        };
        out.push(FieldChange {
            field: c.name.to_owned(),
            before: redact(b),
            after: redact(a),
        });
    }
    (out, replace)
}
