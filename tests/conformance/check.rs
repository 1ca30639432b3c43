//! The comparison itself, pure: the mapping file, our tables' column kinds
//! and CloudFormation's schemas in, every disagreement out (as a line that
//! names table, column, property and rule).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use infrasql_provider::ColumnKind::{self, *};
use serde::Deserialize;
use serde_json::Value;

/// tests/conformance/cfn.toml (its header documents the format).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub common: Common,
    #[serde(default)]
    pub no_counterpart: BTreeMap<String, String>,
    pub map: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    pub unmapped: BTreeMap<String, String>,
}

/// One table against one CloudFormation type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub table: String,
    pub cfn: String,
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub unmapped: BTreeMap<String, String>,
    #[serde(default)]
    pub exception: Vec<Exception>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    pub column: String,
    pub rule: Rule,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    ReadOnly,
    CreateOnly,
    WriteOnly,
    OurReplace,
    OurCloud,
    OurWriteOnly,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::ReadOnly => "read-only",
            Rule::CreateOnly => "create-only",
            Rule::WriteOnly => "write-only",
            Rule::OurReplace => "our-replace",
            Rule::OurCloud => "our-cloud",
            Rule::OurWriteOnly => "our-write-only",
        })
    }
}

/// Each table's columns (sets included) and their kinds.
pub type Tables = BTreeMap<String, BTreeMap<String, ColumnKind>>;

/// One CloudFormation registry schema.
pub struct CfnType(pub Value);

impl CfnType {
    /// Whether `list` (readOnlyProperties...) names `path` or a parent of it.
    fn lists(&self, list: &str, path: &str) -> bool {
        self.0[list].as_array().into_iter().flatten().any(|p| {
            let Some(p) = p.as_str().and_then(|p| p.strip_prefix("/properties/")) else {
                return false;
            };
            path == p || path.starts_with(&format!("{p}/"))
        })
    }

    /// Whether `path` names a property: each segment a property of the one
    /// before, `*` an array's items, following `#/definitions/` references.
    fn has(&self, path: &str) -> bool {
        let mut node = &self.0;
        for (i, seg) in path.split('/').enumerate() {
            if i > 0 {
                if let Some(def) = node["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/definitions/"))
                {
                    node = &self.0["definitions"][def];
                }
            }
            node = if seg == "*" {
                &node["items"]
            } else {
                &node["properties"][seg]
            };
            if node.is_null() {
                return false;
            }
        }
        true
    }
}

/// The rules a mapped column breaks, with what each found.
fn broken(kind: ColumnKind, cfn: &CfnType, prop: &str) -> Vec<(Rule, String)> {
    let read_only = cfn.lists("readOnlyProperties", prop);
    let create_only = cfn.lists("createOnlyProperties", prop);
    let write_only = cfn.lists("writeOnlyProperties", prop);
    let k = kind.as_str();
    let mut out = Vec::new();
    if read_only && !matches!(kind, CloudAssigned | Identity) {
        out.push((
            Rule::ReadOnly,
            format!("CloudFormation says AWS assigns it (readOnlyProperties), but our kind is {k}"),
        ));
    }
    // A cloud column never changes at the user's hand, so in place or not
    // is not its question (AWS reports what was chosen at create).
    if create_only && !matches!(kind, ReplaceOnChange | Name | Identity | CloudAssigned) {
        out.push((Rule::CreateOnly, format!("CloudFormation says a change replaces the resource (createOnlyProperties), but our kind is {k}: changed in place")));
    }
    if write_only && kind != WriteOnly {
        out.push((Rule::WriteOnly, format!("CloudFormation says AWS never returns it (writeOnlyProperties), but our kind is {k}: kept in the row")));
    }
    if kind == ReplaceOnChange && !create_only {
        out.push((Rule::OurReplace, "our kind is replace, but CloudFormation changes it in place (not in createOnlyProperties)".into()));
    }
    if matches!(kind, CloudAssigned | Identity) && !read_only {
        out.push((Rule::OurCloud, format!("our kind is {k} (AWS assigns it), but CloudFormation lets the user set it (not in readOnlyProperties)")));
    }
    if kind == WriteOnly && !write_only {
        out.push((Rule::OurWriteOnly, "our kind is write_only (never stored), but AWS returns it (not in writeOnlyProperties)".into()));
    }
    out
}

/// Every disagreement between `tables` and CloudFormation's schemas
/// (`load` reads one type's) that the mapping does not explain.
pub fn check(
    mapping: &Mapping,
    tables: &Tables,
    load: &dyn Fn(&str) -> Result<Value, String>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut fail = |s: String| failures.push(s);
    let mapped: BTreeSet<&str> = mapping.map.iter().map(|e| e.table.as_str()).collect();
    for table in tables.keys() {
        if !mapped.contains(table.as_str()) && !mapping.no_counterpart.contains_key(table) {
            fail(format!("{table}: not in tests/conformance/cfn.toml: add a [[map]] block for its CloudFormation type, or a [no_counterpart] entry saying why it has none"));
        }
    }
    for (table, reason) in &mapping.no_counterpart {
        if !tables.contains_key(table) {
            fail(format!(
                "{table}: [no_counterpart] names no table of the registry"
            ));
        }
        if mapped.contains(table.as_str()) {
            fail(format!("{table}: both in [no_counterpart] and mapped"));
        }
        if reason.trim().is_empty() {
            fail(format!("{table}: [no_counterpart] without a reason"));
        }
    }
    let mut schemas: HashMap<&str, Option<CfnType>> = HashMap::new();
    // Columns each table's blocks account for.
    let mut covered: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in &mapping.map {
        let table = e.table.as_str();
        let Some(columns) = tables.get(table) else {
            fail(format!(
                "{table} ({}): a [[map]] block for no table of the registry",
                e.cfn
            ));
            continue;
        };
        let cfn = schemas
            .entry(e.cfn.as_str())
            .or_insert_with(|| match load(&e.cfn) {
                Ok(v) => Some(CfnType(v)),
                Err(why) => {
                    fail(format!("{table}: {why}"));
                    None
                }
            });
        let Some(cfn) = cfn else { continue };
        let mut used = vec![false; e.exception.len()];
        for (column, prop) in &e.columns {
            let Some(&kind) = columns.get(column) else {
                fail(format!(
                    "{table}.{column} ({} {prop}): mapped, but not a column of {table}",
                    e.cfn
                ));
                continue;
            };
            if !cfn.has(prop) {
                fail(format!(
                    "{table}.{column}: {} has no property {prop}",
                    e.cfn
                ));
                continue;
            }
            for (rule, what) in broken(kind, cfn, prop) {
                match e.exception.iter().position(|x| x.column == *column && x.rule == rule) {
                    Some(i) => used[i] = true,
                    None => fail(format!("{table}.{column} ({} {prop}): rule {rule}: {what}; fix the column's kind, or list an exception with the API call that makes ours right", e.cfn)),
                }
            }
        }
        for (column, reason) in &e.unmapped {
            if !columns.contains_key(column) {
                fail(format!(
                    "{table}.{column}: listed as unmapped, but not a column of {table}"
                ));
            }
            if e.columns.contains_key(column) {
                fail(format!(
                    "{table}.{column}: both mapped and unmapped for {}",
                    e.cfn
                ));
            }
            if reason.trim().is_empty() {
                fail(format!("{table}.{column}: unmapped without a reason"));
            }
        }
        for (x, used) in e.exception.iter().zip(used) {
            if x.reason.trim().is_empty() {
                fail(format!(
                    "{table}.{}: exception to rule {} without a reason",
                    x.column, x.rule
                ));
            }
            if !used {
                fail(format!(
                    "{table}.{} ({}): exception to rule {} that no mapped column needs: remove it",
                    x.column, e.cfn, x.rule
                ));
            }
        }
        let seen = covered.entry(table).or_default();
        seen.extend(e.columns.keys().map(String::as_str));
        seen.extend(e.unmapped.keys().map(String::as_str));
    }
    for (table, seen) in covered {
        for column in tables[table].keys() {
            if !seen.contains(column.as_str()) && !mapping.common.unmapped.contains_key(column) {
                fail(format!("{table}.{column}: neither mapped to a CloudFormation property nor listed as unmapped with the reason"));
            }
        }
    }
    failures
}
