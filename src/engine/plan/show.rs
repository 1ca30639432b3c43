//! A plan as people read it: the summary line, one NOTICE line per step,
//! and the rows of `infra.plan`. Each says which order a replace runs in.

use serde_json::{json, Value};

use super::{Action, Plan, Step};

/// A plan's resources per action (`infra.apply.creates`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub creates: usize,
    pub updates: usize,
    pub replaces: usize,
    pub deletes: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Resources per action. A replace counts once, whichever order its
    /// halves run in.
    pub fn counts(&self) -> Counts {
        let count = |f: &dyn Fn(&Step) -> bool| self.steps.iter().filter(|s| f(s)).count();
        Counts {
            creates: count(&|s| s.action == Action::Create),
            updates: count(&|s| s.action == Action::Update),
            replaces: count(&|s| {
                matches!(
                    (s.action, s.last_phase),
                    (Action::Replace, false) | (Action::RecreateCreate, _)
                )
            }),
            deletes: count(&|s| s.action == Action::Delete),
        }
    }

    /// The summary line: "1 to create, 0 to update, 0 to replace, 0 to delete".
    pub fn summary(&self) -> String {
        let c = self.counts();
        format!(
            "{} to create, {} to update, {} to replace, {} to delete",
            c.creates, c.updates, c.replaces, c.deletes
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
                        .map(|c| {
                            (
                                c.field.clone(),
                                json!({"before": c.before, "after": c.after}),
                            )
                        })
                        .collect();
                    json!({
                        "step": s.step,
                        "action": s.label(),
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
    /// The action as the plan shows it. A create-first replace reads
    /// `replace (create new)` then `replace (delete old)`; a delete-first one
    /// `replace (delete old first)` then `replace (create new)`.
    pub fn label(&self) -> &'static str {
        match (self.action, self.last_phase) {
            (Action::Replace, false) => "replace (create new)",
            (Action::Replace, true) => "replace (delete old)",
            (a, _) => a.as_str(),
        }
    }

    /// One line for a NOTICE: `+ create aws.vpc "main" (pending-vpc-...)`.
    pub fn describe(&self) -> String {
        let sign = match (self.action, self.last_phase) {
            (Action::Create, _) | (Action::RecreateCreate, _) => "+",
            (Action::Update, _) => "~",
            (Action::Replace, false) => "+/-",
            (Action::Replace, true) => "-/+",
            (Action::Delete, _) | (Action::RecreateDelete, _) => "-",
        };
        let name = self
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let fields = if self.changes.is_empty() || self.deletes() {
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
            "{sign} {} {}{name} ({}) in {}{fields}",
            self.label(),
            self.table,
            self.id,
            self.region
        )
    }
}
