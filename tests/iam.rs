//! IAM roles, policies, attachments, inline policies and instance profiles
//! through infrasql (issue #13). What AWS holds is read from moto with a raw
//! client.

mod common;

use common::{one, Moto, TestServer};
use serde_json::{json, Value};
use tokio_postgres::Client;

/// A role (its trust policy with Statement an object and Action a scalar),
/// a policy, both kinds of attachment, an inline policy and a profile: one
/// transaction.
const STACK: &str = r#"
BEGIN;
INSERT INTO aws.iam_role (role_name, assume_role_policy, description, max_session_duration, tags)
  VALUES ('app', '{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
    "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}}',
    'the app', 7200, '{"team": "web"}');
INSERT INTO aws.iam_policy (policy_name, description, policy_document)
  VALUES ('read-bucket', 'reads the bucket', '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Action": "s3:GetObject", "Resource": "*"}]}');
INSERT INTO aws.iam_role_policy_attachment (role_name, policy_arn)
  SELECT 'app', policy_arn FROM aws.iam_policy WHERE policy_name = 'read-bucket';
INSERT INTO aws.iam_role_policy_attachment (role_name, managed_policy_arn)
  VALUES ('app', 'arn:aws:iam::aws:policy/ReadOnlyAccess');
INSERT INTO aws.iam_role_inline_policy (role_name, policy_name, policy_document)
  VALUES ('app', 'logs', '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Action": ["logs:PutLogEvents"], "Resource": ["*"]}]}');
INSERT INTO aws.iam_instance_profile (instance_profile_name, role_name, tags)
  VALUES ('web', 'app', '{"a": "1"}');
COMMIT;"#;

const NO_DRIFT: &str = "SELECT coalesce(string_agg(table_name || '.' || coalesce(field, kind), ', ' ORDER BY table_name, field), '') \
                        FROM infra.drift WHERE table_name LIKE 'aws.iam_%'";

async fn sync(c: &Client) {
    let summary: Value = one(c, "SELECT infra.sync()").await;
    assert_eq!(summary["errors"], json!([]), "{summary}");
}

async fn policy_arn(c: &Client) -> String {
    one(
        c,
        "SELECT policy_arn FROM aws.iam_policy WHERE policy_name = 'read-bucket'",
    )
    .await
}

#[tokio::test]
async fn a_role_with_its_policies_and_profile_is_made_synced_changed_and_deleted() {
    let moto = Moto::start_with_env(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]);
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();
    let iam = moto.iam().await;

    // Every column reached IAM.
    let role = iam.get_role().role_name("app").send().await.unwrap();
    let role = role.role().unwrap();
    assert_eq!(role.description(), Some("the app"));
    assert_eq!(role.max_session_duration(), Some(7200));
    assert!(role
        .assume_role_policy_document()
        .unwrap()
        .contains("ec2.amazonaws.com"));
    let tags = iam.list_role_tags().role_name("app").send().await.unwrap();
    assert!(tags
        .tags()
        .iter()
        .any(|t| t.key() == "team" && t.value() == "web"));
    let arn = policy_arn(&c).await;
    assert!(arn.starts_with("arn:aws:iam::"), "{arn}");
    let attached = iam
        .list_attached_role_policies()
        .role_name("app")
        .send()
        .await
        .unwrap();
    let mut arns: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|a| a.policy_arn())
        .collect();
    arns.sort();
    let mut want = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess", arn.as_str()];
    want.sort();
    assert_eq!(arns, want);
    let inline = iam
        .get_role_policy()
        .role_name("app")
        .policy_name("logs")
        .send()
        .await
        .unwrap();
    assert!(inline.policy_document().contains("PutLogEvents"));
    let profile = iam
        .get_instance_profile()
        .instance_profile_name("web")
        .send()
        .await
        .unwrap();
    assert_eq!(
        profile.instance_profile().unwrap().roles()[0].role_name(),
        "app"
    );
    assert_eq!(
        one::<String>(&c, "SELECT attachment_id FROM aws.iam_role_policy_attachment WHERE managed_policy_arn IS NOT NULL").await,
        "app|arn:aws:iam::aws:policy/ReadOnlyAccess"
    );

    // The row holds the canonical trust policy, and sync agrees with it.
    let trust: Value = one(
        &c,
        "SELECT assume_role_policy FROM aws.iam_role WHERE role_name = 'app'",
    )
    .await;
    assert_eq!(
        trust,
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": ["ec2.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}]})
    );
    sync(&c).await;
    assert_eq!(one::<String>(&c, NO_DRIFT).await, "");
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM aws.iam_role_policy_attachment").await,
        2
    );

    // In-place changes of every such column.
    c.batch_execute(
        r#"BEGIN;
        UPDATE aws.iam_role SET description = 'changed', max_session_duration = 3600,
          assume_role_policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}',
          tags = '{"team": "api"}' WHERE role_name = 'app';
        UPDATE aws.iam_policy SET policy_document = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "s3:PutObject", "Resource": "*"}]}', tags = '{"x": "y"}';
        UPDATE aws.iam_role_inline_policy SET policy_document = '{"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "logs:CreateLogStream", "Resource": "*"}]}';
        UPDATE aws.iam_instance_profile SET role_name = NULL, tags = '{}';
        COMMIT;"#,
    )
    .await
    .unwrap();
    let role = iam.get_role().role_name("app").send().await.unwrap();
    let role = role.role().unwrap();
    assert_eq!(role.description(), Some("changed"));
    assert_eq!(role.max_session_duration(), Some(3600));
    assert!(role
        .assume_role_policy_document()
        .unwrap()
        .contains("lambda.amazonaws.com"));
    let p = iam.get_policy().policy_arn(&arn).send().await.unwrap();
    let version = p.policy().unwrap().default_version_id().unwrap().to_owned();
    assert_eq!(version, "v2");
    let v = iam
        .get_policy_version()
        .policy_arn(&arn)
        .version_id(&version)
        .send()
        .await
        .unwrap();
    assert!(v
        .policy_version()
        .unwrap()
        .document()
        .unwrap()
        .contains("PutObject"));
    let ptags = iam
        .list_policy_tags()
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(ptags.tags().iter().any(|t| t.key() == "x"));
    let inline = iam
        .get_role_policy()
        .role_name("app")
        .policy_name("logs")
        .send()
        .await
        .unwrap();
    assert!(inline.policy_document().contains("CreateLogStream"));
    let profile = iam
        .get_instance_profile()
        .instance_profile_name("web")
        .send()
        .await
        .unwrap();
    assert!(profile.instance_profile().unwrap().roles().is_empty());
    sync(&c).await;
    assert_eq!(one::<String>(&c, NO_DRIFT).await, "");

    // Out of band: a new default version with another action is drift; a
    // role made in the console is imported (and recorded as appeared).
    iam.create_policy_version()
        .policy_arn(&arn)
        .policy_document(r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#)
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    iam.create_role()
        .role_name("console")
        .assume_role_policy_document(r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap();
    sync(&c).await;
    assert_eq!(
        one::<String>(&c, NO_DRIFT).await,
        "aws.iam_policy.policy_document, aws.iam_role.appeared"
    );
    assert_eq!(
        one::<i64>(
            &c,
            "SELECT count(*) FROM aws.iam_role WHERE role_name = 'console'"
        )
        .await,
        1
    );

    // The role with all its children in one commit: children first.
    c.batch_execute(
        "BEGIN;
        DELETE FROM aws.iam_instance_profile;
        DELETE FROM aws.iam_role_inline_policy;
        DELETE FROM aws.iam_role_policy_attachment;
        DELETE FROM aws.iam_policy;
        DELETE FROM aws.iam_role WHERE role_name = 'app';
        COMMIT;",
    )
    .await
    .unwrap();
    assert!(iam.get_role().role_name("app").send().await.is_err());
    assert!(iam.get_policy().policy_arn(&arn).send().await.is_err());
    assert!(iam
        .get_instance_profile()
        .instance_profile_name("web")
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn a_refused_attachment_undoes_the_role() {
    let moto = Moto::start_with_env(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]);
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let e = c
        .batch_execute(
            r#"BEGIN;
            INSERT INTO aws.iam_role (role_name, assume_role_policy) VALUES ('doomed',
              '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}');
            INSERT INTO aws.iam_role_policy_attachment (role_name, managed_policy_arn)
              VALUES ('doomed', 'arn:aws:iam::aws:policy/NoSuchPolicyAnywhere');
            COMMIT;"#,
        )
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("a PostgreSQL error");
    assert!(
        db.message().contains("IAM role policy attachment"),
        "{}",
        db.message()
    );
    let roles = moto.iam().await.list_roles().send().await.unwrap();
    assert!(
        roles.roles().is_empty(),
        "the role was undone: {:?}",
        roles.roles()
    );
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.iam_role").await, 0);
}

#[tokio::test]
async fn a_new_path_replaces_the_role() {
    let moto = Moto::start_with_env(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]);
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        r#"INSERT INTO aws.iam_role (role_name, assume_role_policy) VALUES ('svc',
          '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}')"#,
    )
    .await
    .unwrap();
    let old: String = one(&c, "SELECT role_id FROM aws.iam_role").await;
    c.batch_execute("UPDATE aws.iam_role SET path = '/team/' WHERE role_name = 'svc'")
        .await
        .unwrap();
    let got = moto
        .iam()
        .await
        .get_role()
        .role_name("svc")
        .send()
        .await
        .unwrap();
    let role = got.role().unwrap();
    assert_eq!(role.path(), "/team/");
    assert_ne!(role.role_id(), old);
    assert_eq!(
        one::<String>(&c, "SELECT role_id FROM aws.iam_role").await,
        role.role_id()
    );
    // IAM has no rename: the statement refuses it.
    let e = c
        .batch_execute("UPDATE aws.iam_role SET role_name = 'other'")
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&e).as_deref(), Some("428C9"));
}

/// The instance profile an instance runs with, as EC2 reports it (by name).
async fn profile_in_aws(moto: &Moto, instance: &str) -> Option<String> {
    let out = moto
        .ec2()
        .await
        .describe_iam_instance_profile_associations()
        .filters(
            infrasql_aws::aws_sdk_ec2::types::Filter::builder()
                .name("instance-id")
                .values(instance)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.iam_instance_profile_associations()
        .iter()
        .filter(|a| a.state().map(|s| s.as_str()) == Some("associated"))
        .find_map(|a| a.iam_instance_profile()?.arn())
        .and_then(|arn| arn.rsplit('/').next())
        .map(str::to_owned)
}

#[tokio::test]
async fn an_instance_s_profile_is_set_at_launch_replaced_and_removed_in_place() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        r#"BEGIN;
        INSERT INTO aws.iam_role (role_name, assume_role_policy) VALUES ('app', '{"Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}');
        INSERT INTO aws.iam_instance_profile (instance_profile_name, role_name) VALUES ('first', 'app'), ('second', NULL);
        INSERT INTO aws.instance (name, image_id, iam_instance_profile) VALUES ('web', 'ami-760aaa0f', 'first');
        COMMIT;"#,
    )
    .await
    .unwrap();
    let id: String = one(
        &c,
        "SELECT instance_id FROM aws.instance WHERE name = 'web'",
    )
    .await;
    assert_eq!(profile_in_aws(&moto, &id).await.as_deref(), Some("first"));

    // Another profile: the association is replaced, the instance stays.
    c.batch_execute("UPDATE aws.instance SET iam_instance_profile = 'second' WHERE name = 'web'")
        .await
        .unwrap();
    assert_eq!(profile_in_aws(&moto, &id).await.as_deref(), Some("second"));
    let same: String = one(
        &c,
        "SELECT instance_id FROM aws.instance WHERE name = 'web'",
    )
    .await;
    assert_eq!(same, id, "changed in place, not replaced");

    // None: disassociated; the sync agrees.
    c.batch_execute("UPDATE aws.instance SET iam_instance_profile = NULL WHERE name = 'web'")
        .await
        .unwrap();
    assert_eq!(profile_in_aws(&moto, &id).await, None);
    sync(&c).await;
    let drift: String = one(
        &c,
        "SELECT coalesce(string_agg(coalesce(field, kind) || ': ' || coalesce(known_value::text, 'NULL') \
         || ' -> ' || coalesce(actual_value::text, 'NULL'), '; '), '') FROM infra.drift WHERE table_name = 'aws.instance' \
         AND field = 'iam_instance_profile'",
    )
    .await;
    assert_eq!(drift, "", "no drift on the instance's profile");
    let row: Option<String> = one(
        &c,
        "SELECT iam_instance_profile FROM aws.instance WHERE name = 'web'",
    )
    .await;
    assert_eq!(row, None);
}
