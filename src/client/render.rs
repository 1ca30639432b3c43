//! The plan as `infrasql plan` prints it: a table for a terminal, Markdown
//! for a pull-request comment (with the plan's graph as a Mermaid block),
//! JSON modelled on `terraform show -json`, and the graph alone as DOT or
//! Mermaid ([`super::graph`]).
//! Pure: rows of `infra.plan` and the column kinds in, text out.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::{json, Map, Value};

use super::graph;
use super::verdict::{self, cell, Verdict};

pub const SENSITIVE: &str = "(sensitive)";
pub const UNKNOWN: &str = "(known after apply)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Json,
    /// Graphviz DOT: the plan's graph.
    Dot,
    /// A Mermaid flowchart: the plan's graph.
    Mermaid,
}

/// One row of `infra.plan`.
#[derive(Debug, Clone)]
pub struct PlanRow {
    pub step: i64,
    pub action: String,
    pub table: String,
    pub resource_id: String,
    pub name: Option<String>,
    pub region: String,
    /// field → {"before", "after"}
    pub changes: Map<String, Value>,
    /// Steps that must finish first.
    pub depends_on: Vec<i64>,
}

/// The plan and the kind of every resource column, keyed by (table, column).
#[derive(Debug, Clone, Default)]
pub struct PlanView {
    pub rows: Vec<PlanRow>,
    pub kinds: HashMap<(String, String), String>,
    /// What the committed policies say of the plan (`infra.plan_policy`).
    pub verdicts: Vec<Verdict>,
}

/// One resource's change: the two steps of a replace are one change.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceChange {
    pub table: String,
    pub id: String,
    pub name: Option<String>,
    pub region: String,
    /// `create`, `update`, `delete`, or `delete`+`create` for a replace.
    pub actions: Vec<&'static str>,
    /// (field, before, after), display-ready.
    pub fields: Vec<(String, Value, Value)>,
    pub replace_reason: Option<String>,
}

impl PlanView {
    pub fn has_changes(&self) -> bool {
        !self.rows.is_empty()
    }

    fn kind(&self, table: &str, column: &str) -> &str {
        self.kinds
            .get(&(table.to_string(), column.to_string()))
            .map_or("", String::as_str)
    }

    /// The plan per resource, in step order.
    pub fn changes(&self) -> Vec<ResourceChange> {
        let mut out: Vec<ResourceChange> = Vec::new();
        for r in &self.rows {
            let replace = r.action.starts_with("replace");
            if replace
                && out
                    .iter()
                    .any(|c| c.table == r.table && c.actions.len() == 2 && c.id == self.shown_id(r))
            {
                continue; // the other half of a replace already listed
            }
            let actions = match r.action.as_str() {
                "create" => vec!["create"],
                "update" => vec!["update"],
                "delete" => vec!["delete"],
                _ => vec!["delete", "create"],
            };
            let creates = actions.contains(&"create");
            let mut fields: Vec<(String, Value, Value)> = r
                .changes
                .iter()
                .map(|(f, c)| {
                    let show = |v: Option<&Value>, side_creates: bool| {
                        let v = v.cloned().unwrap_or(Value::Null);
                        match v {
                            Value::String(s) if s == "(secret)" => json!(SENSITIVE),
                            Value::String(s) if side_creates && s.starts_with("pending-") => {
                                json!(UNKNOWN)
                            }
                            v => v,
                        }
                    };
                    (
                        f.clone(),
                        show(c.get("before"), false),
                        show(c.get("after"), creates),
                    )
                })
                .collect();
            if creates {
                let mut cloud: Vec<&String> = self
                    .kinds
                    .iter()
                    .filter(|((t, c), k)| {
                        t == &r.table && k.as_str() == "cloud" && !r.changes.contains_key(c)
                    })
                    .map(|((_, c), _)| c)
                    .collect();
                cloud.sort();
                for c in cloud {
                    fields.push((c.clone(), Value::Null, json!(UNKNOWN)));
                }
            }
            let reason: Vec<&str> = r
                .changes
                .keys()
                .filter(|f| self.kind(&r.table, f) == "replace")
                .map(String::as_str)
                .collect();
            out.push(ResourceChange {
                table: r.table.clone(),
                id: self.shown_id(r),
                name: r.name.clone(),
                region: r.region.clone(),
                replace_reason: (actions.len() == 2 && !reason.is_empty())
                    .then(|| format!("changing {} forces a new resource", reason.join(", "))),
                actions,
                fields,
            });
        }
        out
    }

    fn shown_id(&self, r: &PlanRow) -> String {
        if r.resource_id.starts_with("pending-") {
            UNKNOWN.to_string()
        } else {
            r.resource_id.clone()
        }
    }
}

/// "3 to create, 1 to update, 0 to replace, 2 to delete"
pub fn summary(changes: &[ResourceChange]) -> String {
    let count = |a: &[&str]| changes.iter().filter(|c| c.actions == a).count();
    format!(
        "{} to create, {} to update, {} to replace, {} to delete",
        count(&["create"]),
        count(&["update"]),
        count(&["delete", "create"]),
        count(&["delete"])
    )
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn label(c: &ResourceChange) -> &'static str {
    match c.actions.as_slice() {
        ["create"] => "create",
        ["update"] => "update",
        ["delete"] => "delete",
        _ => "replace",
    }
}

fn field_line(c: &ResourceChange, (f, before, after): &(String, Value, Value)) -> String {
    match c.actions.as_slice() {
        ["create"] => format!("{f}: {}", text(after)),
        ["delete"] => format!("{f}: {}", text(before)),
        _ => format!("{f}: {} → {}", text(before), text(after)),
    }
}

pub fn render(view: &PlanView, format: Format) -> String {
    let changes = view.changes();
    match format {
        Format::Table => table(&changes) + &verdict::table(&view.verdicts),
        Format::Markdown => {
            markdown(&changes, &graph::from_plan(&view.rows)) + &verdict::markdown(&view.verdicts)
        }
        Format::Json => {
            let mut j = to_json(&changes);
            j["policy_results"] = verdict::to_json(&view.verdicts);
            serde_json::to_string_pretty(&j).unwrap_or_default() + "\n"
        }
        Format::Dot => graph::dot(&graph::from_plan(&view.rows), &notes(&view.verdicts)),
        Format::Mermaid => graph::mermaid(&graph::from_plan(&view.rows), &notes(&view.verdicts)),
    }
}

/// The policies' verdicts as comment lines of a graph: a graph format has
/// nowhere else to show them, and a deny still makes `plan` exit 1.
fn notes(verdicts: &[Verdict]) -> Vec<String> {
    verdict::table(verdicts)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn table(changes: &[ResourceChange]) -> String {
    let mut s = String::new();
    for c in changes {
        let sign = match label(c) {
            "create" => "+",
            "update" => "~",
            "delete" => "-",
            _ => "-/+",
        };
        let _ = writeln!(
            s,
            "{sign} {} {} {} ({}, {})",
            label(c),
            c.table,
            c.name.as_deref().unwrap_or("-"),
            c.id,
            c.region
        );
        if let Some(r) = &c.replace_reason {
            let _ = writeln!(s, "    # {r}");
        }
        for f in &c.fields {
            let _ = writeln!(s, "    {}", field_line(c, f));
        }
    }
    let _ = writeln!(s, "Plan: {}.", summary(changes));
    s
}

fn markdown(changes: &[ResourceChange], graph: &graph::Graph) -> String {
    let mut s = format!("**Plan:** {}\n", summary(changes));
    if !graph.nodes.is_empty() {
        s.push_str("\n```mermaid\n");
        s.push_str(&graph::mermaid(graph, &[]));
        s.push_str("```\n");
    }
    let mut tables: Vec<&str> = Vec::new();
    for c in changes {
        if !tables.contains(&c.table.as_str()) {
            tables.push(&c.table);
        }
    }
    for t in tables {
        let _ = write!(
            s,
            "\n### `{t}`\n\n| action | name | id | region | changes |\n| --- | --- | --- | --- | --- |\n"
        );
        for c in changes.iter().filter(|c| c.table == t) {
            let mut fields: Vec<String> =
                c.fields.iter().map(|f| cell(&field_line(c, f))).collect();
            if let Some(r) = &c.replace_reason {
                fields.insert(0, format!("_{}_", cell(r)));
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                label(c),
                cell(c.name.as_deref().unwrap_or("")),
                cell(&c.id),
                cell(&c.region),
                fields.join("<br>")
            );
        }
    }
    s
}

pub fn to_json(changes: &[ResourceChange]) -> Value {
    let side = |c: &ResourceChange, before: bool| -> Value {
        let absent = if before { ["create"] } else { ["delete"] };
        if c.actions == absent {
            return Value::Null;
        }
        Value::Object(
            c.fields
                .iter()
                .map(|(f, b, a)| (f.clone(), if before { b.clone() } else { a.clone() }))
                .collect(),
        )
    };
    json!({
        "format_version": "1.0",
        "resource_changes": changes.iter().map(|c| json!({
            "table": c.table,
            "id": c.id,
            "name": c.name,
            "region": c.region,
            "change": {
                "actions": c.actions,
                "before": side(c, true),
                "after": side(c, false),
                "replace_reason": c.replace_reason,
            },
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
