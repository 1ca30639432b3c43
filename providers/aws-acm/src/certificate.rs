//! `aws.acm_certificate`: a public TLS certificate requested from ACM.
//!
//! Everything that defines a certificate (domain, alternative names,
//! validation method, key algorithm) is fixed at the request: a change
//! requests a new certificate. Only tags change in place.
//!
//! A new DNS-validated certificate is PENDING_VALIDATION until the records
//! in `domain_validation_records` exist in DNS; that is a normal state the
//! user resolves with `aws.route53_record` rows, so `ready()` keeps its
//! default (ready once requested) and a commit never waits for validation.
//!
//! RequestCertificate takes an idempotency token: it is derived from the
//! apply id and the row's defining fields, so a retried create within one
//! apply gets the same certificate back instead of a second one.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_acm::primitives::DateTimeFormat;
use aws_sdk_acm::types::{CertificateDetail, Filters, KeyAlgorithm, Tag, ValidationMethod};
use infrasql_aws::fields::{changed, opt_str};
use infrasql_aws::sdk::{all_pages, classify, deleted, described, missing_id, not_found};
use infrasql_aws::tags::{self, NameTag, TAG_COLUMNS};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, Column, ColumnKind::*, Listed, Props, PropsExt, ProviderError, ReplaceOrder,
    Resource, ResourceSchema,
};
use serde_json::{json, Value};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "acm_certificate",
    display: "ACM certificate",
    doc: "A public TLS certificate from AWS Certificate Manager. A new DNS-validated certificate stays PENDING_VALIDATION until the records in domain_validation_records exist (add them as aws.route53_record rows); the commit does not wait for validation. Only tags change in place; every other setting requests a new certificate.",
    columns: &[
        Column::new(
            "certificate_arn",
            Identity,
            "The certificate's ARN; provisional until requested",
        ),
        Column::new("region", ReplaceOnChange, "AWS region"),
        Column::new(
            "domain_name",
            ReplaceOnChange,
            "The fully qualified domain name the certificate is for (may start with *.)",
        ),
        Column::new(
            "subject_alternative_names",
            ReplaceOnChange,
            "Further names, as a JSON list of strings; AWS always includes domain_name itself, and so does the row once synced",
        ),
        Column::new(
            "validation_method",
            ReplaceOnChange,
            "DNS (the default) or EMAIL",
        ),
        Column::new(
            "key_algorithm",
            ReplaceOnChange,
            "RSA_2048 (the default), RSA_3072, RSA_4096, EC_prime256v1, EC_secp384r1 or EC_secp521r1",
        ),
        Column::new(
            "tags",
            Desired,
            "Tags, as a JSON object (observed by sync: one ListTagsForCertificate per certificate)",
        ),
        Column::new(
            "status",
            CloudAssigned,
            "PENDING_VALIDATION, ISSUED, INACTIVE, EXPIRED, VALIDATION_TIMED_OUT, REVOKED or FAILED",
        ),
        Column::new(
            "domain_validation_records",
            CloudAssigned,
            "The DNS records that validate it: a JSON list of {\"domain_name\", \"name\", \"type\", \"value\"}",
        ),
        Column::new("not_before", CloudAssigned, "Start of its validity"),
        Column::new("not_after", CloudAssigned, "End of its validity"),
        Column::new(
            "type",
            CloudAssigned,
            "AMAZON_ISSUED, IMPORTED or PRIVATE",
        ),
        Column::new(
            "in_use_by",
            CloudAssigned,
            "ARNs of the AWS resources using it (load balancers...), as a JSON list",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // AWS assigns a new ARN to every request: nothing collides.
    replace_order: ReplaceOrder::CreateFirst,
    scope: infrasql_provider::Scope::Regional,
    natural_key: &["domain_name"],
    stateful: None,
};

pub struct Certificate {
    clients: Arc<Clients>,
}

impl Certificate {
    pub fn new(clients: Arc<Clients>) -> Self {
        Certificate { clients }
    }
}

fn time(t: Option<&aws_sdk_acm::primitives::DateTime>) -> Value {
    t.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
        .map_or(Value::Null, Value::String)
}

/// The row's columns from DescribeCertificate; tags come from their own call.
fn props(c: &CertificateDetail, region: &str) -> Props {
    let records: Vec<Value> = c
        .domain_validation_options()
        .iter()
        .filter_map(|o| {
            o.resource_record().map(|r| {
                json!({
                    "domain_name": o.domain_name(),
                    "name": r.name(),
                    "type": r.r#type().as_str(),
                    "value": r.value(),
                })
            })
        })
        .collect();
    let mut p = Props::new();
    p.insert("certificate_arn".into(), opt_str(c.certificate_arn()));
    p.insert("region".into(), json!(region));
    p.insert("domain_name".into(), opt_str(c.domain_name()));
    p.insert(
        "subject_alternative_names".into(),
        json!(c.subject_alternative_names()),
    );
    // An imported certificate names no validation method.
    let method = c
        .domain_validation_options()
        .first()
        .and_then(|o| o.validation_method())
        .map(|m| m.as_str());
    p.insert("validation_method".into(), opt_str(method));
    // DescribeCertificate spells it RSA-2048 where RequestCertificate
    // takes RSA_2048: the row keeps the request's spelling.
    p.insert(
        "key_algorithm".into(),
        opt_str(
            c.key_algorithm()
                .map(|k| k.as_str().replacen('-', "_", 1))
                .as_deref(),
        ),
    );
    p.insert("status".into(), opt_str(c.status().map(|s| s.as_str())));
    p.insert("domain_validation_records".into(), Value::Array(records));
    p.insert("not_before".into(), time(c.not_before()));
    p.insert("not_after".into(), time(c.not_after()));
    p.insert("type".into(), opt_str(c.r#type().map(|t| t.as_str())));
    p.insert("in_use_by".into(), json!(c.in_use_by()));
    p
}

async fn describe(
    acm: &aws_sdk_acm::Client,
    arn: &str,
) -> Result<CertificateDetail, ProviderError> {
    described(
        acm.describe_certificate().certificate_arn(arn).send().await,
        |out| out.certificate().cloned(),
        || not_found(&SCHEMA, "ResourceNotFoundException", arn),
    )
}

/// The certificate `arn` as a row: DescribeCertificate and
/// ListTagsForCertificate, concurrently.
async fn observe(
    acm: &aws_sdk_acm::Client,
    arn: &str,
    region: &str,
) -> Result<Props, ProviderError> {
    let (detail, tagged) = futures_util::join!(
        describe(acm, arn),
        acm.list_tags_for_certificate().certificate_arn(arn).send()
    );
    let mut p = props(&detail?, region);
    let tagged = tagged.map_err(classify)?;
    tags::put_tags(
        &mut p,
        tagged
            .tags()
            .iter()
            .map(|t| (t.key(), t.value().unwrap_or(""))),
        NameTag::None,
    );
    Ok(p)
}

fn sdk_tag(k: &str, v: Option<&str>) -> Tag {
    Tag::builder()
        .key(k)
        .set_value(v.map(str::to_owned))
        .build()
        .expect("a tag has a key")
}

/// The strings of a JSON list column.
fn strings(p: &Props, key: &str) -> Vec<String> {
    p.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// RequestCertificate's idempotency token (at most 32 word characters):
/// the same apply asking for the same certificate gets the same token.
fn idempotency_token(ctx: &ApplyContext, desired: &Props) -> String {
    let key = format!(
        "{}|{}|{:?}|{}|{}",
        ctx.apply_id,
        desired.str("domain_name").unwrap_or(""),
        strings(desired, "subject_alternative_names"),
        desired.str("validation_method").unwrap_or(""),
        desired.str("key_algorithm").unwrap_or(""),
    );
    format!("{:016x}{:016x}", fnv(&key, 0), fnv(&key, 1))
}

/// FNV-1a, seeded: stable across processes and Rust versions (unlike
/// std's hasher), which an idempotency token needs.
fn fnv(s: &str, seed: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(seed).chain(s.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[async_trait]
impl Resource for Certificate {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// Every certificate, all pages (ListCertificates by NextToken, every
    /// key type: by default AWS lists only RSA ones), each described and
    /// its tags read, eight certificates at a time.
    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let acm = self.clients_acm(region).await;
        let key_types = vec![
            KeyAlgorithm::Rsa1024,
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Rsa3072,
            KeyAlgorithm::Rsa4096,
            KeyAlgorithm::from("EC_prime256v1"),
            KeyAlgorithm::from("EC_secp384r1"),
            KeyAlgorithm::from("EC_secp521r1"),
        ];
        let summaries = all_pages(
            acm.list_certificates()
                .includes(Filters::builder().set_key_types(Some(key_types)).build())
                .into_paginator()
                .items()
                .send(),
        )
        .await?;
        let arns: Vec<String> = summaries
            .iter()
            .filter_map(|s| s.certificate_arn().map(str::to_owned))
            .collect();
        let acm = &acm;
        stream::iter(arns)
            .map(|arn| async move { infrasql_aws::sdk::if_found(observe(acm, &arn, region).await) })
            .buffer_unordered(8)
            .try_filter_map(|p| async move { Ok(p) })
            .try_collect()
            .await
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let domain = desired.req_str("domain_name")?;
        let sans = strings(desired, "subject_alternative_names");
        let method = desired.str("validation_method").unwrap_or("DNS");
        let algorithm = desired.str("key_algorithm").unwrap_or("RSA_2048");
        let tags: Vec<Tag> = tags::for_create(desired, ctx, NameTag::None)
            .iter()
            .map(|(k, v)| sdk_tag(k, Some(v)))
            .collect();
        let acm = self.clients_acm(&ctx.region).await;
        let arn = acm
            .request_certificate()
            .domain_name(domain)
            .set_subject_alternative_names((!sans.is_empty()).then_some(sans))
            .validation_method(ValidationMethod::from(method))
            .key_algorithm(KeyAlgorithm::from(algorithm))
            .idempotency_token(idempotency_token(ctx, desired))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(classify)?
            .certificate_arn()
            .ok_or_else(|| missing_id("RequestCertificate", "certificate ARN"))?
            .to_owned();
        // RequestCertificate answers with the ARN alone: the validation
        // records and dates need one describe. The tags are the ones sent.
        let mut p = props(&describe(&acm, &arn).await?, &ctx.region);
        tags::put_tags(
            &mut p,
            tags::for_create(desired, ctx, NameTag::None)
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            NameTag::None,
        );
        Ok(p)
    }

    async fn update(
        &self,
        ctx: &ApplyContext,
        id: &str,
        before: &Props,
        after: &Props,
    ) -> Result<Props, ProviderError> {
        let acm = self.clients_acm(&ctx.region).await;
        if changed(before, after, &TAG_COLUMNS) {
            let (removed, set) = tags::changes(before, after, NameTag::None);
            if !removed.is_empty() {
                acm.remove_tags_from_certificate()
                    .certificate_arn(id)
                    .set_tags(Some(removed.iter().map(|k| sdk_tag(k, None)).collect()))
                    .send()
                    .await
                    .map_err(classify)?;
            }
            if !set.is_empty() {
                acm.add_tags_to_certificate()
                    .certificate_arn(id)
                    .set_tags(Some(set.iter().map(|(k, v)| sdk_tag(k, Some(v))).collect()))
                    .send()
                    .await
                    .map_err(classify)?;
            }
        }
        observe(&acm, id, &ctx.region).await
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        _current: &Props,
    ) -> Result<(), ProviderError> {
        let acm = self.clients_acm(&ctx.region).await;
        deleted(acm.delete_certificate().certificate_arn(id).send().await)
    }
}

impl Certificate {
    async fn clients_acm(&self, region: &str) -> infrasql_aws::Permitted<aws_sdk_acm::Client> {
        crate::client(&self.clients, region).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_stable_short_and_differs_per_apply() {
        let p =
            json!({"domain_name": "a.example.com", "subject_alternative_names": ["b.example.com"]})
                .as_object()
                .unwrap()
                .clone();
        let ctx = |id: &str| ApplyContext {
            region: "us-east-1".into(),
            apply_id: id.into(),
        };
        let t = idempotency_token(&ctx("1"), &p);
        assert_eq!(t.len(), 32);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(t, idempotency_token(&ctx("1"), &p));
        assert_ne!(t, idempotency_token(&ctx("2"), &p));
    }
}
