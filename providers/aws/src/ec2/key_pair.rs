//! `aws.key_pair`: an SSH key pair, imported from the user's public key.
//!
//! infrasql never creates private keys (it would have to store one): a row
//! names a key and carries the OpenSSH public key, and COMMIT imports it.
//! Only the tags change in place. Key pairs have no Name tag column: the key
//! name is their name, so a `Name` tag, if any, stays in `tags`.
//!
//! The public key is kept as `<type> <base64>`: AWS replaces the comment
//! after the key with the key's name when it reports it, so the comment is
//! dropped at import to keep the row and the cloud equal.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::primitives::{Blob, DateTimeFormat};
use aws_sdk_ec2::types::{Filter, KeyPairInfo, ResourceType, Tag};
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema,
};
use serde_json::{json, Value};

use super::{changed, opt_str, split_tags, tag_spec, update_tags};
use crate::sdk::{classify, deleted, described, if_found, missing_id, not_found};
use crate::Clients;

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "key_pair",
    display: "key pair",
    doc: "An SSH key pair for EC2 instances, imported from a public key.",
    columns: &[
        Column::new(
            "key_pair_id",
            Identity,
            "Key pair id (key-...); provisional until imported",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new(
            "key_name",
            ReplaceOnChange,
            "The key's name, unique in the region",
        ),
        Column::new(
            "public_key_material",
            ReplaceOnChange,
            "OpenSSH public key (ssh-ed25519 AAAA...); kept without its comment",
        ),
        Column::new("tags", Desired, "Tags, as a JSON object"),
        Column::new(
            "key_fingerprint",
            CloudAssigned,
            "Fingerprint as AWS computes it (MD5 of the DER key for RSA, SHA-256 for ED25519)",
        ),
        Column::new("key_type", CloudAssigned, "rsa or ed25519"),
        Column::new("create_time", CloudAssigned, "When the key was imported"),
        infrasql_provider::SYNCED_AT,
    ],
    // key_name is unique in the region: a new public key under the same name
    // deletes the old key pair first. AWS keeps no data with it; running
    // instances keep the key they were launched with.
    replace_order: ReplaceOrder::DeleteFirst {
        unique_key: &["region", "key_name"],
        why: "a key name is unique in its region",
    },
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["key_name"],
    stateful: None,
};

pub struct KeyPair {
    clients: Arc<Clients>,
}

impl KeyPair {
    pub fn new(clients: Arc<Clients>) -> Self {
        KeyPair { clients }
    }
}

/// `<type> <base64>` of an OpenSSH public key line, dropping the comment.
/// Other formats (RFC 4716) are kept as given, trimmed.
pub(crate) fn canonical_public_key(material: &str) -> String {
    let material = material.trim();
    if material.starts_with("----") {
        return material.to_owned();
    }
    material
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Tags without infrasql's own; a `Name` tag stays a tag here.
fn user_tags(tags: &[Tag]) -> Value {
    let (name, rest) = split_tags(tags);
    let mut rest = match rest {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    if let Some(name) = name {
        rest.insert("Name".into(), Value::String(name));
    }
    Value::Object(rest)
}

fn props(k: &KeyPairInfo, region: &str) -> Props {
    let mut p = Props::new();
    p.insert("key_pair_id".into(), opt_str(k.key_pair_id()));
    p.insert("region".into(), json!(region));
    p.insert("key_name".into(), opt_str(k.key_name()));
    // Left out when not reported, so that it is not taken for drift.
    if let Some(public) = k.public_key() {
        p.insert(
            "public_key_material".into(),
            json!(canonical_public_key(public)),
        );
    }
    p.insert("key_fingerprint".into(), opt_str(k.key_fingerprint()));
    p.insert("key_type".into(), opt_str(k.key_type().map(|t| t.as_str())));
    p.insert(
        "create_time".into(),
        k.create_time()
            .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    p.insert("tags".into(), user_tags(k.tags()));
    crate::tags::put_stack(
        &mut p,
        k.tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))),
    );
    p
}

impl KeyPair {
    /// Looks the key up by id with a filter: unlike `KeyPairIds`, a filter
    /// answers an empty list rather than an error for a missing key, and
    /// moto honours it.
    async fn describe(&self, region: &str, id: &str) -> Result<KeyPairInfo, ProviderError> {
        let ec2 = self.clients.ec2(region).await;
        described(
            ec2.describe_key_pairs()
                .filters(Filter::builder().name("key-pair-id").values(id).build())
                .include_public_key(true)
                .send()
                .await,
            |out| {
                out.key_pairs()
                    .iter()
                    .find(|k| k.key_pair_id() == Some(id))
                    .cloned()
            },
            || not_found(&SCHEMA, "InvalidKeyPair.NotFound", id),
        )
    }

    /// Observed props, with the desired public key where AWS did not report it.
    fn observed(k: &KeyPairInfo, region: &str, desired: &Props) -> Props {
        let mut p = props(k, region);
        if !p.contains_key("public_key_material") {
            p.insert(
                "public_key_material".into(),
                desired
                    .str("public_key_material")
                    .map(|s| json!(canonical_public_key(s)))
                    .unwrap_or(Value::Null),
            );
        }
        p
    }
}

#[async_trait]
impl Resource for KeyPair {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        // DescribeKeyPairs does not page: it answers with every key pair.
        let ec2 = self.clients.ec2(region).await;
        let out = ec2
            .describe_key_pairs()
            .include_public_key(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.key_pairs().iter().map(|k| props(k, region)).collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let name = desired.req_str("key_name")?;
        let material = canonical_public_key(desired.req_str("public_key_material")?);
        let imported = {
            let ec2 = self.clients.ec2(&ctx.region).await;
            ec2.import_key_pair()
                .key_name(name)
                .public_key_material(Blob::new(material.into_bytes()))
                .tag_specifications(tag_spec(ResourceType::KeyPair, desired, ctx))
                .send()
                .await
                .map_err(classify)?
        };
        let id = imported
            .key_pair_id()
            .ok_or_else(|| missing_id("ImportKeyPair", "key pair id"))?;
        match self.describe(&ctx.region, id).await {
            Ok(k) => Ok(Self::observed(&k, &ctx.region, desired)),
            Err(e) => {
                // Leave nothing half-made behind: the engine only undoes
                // creates that succeeded.
                let ec2 = self.clients.ec2(&ctx.region).await;
                let _ = ec2.delete_key_pair().key_name(name).send().await;
                Err(e)
            }
        }
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        if changed(before, after, &crate::tags::TAG_COLUMNS) {
            let ec2 = self.clients.ec2(&ctx.region).await;
            update_tags(&ec2, id, before, after).await?;
        }
        let k = self.describe(&ctx.region, id).await?;
        Ok(Self::observed(&k, &ctx.region, after))
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        // Delete by the name AWS reports for this id: DeleteKeyPair takes a
        // name or an id, but moto honours only the name, and the name alone
        // could hit another key imported under it since.
        let Some(key) = if_found(self.describe(&ctx.region, id).await)? else {
            return Ok(());
        };
        let Some(name) = key.key_name() else {
            return Ok(());
        };
        let ec2 = self.clients.ec2(&ctx.region).await;
        deleted(ec2.delete_key_pair().key_name(name).send().await)
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_public_key;

    #[test]
    fn the_public_key_is_kept_without_its_comment() {
        assert_eq!(
            canonical_public_key("ssh-ed25519 AAAAC3Nz dev@laptop\n"),
            "ssh-ed25519 AAAAC3Nz"
        );
        assert_eq!(
            canonical_public_key("  ssh-rsa AAAAB3Nz  "),
            "ssh-rsa AAAAB3Nz"
        );
        let rfc4716 = "---- BEGIN SSH2 PUBLIC KEY ----\nAAAAB3Nz\n---- END SSH2 PUBLIC KEY ----";
        assert_eq!(canonical_public_key(&format!("{rfc4716}\n")), rfc4716);
    }
}
