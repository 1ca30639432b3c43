//! RDS resource types (aws-sdk-rds) and what they share: tags here; the
//! shapes of SDK answers (errors, pages, deletes) in [`crate::sdk`], as for
//! EC2.
//!
//! RDS resources are named by the user (`db_instance_identifier`...), so
//! their identity columns are [`ColumnKind::Name`](infrasql_provider::ColumnKind::Name):
//! never provisional. Tags are addressed by ARN, and there is no `Name` tag.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_rds::types::Tag;
use infrasql_provider::{ApplyContext, Props, ProviderError, Resource, APPLY_TAG};
use serde_json::Value;

use crate::sdk::classify;
use crate::tags::NameTag;
use crate::Clients;

pub mod db_cluster;
pub mod db_instance;
pub mod db_parameter;
pub mod db_parameter_group;
pub mod db_snapshot;
pub mod db_subnet_group;

pub fn resources(clients: Arc<Clients>) -> Vec<Arc<dyn Resource>> {
    vec![
        Arc::new(db_subnet_group::DbSubnetGroupType::new(clients.clone())),
        Arc::new(db_parameter_group::DbParameterGroupType::new(
            clients.clone(),
        )),
        Arc::new(db_parameter::DbParameterType::new(clients.clone())),
        Arc::new(db_instance::DbInstance::new(clients.clone())),
        Arc::new(db_cluster::DbCluster::new(clients.clone())),
        Arc::new(db_snapshot::DbSnapshot::new(clients)),
    ]
}

/// How a database's delete ends: with a final snapshot of this name, or none.
#[derive(Debug, PartialEq)]
pub(crate) enum FinalSnapshot {
    Keep(String),
    Skip,
}

/// The final-snapshot choice a row made (`skip_final_snapshot`,
/// `final_snapshot_identifier`); `None` when it made none (the schema's
/// trigger refuses that DELETE, so this is a second guard). Props that are
/// not a row (an undo, recovery, sync's revert: listings carry no
/// instructions) keep a snapshot, unless the apply `apply_id` made the
/// database: undoing its own create, there is no data of the user's to keep.
pub(crate) fn final_snapshot(id: &str, current: &Props, apply_id: &str) -> Option<FinalSnapshot> {
    if let Some(name) = current
        .get("final_snapshot_identifier")
        .and_then(Value::as_str)
    {
        return Some(FinalSnapshot::Keep(name.to_owned()));
    }
    match current.get("skip_final_snapshot").and_then(Value::as_bool) {
        Some(true) => Some(FinalSnapshot::Skip),
        Some(false) => None,
        None if current.get(APPLY_TAG).and_then(Value::as_str) == Some(apply_id) => {
            Some(FinalSnapshot::Skip)
        }
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            Some(FinalSnapshot::Keep(format!("{id}-final-{secs}")))
        }
    }
}

/// The `tags` column from AWS tags (RDS has no `Name` tag).
pub(crate) fn put_tags(props: &mut Props, tags: &[Tag]) {
    crate::tags::put_tags(
        props,
        tags.iter()
            .filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))),
        NameTag::None,
    );
}

/// The tags a row asks for (RDS has no `Name` tag), with its stack.
pub(crate) fn desired_tags(props: &Props) -> BTreeMap<String, String> {
    crate::tags::desired(props, NameTag::None)
}

/// Tags for a create call: the row's tags plus the apply id.
pub(crate) fn create_tags(props: &Props, ctx: &ApplyContext) -> Vec<Tag> {
    desired_tags(props)
        .into_iter()
        .chain([(APPLY_TAG.to_owned(), ctx.apply_id.clone())])
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Bring the tags of the resource `arn` from `before` to `after`.
pub(crate) async fn update_tags(
    rds: &aws_sdk_rds::Client,
    arn: &str,
    before: &Props,
    after: &Props,
) -> Result<(), ProviderError> {
    let (removed, changed) = crate::tags::tag_changes(&desired_tags(before), &desired_tags(after));
    let changed: Vec<Tag> = changed
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    if !removed.is_empty() {
        rds.remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(classify)?;
    }
    if !changed.is_empty() {
        rds.add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(changed))
            .send()
            .await
            .map_err(classify)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_apply_tag_is_kept_out_of_the_tags_column() {
        let mut p = Props::new();
        put_tags(
            &mut p,
            &[
                Tag::builder().key("env").value("prod").build(),
                Tag::builder().key(APPLY_TAG).value("a1").build(),
            ],
        );
        assert_eq!(p["tags"], json!({"env": "prod"}));
        assert_eq!(p[APPLY_TAG], json!("a1"));
    }
}
