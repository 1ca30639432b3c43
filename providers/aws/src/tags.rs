//! The `tags` column and what a change of it asks of AWS, for every service:
//! each service's module builds its own SDK tag types from these.

use std::collections::BTreeMap;

use infrasql_provider::{Props, STACK, STACK_TAG};
use serde_json::Value;

/// The columns whose change is a change of the resource's tags: the
/// `tags` object, the `Name` tag and the stack (the `infrasql:stack` tag).
pub(crate) const TAG_COLUMNS: [&str; 3] = ["name", "tags", STACK.name];

/// The stack tag a row asks for, if it belongs to a stack.
pub(crate) fn stack_tag(props: &Props) -> Option<(String, String)> {
    match props.get(STACK.name) {
        Some(Value::String(s)) => Some((STACK_TAG.to_owned(), s.clone())),
        _ => None,
    }
}

/// The `stack` column from AWS tags (NULL without the tag), so a re-import
/// finds each resource's stack again.
pub(crate) fn put_stack<'a>(props: &mut Props, mut tags: impl Iterator<Item = (&'a str, &'a str)>) {
    let stack = tags
        .find(|(k, _)| *k == STACK_TAG)
        .map_or(Value::Null, |(_, v)| Value::String(v.to_owned()));
    props.insert(STACK.name.into(), stack);
}

/// The row's `tags` object as text keys and values (a non-string value is
/// taken as its JSON text).
pub(crate) fn tags_column(props: &Props) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(m)) = props.get("tags") {
        for (k, v) in m {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.insert(k.clone(), v);
        }
    }
    out
}

/// From `old` to `new`: the keys to remove, and the tags to add or change.
pub(crate) fn tag_changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> (Vec<String>, Vec<(String, String)>) {
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn removed_keys_and_new_or_changed_values() {
        let p = |v: Value| v.as_object().unwrap().clone();
        let old = tags_column(&p(json!({"tags": {"a": "1", "b": "2", "n": 3}})));
        let new = tags_column(&p(json!({"tags": {"b": "2", "c": "3", "n": 4}})));
        let (removed, changed) = tag_changes(&old, &new);
        assert_eq!(removed, vec!["a"]);
        assert_eq!(
            changed,
            vec![("c".into(), "3".into()), ("n".into(), "4".into())]
        );
    }
}
