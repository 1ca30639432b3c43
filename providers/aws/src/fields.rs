//! Property values every service builds from an SDK's answers.

use infrasql_provider::Props;
use serde_json::{json, Value};

/// True when any of `keys` differs between two property sets.
pub fn changed(before: &Props, after: &Props, keys: &[&str]) -> bool {
    keys.iter().any(|k| before.get(*k) != after.get(*k))
}

pub fn opt_str(s: Option<&str>) -> Value {
    s.map(|v| json!(v)).unwrap_or(Value::Null)
}

/// Like [`opt_str`], with an empty string taken as absent: AWS (and moto)
/// answer "" for a missing address, name or id, which would not fit an inet
/// or id column, and an empty description is no description.
pub fn present(s: Option<&str>) -> Value {
    opt_str(s.filter(|v| !v.is_empty()))
}
