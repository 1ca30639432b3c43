//! An apply's journal steps as the plan rows `client::graph` draws (pure,
//! unit-tested). The journal keeps each step's row (`after`, or `before`
//! for a delete) but not its `depends_on`, so the edges are found again
//! from the references: a step whose row references a resource another
//! step of the apply touched ran after it (creates wait for their parents;
//! among deletes the parent's waits for the child's), and the later of the
//! two waits for the earlier. A replace's two halves are paired by table
//! and nearness, and given the plan's labels so the graph joins them.

use serde_json::Value;

use crate::client::render::PlanRow;

/// One `infra.apply_action` row.
#[derive(Debug, Clone)]
pub struct JournalStep {
    pub step: i64,
    /// The journal's label: create, update, delete, replace-create, replace-delete.
    pub action: String,
    pub table: String,
    pub resource_id: String,
    pub region: String,
    pub row: Option<Value>,
}

/// `references`: (table, column, referenced table) of the description.
pub fn plan_rows(steps: &[JournalStep], references: &[(String, String, String)]) -> Vec<PlanRow> {
    let mut rows: Vec<PlanRow> = steps
        .iter()
        .map(|s| PlanRow {
            step: s.step,
            action: s.action.clone(),
            table: s.table.clone(),
            resource_id: s.resource_id.clone(),
            // The row's `name` (a Name tag, an RDS identifier), as the plan shows it.
            name: s
                .row
                .as_ref()
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            region: s.region.clone(),
            changes: Default::default(),
            depends_on: Vec::new(),
        })
        .collect();
    let mut waits: Vec<(usize, i64)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let Some(Value::Object(row)) = &s.row else {
            continue;
        };
        for (_, column, parent_table) in references.iter().filter(|(t, _, _)| *t == s.table) {
            let Some(Value::String(parent_id)) = row.get(column) else {
                continue;
            };
            for (j, p) in steps.iter().enumerate() {
                if j != i && p.table == *parent_table && p.resource_id == *parent_id {
                    let (later, earlier) = if p.step < s.step {
                        (i, p.step)
                    } else {
                        (j, s.step)
                    };
                    waits.push((later, earlier));
                }
            }
        }
    }
    pair_replaces(steps, &mut rows, &mut waits);
    for (later, earlier) in waits {
        if !rows[later].depends_on.contains(&earlier) {
            rows[later].depends_on.push(earlier);
        }
    }
    rows
}

/// Each replace-delete with the nearest unpaired replace-create of its
/// table: after it, the old resource is deleted last ("replace (delete
/// old)"); before it, first ("replace (delete old first)").
fn pair_replaces(steps: &[JournalStep], rows: &mut [PlanRow], waits: &mut Vec<(usize, i64)>) {
    let mut used = vec![false; steps.len()];
    for (d, ds) in steps.iter().enumerate() {
        if ds.action != "replace-delete" {
            continue;
        }
        let partner = steps
            .iter()
            .enumerate()
            .filter(|(c, cs)| !used[*c] && cs.action == "replace-create" && cs.table == ds.table)
            .min_by_key(|(_, cs)| (cs.step - ds.step).abs())
            .map(|(c, _)| c);
        let Some(c) = partner else { continue };
        used[c] = true;
        rows[c].action = "replace (create new)".into();
        if steps[c].step < ds.step {
            rows[d].action = "replace (delete old)".into();
            waits.push((d, steps[c].step));
        } else {
            rows[d].action = "replace (delete old first)".into();
            waits.push((c, ds.step));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::graph::{from_plan, Action, EdgeKind};
    use serde_json::json;

    fn step(n: i64, action: &str, table: &str, id: &str, row: Value) -> JournalStep {
        JournalStep {
            step: n,
            action: action.into(),
            table: table.into(),
            resource_id: id.into(),
            region: "us-east-1".into(),
            row: Some(row),
        }
    }

    fn refs() -> Vec<(String, String, String)> {
        vec![("aws.subnet".into(), "vpc_id".into(), "aws.vpc".into())]
    }

    #[test]
    fn a_create_waits_for_its_parent_and_a_parents_delete_for_its_child() {
        let created = plan_rows(
            &[
                step(1, "create", "aws.vpc", "vpc-1", json!({"vpc_id": "vpc-1"})),
                step(
                    2,
                    "create",
                    "aws.subnet",
                    "subnet-1",
                    json!({"vpc_id": "vpc-1", "name": "a"}),
                ),
            ],
            &refs(),
        );
        assert_eq!(created[1].depends_on, vec![1]);
        assert_eq!(created[0].name, None);
        assert_eq!(created[1].name.as_deref(), Some("a"));
        assert!(created[0].depends_on.is_empty());
        let g = from_plan(&created);
        assert_eq!(g.edges.len(), 1);
        assert_eq!((g.edges[0].from, g.edges[0].to), (2, 1));

        let deleted = plan_rows(
            &[
                step(
                    1,
                    "delete",
                    "aws.subnet",
                    "subnet-1",
                    json!({"vpc_id": "vpc-1"}),
                ),
                step(2, "delete", "aws.vpc", "vpc-1", json!({"vpc_id": "vpc-1"})),
            ],
            &refs(),
        );
        assert_eq!(deleted[1].depends_on, vec![1]);
        assert_eq!(from_plan(&deleted).edges[0].kind, EdgeKind::Teardown);
    }

    #[test]
    fn a_replaces_two_steps_are_one_node() {
        let rows = plan_rows(
            &[
                step(1, "replace-create", "aws.vpc", "vpc-2", json!({})),
                step(2, "replace-delete", "aws.vpc", "vpc-1", json!({})),
                step(3, "update", "aws.vpc", "vpc-9", json!({})),
            ],
            &refs(),
        );
        assert_eq!(rows[1].action, "replace (delete old)");
        let g = from_plan(&rows);
        assert_eq!(g.nodes.len(), 2, "{g:?}");
        assert_eq!(g.nodes[0].action, Action::Replace);
        assert_eq!(g.nodes[0].steps, vec![1, 2]);
    }

    #[test]
    fn unrelated_or_unknown_references_draw_no_edge() {
        let rows = plan_rows(
            &[
                step(1, "create", "aws.vpc", "vpc-1", json!({})),
                step(
                    2,
                    "create",
                    "aws.subnet",
                    "subnet-1",
                    json!({"vpc_id": "vpc-other"}),
                ),
                JournalStep {
                    row: None,
                    ..step(3, "create", "aws.subnet", "s", json!({}))
                },
            ],
            &refs(),
        );
        assert!(rows.iter().all(|r| r.depends_on.is_empty()));
    }
}
