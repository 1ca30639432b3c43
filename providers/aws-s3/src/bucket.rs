//! `aws.s3_bucket`: a bucket, its tags and its settings as columns.
//!
//! The name is the id, chosen by the user and unique across all of S3; AWS
//! cannot rename a bucket (the schema file refuses a changed name). Each
//! setting is an S3 sub-resource with its own Get/Put/Delete calls
//! (`settings`); a create makes the bucket, then writes each setting the
//! row sets, and deletes the bucket again if one of them fails.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::primitives::DateTimeFormat;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use infrasql_aws::sdk::{all_pages, classify, ignore_not_found};
use infrasql_aws::Clients;
use infrasql_provider::{
    ApplyContext, ErrorClass, Listed, Props, PropsExt, ProviderError, Resource, ResourceSchema,
};
use serde_json::json;

use crate::empty::empty;
use crate::schema::SCHEMA;
use crate::settings::{self, Group};

/// How many buckets' settings are read at once while listing (each task
/// still takes a concurrency permit per call).
const OBSERVE_AT_ONCE: usize = 8;

pub struct BucketType {
    clients: Arc<Clients>,
}

impl BucketType {
    pub fn new(clients: Arc<Clients>) -> Self {
        BucketType { clients }
    }

    async fn s3(&self, region: &str) -> infrasql_aws::Permitted<aws_sdk_s3::Client> {
        crate::client(&self.clients, region).await
    }

    /// One group of `bucket`'s settings, with a permit of its own.
    async fn read(&self, region: &str, bucket: &str, g: Group) -> Result<Props, ProviderError> {
        let s3 = self.s3(region).await;
        settings::read(&s3.client, bucket, g).await
    }

    /// Every setting of `bucket`, the Get calls concurrently.
    async fn read_all(
        &self,
        region: &str,
        bucket: &str,
        groups: &[Group],
    ) -> Result<Props, ProviderError> {
        let parts = futures_util::future::try_join_all(
            groups.iter().map(|g| self.read(region, bucket, *g)),
        )
        .await?;
        Ok(parts.into_iter().flatten().collect())
    }
}

fn arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// The identity columns, as ListBuckets and a create know them.
fn identity(bucket: &str, region: &str, created: Option<String>) -> Props {
    let mut p = Props::new();
    p.insert("bucket".into(), json!(bucket));
    p.insert("region".into(), json!(region));
    p.insert("arn".into(), json!(arn(bucket)));
    p.insert("creation_date".into(), json!(created));
    p
}

/// A bucket that is already there is the user's to see, not to take over.
fn taken(bucket: &str, code: &str, yours: bool) -> ProviderError {
    let whose = if yours {
        "this account already owns it (it may be a bucket of another region, or one infrasql has not imported yet)"
    } else {
        "bucket names are shared by every AWS account, and another one owns it"
    };
    ProviderError::new(
        ErrorClass::Conflict,
        code,
        format!("S3 bucket {bucket} already exists: {whose}"),
    )
    .with_hint(if yours {
        "Run SELECT infra.sync() to import it as a row, or choose another name."
    } else {
        "Choose another bucket name."
    })
}

fn not_empty(bucket: &str, e: ProviderError) -> ProviderError {
    ProviderError::new(
        ErrorClass::Conflict,
        "BucketNotEmpty",
        format!("S3 bucket {bucket} is not empty: AWS deletes only empty buckets ({})", e.message),
    )
    .with_hint(format!(
        "Empty the bucket, or first COMMIT UPDATE aws.s3_bucket SET force_destroy = true WHERE bucket = '{bucket}'; then the DELETE deletes every object version first."
    ))
}

#[async_trait]
impl Resource for BucketType {
    fn schema(&self) -> &'static ResourceSchema {
        &SCHEMA
    }

    /// The region's buckets (ListBuckets with BucketRegion, every
    /// ContinuationToken page), then per bucket its seven settings (one Get
    /// each), up to 8 buckets at once. A bucket deleted between the two is
    /// left out: it is gone.
    async fn list(&self, region: &str) -> Result<Listed, ProviderError> {
        let buckets = {
            let s3 = self.s3(region).await;
            all_pages(
                s3.list_buckets()
                    .bucket_region(region)
                    .into_paginator()
                    .items()
                    .send(),
            )
            .await?
        };
        let found: Vec<Option<Props>> = stream::iter(buckets)
            .map(|b| async move {
                let Some(name) = b.name() else {
                    return Ok(None);
                };
                let created = b
                    .creation_date()
                    .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok());
                match self.read_all(region, name, &Group::OBSERVED).await {
                    Ok(settings) => {
                        let mut p = identity(name, region, created);
                        p.extend(settings);
                        Ok(Some(p))
                    }
                    Err(e) if e.code == "NoSuchBucket" => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(OBSERVE_AT_ONCE)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn create(&self, ctx: &ApplyContext, desired: &Props) -> Result<Props, ProviderError> {
        let bucket = desired.req_str("bucket")?;
        let region = ctx.region.as_str();
        {
            let s3 = self.s3(region).await;
            let mut call = s3.create_bucket().bucket(bucket);
            if region == "us-east-1" {
                // us-east-1 answers 200 to CreateBucket of a bucket the
                // account already owns: look first, so an existing bucket
                // is never taken over (and later deleted by an undo).
                if s3.head_bucket().bucket(bucket).send().await.is_ok() {
                    return Err(taken(bucket, "BucketAlreadyOwnedByYou", true));
                }
            } else {
                call = call.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region))
                        .build(),
                );
            }
            match call.send().await.map_err(classify) {
                Ok(_) => {}
                Err(e) if e.code == "BucketAlreadyOwnedByYou" => {
                    return Err(taken(bucket, &e.code, true))
                }
                Err(e) if e.code == "BucketAlreadyExists" => {
                    return Err(taken(bucket, &e.code, false))
                }
                Err(e) => return Err(e),
            }
        }
        match self.configure(ctx, bucket, desired).await {
            Ok(settings) => {
                let mut p = identity(bucket, region, None);
                p.remove("creation_date");
                p.extend(settings);
                Ok(p)
            }
            Err(e) => {
                // Nothing half-made: the bucket is new and empty.
                let s3 = self.s3(region).await;
                if let Err(undo) = ignore_not_found(
                    s3.delete_bucket()
                        .bucket(bucket)
                        .send()
                        .await
                        .map(drop)
                        .map_err(classify),
                ) {
                    tracing::warn!(bucket, error = %undo, "could not delete the bucket a failed create made");
                }
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
        let mut out = identity(id, &ctx.region, None);
        out.remove("creation_date");
        let mut written = Vec::new();
        for g in Group::ALL {
            if !infrasql_aws::fields::changed(before, after, g.columns()) {
                continue;
            }
            let s3 = self.s3(&ctx.region).await;
            match settings::write(&s3, id, g, after, None).await {
                Ok(p) => {
                    out.extend(p);
                    written.push(g);
                }
                Err(e) => {
                    // Put back what this update already changed, so a
                    // failed update leaves the bucket as it was.
                    for g in written.into_iter().rev() {
                        if let Err(undo) = settings::write(&s3, id, g, before, None).await {
                            tracing::warn!(bucket = id, error = %undo, "could not restore a setting after a failed update");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    async fn delete(
        &self,
        ctx: &ApplyContext,
        id: &str,
        current: &Props,
    ) -> Result<(), ProviderError> {
        let s3 = self.s3(&ctx.region).await;
        if current.bool("force_destroy") == Some(true) {
            match empty(&s3, id).await {
                Err(e) if e.code == "NoSuchBucket" => return Ok(()),
                r => r.map(drop)?,
            }
        }
        match s3
            .delete_bucket()
            .bucket(id)
            .send()
            .await
            .map(drop)
            .map_err(classify)
        {
            Err(e) if e.code == "BucketNotEmpty" => Err(not_empty(id, e)),
            r => ignore_not_found(r),
        }
    }
}

impl BucketType {
    /// Write each setting the row sets; read the others, which AWS may have
    /// set by default (new buckets get encryption and a public access
    /// block in AWS), so the row says what the bucket really has.
    async fn configure(
        &self,
        ctx: &ApplyContext,
        bucket: &str,
        desired: &Props,
    ) -> Result<Props, ProviderError> {
        let mut out = Props::new();
        let mut unset = Vec::new();
        for g in Group::ALL {
            if !g.is_set(desired) {
                if Group::OBSERVED.contains(&g) {
                    unset.push(g);
                }
                continue;
            }
            let s3 = self.s3(&ctx.region).await;
            out.extend(settings::write(&s3, bucket, g, desired, Some(ctx)).await?);
        }
        out.extend(self.read_all(&ctx.region, bucket, &unset).await?);
        Ok(out)
    }
}
