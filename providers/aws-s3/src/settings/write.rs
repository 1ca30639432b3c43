//! Writing a bucket's settings: one Put per group, or one Delete when the
//! row sets the group to NULL; what is returned is the group as the next
//! listing will read it.

use aws_sdk_s3::types::{
    BucketVersioningStatus, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
    VersioningConfiguration,
};
use aws_sdk_s3::Client;
use infrasql_aws::sdk::classify;
use infrasql_aws::{policy_doc, tags};
use infrasql_provider::{ApplyContext, Props, PropsExt, ProviderError, STACK_TAG};
use serde_json::{json, Value};

use super::{configured, nulls, Group, PUBLIC_ACCESS};
use crate::lifecycle;

/// Make the group what `after` asks for. `ctx` is given for a create (its
/// tags carry the apply id); an update keeps the infrasql tags the bucket
/// has, since PutBucketTagging replaces the whole set.
pub async fn write(
    s3: &Client,
    bucket: &str,
    group: Group,
    after: &Props,
    create: Option<&ApplyContext>,
) -> Result<Props, ProviderError> {
    let mut p = Props::new();
    match group {
        Group::Tags => {
            let set: Vec<(String, String)> = match create {
                Some(ctx) => tags::for_create(after, ctx, tags::NameTag::None),
                None => kept_tags(s3, bucket)
                    .await?
                    .into_iter()
                    .chain(tags::desired(after, tags::NameTag::None))
                    .collect(),
            };
            if set.is_empty() {
                infrasql_aws::sdk::deleted(s3.delete_bucket_tagging().bucket(bucket).send().await)?;
            } else {
                let tag_set = set
                    .iter()
                    .map(|(k, v)| {
                        Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                            .map_err(|e| ProviderError::invalid(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let tagging = Tagging::builder()
                    .set_tag_set(Some(tag_set))
                    .build()
                    .map_err(|e| ProviderError::invalid(e.to_string()))?;
                s3.put_bucket_tagging()
                    .bucket(bucket)
                    .tagging(tagging)
                    .send()
                    .await
                    .map_err(classify)?;
            }
            tags::put_tags(
                &mut p,
                set.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                tags::NameTag::None,
            );
        }
        Group::Ownership => match after.str("object_ownership") {
            Some(o) => {
                let rule = OwnershipControlsRule::builder()
                    .object_ownership(ObjectOwnership::from(o))
                    .build()
                    .map_err(|e| ProviderError::invalid(e.to_string()))?;
                let controls = OwnershipControls::builder()
                    .rules(rule)
                    .build()
                    .map_err(|e| ProviderError::invalid(e.to_string()))?;
                s3.put_bucket_ownership_controls()
                    .bucket(bucket)
                    .ownership_controls(controls)
                    .send()
                    .await
                    .map_err(classify)?;
                p.insert("object_ownership".into(), json!(o));
            }
            None => {
                infrasql_aws::sdk::deleted(
                    s3.delete_bucket_ownership_controls()
                        .bucket(bucket)
                        .send()
                        .await,
                )?;
                p.insert("object_ownership".into(), Value::Null);
            }
        },
        Group::PublicAccess => {
            if !Group::PublicAccess.is_set(after) {
                infrasql_aws::sdk::deleted(
                    s3.delete_public_access_block().bucket(bucket).send().await,
                )?;
                return Ok(nulls(&PUBLIC_ACCESS));
            }
            // Setting any sets all four: a NULL is off.
            let on = |c: &str| after.bool(c).unwrap_or(false);
            let config = PublicAccessBlockConfiguration::builder()
                .block_public_acls(on("block_public_acls"))
                .ignore_public_acls(on("ignore_public_acls"))
                .block_public_policy(on("block_public_policy"))
                .restrict_public_buckets(on("restrict_public_buckets"))
                .build();
            s3.put_public_access_block()
                .bucket(bucket)
                .public_access_block_configuration(config)
                .send()
                .await
                .map_err(classify)?;
            for c in PUBLIC_ACCESS {
                p.insert(c.into(), json!(on(c)));
            }
        }
        Group::Encryption => match after.str("sse_algorithm") {
            Some(alg) => {
                let key = after.bool("bucket_key_enabled").unwrap_or(false);
                let by_default = ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::from(alg))
                    .set_kms_master_key_id(after.str("kms_master_key_id").map(str::to_owned))
                    .build()
                    .map_err(|e| ProviderError::invalid(e.to_string()))?;
                let rule = ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(by_default)
                    .bucket_key_enabled(key)
                    .build();
                let config = ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()
                    .map_err(|e| ProviderError::invalid(e.to_string()))?;
                s3.put_bucket_encryption()
                    .bucket(bucket)
                    .server_side_encryption_configuration(config)
                    .send()
                    .await
                    .map_err(classify)?;
                p.insert("sse_algorithm".into(), json!(alg));
                p.insert(
                    "kms_master_key_id".into(),
                    json!(after.str("kms_master_key_id")),
                );
                p.insert("bucket_key_enabled".into(), json!(key));
            }
            None => {
                infrasql_aws::sdk::deleted(
                    s3.delete_bucket_encryption().bucket(bucket).send().await,
                )?;
                p = nulls(Group::Encryption.columns());
            }
        },
        Group::Versioning => {
            // Versioning once enabled cannot be switched off, only
            // suspended: NULL after Enabled (an undo) is Suspended.
            let status = after.str("versioning").unwrap_or("Suspended");
            let config = VersioningConfiguration::builder()
                .status(BucketVersioningStatus::from(status))
                .build();
            s3.put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(config)
                .send()
                .await
                .map_err(classify)?;
            p.insert("versioning".into(), json!(status));
        }
        Group::Lifecycle => match after.get("lifecycle_rules").filter(|v| !v.is_null()) {
            Some(rules) => {
                let rules = lifecycle::to_sdk(rules)?;
                let config = aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                    .set_rules(Some(rules.clone()))
                    .build()
                    .map_err(|e| ProviderError::invalid(e.to_string()))?;
                s3.put_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .lifecycle_configuration(config)
                    .send()
                    .await
                    .map_err(classify)?;
                p.insert("lifecycle_rules".into(), lifecycle::from_sdk(&rules));
            }
            None => {
                infrasql_aws::sdk::deleted(
                    s3.delete_bucket_lifecycle().bucket(bucket).send().await,
                )?;
                p.insert("lifecycle_rules".into(), Value::Null);
            }
        },
        Group::Policy => match after.get("policy").filter(|v| !v.is_null()) {
            Some(doc) => {
                s3.put_bucket_policy()
                    .bucket(bucket)
                    .policy(policy_doc::to_text(doc))
                    .send()
                    .await
                    .map_err(classify)?;
                p.insert("policy".into(), policy_doc::canonical(doc));
            }
            None => {
                infrasql_aws::sdk::deleted(s3.delete_bucket_policy().bucket(bucket).send().await)?;
                p.insert("policy".into(), Value::Null);
            }
        },
    }
    Ok(p)
}

/// infrasql's own tags on the bucket other than the stack (the apply id),
/// which an update's PutBucketTagging must not drop.
async fn kept_tags(s3: &Client, bucket: &str) -> Result<Vec<(String, String)>, ProviderError> {
    let out = configured(
        s3.get_bucket_tagging().bucket(bucket).send().await,
        "NoSuchTagSet",
    )?;
    Ok(out
        .map(|o| o.tag_set().to_vec())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key().starts_with("infrasql:") && t.key() != STACK_TAG)
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect())
}
