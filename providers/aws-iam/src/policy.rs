//! `aws.iam_policy`: a customer-managed IAM policy.
//!
//! IAM assigns the ARN (the id). A new document is a new policy version,
//! made the default (CreatePolicyVersion with SetAsDefault); IAM keeps at
//! most 5 versions, so when 5 exist the oldest non-default one is deleted
//! first. The name, path and description cannot change: a change replaces
//! the policy. The listing is ListPolicies with `Scope=Local` (AWS's own
//! managed policies are not rows), then per policy the default version's
//! document and the tags, concurrently.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_iam::types::{Policy as AwsPolicy, PolicyScopeType};
use infrasql_aws::fields::{changed, present};
use infrasql_aws::policy_doc;
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
    table: "iam_policy",
    display: "IAM policy",
    doc: "A customer-managed IAM policy. A changed document becomes a new default version; when IAM's limit of 5 versions is reached, the oldest non-default version is deleted first. IAM is global: region is always 'global'. AWS-managed policies are not rows: attach them by ARN (aws.iam_role_policy_attachment.managed_policy_arn).",
    columns: &[
        Column::new(
            "policy_arn",
            Identity,
            "The policy's ARN; provisional until created",
        ),
        Column::new(
            "region",
            ReplaceOnChange,
            "Always 'global': IAM is not regional",
        ),
        Column::new(
            "policy_name",
            ReplaceOnChange,
            "The policy's name, unique in the account; a new name replaces the policy",
        ),
        Column::new(
            "path",
            ReplaceOnChange,
            "The policy's path ('/' by default); a new path replaces the policy",
        ),
        Column::new(
            "description",
            ReplaceOnChange,
            "What the policy is for (NULL: none); IAM cannot change it, so a change replaces the policy. Not observed by sync (ListPolicies leaves it out)",
        ),
        Column::new(
            "policy_document",
            Desired,
            "The default version's document, as JSON (compared by meaning); observed by sync (one GetPolicyVersion per policy)",
        ),
        Column::new(
            "tags",
            Desired,
            "Tags, as a JSON object; observed by sync (one ListPolicyTags per policy)",
        ),
        Column::new("policy_id", CloudAssigned, "IAM's id of the policy (ANPA...)"),
        Column::new(
            "default_version_id",
            CloudAssigned,
            "The version in effect (v1, v2, ...)",
        ),
        Column::new(
            "attachment_count",
            CloudAssigned,
            "How many roles, users and groups it is attached to",
        ),
        Column::new("create_date", CloudAssigned, "When the policy was created"),
        Column::new(
            "update_date",
            CloudAssigned,
            "When its default version last changed",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // Names are unique in the account: while the name stays, the old
    // policy must go before the new one can take it.
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["policy_name"],
        why: "policy names are unique in the account",
    },
    scope: Scope::Global,
    natural_key: &["policy_name"],
    stateful: None,
};

/// IAM's limit of versions per managed policy.
const MAX_VERSIONS: usize = 5;

pub struct Policy {
    clients: Arc<Clients>,
}

impl Policy {
    pub fn new(clients: Arc<Clients>) -> Self {
        Policy { clients }
    }
}

/// The row's columns from IAM's policy; the document and the tags are put
/// in by the caller.
fn props(p: &AwsPolicy) -> Props {
    let mut out = Props::new();
    out.insert("policy_arn".into(), json!(p.arn()));
    out.insert("region".into(), json!(GLOBAL_REGION));
    out.insert("policy_name".into(), json!(p.policy_name()));
    out.insert("path".into(), json!(p.path()));
    out.insert("description".into(), present(p.description()));
    out.insert("policy_id".into(), json!(p.policy_id()));
    out.insert("default_version_id".into(), json!(p.default_version_id()));
    out.insert(
        "attachment_count".into(),
        p.attachment_count().map_or(Value::Null, |n| json!(n)),
    );
    out.insert("create_date".into(), date(p.create_date()));
    out.insert("update_date".into(), date(p.update_date()));
    out
}

/// Every customer-managed policy in the account, all pages.
pub(crate) async fn local_policies(clients: &Clients) -> Result<Vec<AwsPolicy>, ProviderError> {
    let c = iam(clients).await;
    all_pages(
        c.list_policies()
            .scope(PolicyScopeType::Local)
            .into_paginator()
            .items()
            .send(),
    )
    .await
}

/// The document of one version, canonical.
async fn document(clients: &Clients, arn: &str, version: &str) -> Result<Value, ProviderError> {
    let c = iam(clients).await;
    let v = c
        .get_policy_version()
        .policy_arn(arn)
        .version_id(version)
        .send()
        .await
        .map_err(classify)?;
    doc(v.policy_version().and_then(|v| v.document()))
}

/// The policy as a row: `p` plus the row's own document and tags (what
/// was just sent), so create and update need not read them back.
fn with_row(mut p: Props, row: &Props) -> Props {
    p.insert(
        "policy_document".into(),
        row.get("policy_document")
            .map_or(Value::Null, policy_doc::canonical),
    );
    let pairs: Vec<(String, String)> = tags::desired(row, NameTag::None).into_iter().collect();
    tags::put_tags(
        &mut p,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        NameTag::None,
    );
    p
}

/// Make room for a new version: at IAM's limit, delete the oldest version
/// that is not the default (versions are numbered in order: v1, v2, ...).
async fn prune(c: &aws_sdk_iam::Client, arn: &str) -> Result<(), ProviderError> {
    let versions = all_pages(
        c.list_policy_versions()
            .policy_arn(arn)
            .into_paginator()
            .items()
            .send(),
    )
    .await?;
    if versions.len() < MAX_VERSIONS {
        return Ok(());
    }
    let number = |id: &str| {
        id.trim_start_matches('v')
            .parse::<u64>()
            .unwrap_or(u64::MAX)
    };
    let oldest = versions
        .iter()
        .filter(|v| !v.is_default_version())
        .filter_map(|v| v.version_id())
        .min_by_key(|id| number(id));
    if let Some(id) = oldest {
        deleted(
            c.delete_policy_version()
                .policy_arn(arn)
                .version_id(id)
                .send()
                .await,
        )?;
    }
    Ok(())
}

#[async_trait]
impl Resource for Policy {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// ListPolicies (Scope=Local) pages, then GetPolicyVersion of the
    /// default version and ListPolicyTags per policy, concurrently.
    async fn list(&self, _region: &str) -> Result<Listed, ProviderError> {
        let policies = local_policies(&self.clients).await?;
        each(policies, |p| async move {
            let arn = p.arn().unwrap_or_default();
            let document = match p.default_version_id() {
                Some(v) => document(&self.clients, arn, v).await?,
                None => Value::Null,
            };
            let c = iam(&self.clients).await;
            let tags = all_pages(
                c.list_policy_tags()
                    .policy_arn(arn)
                    .into_paginator()
                    .items()
                    .send(),
            )
            .await?;
            let mut out = props(&p);
            // ListPolicies leaves the description out (only GetPolicy has
            // it): unobserved, so neither drift nor overwritten.
            out.remove("description");
            out.insert("policy_document".into(), document);
            tags::put_tags(&mut out, tag_pairs(&tags), NameTag::None);
            Ok(out)
        })
        .await
        .map(Listed::from)
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let c = iam(&self.clients).await;
        let policy = c
            .create_policy()
            .policy_name(desired.req_str("policy_name")?)
            .path(desired.str("path").unwrap_or("/"))
            .set_description(desired.str("description").map(str::to_owned))
            .policy_document(doc_text(desired, "policy_document")?)
            .set_tags(Some(sdk_tags(tags::for_create(
                desired,
                ctx,
                NameTag::None,
            ))))
            .send()
            .await
            .map_err(classify)?
            .policy
            .ok_or_else(|| missing_id("CreatePolicy", "policy"))?;
        Ok(with_row(props(&policy), desired))
    }

    /// A new document is a new default version (the undo makes one more
    /// with the old document); tags with TagPolicy/UntagPolicy.
    async fn update(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let c = iam(&self.clients).await;
        if changed(before, after, &["policy_document"]) {
            prune(&c, id).await?;
            c.create_policy_version()
                .policy_arn(id)
                .policy_document(doc_text(after, "policy_document")?)
                .set_as_default(true)
                .send()
                .await
                .map_err(classify)?;
        }
        if changed(before, after, &tags::TAG_COLUMNS) {
            let (remove, set) = tags::changes(before, after, NameTag::None);
            if !remove.is_empty() {
                c.untag_policy()
                    .policy_arn(id)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(classify)?;
            }
            if !set.is_empty() {
                c.tag_policy()
                    .policy_arn(id)
                    .set_tags(Some(sdk_tags(set)))
                    .send()
                    .await
                    .map_err(classify)?;
            }
        }
        let policy = c
            .get_policy()
            .policy_arn(id)
            .send()
            .await
            .map_err(classify)?
            .policy
            .ok_or_else(|| missing_id("GetPolicy", "policy"))?;
        Ok(with_row(props(&policy), after))
    }

    /// DeletePolicy refuses a policy with versions besides the default:
    /// those go first. Attachments are rows the planner deletes before.
    async fn delete(
        &self,
        _ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let c = iam(&self.clients).await;
        let versions = match all_pages(
            c.list_policy_versions()
                .policy_arn(id)
                .into_paginator()
                .items()
                .send(),
        )
        .await
        {
            Ok(v) => v,
            Err(e) if e.class == infrasql_provider::ErrorClass::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for v in versions.iter().filter(|v| !v.is_default_version()) {
            if let Some(vid) = v.version_id() {
                deleted(
                    c.delete_policy_version()
                        .policy_arn(id)
                        .version_id(vid)
                        .send()
                        .await,
                )?;
            }
        }
        deleted(c.delete_policy().policy_arn(id).send().await)
    }
}
