//! `aws.iam_role_inline_policy`: a policy document embedded in one role.
//!
//! Not a standalone IAM resource: its identity is synthetic,
//! `<role_name>|<policy_name>`. PutRolePolicy both creates and changes it
//! (the document in place); DeleteRolePolicy removes it. The listing is
//! ListRolePolicies per role and GetRolePolicy per policy, concurrently:
//! inline policies grant permissions, so they are observed.

use std::sync::Arc;

use async_trait::async_trait;
use infrasql_aws::policy_doc;
use infrasql_aws::sdk::{all_pages, classify, deleted};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema, Scope, GLOBAL_REGION,
};
use serde_json::{json, Value};

use crate::role::all_roles;
use crate::{doc, doc_text, each, iam};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "iam_role_inline_policy",
    display: "IAM role inline policy",
    doc: "A policy document embedded in one IAM role (PutRolePolicy). Sync observes every role's inline policies and their documents. IAM is global: region is always 'global'.",
    columns: &[
        Column::new(
            "inline_policy_id",
            Identity,
            "<role_name>|<policy_name>; provisional until created",
        ),
        Column::new(
            "region",
            ReplaceOnChange,
            "Always 'global': IAM is not regional",
        ),
        Column::reference(
            "role_name",
            ReplaceOnChange,
            "iam_role",
            "The role holding the policy",
        ),
        Column::new(
            "policy_name",
            ReplaceOnChange,
            "The policy's name, unique within its role",
        ),
        Column::new(
            "policy_document",
            Desired,
            "The document, as JSON (compared by meaning); observed by sync (one GetRolePolicy per policy)",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // A new role or name is another policy: no collision.
    replace_order: ReplaceOrder::CreateFirst,
    scope: Scope::Global,
    natural_key: &["role_name", "policy_name"],
    stateful: None,
};

pub struct InlinePolicy {
    clients: Arc<Clients>,
}

impl InlinePolicy {
    pub fn new(clients: Arc<Clients>) -> Self {
        InlinePolicy { clients }
    }
}

pub fn inline_policy_id(role: &str, name: &str) -> String {
    format!("{role}|{name}")
}

fn props(role: &str, name: &str, document: Value) -> Props {
    let mut p = Props::new();
    p.insert(
        "inline_policy_id".into(),
        json!(inline_policy_id(role, name)),
    );
    p.insert("region".into(), json!(GLOBAL_REGION));
    p.insert("role_name".into(), json!(role));
    p.insert("policy_name".into(), json!(name));
    p.insert("policy_document".into(), document);
    p
}

/// `(role_name, policy_name)`: from the id, or from the properties while
/// the id is provisional.
fn key<'a>(id: &'a str, p: &'a Props) -> Result<(&'a str, &'a str), ProviderError> {
    if let Some(k) = id.split_once('|') {
        return Ok(k);
    }
    Ok((p.req_str("role_name")?, p.req_str("policy_name")?))
}

impl InlinePolicy {
    /// PutRolePolicy of the row's document: create and in-place change alike.
    async fn put(&self, role: &str, name: &str, row: &Props) -> Result<Props, ProviderError> {
        let c = iam(&self.clients).await;
        c.put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(doc_text(row, "policy_document")?)
            .send()
            .await
            .map_err(classify)?;
        // PutRolePolicy answers nothing: the document is the one just sent.
        let document = row
            .get("policy_document")
            .map_or(Value::Null, policy_doc::canonical);
        Ok(props(role, name, document))
    }

    /// The inline policies of one role, each with its document.
    async fn of_role(&self, role: String) -> Result<Vec<Props>, ProviderError> {
        let names = {
            let c = iam(&self.clients).await;
            all_pages(
                c.list_role_policies()
                    .role_name(&role)
                    .into_paginator()
                    .items()
                    .send(),
            )
            .await?
        };
        let role = &role;
        each(names, |name| async move {
            let c = iam(&self.clients).await;
            let got = c
                .get_role_policy()
                .role_name(role)
                .policy_name(&name)
                .send()
                .await
                .map_err(classify)?;
            Ok(props(role, &name, doc(Some(got.policy_document()))?))
        })
        .await
    }
}

#[async_trait]
impl Resource for InlinePolicy {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// ListRoles pages, ListRolePolicies per role, GetRolePolicy per
    /// policy, concurrently.
    async fn list(&self, _region: &str) -> Result<Listed, ProviderError> {
        let roles = all_roles(&self.clients).await?;
        let names: Vec<String> = roles.iter().map(|r| r.role_name().to_owned()).collect();
        let per_role = each(names, |r| self.of_role(r)).await?;
        Ok(per_role.into_iter().flatten().collect())
    }

    async fn create(&self, _ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let (role, name) = key("", desired)?;
        self.put(role, name, desired).await
    }

    /// Only the document changes in place; the undo puts the old one back.
    async fn update(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        _before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let (role, name) = key(id, after)?;
        self.put(role, name, after).await
    }

    async fn delete(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        let (role, name) = key(id, current)?;
        let c = iam(&self.clients).await;
        deleted(
            c.delete_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await,
        )
    }
}
