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
use serde_json::Value;

use crate::sdk::classify;
use crate::tags::NameTag;
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
    crate::tags::put_tags(props, aws_pairs(tags), NameTag::Column);
}

fn aws_pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .filter_map(|t| Some((t.key()?, t.value().unwrap_or(""))))
}

/// The tags a row asks for: its `tags` object plus `Name` and its stack.
pub(crate) fn desired_tags(props: &Props) -> BTreeMap<String, String> {
    crate::tags::desired(props, NameTag::Column)
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

/// [`tag_spec`] plus the create call's token ([`crate::create_once`]),
/// which a retry looks for with [`token_filter`].
pub(crate) fn tag_spec_once(
    rt: ResourceType,
    props: &Props,
    ctx: &ApplyContext,
    token: &str,
) -> TagSpecification {
    let mut spec = tag_spec(rt, props, ctx);
    let tag = Tag::builder()
        .key(crate::create_once::CREATE_TOKEN_TAG)
        .value(token)
        .build();
    spec.tags.get_or_insert_with(Vec::new).push(tag);
    spec
}

/// The describe filter that finds what the create with `token` made.
pub(crate) fn token_filter(token: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(format!("tag:{}", crate::create_once::CREATE_TOKEN_TAG))
        .values(token)
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

pub(crate) use crate::fields::{changed, opt_str, present};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
