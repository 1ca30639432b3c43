//! The `tags` column and what a change of it asks of AWS, for every service:
//! each service's module builds its own SDK tag types from these.

use std::collections::BTreeMap;

use infrasql_provider::{ApplyContext, Props, APPLY_TAG, STACK, STACK_TAG};
use serde_json::Value;

/// Whether a service keeps a `name` column in the `Name` tag (EC2, ELBv2)
/// or has no such tag (RDS, IAM, S3, where the name is the identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameTag {
    Column,
    None,
}

/// Put the `tags` column (and `name`, for [`NameTag::Column`]) and the
/// stack into `props` from AWS's tags. infrasql's own tags are hidden,
/// except the apply id, which recovery reads from the listing (not a column).
pub fn put_tags<'a>(
    props: &mut Props,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    name: NameTag,
) {
    let mut rest = serde_json::Map::new();
    let mut name_tag = None;
    let mut stack = Value::Null;
    for (k, v) in tags {
        if k == APPLY_TAG {
            props.insert(APPLY_TAG.into(), Value::String(v.to_owned()));
        } else if k == STACK_TAG {
            stack = Value::String(v.to_owned());
        } else if k == "Name" && name == NameTag::Column {
            name_tag = Some(v.to_owned());
        } else if !k.starts_with("infrasql:") {
            rest.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    }
    props.insert(STACK.name.into(), stack);
    if name == NameTag::Column {
        props.insert("name".into(), name_tag.map_or(Value::Null, Value::String));
    }
    props.insert("tags".into(), Value::Object(rest));
}

/// The tags a row asks for: its `tags` object, its stack and (for
/// [`NameTag::Column`]) `Name`.
pub fn desired(props: &Props, name: NameTag) -> BTreeMap<String, String> {
    let mut out = tags_column(props);
    out.extend(stack_tag(props));
    if name == NameTag::Column {
        if let Some(Value::String(n)) = props.get("name") {
            out.insert("Name".into(), n.clone());
        }
    }
    out
}

/// The tags of a create call: [`desired`] plus the apply id, which
/// recovery looks for to find what a crashed apply made.
pub fn for_create(props: &Props, ctx: &ApplyContext, name: NameTag) -> Vec<(String, String)> {
    desired(props, name)
        .into_iter()
        .chain([(APPLY_TAG.to_owned(), ctx.apply_id.clone())])
        .collect()
}

/// What a tag change between two rows asks of AWS: keys to remove, and
/// tags to add or change.
pub fn changes(
    before: &Props,
    after: &Props,
    name: NameTag,
) -> (Vec<String>, Vec<(String, String)>) {
    tag_changes(&desired(before, name), &desired(after, name))
}

/// The columns whose change is a change of the resource's tags: the
/// `tags` object, the `Name` tag and the stack (the `infrasql:stack` tag).
pub const TAG_COLUMNS: [&str; 3] = ["name", "tags", STACK.name];

/// The stack tag a row asks for, if it belongs to a stack.
pub fn stack_tag(props: &Props) -> Option<(String, String)> {
    match props.get(STACK.name) {
        Some(Value::String(s)) => Some((STACK_TAG.to_owned(), s.clone())),
        _ => None,
    }
}

/// The `stack` column from AWS tags (NULL without the tag), so a re-import
/// finds each resource's stack again.
pub fn put_stack<'a>(props: &mut Props, mut tags: impl Iterator<Item = (&'a str, &'a str)>) {
    let stack = tags
        .find(|(k, _)| *k == STACK_TAG)
        .map_or(Value::Null, |(_, v)| Value::String(v.to_owned()));
    props.insert(STACK.name.into(), stack);
}

/// The row's `tags` object as text keys and values (a non-string value is
/// taken as its JSON text).
pub fn tags_column(props: &Props) -> BTreeMap<String, String> {
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
pub fn tag_changes(
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
