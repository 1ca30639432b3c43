-- aws.s3_bucket: see providers/aws-s3/src/schema.rs for column kinds. The
-- name is the id, chosen by the user and unique across all of S3 (UNIQUE
-- here too: references name the bucket alone). Its length is AWS's to
-- check beyond 3..255: sync must import old us-east-1 buckets, whose names
-- followed looser rules. AWS has no rename, so a changed name is refused
-- at the statement. The CHECKs refuse what AWS would refuse for certain.
CREATE TABLE aws.s3_bucket (
    bucket                  text NOT NULL UNIQUE CHECK (char_length(bucket) BETWEEN 3 AND 255),
    region                  text NOT NULL DEFAULT infra.default_region(),
    tags                    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(tags) = 'object'),
    versioning              text CHECK (versioning IN ('Enabled', 'Suspended')),
    sse_algorithm           text CHECK (sse_algorithm IN ('AES256', 'aws:kms', 'aws:kms:dsse')),
    kms_master_key_id       text CHECK (kms_master_key_id IS NULL OR sse_algorithm LIKE 'aws:kms%'),
    bucket_key_enabled      boolean,
    block_public_acls       boolean,
    ignore_public_acls      boolean,
    block_public_policy     boolean,
    restrict_public_buckets boolean,
    object_ownership        text CHECK (object_ownership IN
                                ('BucketOwnerEnforced', 'BucketOwnerPreferred', 'ObjectWriter')),
    lifecycle_rules         jsonb CHECK (lifecycle_rules IS NULL OR jsonb_typeof(lifecycle_rules) = 'array'),
    policy                  jsonb CHECK (policy IS NULL OR jsonb_typeof(policy) = 'object'),
    force_destroy           boolean NOT NULL DEFAULT false,
    arn                     text,
    creation_date           timestamptz,
    synced_at               timestamptz
);
SELECT infra.manage('aws.s3_bucket');
CREATE TRIGGER infrasql_fixed_name BEFORE UPDATE ON aws.s3_bucket
    FOR EACH ROW EXECUTE FUNCTION infra.refuse_rename('bucket', 'S3 bucket');
