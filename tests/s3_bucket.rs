//! S3 buckets through a real client: INSERT, UPDATE and DELETE at COMMIT,
//! the non-empty bucket rule, and sync's drift and import. What AWS holds
//! is read from moto with a raw S3 client.

mod common;

use common::{one, sqlstate, Moto, TestServer};
use infrasql_aws_s3::aws_sdk_s3::error::ProvideErrorMetadata;
use infrasql_aws_s3::aws_sdk_s3::primitives::ByteStream;
use infrasql_aws_s3::aws_sdk_s3::types::PublicAccessBlockConfiguration;
use serde_json::json;

const BUCKET: &str = "
INSERT INTO aws.s3_bucket (bucket, tags, versioning, sse_algorithm, block_public_acls,
    ignore_public_acls, block_public_policy, restrict_public_buckets, object_ownership,
    lifecycle_rules, policy)
VALUES ('web-assets', '{\"team\": \"web\"}', 'Enabled', 'AES256', true, true, true, true,
    'BucketOwnerEnforced',
    '[{\"ID\": \"expire\", \"Status\": \"Enabled\", \"Filter\": {\"Prefix\": \"logs/\"}, \"Expiration\": {\"Days\": 30}}]',
    '{\"Version\": \"2012-10-17\", \"Statement\": {\"Effect\": \"Deny\", \"Principal\": \"*\",
      \"Action\": \"s3:DeleteBucket\", \"Resource\": \"arn:aws:s3:::web-assets\"}}');";

async fn policy_in_aws(moto: &Moto, bucket: &str) -> Option<serde_json::Value> {
    match moto
        .s3()
        .await
        .get_bucket_policy()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Some(serde_json::from_str(out.policy().unwrap()).unwrap()),
        Err(e) if e.code() == Some("NoSuchBucketPolicy") => None,
        Err(e) => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn a_bucket_is_created_with_its_settings_changed_in_place_and_deleted() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(BUCKET).await.unwrap();

    let s3 = moto.s3().await;
    assert_eq!(moto.s3_versioning("web-assets").as_deref(), Some("Enabled"));
    assert_eq!(
        policy_in_aws(&moto, "web-assets").await.unwrap()["Statement"]["Action"],
        json!("s3:DeleteBucket")
    );
    let arn: String = one(&c, "SELECT arn FROM aws.s3_bucket").await;
    assert_eq!(arn, "arn:aws:s3:::web-assets");
    // The row holds the policy as AWS will list it: no drift on the next sync.
    let summary: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    assert_eq!(summary["errors"], json!([]), "{summary}");
    let drift = "SELECT coalesce(string_agg(coalesce(field, kind), ', '), '') FROM infra.drift WHERE table_name = 'aws.s3_bucket'";
    assert_eq!(one::<String>(&c, drift).await, "");
    assert!(one::<bool>(&c, "SELECT creation_date IS NOT NULL FROM aws.s3_bucket").await);

    // In place: the policy goes, versioning is suspended, a public access
    // flag is turned off.
    c.batch_execute(
        "UPDATE aws.s3_bucket SET policy = NULL, versioning = 'Suspended', block_public_policy = false",
    )
    .await
    .unwrap();
    assert_eq!(policy_in_aws(&moto, "web-assets").await, None);
    assert_eq!(
        moto.s3_versioning("web-assets").as_deref(),
        Some("Suspended")
    );
    let pab = s3
        .get_public_access_block()
        .bucket("web-assets")
        .send()
        .await
        .unwrap();
    assert_eq!(
        pab.public_access_block_configuration()
            .unwrap()
            .block_public_policy(),
        Some(false)
    );

    // The name cannot change.
    let e = c
        .batch_execute("UPDATE aws.s3_bucket SET bucket = 'other'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("428C9"), "{e:?}");

    c.batch_execute("DELETE FROM aws.s3_bucket").await.unwrap();
    assert!(s3.head_bucket().bucket("web-assets").send().await.is_err());
}

#[tokio::test]
async fn a_non_empty_bucket_is_kept_until_force_destroy_is_set() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "INSERT INTO aws.s3_bucket (bucket, versioning) VALUES ('logs-bucket', 'Enabled')",
    )
    .await
    .unwrap();
    let s3 = moto.s3().await;
    for i in 0..2 {
        s3.put_object()
            .bucket("logs-bucket")
            .key("app.log")
            .body(ByteStream::from(format!("line {i}").into_bytes()))
            .send()
            .await
            .unwrap();
    }

    let e = c
        .batch_execute("DELETE FROM aws.s3_bucket")
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("a PostgreSQL error");
    assert_eq!(db.code().code(), "IX001");
    assert!(db.message().contains("logs-bucket"), "{}", db.message());
    assert!(db.message().contains("BucketNotEmpty"), "{}", db.message());
    assert!(
        db.hint().unwrap_or("").contains("force_destroy"),
        "{:?}",
        db.hint()
    );
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM aws.s3_bucket").await,
        1,
        "the row stays"
    );
    let versions = s3
        .list_object_versions()
        .bucket("logs-bucket")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 2, "nothing lost");

    c.batch_execute("UPDATE aws.s3_bucket SET force_destroy = true")
        .await
        .unwrap();
    c.batch_execute("DELETE FROM aws.s3_bucket").await.unwrap();
    assert!(
        s3.head_bucket().bucket("logs-bucket").send().await.is_err(),
        "gone"
    );
}

#[tokio::test]
async fn a_failing_setting_undoes_the_create_and_the_commit_is_refused() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let e = c
        .batch_execute(
            "INSERT INTO aws.s3_bucket (bucket, lifecycle_rules) VALUES ('half-made', \
             '[{\"Status\": \"Enabled\", \"Expiration\": {\"Date\": \"2030-01-01\"}}]')",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{e:?}");
    let buckets = moto.s3().await.list_buckets().send().await.unwrap();
    assert!(buckets.buckets().is_empty(), "{buckets:?}");
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM aws.s3_bucket").await,
        0
    );
}

#[tokio::test]
async fn changes_made_outside_show_as_drift_and_a_bucket_made_outside_is_imported() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(BUCKET).await.unwrap();
    let s3 = moto.s3().await;
    s3.delete_bucket_policy()
        .bucket("web-assets")
        .send()
        .await
        .unwrap();
    s3.put_public_access_block()
        .bucket("web-assets")
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(false)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.create_bucket()
        .bucket("made-outside")
        .send()
        .await
        .unwrap();

    let summary: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    assert_eq!(summary["errors"], json!([]), "{summary}");
    let drift = "SELECT string_agg(coalesce(field, kind) || '=' || coalesce(actual_value::text, 'null'), ', ' ORDER BY field) \
                 FROM infra.drift WHERE table_name = 'aws.s3_bucket' AND resource_id = 'web-assets'";
    assert_eq!(
        one::<String>(&c, drift).await,
        "block_public_acls=false, policy=null"
    );
    let imported: i64 = one(
        &c,
        "SELECT count(*) FROM aws.s3_bucket WHERE bucket = 'made-outside' AND policy IS NULL AND NOT force_destroy",
    )
    .await;
    assert_eq!(imported, 1);
}
