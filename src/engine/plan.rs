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
//! [`replace`] decides whether a replace may run at all (dependents, data
//! that would be lost); [`show`] renders the plan for NOTICEs and rows.

mod guard;
mod replace;
mod sets;
mod show;
pub use show::Counts;

use std::collections::{BTreeMap, HashMap, HashSet};

use infrasql_provider::{Column, ColumnKind, Props, ResourceSchema, ROW_KEY, STACK};
use serde_json::{json, Value};

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
fn diff(
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

struct Draft {
    action: Action,
    change: RowChange,
    fields: Vec<FieldChange>,
    schema: &'static ResourceSchema,
    id: String,
}

impl Draft {
    /// The AWS id of the row before the transaction, if it existed.
    fn before_id(&self) -> Option<&str> {
        self.change
            .before
            .as_ref()
            .and_then(|b| b.get(self.schema.id_column()))
            .and_then(Value::as_str)
    }
    fn row(&self) -> &Props {
        self.change
            .after
            .as_ref()
            .or(self.change.before.as_ref())
            .expect("netted changes have a row")
    }
}

/// A first-phase node: a draft, or the delete half of a delete-first replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Node {
    Main(usize),
    DeleteHalf(usize),
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

/// First-phase nodes that neither are part of a delete-first replace nor
/// need (transitively) the resource one creates.
fn independent_of_recreates(
    first: &[Node],
    deps: &BTreeMap<Node, Vec<Node>>,
    drafts: &[Draft],
) -> Vec<Node> {
    let mut memo: HashMap<Node, bool> = HashMap::new();
    fn needs(
        n: Node,
        deps: &BTreeMap<Node, Vec<Node>>,
        drafts: &[Draft],
        memo: &mut HashMap<Node, bool>,
        seen: &mut HashSet<Node>,
    ) -> bool {
        if let Some(&v) = memo.get(&n) {
            return v;
        }
        let v = match n {
            Node::DeleteHalf(_) => true,
            Node::Main(i) if drafts[i].action == Action::RecreateCreate => true,
            // A cycle is reported by the topological sort; here it only
            // must not recurse forever.
            _ if !seen.insert(n) => false,
            _ => deps
                .get(&n)
                .is_some_and(|d| d.iter().any(|&m| needs(m, deps, drafts, memo, seen))),
        };
        memo.insert(n, v);
        v
    }
    first
        .iter()
        .copied()
        .filter(|&n| !needs(n, deps, drafts, &mut memo, &mut HashSet::new()))
        .collect()
}

fn make_step(
    n: usize,
    action: Action,
    d: &Draft,
    depends_on: Vec<usize>,
    last_phase: bool,
) -> Step {
    // A delete (or the delete half of a replace) acts on the resource as
    // it is: the row before the transaction, whose id and region may differ
    // from the new row's (a replace that also renames, or moves region).
    let deletes = matches!(action, Action::Delete | Action::RecreateDelete)
        || (action == Action::Replace && last_phase);
    let row = match (&d.change.before, deletes) {
        (Some(b), true) => b,
        _ => d.row(),
    };
    let id = match deletes {
        true => d.before_id().unwrap_or(&d.id).to_owned(),
        false => d.id.clone(),
    };
    Step {
        step: n,
        action,
        table: d.change.table.clone(),
        id,
        name: row.get("name").and_then(Value::as_str).map(str::to_owned),
        region: row
            .get("region")
            .and_then(Value::as_str)
            .unwrap_or("us-east-1")
            .to_owned(),
        before: d.change.before.clone(),
        after: d.change.after.clone(),
        changes: d.fields.clone(),
        depends_on,
        last_phase,
    }
}

/// The qualified table a reference column points into (same schema).
fn referenced_table(schema: &ResourceSchema, col: &Column) -> String {
    format!("{}.{}", schema.schema, col.references.unwrap_or_default())
}

/// Kahn's algorithm by levels, stable in input order. `Err` names a node on a cycle.
fn topo<N: Copy + Ord + std::hash::Hash>(
    nodes: &[N],
    deps: &BTreeMap<N, Vec<N>>,
) -> Result<Vec<N>, N> {
    let mut done: Vec<N> = Vec::with_capacity(nodes.len());
    let mut placed = HashSet::new();
    while done.len() < nodes.len() {
        let before = done.len();
        // Level by level: a node joins once its dependencies were placed in
        // an earlier level, so each level keeps the input order.
        let level: Vec<N> = nodes
            .iter()
            .copied()
            .filter(|n| !placed.contains(n) && deps[n].iter().all(|d| placed.contains(d)))
            .collect();
        for n in level {
            placed.insert(n);
            done.push(n);
        }
        if done.len() == before {
            return Err(*nodes
                .iter()
                .find(|n| !placed.contains(n))
                .expect("some node unplaced"));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
