//! `aws.iam_role_policy_attachment`: a managed policy attached to a role.
//!
//! An attachment is not a standalone IAM resource: its identity here is
//! synthetic, `<role_name>|<policy arn>` (like `aws.route`'s). The policy is
//! either a row of `aws.iam_policy` (`policy_arn`, a reference) or any
//! other policy by ARN (`managed_policy_arn`: AWS's own,
//! `arn:aws:iam::aws:policy/...`); exactly one is set. Nothing changes in
//! place: another role or policy is another attachment. The listing reads
//! every role's attached policies (security-relevant, so observed):
//! ListAttachedRolePolicies per role, concurrently.

use std::sync::Arc;

use async_trait::async_trait;
use infrasql_aws::sdk::{all_pages, classify, deleted};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema, Scope, GLOBAL_REGION,
};
use serde_json::{json, Value};

use crate::role::all_roles;
use crate::{each, iam};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "iam_role_policy_attachment",
    display: "IAM role policy attachment",
    doc: "A managed policy attached to an IAM role: a customer-managed policy that is a row (policy_arn) or any other policy by ARN, such as AWS's own arn:aws:iam::aws:policy/... (managed_policy_arn); exactly one is set. Sync observes every role's attached policies. IAM is global: region is always 'global'.",
    columns: &[
        Column::new(
            "attachment_id",
            Identity,
            "<role_name>|<policy ARN>; provisional until created",
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
            "The role the policy is attached to",
        ),
        Column::reference(
            "policy_arn",
            ReplaceOnChange,
            "iam_policy",
            "The attached customer-managed policy, a row of aws.iam_policy (NULL when managed_policy_arn is set); sync puts every attached customer-managed policy here",
        ),
        Column::new(
            "managed_policy_arn",
            ReplaceOnChange,
            "The attached policy by ARN when it is not a row, e.g. arn:aws:iam::aws:policy/ReadOnlyAccess (NULL when policy_arn is set); sync puts AWS-managed policies here",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // Another role or policy is another attachment: no collision.
    replace_order: ReplaceOrder::CreateFirst,
    scope: Scope::Global,
    natural_key: &["role_name", "policy_arn", "managed_policy_arn"],
    stateful: None,
};

/// AWS's own managed policies, which are never rows of `aws.iam_policy`.
const AWS_MANAGED: &str = "arn:aws:iam::aws:policy/";

pub struct Attachment {
    clients: Arc<Clients>,
}

impl Attachment {
    pub fn new(clients: Arc<Clients>) -> Self {
        Attachment { clients }
    }
}

pub fn attachment_id(role: &str, policy_arn: &str) -> String {
    format!("{role}|{policy_arn}")
}

/// The row of one attachment: an AWS-managed policy in
/// `managed_policy_arn`, a customer-managed one (a row of
/// `aws.iam_policy` once synced) in `policy_arn`.
pub(crate) fn props(role: &str, policy: &str) -> Props {
    let (row, managed) = if policy.starts_with(AWS_MANAGED) {
        (Value::Null, json!(policy))
    } else {
        (json!(policy), Value::Null)
    };
    let mut p = Props::new();
    p.insert("attachment_id".into(), json!(attachment_id(role, policy)));
    p.insert("region".into(), json!(GLOBAL_REGION));
    p.insert("role_name".into(), json!(role));
    p.insert("policy_arn".into(), row);
    p.insert("managed_policy_arn".into(), managed);
    p
}

/// `(role_name, policy ARN)` of an attachment: from its id, or from its
/// properties while the id is provisional.
fn key<'a>(id: &'a str, p: &'a Props) -> Result<(&'a str, &'a str), ProviderError> {
    if let Some((role, arn)) = id.split_once('|') {
        return Ok((role, arn));
    }
    let arn = p
        .str("policy_arn")
        .or_else(|| p.str("managed_policy_arn"))
        .ok_or_else(|| ProviderError::invalid("policy_arn or managed_policy_arn is required"))?;
    Ok((p.req_str("role_name")?, arn))
}

#[async_trait]
impl Resource for Attachment {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// ListRoles pages, then ListAttachedRolePolicies per role, concurrently.
    async fn list(&self, _region: &str) -> Result<Listed, ProviderError> {
        let roles = all_roles(&self.clients).await?;
        let per_role = each(roles, |r| async move {
            let c = iam(&self.clients).await;
            let attached = all_pages(
                c.list_attached_role_policies()
                    .role_name(r.role_name())
                    .into_paginator()
                    .items()
                    .send(),
            )
            .await?;
            Ok(attached
                .iter()
                .filter_map(|a| a.policy_arn())
                .map(|arn| props(r.role_name(), arn))
                .collect::<Vec<_>>())
        })
        .await?;
        Ok(per_role.into_iter().flatten().collect())
    }

    async fn create(&self, _ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let (role, arn) = key("", desired)?;
        let c = iam(&self.clients).await;
        c.attach_role_policy()
            .role_name(role)
            .policy_arn(arn)
            .send()
            .await
            .map_err(classify)?;
        // The row keeps the column the user chose for the ARN.
        let mut p = Props::new();
        p.insert("attachment_id".into(), json!(attachment_id(role, arn)));
        p.insert("region".into(), json!(GLOBAL_REGION));
        p.insert("role_name".into(), json!(role));
        for col in ["policy_arn", "managed_policy_arn"] {
            p.insert(col.into(), desired.get(col).cloned().unwrap_or(Value::Null));
        }
        Ok(p)
    }

    /// Every user column replaces; nothing to change in place.
    async fn update(
        &self,
        _ctx: &ApplyContext,
        _id: &str,
        _before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        Ok(after.clone())
    }

    async fn delete(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        let (role, arn) = key(id, current)?;
        let c = iam(&self.clients).await;
        deleted(
            c.detach_role_policy()
                .role_name(role)
                .policy_arn(arn)
                .send()
                .await,
        )
    }
}
