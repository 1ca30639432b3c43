//! The plan as a graph: resources are nodes coloured by action, and an
//! edge `A → B` says *A's step waits for B's*, exactly as the apply runs
//! them (`infra.plan.depends_on`). So a subnet's create points at its
//! VPC's create, while among deletes the arrows are reversed: the VPC's
//! delete points at the subnet's, because children are deleted first.
//! Drawing the apply's own order (rather than the references) keeps one
//! meaning for every arrow; the edge kind says which phase it belongs to.
//!
//! Pure: a function from plan steps to a [`Graph`], then one renderer per
//! format ([`dot`], [`mermaid`]). The model does not know where the steps
//! came from, so the steps of an apply in the history can be drawn the
//! same way.

mod dot;
mod mermaid;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};

pub use dot::dot;
pub use mermaid::mermaid;

use super::render::{PlanRow, UNKNOWN};

/// What happens to a resource. A replace is one node whatever order its
/// two steps run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    /// A step label this version does not know: drawn grey, never dropped.
    Other,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Create,
        Action::Update,
        Action::Replace,
        Action::Delete,
        Action::Other,
    ];

    /// From a step's label in `infra.plan` (`replace (create new)`, ...).
    pub fn of_label(label: &str) -> Action {
        match label {
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            l if l.starts_with("replace") => Action::Replace,
            _ => Action::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Other => "no-op",
        }
    }

    /// (fill, border): light fills keep black text readable on both
    /// GitHub's light and dark themes.
    pub fn colours(self) -> (&'static str, &'static str) {
        match self {
            Action::Create => ("#c6efce", "#2e7d32"),
            Action::Update => ("#ffe699", "#b7950b"),
            Action::Replace => ("#f8cbad", "#e65100"),
            Action::Delete => ("#ffc7ce", "#c62828"),
            Action::Other => ("#e7e6e6", "#757575"),
        }
    }
}

/// Which part of the apply an edge orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EdgeKind {
    /// A create or update waits for what it references (first phase).
    Needs,
    /// A delete waits for the deletes of what referenced it (last phase:
    /// the reverse of the references).
    Teardown,
    /// A delete-first replace deletes its old resource only after every
    /// step that does not need the new one, so an unrelated failure never
    /// leaves it deleted: an order, not a reference.
    After,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The resource's first step: stable for a given plan, and a valid
    /// identifier in both formats once prefixed (`r3`).
    pub key: i64,
    pub action: Action,
    pub table: String,
    pub name: Option<String>,
    /// `None` while AWS has not assigned it (a create).
    pub resource_id: Option<String>,
    pub region: String,
    /// Every step of the resource (two for a replace).
    pub steps: Vec<i64>,
}

impl Node {
    pub fn id(&self) -> String {
        format!("r{}", self.key)
    }

    /// The lines a node shows: action and table, the name, the id and region.
    pub fn label_lines(&self) -> Vec<String> {
        let mut lines = vec![format!("{} {}", self.action.name(), self.table)];
        if let Some(n) = &self.name {
            lines.push(n.clone());
        }
        lines.push(format!(
            "{}, {}",
            self.resource_id.as_deref().unwrap_or(UNKNOWN),
            self.region
        ));
        lines
    }
}

/// `from` waits for `to` (node keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: i64,
    pub to: i64,
    pub kind: EdgeKind,
}

/// Nodes in step order, edges sorted: the same plan always draws the same text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Graph {
    /// The actions present, in legend order.
    pub fn actions(&self) -> Vec<Action> {
        let present: BTreeSet<Action> = self.nodes.iter().map(|n| n.action).collect();
        Action::ALL
            .into_iter()
            .filter(|a| present.contains(a))
            .collect()
    }

    pub fn edge_kinds(&self) -> Vec<EdgeKind> {
        let kinds: BTreeSet<EdgeKind> = self.edges.iter().map(|e| e.kind).collect();
        kinds.into_iter().collect()
    }
}

/// The graph of a plan's steps (any order; `step` numbers are unique).
pub fn from_plan(rows: &[PlanRow]) -> Graph {
    let mut rows: Vec<&PlanRow> = rows.iter().collect();
    rows.sort_by_key(|r| r.step);
    let by_step: HashMap<i64, &PlanRow> = rows.iter().map(|r| (r.step, *r)).collect();
    let mut node_of: HashMap<i64, i64> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    for r in &rows {
        match replace_partner(r, &by_step).and_then(|p| node_of.get(&p).copied()) {
            Some(key) => {
                node_of.insert(r.step, key);
                let n = nodes.iter_mut().find(|n| n.key == key).expect("placed");
                n.steps.push(r.step);
                n.name = n.name.take().or_else(|| r.name.clone());
                n.resource_id = n.resource_id.take().or_else(|| known_id(r));
            }
            None => {
                node_of.insert(r.step, r.step);
                nodes.push(Node {
                    key: r.step,
                    action: Action::of_label(&r.action),
                    table: r.table.clone(),
                    name: r.name.clone(),
                    resource_id: known_id(r),
                    region: r.region.clone(),
                    steps: vec![r.step],
                });
            }
        }
    }
    let mut edges: BTreeSet<Edge> = BTreeSet::new();
    for r in &rows {
        let kind = match r.action.as_str() {
            "delete" | "replace (delete old)" => EdgeKind::Teardown,
            "replace (delete old first)" => EdgeKind::After,
            _ => EdgeKind::Needs,
        };
        let from = node_of[&r.step];
        for d in &r.depends_on {
            // A step the rows do not hold (a partial history) has no node.
            let Some(&to) = node_of.get(d) else { continue };
            if to != from {
                edges.insert(Edge { from, to, kind });
            }
        }
    }
    Graph {
        nodes,
        edges: edges.into_iter().collect(),
    }
}

/// The other half of a replace, found through the apply's own order: a
/// create-first replace deletes the old resource after creating the new
/// one, a delete-first replace creates the new one after deleting the old.
/// Matching by id would fail when the replace renames the resource.
fn replace_partner(r: &PlanRow, by_step: &HashMap<i64, &PlanRow>) -> Option<i64> {
    let partner_label = match r.action.as_str() {
        "replace (delete old)" => "replace (create new)",
        "replace (create new)" => "replace (delete old first)",
        _ => return None,
    };
    r.depends_on.iter().copied().find(|d| {
        by_step
            .get(d)
            .is_some_and(|p| p.action == partner_label && p.table == r.table)
    })
}

fn known_id(r: &PlanRow) -> Option<String> {
    (!r.resource_id.starts_with("pending-") && !r.resource_id.is_empty())
        .then(|| r.resource_id.clone())
}

/// Text for a one-line comment in either format: no line breaks.
pub(crate) fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
