//! `aws.iam_role`: an IAM role, named by the user.
//!
//! The name is the id; IAM cannot rename a role (the schema file refuses a
//! changed name), and a new path replaces the role. The trust policy
//! changes in place with UpdateAssumeRolePolicy, the description and the
//! maximum session duration with UpdateRole, tags with TagRole/UntagRole.
//! ListRoles returns no tags, so the listing asks ListRoleTags per role,
//! concurrently: the tags carry the stack and the apply id recovery reads.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_iam::types::Role as AwsRole;
use infrasql_aws::fields::{changed, present};
use infrasql_aws::sdk::{all_pages, classify, deleted, missing_id};
use infrasql_aws::tags::{self, NameTag};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema, Scope, GLOBAL_REGION,
};
use serde_json::{json, Value};

use crate::{date, doc, doc_text, each, iam, sdk_tags, tag_pairs};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "iam_role",
    display: "IAM role",
    doc: "An IAM role: who may assume it (its trust policy) and for how long. Its permissions are rows of aws.iam_role_policy_attachment and aws.iam_role_inline_policy. IAM is global: region is always 'global'. The name cannot be changed (IAM has no rename).",
    columns: &[
        Column::new(
            "role_name",
            Name,
            "The role's name and id, chosen by you; unique in the account",
        ),
        Column::new(
            "region",
            ReplaceOnChange,
            "Always 'global': IAM is not regional",
        ),
        Column::new(
            "path",
            ReplaceOnChange,
            "The role's path ('/' by default); a new path replaces the role",
        ),
        Column::new(
            "assume_role_policy",
            Desired,
            "The trust policy, as JSON (compared by meaning: key order, URL encoding and a scalar for a one-element list are no change); observed by sync",
        ),
        Column::new(
            "description",
            Desired,
            "What the role is for (NULL: none); observed by sync",
        ),
        Column::new(
            "max_session_duration",
            Desired,
            "The longest session, in seconds (3600 to 43200); observed by sync",
        ),
        Column::new(
            "tags",
            Desired,
            "Tags, as a JSON object; observed by sync (one ListRoleTags per role)",
        ),
        Column::new("arn", CloudAssigned, "The role's ARN"),
        Column::new("role_id", CloudAssigned, "IAM's id of the role (AROA...)"),
        Column::new("create_date", CloudAssigned, "When the role was created"),
        infrasql_provider::SYNCED_AT,
    ],
    // A new path is a new role under the same name: the old one must go
    // first, or IAM refuses the name (EntityAlreadyExists).
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region"],
        why: "role names are unique in the account",
    },
    scope: Scope::Global,
    natural_key: &["role_name"],
    stateful: None,
};

pub struct Role {
    clients: Arc<Clients>,
}

impl Role {
    pub fn new(clients: Arc<Clients>) -> Self {
        Role { clients }
    }
}

/// The row's columns from IAM's role; the tags are put in by the caller.
fn props(r: &AwsRole) -> Result<Props, ProviderError> {
    let mut p = Props::new();
    p.insert("role_name".into(), json!(r.role_name()));
    p.insert("region".into(), json!(GLOBAL_REGION));
    p.insert("path".into(), json!(r.path()));
    p.insert(
        "assume_role_policy".into(),
        doc(r.assume_role_policy_document())?,
    );
    p.insert("description".into(), present(r.description()));
    p.insert(
        "max_session_duration".into(),
        r.max_session_duration().map_or(Value::Null, |d| json!(d)),
    );
    p.insert("arn".into(), json!(r.arn()));
    p.insert("role_id".into(), json!(r.role_id()));
    p.insert("create_date".into(), date(Some(r.create_date())));
    Ok(p)
}

/// Every role in the account, all pages.
pub(crate) async fn all_roles(clients: &Clients) -> Result<Vec<AwsRole>, ProviderError> {
    let c = iam(clients).await;
    all_pages(c.list_roles().into_paginator().items().send()).await
}

async fn role_tags(
    clients: &Clients,
    name: &str,
) -> Result<Vec<aws_sdk_iam::types::Tag>, ProviderError> {
    let c = iam(clients).await;
    all_pages(
        c.list_role_tags()
            .role_name(name)
            .into_paginator()
            .items()
            .send(),
    )
    .await
}

/// The tags a row asks for, as the props `list` would report them.
fn with_row_tags(mut p: Props, row: &Props) -> Props {
    let pairs: Vec<(String, String)> = tags::desired(row, NameTag::None).into_iter().collect();
    tags::put_tags(
        &mut p,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        NameTag::None,
    );
    p
}

#[async_trait]
impl Resource for Role {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// ListRoles pages, then ListRoleTags per role, concurrently.
    async fn list(&self, _region: &str) -> Result<Listed, ProviderError> {
        let roles = all_roles(&self.clients).await?;
        each(roles, |r| async move {
            let tags = role_tags(&self.clients, r.role_name()).await?;
            let mut p = props(&r)?;
            tags::put_tags(&mut p, tag_pairs(&tags), NameTag::None);
            Ok(p)
        })
        .await
        .map(Listed::from)
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let name = desired.req_str("role_name")?;
        let c = iam(&self.clients).await;
        let role = c
            .create_role()
            .role_name(name)
            .path(desired.str("path").unwrap_or("/"))
            .assume_role_policy_document(doc_text(desired, "assume_role_policy")?)
            .set_description(desired.str("description").map(str::to_owned))
            .set_max_session_duration(
                desired
                    .get("max_session_duration")
                    .and_then(Value::as_i64)
                    .map(|d| d as i32),
            )
            .set_tags(Some(sdk_tags(tags::for_create(
                desired,
                ctx,
                NameTag::None,
            ))))
            .send()
            .await
            .map_err(classify)?
            .role
            .ok_or_else(|| missing_id("CreateRole", "role"))?;
        // The tags are the ones just sent: no second call to read them back.
        Ok(with_row_tags(props(&role)?, desired))
    }

    /// Each changed setting with its own call; with before and after
    /// swapped this is the undo, so every call sends the whole new value.
    async fn update(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let c = iam(&self.clients).await;
        if changed(before, after, &["assume_role_policy"]) {
            c.update_assume_role_policy()
                .role_name(id)
                .policy_document(doc_text(after, "assume_role_policy")?)
                .send()
                .await
                .map_err(classify)?;
        }
        if changed(before, after, &["description", "max_session_duration"]) {
            // UpdateRole takes both; an empty description clears it.
            c.update_role()
                .role_name(id)
                .description(after.str("description").unwrap_or(""))
                .set_max_session_duration(
                    after
                        .get("max_session_duration")
                        .and_then(Value::as_i64)
                        .map(|d| d as i32),
                )
                .send()
                .await
                .map_err(classify)?;
        }
        if changed(before, after, &tags::TAG_COLUMNS) {
            let (remove, set) = tags::changes(before, after, NameTag::None);
            if !remove.is_empty() {
                c.untag_role()
                    .role_name(id)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(classify)?;
            }
            if !set.is_empty() {
                c.tag_role()
                    .role_name(id)
                    .set_tags(Some(sdk_tags(set)))
                    .send()
                    .await
                    .map_err(classify)?;
            }
        }
        let role = c
            .get_role()
            .role_name(id)
            .send()
            .await
            .map_err(classify)?
            .role
            .ok_or_else(|| missing_id("GetRole", "role"))?;
        Ok(with_row_tags(props(&role)?, after))
    }

    /// Fails with DeleteConflict while policies or a profile still hold
    /// the role; the planner deletes those rows' resources first.
    async fn delete(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let c = iam(&self.clients).await;
        deleted(c.delete_role().role_name(id).send().await)
    }
}
