//! Whether the plan's replaces may run at all, decided before any AWS call
//! from the rows, never from AWS's answer (moto, for one, lets a security
//! group in use be deleted).
//!
//! - A replace leaves behind whatever used the old resource. Rows that
//!   reference it after the transaction ([`Facts::dependents`], found by the
//!   commit path in the client's transaction) must be created in this
//!   transaction (they are created in the new resource) or, for a
//!   create-first replace, be replaced with it. Anything else is refused:
//!   AWS refuses to delete a resource in use (`DependencyViolation`) or takes
//!   its parts with it, and either way the rows would no longer match AWS.
//! - A delete-first replace also refuses rows of this transaction that used
//!   the old resource before (deleted or moved): their deletes run last,
//!   after the old resource had to be gone.
//! - A replace of a type that holds data (`ResourceSchema::stateful`) needs
//!   `SET infra.allow_replace = on`. A DELETE of such a row says what it
//!   means; an UPDATE that happens to force a replace does not.

use std::collections::{HashMap, HashSet};

use infrasql_provider::{ColumnKind, ReplaceOrder, ResourceSchema};

use super::super::commit::literal;
use super::{Action, Plan, PlanError, Step};

/// A row that, after the transaction, references a resource the plan
/// replaces.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependent {
    pub table: String,
    pub id: String,
    pub name: Option<String>,
    /// The replaced resource.
    pub parent_table: String,
    pub parent_id: String,
}

/// What the plan cannot see in the changes and the commit path looks up.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    pub dependents: Vec<Dependent>,
    /// `infra.allow_replace`, read only when a stateful replace is planned.
    pub allow_replace: bool,
}

/// The create-side step of every replace in the plan.
pub fn replaced(plan: &Plan) -> impl Iterator<Item = &Step> {
    plan.steps.iter().filter(|s| {
        matches!(
            (s.action, s.last_phase),
            (Action::Replace, false) | (Action::RecreateCreate, _)
        )
    })
}

/// Refuse the first replace that may not run.
pub fn check_replaces(
    plan: &Plan,
    schemas: &HashMap<String, &'static ResourceSchema>,
    facts: &Facts,
) -> Result<(), PlanError> {
    let created: HashSet<(&str, &str)> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Create)
        .map(|s| (s.table.as_str(), s.id.as_str()))
        .collect();
    let replaced_too: HashSet<(&str, &str)> = replaced(plan)
        .map(|s| (s.table.as_str(), s.id.as_str()))
        .collect();
    for r in replaced(plan) {
        let Some(schema) = schemas.get(&r.table) else {
            continue;
        };
        let delete_first = r.action == Action::RecreateCreate;
        let mut blockers: Vec<(String, String, Option<String>)> = facts
            .dependents
            .iter()
            .filter(|d| d.parent_table == r.table && d.parent_id == r.id)
            .filter(|d| !created.contains(&(d.table.as_str(), d.id.as_str())))
            .filter(|d| delete_first || !replaced_too.contains(&(d.table.as_str(), d.id.as_str())))
            .map(|d| (d.table.clone(), d.id.clone(), d.name.clone()))
            .collect();
        if delete_first {
            for s in plan.steps.iter().filter(|s| s.action != Action::Create) {
                let same = s.table == r.table && s.id == r.id;
                let listed = blockers.iter().any(|(t, i, _)| *t == s.table && *i == s.id);
                if !same && !listed && used_before(s, schemas, schema, &r.id) {
                    blockers.push((s.table.clone(), s.id.clone(), s.name.clone()));
                }
            }
        }
        if !blockers.is_empty() {
            return Err(dependents_error(r, schema, &blockers));
        }
    }
    if !facts.allow_replace {
        for r in replaced(plan) {
            if let Some(lost) = schemas.get(&r.table).and_then(|s| s.stateful) {
                return Err(data_error(r, schemas[&r.table], lost));
            }
        }
    }
    Ok(())
}

/// Whether the plan replaces a resource of a type that holds data.
pub fn needs_consent(plan: &Plan, schemas: &HashMap<String, &'static ResourceSchema>) -> bool {
    replaced(plan).any(|r| schemas.get(&r.table).is_some_and(|s| s.stateful.is_some()))
}

/// One query, run in the client's transaction, for the rows that reference
/// a resource the plan replaces: every reference column of every table that
/// points at a replaced type. `None` when the plan replaces nothing.
pub fn dependents_query(
    plan: &Plan,
    schemas: &HashMap<String, &'static ResourceSchema>,
) -> Option<String> {
    let mut parts = Vec::new();
    let mut tables: Vec<(&String, &&'static ResourceSchema)> = schemas.iter().collect();
    tables.sort_by_key(|(t, _)| *t);
    for r in replaced(plan) {
        let Some(parent) = schemas.get(&r.table) else {
            continue;
        };
        for (table, child) in &tables {
            let refs = child
                .references()
                .filter(|c| c.references == Some(parent.table) && child.schema == parent.schema);
            for c in refs {
                let name = if child.column("name").is_some() {
                    "name::text"
                } else {
                    "NULL::text"
                };
                // A set's members are rows of its join table.
                let filter = match c.set {
                    Some(set) => format!(
                        "{} IN (SELECT {} FROM {}.{} WHERE {} = {})",
                        ident(child.id_column()),
                        ident(set.owner),
                        ident(child.schema),
                        ident(set.table),
                        ident(set.member),
                        literal(&r.id),
                    ),
                    None => format!("{} = {}", ident(c.name), literal(&r.id)),
                };
                parts.push(format!(
                    "SELECT {}, {}::text, {name}, {}, {} FROM {}.{} WHERE {filter}",
                    literal(table),
                    ident(child.id_column()),
                    literal(&r.table),
                    literal(&r.id),
                    ident(child.schema),
                    ident(child.table),
                ));
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join(" UNION ALL "))
}

/// The rows of [`dependents_query`].
pub fn dependents_from(rows: &[Vec<Option<String>>]) -> Vec<Dependent> {
    rows.iter()
        .filter_map(|r| match r.as_slice() {
            [Some(table), Some(id), name, Some(parent_table), Some(parent_id)] => Some(Dependent {
                table: table.clone(),
                id: id.clone(),
                name: name.clone(),
                parent_table: parent_table.clone(),
                parent_id: parent_id.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Whether step `s`'s row referenced `parent_id` of `parent` before the transaction.
fn used_before(
    s: &Step,
    schemas: &HashMap<String, &'static ResourceSchema>,
    parent: &ResourceSchema,
    parent_id: &str,
) -> bool {
    let (Some(schema), Some(before)) = (schemas.get(&s.table), s.before.as_ref()) else {
        return false;
    };
    schema
        .references()
        .any(|c| c.references == Some(parent.table) && c.ids(before).contains(&parent_id))
}

fn what(s: &Step, schema: &ResourceSchema) -> String {
    let name = s
        .name
        .as_deref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    format!("{}{name} ({} {})", schema.display, s.table, s.id)
}

/// The replace-on-change columns the step changes: why it is a replace.
fn because(s: &Step, schema: &ResourceSchema) -> String {
    let cols: Vec<&str> = s
        .changes
        .iter()
        .filter(|c| {
            schema
                .column(&c.field)
                .is_some_and(|c| c.kind == ColumnKind::ReplaceOnChange)
        })
        .map(|c| c.field.as_str())
        .collect();
    cols.join(", ")
}

fn dependents_error(
    r: &Step,
    schema: &ResourceSchema,
    blockers: &[(String, String, Option<String>)],
) -> PlanError {
    const SHOWN: usize = 5;
    let mut list: Vec<String> = blockers
        .iter()
        .take(SHOWN)
        .map(|(t, i, n)| match n {
            Some(n) => format!("{t} \"{n}\" ({i})"),
            None => format!("{t} {i}"),
        })
        .collect();
    if blockers.len() > SHOWN {
        list.push(format!("and {} more", blockers.len() - SHOWN));
    }
    let n = blockers.len();
    let rows = if n == 1 {
        "row still uses"
    } else {
        "rows still use"
    };
    let d = schema.display;
    let order = if r.action == Action::RecreateCreate {
        let why = match schema.replace_order {
            ReplaceOrder::DeleteFirst { why, .. } => why,
            ReplaceOrder::CreateFirst => "",
        };
        format!(
            "while {} stay the same, the old one must be deleted before the new one is created ({why})",
            unique_key_words(schema, " and ")
        )
    } else {
        "a new one is created, then the old one deleted".to_owned()
    };
    let hint = if r.action == Action::RecreateCreate {
        format!(
            "Delete those rows and COMMIT first, then make this change and insert them again; \
             or also change {} (the new {d} is then created before the old one is deleted) \
             and delete and insert those rows again in the same transaction.",
            unique_key_words(schema, " or ")
        )
    } else {
        format!(
            "Delete those rows in the same transaction (insert them again if they belong with the new {d}), \
             or change them too so each is replaced along with it; or leave {} as it was.",
            because(r, schema)
        )
    };
    PlanError::Dependents {
        message: format!("cannot replace {}: {n} {rows} it", what(r, schema)),
        detail: format!(
            "A change of {} replaces the {d}: {order}. Using the old one: {}. \
             AWS refuses to delete a resource still in use, or takes its parts with it; \
             either way those rows would no longer match AWS. Nothing was applied.",
            because(r, schema),
            list.join(", ")
        ),
        hint,
    }
}

/// "vpc_id or group_name", "vpc_id and group_name": the unique key without the
/// region (moving regions is never the fix).
fn unique_key_words(schema: &ResourceSchema, sep: &str) -> String {
    match schema.replace_order {
        ReplaceOrder::DeleteFirst { unique_key, .. } => unique_key
            .iter()
            .filter(|k| **k != "region")
            .copied()
            .collect::<Vec<_>>()
            .join(sep),
        ReplaceOrder::CreateFirst => String::new(),
    }
}

fn data_error(r: &Step, schema: &ResourceSchema, lost: &str) -> PlanError {
    PlanError::WouldLoseData {
        message: format!("replacing {} would destroy {lost}", what(r, schema)),
        detail: format!(
            "A change of {} replaces the {}: a new one is created, then the old one deleted. \
             infrasql does not destroy data unasked. Nothing was applied.",
            because(r, schema),
            schema.display
        ),
        hint: "If that is meant, run the transaction again after SET infra.allow_replace = on \
               (SET LOCAL for this transaction only). A DELETE of the row needs no setting."
            .to_owned(),
    }
}

#[cfg(test)]
#[path = "replace_tests.rs"]
mod tests;
