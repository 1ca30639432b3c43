//! `aws.iam_instance_profile`: the container that hands a role to EC2
//! instances.
//!
//! The name is the id (IAM cannot rename a profile); a new path replaces
//! it. The role changes in place: RemoveRoleFromInstanceProfile of the old
//! one, AddRoleToInstanceProfile of the new. IAM's listing returns no tags,
//! so the listing reads each profile with GetInstanceProfile (its tags and
//! role), concurrently.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_iam::types::InstanceProfile as AwsProfile;
use infrasql_aws::fields::changed;
use infrasql_aws::sdk::{all_pages, classify, deleted, ignore_not_found, missing_id};
use infrasql_aws::tags::{self, NameTag};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema, Scope, GLOBAL_REGION,
};
use serde_json::{json, Value};

use crate::{date, each, iam, sdk_tags, tag_pairs};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "iam_instance_profile",
    display: "IAM instance profile",
    doc: "An IAM instance profile: what gives an EC2 instance (aws.instance.iam_instance_profile) its role. IAM is global: region is always 'global'. The name cannot be changed (IAM has no rename).",
    columns: &[
        Column::new(
            "instance_profile_name",
            Name,
            "The profile's name and id, chosen by you; unique in the account",
        ),
        Column::new(
            "region",
            ReplaceOnChange,
            "Always 'global': IAM is not regional",
        ),
        Column::new(
            "path",
            ReplaceOnChange,
            "The profile's path ('/' by default); a new path replaces the profile",
        ),
        Column::reference(
            "role_name",
            Desired,
            "iam_role",
            "The role it hands to instances (NULL: none); changed in place (the old role removed, the new one added); observed by sync",
        ),
        Column::new(
            "tags",
            Desired,
            "Tags, as a JSON object; observed by sync (one GetInstanceProfile per profile)",
        ),
        Column::new("arn", CloudAssigned, "The profile's ARN"),
        Column::new(
            "instance_profile_id",
            CloudAssigned,
            "IAM's id of the profile (AIPA...)",
        ),
        Column::new("create_date", CloudAssigned, "When the profile was created"),
        infrasql_provider::SYNCED_AT,
    ],
    // A new path is a new profile under the same name: the old one first.
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region"],
        why: "instance profile names are unique in the account",
    },
    scope: Scope::Global,
    natural_key: &["instance_profile_name"],
    stateful: None,
};

pub struct InstanceProfile {
    clients: Arc<Clients>,
}

impl InstanceProfile {
    pub fn new(clients: Arc<Clients>) -> Self {
        InstanceProfile { clients }
    }
}

/// The row's columns from IAM's profile, tags included (GetInstanceProfile
/// returns them; ListInstanceProfiles does not).
fn props(p: &AwsProfile) -> Props {
    let mut out = Props::new();
    out.insert(
        "instance_profile_name".into(),
        json!(p.instance_profile_name()),
    );
    out.insert("region".into(), json!(GLOBAL_REGION));
    out.insert("path".into(), json!(p.path()));
    out.insert(
        "role_name".into(),
        p.roles()
            .first()
            .map_or(Value::Null, |r| json!(r.role_name())),
    );
    out.insert("arn".into(), json!(p.arn()));
    out.insert("instance_profile_id".into(), json!(p.instance_profile_id()));
    out.insert("create_date".into(), date(Some(p.create_date())));
    tags::put_tags(&mut out, tag_pairs(p.tags()), NameTag::None);
    out
}

async fn get(c: &aws_sdk_iam::Client, name: &str) -> Result<AwsProfile, ProviderError> {
    c.get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .map_err(classify)?
        .instance_profile
        .ok_or_else(|| missing_id("GetInstanceProfile", "instance profile"))
}

async fn add_role(c: &aws_sdk_iam::Client, name: &str, role: &str) -> Result<(), ProviderError> {
    c.add_role_to_instance_profile()
        .instance_profile_name(name)
        .role_name(role)
        .send()
        .await
        .map(drop)
        .map_err(classify)
}

async fn remove_role(c: &aws_sdk_iam::Client, name: &str, role: &str) -> Result<(), ProviderError> {
    ignore_not_found(
        c.remove_role_from_instance_profile()
            .instance_profile_name(name)
            .role_name(role)
            .send()
            .await
            .map(drop)
            .map_err(classify),
    )
}

#[async_trait]
impl Resource for InstanceProfile {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// ListInstanceProfiles pages, then GetInstanceProfile per profile
    /// (for its tags), concurrently.
    async fn list(&self, _region: &str) -> Result<Listed, ProviderError> {
        let listed = {
            let c = iam(&self.clients).await;
            all_pages(c.list_instance_profiles().into_paginator().items().send()).await?
        };
        let names: Vec<String> = listed
            .iter()
            .map(|p| p.instance_profile_name().to_owned())
            .collect();
        let found = each(names, |name| async move {
            let c = iam(&self.clients).await;
            // Deleted since the listing: not there any more.
            infrasql_aws::sdk::if_found(get(&c, &name).await)
        })
        .await?;
        Ok(found.iter().flatten().map(props).collect())
    }

    /// CreateInstanceProfile, then AddRoleToInstanceProfile; a refused role
    /// deletes the new profile again, so nothing is left half-made.
    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let name = desired.req_str("instance_profile_name")?;
        let c = iam(&self.clients).await;
        let profile = c
            .create_instance_profile()
            .instance_profile_name(name)
            .path(desired.str("path").unwrap_or("/"))
            .set_tags(Some(sdk_tags(tags::for_create(
                desired,
                ctx,
                NameTag::None,
            ))))
            .send()
            .await
            .map_err(classify)?
            .instance_profile
            .ok_or_else(|| missing_id("CreateInstanceProfile", "instance profile"))?;
        if let Some(role) = desired.str("role_name") {
            if let Err(e) = add_role(&c, name, role).await {
                if let Err(undo) = deleted(
                    c.delete_instance_profile()
                        .instance_profile_name(name)
                        .send()
                        .await,
                ) {
                    tracing::warn!(profile = name, error = %undo, "could not delete the half-made instance profile");
                }
                return Err(e);
            }
        }
        let mut p = props(&profile);
        p.insert(
            "role_name".into(),
            desired.get("role_name").cloned().unwrap_or(Value::Null),
        );
        Ok(p)
    }

    async fn update(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let c = iam(&self.clients).await;
        if changed(before, after, &["role_name"]) {
            // A profile holds one role: the old one must go first.
            if let Some(old) = before.str("role_name") {
                remove_role(&c, id, old).await?;
            }
            if let Some(new) = after.str("role_name") {
                add_role(&c, id, new).await?;
            }
        }
        if changed(before, after, &tags::TAG_COLUMNS) {
            let (remove, set) = tags::changes(before, after, NameTag::None);
            if !remove.is_empty() {
                c.untag_instance_profile()
                    .instance_profile_name(id)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(classify)?;
            }
            if !set.is_empty() {
                c.tag_instance_profile()
                    .instance_profile_name(id)
                    .set_tags(Some(sdk_tags(set)))
                    .send()
                    .await
                    .map_err(classify)?;
            }
        }
        Ok(props(&get(&c, id).await?))
    }

    /// IAM refuses to delete a profile that still holds a role: remove it
    /// first.
    async fn delete(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let c = iam(&self.clients).await;
        let profile = match infrasql_aws::sdk::if_found(get(&c, id).await)? {
            Some(p) => p,
            None => return Ok(()),
        };
        for r in profile.roles() {
            remove_role(&c, id, r.role_name()).await?;
        }
        deleted(
            c.delete_instance_profile()
                .instance_profile_name(id)
                .send()
                .await,
        )
    }
}
