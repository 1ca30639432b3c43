//! The description of `aws.s3_bucket` (`schema/0850_aws_s3_bucket.sql`):
//! the one source of its column kinds for the planner, sync and the docs.

use infrasql_provider::{Column, ColumnKind::*, ReplaceOrder, ResourceSchema, Scope};

pub static SCHEMA: ResourceSchema = ResourceSchema {
    schema: "aws",
    table: "s3_bucket",
    display: "S3 bucket",
    doc: "An S3 bucket with its settings as columns; a setting AWS reports as absent is NULL. Sync reads every setting of every bucket (seven Get calls per bucket, concurrently), so a change made outside infrasql shows as drift. The name cannot be changed (AWS has no rename). Deleting a bucket that holds objects is refused unless force_destroy is set.",
    columns: &[
        Column::new(
            "bucket",
            Name,
            "The bucket's name and id, chosen by you; unique across all of S3 (every account)",
        ),
        Column::new(
            "region",
            ReplaceOnChange,
            "AWS region. A bucket cannot move: a new region is a replace, which AWS refuses while the old bucket holds the name",
        ),
        Column::new(
            "tags",
            Desired,
            "Tags, as a JSON object (observed by sync: GetBucketTagging)",
        ),
        Column::new(
            "versioning",
            Desired,
            "'Enabled' or 'Suspended'; NULL when versioning was never enabled. Once enabled it can only be suspended: setting NULL again suspends it. Not observed by sync (moto 5.2.1 answers GetBucketVersioning in a shape the SDK cannot read): written at COMMIT, drift unseen",
        ),
        Column::new(
            "sse_algorithm",
            Desired,
            "Default encryption: 'AES256', 'aws:kms' or 'aws:kms:dsse'; NULL for none (observed by sync: GetBucketEncryption)",
        ),
        Column::new(
            "kms_master_key_id",
            Desired,
            "The KMS key of 'aws:kms' encryption; NULL for the AWS-managed key (observed by sync: GetBucketEncryption)",
        ),
        Column::new(
            "bucket_key_enabled",
            Desired,
            "Whether KMS encryption uses an S3 bucket key; NULL without default encryption, else NULL is false (observed by sync: GetBucketEncryption)",
        ),
        Column::new(
            "block_public_acls",
            Desired,
            "Public access block: refuse public ACLs. The four are NULL when the bucket has no public access block; setting any sets all four (NULL is false); all NULL deletes the block (observed by sync: GetPublicAccessBlock)",
        ),
        Column::new(
            "ignore_public_acls",
            Desired,
            "Public access block: ignore public ACLs (see block_public_acls; observed by sync)",
        ),
        Column::new(
            "block_public_policy",
            Desired,
            "Public access block: refuse a public bucket policy (see block_public_acls; observed by sync)",
        ),
        Column::new(
            "restrict_public_buckets",
            Desired,
            "Public access block: restrict access to a bucket with a public policy (see block_public_acls; observed by sync)",
        ),
        Column::new(
            "object_ownership",
            Desired,
            "'BucketOwnerEnforced', 'BucketOwnerPreferred' or 'ObjectWriter'; NULL without ownership controls (observed by sync: GetBucketOwnershipControls)",
        ),
        Column::new(
            "lifecycle_rules",
            Desired,
            "Lifecycle rules, a JSON list in AWS's own shape, e.g. [{\"ID\": \"expire\", \"Status\": \"Enabled\", \"Filter\": {\"Prefix\": \"logs/\"}, \"Expiration\": {\"Days\": 30}}] (days, not dates); NULL for none (observed by sync: GetBucketLifecycleConfiguration)",
        ),
        Column::new(
            "policy",
            Desired,
            "The bucket policy, a JSON document compared by meaning (key order, a scalar for a one-element list); NULL for none (observed by sync: GetBucketPolicy)",
        ),
        Column::new(
            "force_destroy",
            Desired,
            "Whether a DELETE first deletes every object version and delete marker in the bucket; without it a non-empty bucket's DELETE is refused. infrasql's own setting: never sent to AWS, never observed",
        ),
        Column::new("arn", CloudAssigned, "The bucket's ARN (arn:aws:s3:::name)"),
        Column::new(
            "creation_date",
            CloudAssigned,
            "When AWS created the bucket (from ListBuckets; filled by the first sync after a create)",
        ),
        infrasql_provider::SYNCED_AT,
    ],
    // Only the region forces a replace; the new bucket would need the old
    // one's name, which AWS refuses, and the old one holds the data.
    replace_order: ReplaceOrder::CreateFirst,
    scope: Scope::Regional,
    natural_key: &["bucket"],
    stateful: Some("the bucket's objects"),
};
