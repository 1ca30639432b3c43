//! S3 buckets against moto: what the provider makes is checked with a raw
//! SDK client on the same endpoint.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use infrasql_aws::{AwsSettings, Clients};
use infrasql_aws_s3::aws_sdk_s3;
use infrasql_aws_s3::bucket::BucketType;
use infrasql_provider::{ApplyContext, ErrorClass, Props, Resource, APPLY_TAG};
use serde_json::{json, Value};

async fn clients(moto: &infrasql_moto::Moto) -> Arc<Clients> {
    Arc::new(
        Clients::new(&AwsSettings {
            endpoint_url: Some(moto.url.clone()),
            static_credentials: Some(("testing".into(), "testing".into())),
            region: Some("us-east-1".into()),
            max_concurrency: None,
            limiter: Default::default(),
            timeouts: Default::default(),
        })
        .await,
    )
}

async fn raw(c: &Clients) -> aws_sdk_s3::Client {
    infrasql_aws_s3::client(c, "us-east-1").await.client.clone()
}

fn ctx() -> ApplyContext {
    ApplyContext {
        region: "us-east-1".into(),
        apply_id: "test-apply".into(),
    }
}

fn props(v: Value) -> Props {
    v.as_object().unwrap().clone()
}

fn policy(bucket: &str, action: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "read", "Effect": "Allow",
        "Principal": "*", "Action": action, "Resource": format!("arn:aws:s3:::{bucket}/*")}]})
}

fn full(bucket: &str) -> Props {
    props(json!({
        "bucket": bucket, "region": "us-east-1", "tags": {"team": "web"},
        "versioning": "Enabled", "sse_algorithm": "AES256", "bucket_key_enabled": false,
        "block_public_acls": true, "ignore_public_acls": true, "block_public_policy": false,
        "restrict_public_buckets": null, "object_ownership": "BucketOwnerEnforced",
        "lifecycle_rules": [{"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
            "Expiration": {"Days": 30}}],
        "policy": policy(bucket, "s3:GetObject"), "force_destroy": false
    }))
}

/// The observed settings (versioning is written, not observed).
const SETTINGS: [&str; 11] = [
    "tags",
    "sse_algorithm",
    "kms_master_key_id",
    "bucket_key_enabled",
    "block_public_acls",
    "ignore_public_acls",
    "block_public_policy",
    "restrict_public_buckets",
    "object_ownership",
    "lifecycle_rules",
    "policy",
];

fn listed<'a>(all: &'a [Props], bucket: &str) -> Option<&'a Props> {
    all.iter().find(|p| p["bucket"] == json!(bucket))
}

#[tokio::test]
async fn a_bucket_with_every_setting_is_made_listed_as_made_changed_and_changed_back() {
    let moto = infrasql_moto::Moto::start();
    let c = clients(&moto).await;
    let s3 = raw(&c).await;
    let t = BucketType::new(c.clone());
    let made = t.create(&ctx(), &full("web-assets")).await.unwrap();
    assert_eq!(made["arn"], json!("arn:aws:s3:::web-assets"));
    assert_eq!(
        made["restrict_public_buckets"],
        json!(false),
        "NULL is off once any is set"
    );

    // In moto, checked with the raw client.
    assert_eq!(moto.s3_versioning("web-assets").as_deref(), Some("Enabled"));
    let pab = s3
        .get_public_access_block()
        .bucket("web-assets")
        .send()
        .await
        .unwrap();
    let pab = pab.public_access_block_configuration().unwrap();
    assert_eq!(pab.block_public_acls(), Some(true));
    assert_eq!(pab.block_public_policy(), Some(false));
    let tags = s3
        .get_bucket_tagging()
        .bucket("web-assets")
        .send()
        .await
        .unwrap();
    let tags: Vec<(String, String)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key().into(), t.value().into()))
        .collect();
    assert!(tags.contains(&("team".into(), "web".into())), "{tags:?}");
    assert!(
        tags.contains(&(APPLY_TAG.into(), "test-apply".into())),
        "{tags:?}"
    );
    let own = s3
        .get_bucket_ownership_controls()
        .bucket("web-assets")
        .send()
        .await
        .unwrap();
    assert_eq!(
        own.ownership_controls().unwrap().rules()[0]
            .object_ownership()
            .as_str(),
        "BucketOwnerEnforced"
    );
    let lc = s3
        .get_bucket_lifecycle_configuration()
        .bucket("web-assets")
        .send()
        .await
        .unwrap();
    assert_eq!(lc.rules()[0].id(), Some("expire"));
    let enc = s3
        .get_bucket_encryption()
        .bucket("web-assets")
        .send()
        .await
        .unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    assert!(s3
        .get_bucket_policy()
        .bucket("web-assets")
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .contains("s3:GetObject"));

    // The listing reads every setting as the create reported it.
    let all = t.list("us-east-1").await.unwrap().into_props();
    let row = listed(&all, "web-assets").expect("listed");
    for col in SETTINGS {
        assert_eq!(row.get(col), made.get(col), "{col}");
    }
    assert_eq!(row[APPLY_TAG], json!("test-apply"));
    assert!(row["creation_date"].is_string());
    assert!(!row.contains_key("force_destroy"), "never observed");
    assert!(!row.contains_key("versioning"), "not observed");
    assert!(
        t.list("eu-west-1").await.unwrap().into_props().is_empty(),
        "listed in its own region only"
    );

    // Every setting changed, then the undo (before and after swapped).
    let mut after = made.clone();
    after.insert("policy".into(), Value::Null);
    after.insert("block_public_acls".into(), Value::Null);
    after.insert("ignore_public_acls".into(), Value::Null);
    after.insert("block_public_policy".into(), Value::Null);
    after.insert("restrict_public_buckets".into(), Value::Null);
    after.insert("versioning".into(), json!("Suspended"));
    after.insert("object_ownership".into(), json!("ObjectWriter"));
    after.insert("lifecycle_rules".into(), Value::Null);
    after.insert("sse_algorithm".into(), Value::Null);
    after.insert("bucket_key_enabled".into(), Value::Null);
    after.insert("tags".into(), json!({"team": "api"}));
    let changed = t.update(&ctx(), "web-assets", &made, &after).await.unwrap();
    let all = t.list("us-east-1").await.unwrap().into_props();
    let row = listed(&all, "web-assets").unwrap();
    for col in SETTINGS {
        assert_eq!(row.get(col), changed.get(col), "{col} after the update");
        assert_eq!(row.get(col), after.get(col), "{col} as asked");
    }
    assert_eq!(
        row[APPLY_TAG],
        json!("test-apply"),
        "the apply id survives a tag change"
    );
    assert_eq!(
        moto.s3_versioning("web-assets").as_deref(),
        Some("Suspended")
    );
    let gone = s3
        .get_bucket_policy()
        .bucket("web-assets")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&gone),
        Some("NoSuchBucketPolicy")
    );

    t.update(&ctx(), "web-assets", &after, &made).await.unwrap();
    let all = t.list("us-east-1").await.unwrap().into_props();
    let row = listed(&all, "web-assets").unwrap();
    for col in SETTINGS {
        assert_eq!(row.get(col), made.get(col), "{col} after the undo");
    }
    assert_eq!(moto.s3_versioning("web-assets").as_deref(), Some("Enabled"));
}

#[tokio::test]
async fn a_create_whose_later_step_fails_leaves_no_bucket() {
    let moto = infrasql_moto::Moto::start();
    let c = clients(&moto).await;
    let t = BucketType::new(c.clone());
    let mut p = full("half-made");
    p.insert(
        "lifecycle_rules".into(),
        json!([{"Status": "Enabled", "Expiration": {"Date": "2030-01-01"}}]),
    );
    let e = t.create(&ctx(), &p).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Invalid);
    assert!(e.message.contains("Date"), "{}", e.message);
    let names: Vec<String> = raw(&c)
        .await
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert!(names.is_empty(), "{names:?}");

    // A name this account holds already is refused, and the bucket stays.
    let p = props(json!({"bucket": "mine", "region": "us-east-1", "tags": {}}));
    t.create(&ctx(), &p).await.unwrap();
    let e = t.create(&ctx(), &p).await.unwrap_err();
    assert_eq!(e.code, "BucketAlreadyOwnedByYou");
    assert!(e.message.contains("mine"), "{}", e.message);
    assert!(raw(&c)
        .await
        .head_bucket()
        .bucket("mine")
        .send()
        .await
        .is_ok());
}

#[tokio::test]
async fn a_non_empty_bucket_is_kept_unless_force_destroy_and_then_every_version_goes() {
    let moto = infrasql_moto::Moto::start();
    let c = clients(&moto).await;
    let s3 = raw(&c).await;
    let t = BucketType::new(c.clone());
    let p = props(
        json!({"bucket": "data", "region": "us-east-1", "tags": {}, "versioning": "Enabled"}),
    );
    t.create(&ctx(), &p).await.unwrap();
    for i in 0..3 {
        s3.put_object()
            .bucket("data")
            .key("a.txt")
            .body(ByteStream::from(format!("v{i}").into_bytes()))
            .send()
            .await
            .unwrap();
    }
    s3.delete_object()
        .bucket("data")
        .key("a.txt")
        .send()
        .await
        .unwrap();

    let e = t.delete(&ctx(), "data", &p).await.unwrap_err();
    assert_eq!(e.code, "BucketNotEmpty");
    assert_eq!(e.class, ErrorClass::Conflict);
    assert!(e.message.contains("data"), "{}", e.message);
    assert!(
        e.hint.as_deref().unwrap_or("").contains("force_destroy"),
        "{:?}",
        e.hint
    );
    let versions = s3
        .list_object_versions()
        .bucket("data")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 3, "nothing lost");

    let mut forced = p.clone();
    forced.insert("force_destroy".into(), json!(true));
    t.delete(&ctx(), "data", &forced).await.unwrap();
    assert!(
        s3.head_bucket().bucket("data").send().await.is_err(),
        "the bucket is gone"
    );
    // Gone already is done.
    t.delete(&ctx(), "data", &forced).await.unwrap();
}
