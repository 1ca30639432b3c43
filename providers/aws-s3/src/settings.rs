//! A bucket's settings, one group of columns per S3 sub-resource: how each
//! is read (one Get call, "not configured" read as NULL) and written (one
//! Put, or one Delete when the row sets it to NULL).
//!
//! What a write returns is the group as the next listing will read it
//! (booleans NULL taken as false, the policy in canonical form, the
//! lifecycle rules through the SDK's types), so the row written back after
//! COMMIT and the next sync agree without a second call.

use aws_sdk_s3::Client;
use infrasql_aws::sdk::classify;
use infrasql_aws::{policy_doc, tags};
use infrasql_provider::{Props, ProviderError};
use serde_json::{json, Value};

use crate::lifecycle;

mod write;

pub use write::write;

/// One S3 sub-resource of a bucket and the columns it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Tags,
    Ownership,
    PublicAccess,
    Encryption,
    Versioning,
    Lifecycle,
    Policy,
}

impl Group {
    /// In the order a create writes them: ownership and the public access
    /// block before the policy, which the block may forbid.
    pub const ALL: [Group; 7] = [
        Group::Tags,
        Group::Ownership,
        Group::PublicAccess,
        Group::Encryption,
        Group::Versioning,
        Group::Lifecycle,
        Group::Policy,
    ];

    /// The groups a listing reads, one Get call each per bucket. Not
    /// versioning: moto 5.2.1 answers GetBucketVersioning with a root
    /// element (`GetBucketVersioningResponse`) the SDK refuses to read, so
    /// a listing that asked would fail against the playground; versioning
    /// is written, and its drift goes unseen (docs/resources.md says so).
    pub const OBSERVED: [Group; 6] = [
        Group::Tags,
        Group::Ownership,
        Group::PublicAccess,
        Group::Encryption,
        Group::Lifecycle,
        Group::Policy,
    ];

    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Group::Tags => &tags::TAG_COLUMNS,
            Group::Ownership => &["object_ownership"],
            Group::PublicAccess => &PUBLIC_ACCESS,
            Group::Encryption => &["sse_algorithm", "kms_master_key_id", "bucket_key_enabled"],
            Group::Versioning => &["versioning"],
            Group::Lifecycle => &["lifecycle_rules"],
            Group::Policy => &["policy"],
        }
    }

    /// Whether a row asks for this setting at all (a create skips the rest).
    pub fn is_set(self, p: &Props) -> bool {
        self == Group::Tags
            || self
                .columns()
                .iter()
                .any(|c| !matches!(p.get(*c), None | Some(Value::Null)))
    }
}

const PUBLIC_ACCESS: [&str; 4] = [
    "block_public_acls",
    "ignore_public_acls",
    "block_public_policy",
    "restrict_public_buckets",
];

/// The answer of a Get call, with AWS's "not configured" code as `None`.
fn configured<T, E, R>(
    sent: Result<T, aws_sdk_s3::error::SdkError<E, R>>,
    absent: &str,
) -> Result<Option<T>, ProviderError>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match sent.map_err(classify) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == absent => Ok(None),
        Err(e) => Err(e),
    }
}

fn nulls(cols: &[&str]) -> Props {
    cols.iter().map(|c| (c.to_string(), Value::Null)).collect()
}

/// The group's columns as AWS reports them: one Get call.
pub async fn read(s3: &Client, bucket: &str, group: Group) -> Result<Props, ProviderError> {
    let mut p = Props::new();
    match group {
        Group::Tags => {
            let out = configured(
                s3.get_bucket_tagging().bucket(bucket).send().await,
                "NoSuchTagSet",
            )?;
            let set = out.map(|o| o.tag_set().to_vec()).unwrap_or_default();
            tags::put_tags(
                &mut p,
                set.iter().map(|t| (t.key(), t.value())),
                tags::NameTag::None,
            );
        }
        Group::Ownership => {
            let out = configured(
                s3.get_bucket_ownership_controls()
                    .bucket(bucket)
                    .send()
                    .await,
                "OwnershipControlsNotFoundError",
            )?;
            let o = out
                .as_ref()
                .and_then(|o| o.ownership_controls())
                .and_then(|c| c.rules().first());
            p.insert(
                "object_ownership".into(),
                json!(o.map(|r| r.object_ownership().as_str())),
            );
        }
        Group::PublicAccess => {
            let out = configured(
                s3.get_public_access_block().bucket(bucket).send().await,
                "NoSuchPublicAccessBlockConfiguration",
            )?;
            p = nulls(&PUBLIC_ACCESS);
            if let Some(c) = out
                .as_ref()
                .and_then(|o| o.public_access_block_configuration())
            {
                let v = [
                    c.block_public_acls(),
                    c.ignore_public_acls(),
                    c.block_public_policy(),
                    c.restrict_public_buckets(),
                ];
                for (col, v) in PUBLIC_ACCESS.iter().zip(v) {
                    p.insert((*col).into(), json!(v.unwrap_or(false)));
                }
            }
        }
        Group::Encryption => {
            let out = configured(
                s3.get_bucket_encryption().bucket(bucket).send().await,
                "ServerSideEncryptionConfigurationNotFoundError",
            )?;
            p = nulls(Group::Encryption.columns());
            let rule = out
                .as_ref()
                .and_then(|o| o.server_side_encryption_configuration())
                .and_then(|c| c.rules().first());
            if let Some(d) = rule.and_then(|r| r.apply_server_side_encryption_by_default()) {
                p.insert("sse_algorithm".into(), json!(d.sse_algorithm().as_str()));
                p.insert("kms_master_key_id".into(), json!(d.kms_master_key_id()));
                let key = rule.and_then(|r| r.bucket_key_enabled()).unwrap_or(false);
                p.insert("bucket_key_enabled".into(), json!(key));
            }
        }
        Group::Versioning => {
            let out = s3
                .get_bucket_versioning()
                .bucket(bucket)
                .send()
                .await
                .map_err(classify)?;
            p.insert("versioning".into(), json!(out.status().map(|s| s.as_str())));
        }
        Group::Lifecycle => {
            let out = configured(
                s3.get_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .send()
                    .await,
                "NoSuchLifecycleConfiguration",
            )?;
            let v = out
                .map(|o| lifecycle::from_sdk(o.rules()))
                .unwrap_or(Value::Null);
            p.insert("lifecycle_rules".into(), v);
        }
        Group::Policy => {
            let out = configured(
                s3.get_bucket_policy().bucket(bucket).send().await,
                "NoSuchBucketPolicy",
            )?;
            let v = match out.as_ref().and_then(|o| o.policy()) {
                Some(text) => policy_doc::parse(text)?,
                None => Value::Null,
            };
            p.insert("policy".into(), v);
        }
    }
    Ok(p)
}
