//! From a transaction's net row changes to an ordered plan of cloud actions.
//!
//! Pure logic: no database, no cloud. The commit path feeds it the changes
//! captured in the transaction (so its cost grows with the change, not with
//! the inventory) and the resource descriptions.
//!
//! Ordering rules:
//! - creates, in-place updates and the create half of replaces run first, a
//!   step after every step that creates what it references;
//! - deletes (and the delete half of replaces) run last, children before
//!   parents, so a failure among the first group can be undone completely;
//! - a replace whose type keeps a unique name (`ReplaceOrder::DeleteFirst`)
//!   deletes the old resource in the first phase, right before its create
//!   half, and only once every first-phase step that does not need the new
//!   resource is done: an unrelated failure then never touches it.
//!
//! The parts: [`changes`] nets the captured rows and diffs their columns;
//! [`draft`] holds a change on its way to a step; [`order`] sorts the steps;
//! [`replace`] decides whether a replace may run at all (dependents, data
//! that would be lost); [`show`] renders the plan for NOTICEs and rows.

mod changes;
mod draft;
mod guard;
mod order;
mod replace;
mod sets;
mod show;
pub use show::Counts;

use std::collections::{BTreeMap, HashMap};

use infrasql_provider::{Column, Props, ResourceSchema};
use serde_json::Value;

use changes::diff;
pub use changes::net_changes;
use draft::{make_step, Draft};
use order::{independent_of_recreates, topo, Node};

pub use guard::check_mass_delete;
pub use replace::{
    check_replaces, dependents_from, dependents_query, needs_consent, replaced, Dependent, Facts,
};
pub use sets::{fold_sets, needed, sets_by_join_table, Current as SetNow, SetKey, SetOf};

/// One captured row change, already netted per row: the row as it was
/// before the transaction (`None` if inserted) and as it is now (`None` if
/// deleted).
#[derive(Debug, Clone)]
pub struct RowChange {
    pub table: String,
    pub before: Option<Props>,
    pub after: Option<Props>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    /// Create the new resource (first phase), delete the old one (last phase).
    Replace,
    Delete,
    /// A delete-first replace, first half: delete the old resource. Runs in
    /// the first phase, right before its [`Action::RecreateCreate`].
    RecreateDelete,
    /// A delete-first replace, second half: create the new resource.
    RecreateCreate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::RecreateDelete => "replace (delete old first)",
            Action::RecreateCreate => "replace (create new)",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based position in execution order.
    pub step: usize,
    pub action: Action,
    pub table: String,
    /// The row's id: provisional for creates, the AWS id otherwise.
    pub id: String,
    pub name: Option<String>,
    pub region: String,
    pub before: Option<Props>,
    pub after: Option<Props>,
    pub changes: Vec<FieldChange>,
    /// Steps that must finish first.
    pub depends_on: Vec<usize>,
    /// True for the phase that runs last (deletes, the delete half of replaces).
    pub last_phase: bool,
}

impl Step {
    /// Whether the step creates a resource (and returns its cloud view).
    pub fn creates(&self) -> bool {
        matches!(
            (self.action, self.last_phase),
            (Action::Create, _) | (Action::Replace, false) | (Action::RecreateCreate, _)
        )
    }
    /// Whether the step deletes a resource.
    pub fn deletes(&self) -> bool {
        matches!(
            (self.action, self.last_phase),
            (Action::Delete, _) | (Action::Replace, true) | (Action::RecreateDelete, _)
        )
    }
    /// The action as `infra.apply_action` records it; recovery reads these.
    pub fn journal_action(&self) -> &'static str {
        match (self.action, self.last_phase) {
            (Action::Replace, false) | (Action::RecreateCreate, _) => "replace-create",
            (Action::Replace, true) | (Action::RecreateDelete, _) => "replace-delete",
            (a, _) => a.as_str(),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("{0} is not a resource table infrasql manages")]
    UnknownTable(String),
    #[error("references among the new rows of this transaction form a cycle ({0})")]
    Cycle(String),
    /// A replace AWS would refuse, or that would leave rows pointing at a
    /// resource that is gone (see [`replace`]).
    #[error("{message}")]
    Dependents {
        message: String,
        detail: String,
        hint: String,
    },
    /// A replace that would destroy data, without `infra.allow_replace`.
    #[error("{message}")]
    WouldLoseData {
        message: String,
        detail: String,
        hint: String,
    },
    /// More deletes than `infra.max_deletes`, without `infra.allow_mass_delete`.
    #[error("{message}")]
    MassDelete {
        message: String,
        detail: String,
        hint: String,
    },
}

impl PlanError {
    /// `2BP01` is PostgreSQL's own "dependent objects still exist"; `55000`
    /// (object not in prerequisite state) says the session has not opted in.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            PlanError::UnknownTable(_) | PlanError::Cycle(_) => super::errors::INVALID_PLAN,
            PlanError::Dependents { .. } => super::errors::DEPENDENTS_EXIST,
            PlanError::WouldLoseData { .. } => super::errors::WOULD_LOSE_DATA,
            PlanError::MassDelete { .. } => super::errors::MASS_DELETE_REFUSED,
        }
    }
    pub fn detail(&self) -> Option<&str> {
        match self {
            PlanError::Dependents { detail, .. }
            | PlanError::WouldLoseData { detail, .. }
            | PlanError::MassDelete { detail, .. } => Some(detail),
            _ => None,
        }
    }
    pub fn hint(&self) -> Option<&str> {
        match self {
            PlanError::Dependents { hint, .. }
            | PlanError::WouldLoseData { hint, .. }
            | PlanError::MassDelete { hint, .. } => Some(hint),
            _ => None,
        }
    }
}

/// Build the plan. `schemas` maps qualified table names to descriptions.
pub fn plan(
    changes: &[RowChange],
    schemas: &HashMap<String, &'static ResourceSchema>,
) -> Result<Plan, PlanError> {
    let mut drafts = Vec::new();
    for ch in changes {
        let schema = *schemas
            .get(&ch.table)
            .ok_or_else(|| PlanError::UnknownTable(ch.table.clone()))?;
        let idc = schema.id_column();
        let (fields, replace) = diff(schema, ch.before.as_ref(), ch.after.as_ref());
        let action = match (&ch.before, &ch.after) {
            (None, Some(_)) => Action::Create,
            (Some(_), None) => Action::Delete,
            _ if fields.is_empty() => continue,
            _ if replace && schema.deletes_first(|c| fields.iter().any(|f| f.field == c)) => {
                Action::RecreateCreate
            }
            _ if replace => Action::Replace,
            _ => Action::Update,
        };
        let mut d = Draft {
            action,
            change: ch.clone(),
            fields,
            schema,
            id: String::new(),
        };
        d.id = d
            .row()
            .get(idc)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        drafts.push(d);
    }
    let cycle = |n: Node| {
        let i = match n {
            Node::Main(i) | Node::DeleteHalf(i) => i,
        };
        PlanError::Cycle(format!("{} {}", drafts[i].change.table, drafts[i].id))
    };

    // First phase: topological order by references among created rows.
    let mut first: Vec<Node> = Vec::new();
    for (i, d) in drafts.iter().enumerate() {
        if d.action == Action::RecreateCreate {
            first.push(Node::DeleteHalf(i));
        }
        if d.action != Action::Delete {
            first.push(Node::Main(i));
        }
    }
    // Keyed by table and id: ids a user chooses (an IAM role's and an
    // instance profile's name) may be the same in two tables.
    let creates_by_id: HashMap<(&str, &str), usize> = drafts
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            matches!(
                d.action,
                Action::Create | Action::Replace | Action::RecreateCreate
            )
        })
        .map(|(i, d)| ((d.change.table.as_str(), d.id.as_str()), i))
        .collect();
    let mut first_deps: BTreeMap<Node, Vec<Node>> = BTreeMap::new();
    for &n in &first {
        let Node::Main(i) = n else { continue };
        let d = &drafts[i];
        let mut deps: Vec<Node> = d
            .schema
            .references()
            .flat_map(|c| {
                let parent = referenced_table(d.schema, c);
                c.ids(d.row()).into_iter().map(move |r| (parent.clone(), r))
            })
            .filter_map(|(t, r)| creates_by_id.get(&(t.as_str(), r)).copied())
            .filter(|&j| j != i)
            .map(Node::Main)
            .collect();
        if d.action == Action::RecreateCreate {
            deps.push(Node::DeleteHalf(i));
        }
        first_deps.insert(n, deps);
    }
    // A delete half waits for every step that does not need a delete-first
    // replace's new resource: if one of those fails, nothing was deleted.
    let untouched = independent_of_recreates(&first, &first_deps, &drafts);
    let sinks: Vec<Node> = untouched
        .iter()
        .copied()
        .filter(|n| {
            !untouched
                .iter()
                .any(|m| first_deps.get(m).is_some_and(|d| d.contains(n)))
        })
        .collect();
    for &n in &first {
        if let Node::DeleteHalf(_) = n {
            first_deps.insert(n, sinks.clone());
        }
    }
    let first_order = topo(&first, &first_deps).map_err(cycle)?;

    // Last phase: deletes (and replaced originals), children before parents.
    let last: Vec<Node> = (0..drafts.len())
        .filter(|&i| matches!(drafts[i].action, Action::Delete | Action::Replace))
        .map(Node::Main)
        .collect();
    let deleted_by_id: HashMap<(&str, &str), Node> = last
        .iter()
        .map(|&n| match n {
            Node::Main(i) | Node::DeleteHalf(i) => (
                (
                    drafts[i].change.table.as_str(),
                    drafts[i].before_id().unwrap_or(&drafts[i].id),
                ),
                n,
            ),
        })
        .collect();
    // A parent's delete waits for the deletes of rows that referenced it.
    let mut last_deps: BTreeMap<Node, Vec<Node>> = last.iter().map(|&n| (n, Vec::new())).collect();
    for &child in &last {
        let Node::Main(c) = child else { continue };
        let before = drafts[c]
            .change
            .before
            .as_ref()
            .expect("deleted rows have a before");
        for col in drafts[c].schema.references() {
            let table = referenced_table(drafts[c].schema, col);
            for r in col.ids(before) {
                if let Some(&parent) = deleted_by_id.get(&(table.as_str(), r)) {
                    if parent != child {
                        last_deps.get_mut(&parent).expect("present").push(child);
                    }
                }
            }
        }
    }
    let last_order = topo(&last, &last_deps).map_err(cycle)?;

    // Number the steps.
    let mut steps = Vec::new();
    let mut step_of_first: HashMap<Node, usize> = HashMap::new();
    for &n in &first_order {
        let num = steps.len() + 1;
        step_of_first.insert(n, num);
        let mut depends_on: Vec<usize> = first_deps[&n].iter().map(|m| step_of_first[m]).collect();
        depends_on.sort();
        steps.push(match n {
            Node::Main(i) => make_step(num, drafts[i].action, &drafts[i], depends_on, false),
            Node::DeleteHalf(i) => {
                make_step(num, Action::RecreateDelete, &drafts[i], depends_on, false)
            }
        });
    }
    let mut step_of_last: HashMap<Node, usize> = HashMap::new();
    for &n in &last_order {
        let num = steps.len() + 1;
        step_of_last.insert(n, num);
        let Node::Main(i) = n else { continue };
        let d = &drafts[i];
        // Everything in the first phase finishes before any delete starts;
        // listing only the direct dependencies keeps the plan readable.
        let mut depends_on: Vec<usize> = last_deps[&n].iter().map(|m| step_of_last[m]).collect();
        if d.action == Action::Replace {
            depends_on.push(step_of_first[&n]);
        }
        depends_on.sort();
        steps.push(make_step(num, d.action, d, depends_on, true));
    }
    Ok(Plan { steps })
}

/// The qualified table a reference column points into (same schema).
fn referenced_table(schema: &ResourceSchema, col: &Column) -> String {
    format!("{}.{}", schema.schema, col.references.unwrap_or_default())
}

#[cfg(test)]
mod tests;
