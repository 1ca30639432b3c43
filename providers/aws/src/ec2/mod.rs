//! EC2 resource types and what they share: tags, names and property values
//! here; the shapes of SDK calls (errors, pages, describe by id, delete) in
//! [`crate::sdk`].

pub mod elastic_ip;
pub mod instance;
pub mod internet_gateway;
pub mod key_pair;
pub mod route;
pub mod route_table;
pub mod route_table_association;

pub mod security_group;
pub mod security_group_rule;
pub mod subnet;
pub mod vpc;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use infrasql_provider::{ApplyContext, Props, ProviderError, Resource, APPLY_TAG};
use serde_json::{json, Value};

use crate::sdk::classify;
use crate::Clients;

pub fn resources(clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    vec![
        Arc::new(vpc::Vpc::new(clients.clone())),
        Arc::new(subnet::Subnet::new(clients.clone())),
        Arc::new(internet_gateway::InternetGateway::new(clients.clone())),
        Arc::new(key_pair::KeyPair::new(clients.clone())),
        Arc::new(elastic_ip::ElasticIp::new(clients.clone())),
        Arc::new(route_table::RouteTable::new(clients.clone())),
        Arc::new(route::Route::new(clients.clone())),
        Arc::new(route_table_association::RouteTableAssociation::new(
            clients.clone(),
        )),
        Arc::new(security_group::SecurityGroup::new(clients.clone())),
        Arc::new(security_group_rule::SecurityGroupRule::new(clients.clone())),
        Arc::new(instance::Instance::new(clients.clone())),
    ]
}

/// AWS tags → (Name tag, the other user tags). infrasql's own tags are hidden.
pub(crate) fn split_tags(tags: &[Tag]) -> (Option<String>, Value) {
    let mut name = None;
    let mut rest = serde_json::Map::new();
    for t in tags {
        let (Some(k), v) = (t.key(), t.value().unwrap_or("")) else {
            continue;
        };
        if k == "Name" {
            name = Some(v.to_owned());
        } else if !k.starts_with("infrasql:") {
            rest.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    }
    (name, Value::Object(rest))
}

/// Put the name and tags columns into `props` from AWS tags.
pub(crate) fn put_tags(props: &mut Props, tags: &[Tag]) {
    // Not a column: recovery uses it to find what a crashed apply created.
    if let Some(t) = tags.iter().find(|t| t.key() == Some(APPLY_TAG)) {
        props.insert(APPLY_TAG.into(), opt_str(t.value()));
    }
    crate::tags::put_stack(
        props,
        tags.iter()
            .filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))),
    );
    let (name, tags) = split_tags(tags);
    props.insert(
        "name".into(),
        name.map(Value::String).unwrap_or(Value::Null),
    );
    props.insert("tags".into(), tags);
}

/// The tags a row asks for: its `tags` object plus `Name` and its stack.
pub(crate) fn desired_tags(props: &Props) -> BTreeMap<String, String> {
    let mut out = crate::tags::tags_column(props);
    out.extend(crate::tags::stack_tag(props));
    if let Some(Value::String(n)) = props.get("name") {
        out.insert("Name".into(), n.clone());
    }
    out
}

/// Tag specification for a create call: the row's tags plus the apply id.
pub(crate) fn tag_spec(rt: ResourceType, props: &Props, ctx: &ApplyContext) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(rt);
    for (k, v) in desired_tags(props) {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.tags(Tag::builder().key(APPLY_TAG).value(&ctx.apply_id).build())
        .build()
}

/// Bring a resource's tags from `before` to `after` (name included).
pub(crate) async fn update_tags(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    before: &Props,
    after: &Props,
) -> Result<(), ProviderError> {
    let (removed, changed) = crate::tags::tag_changes(&desired_tags(before), &desired_tags(after));
    let removed: Vec<Tag> = removed
        .into_iter()
        .map(|k| Tag::builder().key(k).build())
        .collect();
    let changed: Vec<Tag> = changed
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    if !removed.is_empty() {
        ec2.delete_tags()
            .resources(id)
            .set_tags(Some(removed))
            .send()
            .await
            .map_err(classify)?;
    }
    if !changed.is_empty() {
        ec2.create_tags()
            .resources(id)
            .set_tags(Some(changed))
            .send()
            .await
            .map_err(classify)?;
    }
    Ok(())
}

/// True when any of `keys` differs between two property sets.
pub(crate) fn changed(before: &Props, after: &Props, keys: &[&str]) -> bool {
    keys.iter().any(|k| before.get(*k) != after.get(*k))
}

pub(crate) fn opt_str(s: Option<&str>) -> Value {
    s.map(|v| json!(v)).unwrap_or(Value::Null)
}

/// Like [`opt_str`], with an empty string taken as absent: AWS (and moto)
/// answer "" for a missing address, name or id, which would not fit an inet
/// or id column, and an empty description is no description.
pub(crate) fn present(s: Option<&str>) -> Value {
    opt_str(s.filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_infrasql_tags_are_kept_out_of_the_tags_column() {
        let tags = vec![
            Tag::builder().key("Name").value("main").build(),
            Tag::builder().key("env").value("prod").build(),
            Tag::builder().key(APPLY_TAG).value("a1").build(),
        ];
        let (name, rest) = split_tags(&tags);
        assert_eq!(name.as_deref(), Some("main"));
        assert_eq!(rest, json!({"env": "prod"}));
    }
}
