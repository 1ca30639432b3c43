//! The IAM types against a real moto server: real SDK, real HTTP.

use std::sync::Arc;

use infrasql_aws::{AwsSettings, Clients};
use infrasql_aws_iam::{attachment, inline_policy, instance_profile, policy, role};
use infrasql_provider::{ApplyContext, ErrorClass, Props, Resource};
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

async fn raw(c: &Clients) -> infrasql_aws_iam::aws_sdk_iam::Client {
    infrasql_aws_iam::client(c, "global").await.clone()
}

fn ctx() -> ApplyContext {
    ApplyContext {
        region: "global".into(),
        apply_id: "apply-test".into(),
    }
}

fn props(v: Value) -> Props {
    v.as_object().unwrap().clone()
}

/// A trust policy as a user might write it: Statement an object, Action a scalar.
fn trust() -> Value {
    json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}})
}

fn canonical_trust() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": ["ec2.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}]})
}

fn allow(action: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [action], "Resource": ["*"]}]})
}

#[tokio::test]
async fn a_role_is_created_changed_listed_and_deleted() {
    let moto = infrasql_moto::Moto::start();
    let c = clients(&moto).await;
    let roles = role::Role::new(c.clone());
    let row = props(
        json!({"role_name": "app", "path": "/svc/", "assume_role_policy": trust(),
        "description": "the app", "max_session_duration": 7200, "tags": {"team": "web"}}),
    );
    let made = roles.create(&ctx(), &row).await.unwrap();
    assert_eq!(made["assume_role_policy"], canonical_trust());
    assert_eq!(made["path"], json!("/svc/"));
    assert!(made["arn"].as_str().unwrap().ends_with(":role/svc/app"));

    let listed = roles.list("global").await.unwrap().into_props();
    let found = listed
        .iter()
        .find(|p| p["role_name"] == json!("app"))
        .unwrap();
    for col in [
        "assume_role_policy",
        "description",
        "max_session_duration",
        "tags",
        "arn",
        "role_id",
    ] {
        assert_eq!(found[col], made[col], "{col}");
    }
    // The apply id is there for recovery.
    assert_eq!(found["infrasql:apply-id"], json!("apply-test"));

    let mut after = row.clone();
    after.insert("description".into(), json!("changed"));
    after.insert("max_session_duration".into(), json!(3600));
    after.insert(
        "assume_role_policy".into(),
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
    );
    after.insert("tags".into(), json!({"owner": "me"}));
    let changed = roles.update(&ctx(), "app", &row, &after).await.unwrap();
    assert_eq!(changed["description"], json!("changed"));
    let got = raw(&c)
        .await
        .get_role()
        .role_name("app")
        .send()
        .await
        .unwrap();
    let r = got.role().unwrap();
    assert_eq!(r.description(), Some("changed"));
    assert_eq!(r.max_session_duration(), Some(3600));
    assert!(r.assume_role_policy_document().unwrap().contains("lambda"));
    let tags = raw(&c)
        .await
        .list_role_tags()
        .role_name("app")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = tags.tags().iter().map(|t| t.key()).collect();
    assert!(
        keys.contains(&"owner") && !keys.contains(&"team"),
        "{keys:?}"
    );

    roles.delete(&ctx(), "app", &changed).await.unwrap();
    let gone = raw(&c).await.get_role().role_name("app").send().await;
    assert!(gone.is_err());
    // Deleting what is gone is done.
    roles.delete(&ctx(), "app", &changed).await.unwrap();
}

#[tokio::test]
async fn the_role_listing_follows_every_page() {
    let moto = infrasql_moto::Moto::start();
    let c = clients(&moto).await;
    let iam = raw(&c).await;
    for i in 0..105 {
        iam.create_role()
            .role_name(format!("r{i}"))
            .assume_role_policy_document(trust().to_string())
            .send()
            .await
            .unwrap();
    }
    let listed = role::Role::new(c.clone())
        .list("global")
        .await
        .unwrap()
        .into_props();
    assert_eq!(listed.len(), 105);
}

#[tokio::test]
async fn a_sixth_document_prunes_the_oldest_version() {
    let moto = infrasql_moto::Moto::start();
    let c = clients(&moto).await;
    let policies = policy::Policy::new(c.clone());
    let mut row = props(
        json!({"policy_name": "p", "path": "/", "policy_document": allow("s3:GetObject"), "tags": {}}),
    );
    let made = policies.create(&ctx(), &row).await.unwrap();
    let arn = made["policy_arn"].as_str().unwrap().to_owned();
    for i in 0..6 {
        let mut after = row.clone();
        after.insert("policy_document".into(), allow(&format!("s3:Action{i}")));
        policies.update(&ctx(), &arn, &row, &after).await.unwrap();
        row = after;
    }
    let versions = raw(&c)
        .await
        .list_policy_versions()
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(
        versions.versions().len() <= 5,
        "{}",
        versions.versions().len()
    );
    let listed = policies.list("global").await.unwrap().into_props();
    let found = listed
        .iter()
        .find(|p| p["policy_arn"] == json!(arn))
        .unwrap();
    assert_eq!(found["policy_document"], allow("s3:Action5"));
    // Delete takes the old versions with it.
    policies.delete(&ctx(), &arn, found).await.unwrap();
    assert!(raw(&c)
        .await
        .get_policy()
        .policy_arn(&arn)
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn attachments_inline_policies_and_profiles() {
    // moto knows AWS's own managed policies only when asked to load them.
    let moto = infrasql_moto::Moto::start_with_env(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]);
    let c = clients(&moto).await;
    let role_row = props(json!({"role_name": "app", "assume_role_policy": trust(), "tags": {}}));
    role::Role::new(c.clone())
        .create(&ctx(), &role_row)
        .await
        .unwrap();
    let pol = policy::Policy::new(c.clone())
        .create(
            &ctx(),
            &props(
                json!({"policy_name": "p", "policy_document": allow("s3:GetObject"), "tags": {}}),
            ),
        )
        .await
        .unwrap();
    let arn = pol["policy_arn"].as_str().unwrap();

    let att = attachment::Attachment::new(c.clone());
    let own = att
        .create(
            &ctx(),
            &props(json!({"role_name": "app", "policy_arn": arn})),
        )
        .await
        .unwrap();
    assert_eq!(own["attachment_id"], json!(format!("app|{arn}")));
    let managed = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    att.create(
        &ctx(),
        &props(json!({"role_name": "app", "managed_policy_arn": managed})),
    )
    .await
    .unwrap();
    let mut listed = att.list("global").await.unwrap().into_props();
    listed.sort_by_key(|p| p["attachment_id"].to_string());
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .any(|p| p["policy_arn"] == json!(arn) && p["managed_policy_arn"].is_null()));
    assert!(listed
        .iter()
        .any(|p| p["managed_policy_arn"] == json!(managed) && p["policy_arn"].is_null()));

    let inline = inline_policy::InlinePolicy::new(c.clone());
    let row = props(
        json!({"role_name": "app", "policy_name": "logs", "policy_document": allow("logs:PutLogEvents")}),
    );
    let made = inline.create(&ctx(), &row).await.unwrap();
    assert_eq!(made["inline_policy_id"], json!("app|logs"));
    let mut after = row.clone();
    after.insert("policy_document".into(), allow("logs:CreateLogStream"));
    inline
        .update(&ctx(), "app|logs", &row, &after)
        .await
        .unwrap();
    let listed = inline.list("global").await.unwrap().into_props();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["policy_document"], allow("logs:CreateLogStream"));

    let profiles = instance_profile::InstanceProfile::new(c.clone());
    let prow =
        props(json!({"instance_profile_name": "web", "role_name": "app", "tags": {"a": "1"}}));
    profiles.create(&ctx(), &prow).await.unwrap();
    let listed = profiles.list("global").await.unwrap().into_props();
    assert_eq!(listed[0]["role_name"], json!("app"));
    assert_eq!(listed[0]["tags"], json!({"a": "1"}));
    let mut none = prow.clone();
    none.insert("role_name".into(), Value::Null);
    profiles.update(&ctx(), "web", &prow, &none).await.unwrap();
    let got = raw(&c)
        .await
        .get_instance_profile()
        .instance_profile_name("web")
        .send()
        .await
        .unwrap();
    assert!(got.instance_profile().unwrap().roles().is_empty());
    profiles.update(&ctx(), "web", &none, &prow).await.unwrap();

    // A role still in use cannot go; children first, then it can.
    let refused = role::Role::new(c.clone())
        .delete(&ctx(), "app", &role_row)
        .await
        .unwrap_err();
    assert_eq!(refused.class, ErrorClass::Conflict, "{refused}");
    profiles.delete(&ctx(), "web", &prow).await.unwrap();
    inline.delete(&ctx(), "app|logs", &after).await.unwrap();
    for p in att.list("global").await.unwrap().into_props() {
        att.delete(&ctx(), p["attachment_id"].as_str().unwrap(), &p)
            .await
            .unwrap();
    }
    role::Role::new(c.clone())
        .delete(&ctx(), "app", &role_row)
        .await
        .unwrap();
    assert!(raw(&c)
        .await
        .get_role()
        .role_name("app")
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn a_profile_whose_role_is_refused_is_not_left_behind() {
    let moto = infrasql_moto::Moto::start();
    let c = clients(&moto).await;
    let profiles = instance_profile::InstanceProfile::new(c.clone());
    let e = profiles
        .create(
            &ctx(),
            &props(json!({"instance_profile_name": "web", "role_name": "nope", "tags": {}})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::NotFound, "{e}");
    assert!(profiles
        .list("global")
        .await
        .unwrap()
        .into_props()
        .is_empty());
}
