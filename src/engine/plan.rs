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
//!   parents, so a failure among the first group can be undone completely.

use std::collections::{BTreeMap, HashMap};

use infrasql_provider::{ColumnKind, Props, ResourceSchema};
use serde_json::{json, Value};

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
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
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
        let id = new
            .as_ref()
            .or(old.as_ref())
            .and_then(|p| p.get(idc))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
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
    for c in schema.columns.iter().filter(|c| c.kind.is_desired()) {
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

/// Build the plan. `schemas` maps qualified table names to descriptions.
pub fn plan(
    changes: &[RowChange],
    schemas: &HashMap<String, &'static ResourceSchema>,
) -> Result<Plan, PlanError> {
    struct Draft {
        action: Action,
        change: RowChange,
        fields: Vec<FieldChange>,
        schema: &'static ResourceSchema,
        id: String,
    }
    let mut drafts = Vec::new();
    for ch in changes {
        let schema = *schemas
            .get(&ch.table)
            .ok_or_else(|| PlanError::UnknownTable(ch.table.clone()))?;
        let idc = schema.id_column();
        let row = ch
            .after
            .as_ref()
            .or(ch.before.as_ref())
            .expect("netted changes have a row");
        let id = row
            .get(idc)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (fields, replace) = diff(schema, ch.before.as_ref(), ch.after.as_ref());
        let action = match (&ch.before, &ch.after) {
            (None, Some(_)) => Action::Create,
            (Some(_), None) => Action::Delete,
            _ if fields.is_empty() => continue,
            _ if replace => Action::Replace,
            _ => Action::Update,
        };
        drafts.push(Draft {
            action,
            change: ch.clone(),
            fields,
            schema,
            id,
        });
    }

    // First phase: topological order by references among created rows.
    let first: Vec<usize> = (0..drafts.len())
        .filter(|&i| drafts[i].action != Action::Delete)
        .collect();
    let creates_by_id: HashMap<&str, usize> = first
        .iter()
        .filter(|&&i| matches!(drafts[i].action, Action::Create | Action::Replace))
        .map(|&i| (drafts[i].id.as_str(), i))
        .collect();
    let refs_of = |d: &Draft| -> Vec<String> {
        let row = d
            .change
            .after
            .as_ref()
            .or(d.change.before.as_ref())
            .expect("row");
        d.schema
            .references()
            .filter_map(|c| row.get(c.name).and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    let mut first_deps: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &i in &first {
        let deps = refs_of(&drafts[i])
            .iter()
            .filter_map(|r| creates_by_id.get(r.as_str()).copied())
            .filter(|&j| j != i)
            .collect();
        first_deps.insert(i, deps);
    }
    let first_order = topo(&first, &first_deps)
        .map_err(|i| PlanError::Cycle(format!("{} {}", drafts[i].change.table, drafts[i].id)))?;

    // Last phase: deletes (and replaced originals), children before parents.
    let last: Vec<usize> = (0..drafts.len())
        .filter(|&i| matches!(drafts[i].action, Action::Delete | Action::Replace))
        .collect();
    let deleted_by_id: HashMap<&str, usize> =
        last.iter().map(|&i| (drafts[i].id.as_str(), i)).collect();
    // A parent's delete waits for the deletes of rows that referenced it.
    let mut last_deps: BTreeMap<usize, Vec<usize>> =
        last.iter().map(|&i| (i, Vec::new())).collect();
    for &child in &last {
        let before = drafts[child]
            .change
            .before
            .as_ref()
            .expect("deleted rows have a before");
        for c in drafts[child].schema.references() {
            if let Some(parent) = before
                .get(c.name)
                .and_then(Value::as_str)
                .and_then(|r| deleted_by_id.get(r))
            {
                if *parent != child {
                    last_deps.get_mut(parent).expect("present").push(child);
                }
            }
        }
    }
    let last_order = topo(&last, &last_deps)
        .map_err(|i| PlanError::Cycle(format!("{} {}", drafts[i].change.table, drafts[i].id)))?;

    // Number the steps.
    let mut step_of_first: HashMap<usize, usize> = HashMap::new();
    let mut steps = Vec::new();
    for &i in &first_order {
        let n = steps.len() + 1;
        step_of_first.insert(i, n);
        let d = &drafts[i];
        let mut depends_on: Vec<usize> = first_deps[&i].iter().map(|j| step_of_first[j]).collect();
        depends_on.sort();
        steps.push(make_step(n, d.action, d, depends_on, false));
    }
    let first_count = steps.len();
    let mut step_of_last: HashMap<usize, usize> = HashMap::new();
    for &i in &last_order {
        let n = steps.len() + 1;
        step_of_last.insert(i, n);
        let d = &drafts[i];
        // Everything in the first phase finishes before any delete starts;
        // listing only the direct dependencies keeps the plan readable.
        let mut depends_on: Vec<usize> = last_deps[&i].iter().map(|j| step_of_last[j]).collect();
        if d.action == Action::Replace {
            depends_on.push(step_of_first[&i]);
        }
        depends_on.sort();
        let action = if d.action == Action::Replace {
            Action::Replace
        } else {
            Action::Delete
        };
        steps.push(make_step(n, action, d, depends_on, true));
    }
    let _ = first_count;

    fn make_step(
        n: usize,
        action: Action,
        d: &Draft,
        depends_on: Vec<usize>,
        last_phase: bool,
    ) -> Step {
        let row = d
            .change
            .after
            .as_ref()
            .or(d.change.before.as_ref())
            .expect("row");
        Step {
            step: n,
            action,
            table: d.change.table.clone(),
            id: d.id.clone(),
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
    Ok(Plan { steps })
}

/// Kahn's algorithm by levels, stable in input order. `Err` names a node on a cycle.
fn topo(nodes: &[usize], deps: &BTreeMap<usize, Vec<usize>>) -> Result<Vec<usize>, usize> {
    let mut done: Vec<usize> = Vec::with_capacity(nodes.len());
    let mut placed = std::collections::HashSet::new();
    while done.len() < nodes.len() {
        let before = done.len();
        // Level by level: a node joins once its dependencies were placed in
        // an earlier level, so each level keeps the input order.
        let level: Vec<usize> = nodes
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

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Counts per action, for the summary line.
    pub fn summary(&self) -> String {
        let count = |a: Action| {
            self.steps
                .iter()
                .filter(|s| s.action == a && !(a == Action::Replace && s.last_phase))
                .count()
        };
        format!(
            "{} to create, {} to update, {} to replace, {} to delete",
            count(Action::Create),
            count(Action::Update),
            count(Action::Replace),
            count(Action::Delete)
        )
    }

    /// Rows for `infra.plan`, as JSON for `infra.put_plan`.
    pub fn to_rows(&self) -> Value {
        Value::Array(
            self.steps
                .iter()
                .map(|s| {
                    let changes: serde_json::Map<String, Value> = s
                        .changes
                        .iter()
                        .map(|c| (c.field.clone(), json!({"before": c.before, "after": c.after})))
                        .collect();
                    json!({
                        "step": s.step,
                        "action": if s.action == Action::Replace && s.last_phase { "replace (delete old)" } else { s.action.as_str() },
                        "table": s.table,
                        "resource_id": s.id,
                        "name": s.name,
                        "region": s.region,
                        "changes": changes,
                        "depends_on": s.depends_on,
                    })
                })
                .collect(),
        )
    }
}

impl Step {
    /// One line for a NOTICE: `+ create aws.vpc "main" (pending-vpc-...)`.
    pub fn describe(&self) -> String {
        let sign = match (self.action, self.last_phase) {
            (Action::Create, _) => "+",
            (Action::Update, _) => "~",
            (Action::Replace, false) => "+/-",
            (Action::Replace, true) => "-/+",
            (Action::Delete, _) => "-",
        };
        let what = if self.action == Action::Replace {
            if self.last_phase {
                "replace (delete old)"
            } else {
                "replace (create new)"
            }
        } else {
            self.action.as_str()
        };
        let name = self
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let fields = if self.changes.is_empty() || self.action == Action::Delete {
            String::new()
        } else {
            format!(
                ": {}",
                self.changes
                    .iter()
                    .map(|c| if self.action == Action::Create {
                        format!("{}={}", c.field, c.after)
                    } else {
                        format!("{} {} -> {}", c.field, c.before, c.after)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "{sign} {what} {}{name} ({}) in {}{fields}",
            self.table, self.id, self.region
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infrasql_provider::{Column, ColumnKind::*};

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
            Column::new("state", CloudAssigned, ""),
        ],
    };
    static SUBNET: ResourceSchema = ResourceSchema {
        schema: "aws",
        table: "subnet",
        display: "subnet",
        doc: "",
        columns: &[
            Column::new("subnet_id", Identity, ""),
            Column::new("region", ReplaceOnChange, ""),
            Column::new("name", Desired, ""),
            Column::reference("vpc_id", ReplaceOnChange, "vpc", ""),
            Column::new("cidr_block", ReplaceOnChange, ""),
            Column::new("password", WriteOnly, ""),
        ],
    };

    fn schemas() -> HashMap<String, &'static ResourceSchema> {
        HashMap::from([
            ("aws.vpc".to_string(), &VPC),
            ("aws.subnet".to_string(), &SUBNET),
        ])
    }
    fn p(v: Value) -> Props {
        v.as_object().unwrap().clone()
    }
    fn ins(table: &str, v: Value) -> RowChange {
        RowChange {
            table: table.into(),
            before: None,
            after: Some(p(v)),
        }
    }

    #[test]
    fn parents_are_created_before_children_whatever_the_insert_order() {
        let changes = vec![
            ins(
                "aws.subnet",
                json!({"subnet_id": "pending-s1", "vpc_id": "pending-v1", "cidr_block": "10.0.1.0/24", "region": "us-east-1"}),
            ),
            ins(
                "aws.vpc",
                json!({"vpc_id": "pending-v1", "cidr_block": "10.0.0.0/16", "name": "main", "region": "us-east-1"}),
            ),
            ins(
                "aws.subnet",
                json!({"subnet_id": "pending-s2", "vpc_id": "pending-v1", "cidr_block": "10.0.2.0/24", "region": "us-east-1"}),
            ),
        ];
        let plan = plan(&changes, &schemas()).unwrap();
        let order: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(order, vec!["pending-v1", "pending-s1", "pending-s2"]);
        assert_eq!(plan.steps[1].depends_on, vec![1]);
        assert_eq!(plan.steps[2].depends_on, vec![1]);
        assert!(plan.steps[0].depends_on.is_empty());
        assert_eq!(
            plan.summary(),
            "3 to create, 0 to update, 0 to replace, 0 to delete"
        );
    }

    #[test]
    fn deletes_run_last_children_first() {
        let changes = vec![
            RowChange {
                table: "aws.vpc".into(),
                before: Some(p(json!({"vpc_id": "vpc-1", "cidr_block": "10.0.0.0/16"}))),
                after: None,
            },
            RowChange {
                table: "aws.subnet".into(),
                before: Some(p(json!({"subnet_id": "subnet-1", "vpc_id": "vpc-1"}))),
                after: None,
            },
            ins(
                "aws.vpc",
                json!({"vpc_id": "pending-v2", "cidr_block": "10.9.0.0/16"}),
            ),
        ];
        let plan = plan(&changes, &schemas()).unwrap();
        let order: Vec<(&str, Action)> = plan
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.action))
            .collect();
        assert_eq!(
            order,
            vec![
                ("pending-v2", Action::Create),
                ("subnet-1", Action::Delete),
                ("vpc-1", Action::Delete)
            ]
        );
        assert_eq!(plan.steps[2].depends_on, vec![2]);
    }

    #[test]
    fn a_replace_on_change_column_makes_a_replace_and_tags_an_update() {
        let before = json!({"vpc_id": "vpc-1", "cidr_block": "10.0.0.0/16", "tags": {"a": "1"}, "state": "available"});
        let tags = RowChange {
            table: "aws.vpc".into(),
            before: Some(p(before.clone())),
            after: Some(p(
                json!({"vpc_id": "vpc-1", "cidr_block": "10.0.0.0/16", "tags": {"a": "2"}, "state": "available"}),
            )),
        };
        let plan1 = plan(&[tags], &schemas()).unwrap();
        assert_eq!(plan1.steps.len(), 1);
        assert_eq!(plan1.steps[0].action, Action::Update);
        assert_eq!(
            plan1.steps[0].changes,
            vec![FieldChange {
                field: "tags".into(),
                before: json!({"a": "1"}),
                after: json!({"a": "2"})
            }]
        );

        let cidr = RowChange {
            table: "aws.vpc".into(),
            before: Some(p(before)),
            after: Some(p(
                json!({"vpc_id": "vpc-1", "cidr_block": "10.1.0.0/16", "tags": {"a": "1"}, "state": "available"}),
            )),
        };
        let plan2 = plan(&[cidr], &schemas()).unwrap();
        let shape: Vec<(Action, bool)> = plan2
            .steps
            .iter()
            .map(|s| (s.action, s.last_phase))
            .collect();
        assert_eq!(
            shape,
            vec![(Action::Replace, false), (Action::Replace, true)]
        );
        assert_eq!(plan2.steps[1].depends_on, vec![1]);
    }

    #[test]
    fn cloud_assigned_changes_alone_plan_nothing_and_secrets_are_redacted() {
        let c = RowChange {
            table: "aws.vpc".into(),
            before: Some(p(json!({"vpc_id": "vpc-1", "state": "pending"}))),
            after: Some(p(json!({"vpc_id": "vpc-1", "state": "available"}))),
        };
        assert!(plan(&[c], &schemas()).unwrap().is_empty());
        let s = ins(
            "aws.subnet",
            json!({"subnet_id": "pending-s", "password": "hunter2"}),
        );
        let pl = plan(&[s], &schemas()).unwrap();
        let text = format!("{} {}", pl.to_rows(), pl.steps[0].describe());
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("(secret)"));
    }

    #[test]
    fn changes_net_per_row_within_a_transaction() {
        let raw = vec![
            (
                "aws.vpc".to_string(),
                None,
                Some(p(json!({"vpc_id": "pending-1", "name": "a"}))),
            ),
            (
                "aws.vpc".to_string(),
                Some(p(json!({"vpc_id": "pending-1", "name": "a"}))),
                Some(p(json!({"vpc_id": "pending-1", "name": "b"}))),
            ),
            (
                "aws.vpc".to_string(),
                None,
                Some(p(json!({"vpc_id": "pending-2"}))),
            ),
            (
                "aws.vpc".to_string(),
                Some(p(json!({"vpc_id": "pending-2"}))),
                None,
            ),
        ];
        let net = net_changes(raw, |_| Some("vpc_id"));
        assert_eq!(net.len(), 1);
        assert!(net[0].before.is_none());
        assert_eq!(
            net[0].after.as_ref().unwrap().get("name"),
            Some(&json!("b"))
        );
    }

    #[test]
    fn unknown_tables_are_refused() {
        let c = ins("aws.nope", json!({"x": 1}));
        assert_eq!(
            plan(&[c], &schemas()).unwrap_err(),
            PlanError::UnknownTable("aws.nope".into())
        );
    }
}
