//! DB instances against moto: create, ready, list, modify in place, rename,
//! delete with and without a final snapshot.
mod common;

use common::{aws_error_code, ctx, props, Moto};
use infrasql_aws::rds::db_instance::DbInstance;
use infrasql_provider::{ErrorClass, Props, PropsExt, Readiness, Resource, APPLY_TAG};
use serde_json::json;

fn row(id: &str) -> Props {
    props(json!({
        "db_instance_identifier": id, "region": "us-east-1", "engine": "postgres",
        "engine_version": null, "db_instance_class": "db.t3.micro", "allocated_storage": 20,
        "storage_type": null, "storage_encrypted": null, "master_username": "admin",
        "master_user_password": "s3cret-pass", "manage_master_user_password": null,
        "publicly_accessible": null, "multi_az": null, "backup_retention_period": 1,
        "deletion_protection": false, "apply_immediately": true,
        "skip_final_snapshot": false, "final_snapshot_identifier": null,
        "tags": {"team": "data"}, "vpc_security_group_ids": []
    }))
}

/// The row as the commit path would hold it after the create: the
/// instructions are the row's, the rest what AWS answered.
fn committed(desired: &Props, created: &Props) -> Props {
    let mut p = desired.clone();
    p.remove("master_user_password");
    for (k, v) in created {
        p.insert(k.clone(), v.clone());
    }
    p
}

async fn snapshots(rds: &infrasql_aws::aws_sdk_rds::Client) -> Vec<String> {
    rds.describe_db_snapshots()
        .send()
        .await
        .unwrap()
        .db_snapshots()
        .iter()
        .filter_map(|s| s.db_snapshot_identifier())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_database_is_created_ready_listed_modified_renamed_and_deleted_with_a_snapshot() {
    let moto = Moto::start();
    let rds = moto.rds().await;
    let p = DbInstance::new(moto.clients().await);

    let desired = row("shop");
    let created = p.create(&ctx(), &desired).await.unwrap();
    assert_eq!(created.str("db_instance_identifier"), Some("shop"));
    assert!(created.str("endpoint_address").is_some(), "{created:?}");
    assert!(created.i64("endpoint_port").is_some());
    assert_eq!(created["tags"], json!({"team": "data"}));
    assert_eq!(created[APPLY_TAG], json!("test-apply"));
    assert!(!created.contains_key("master_user_password"));
    assert!(!created.contains_key("skip_final_snapshot"));
    match p.ready(&ctx(), "shop", &created).await.unwrap() {
        Readiness::Ready(Some(now)) => assert_eq!(now.str("status"), Some("available")),
        other => panic!("moto reports available at once: {other:?}"),
    }

    let listed = p.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].str("db_instance_class"), Some("db.t3.micro"));
    assert_eq!(listed[0]["pending_modified_values"], json!({}));

    // Class and storage in place; the identifier stays.
    let before = committed(&desired, &created);
    let mut after = before.clone();
    after.insert("db_instance_class".into(), json!("db.t3.small"));
    after.insert("allocated_storage".into(), json!(40));
    let modified = p.update(&ctx(), "shop", &before, &after).await.unwrap();
    assert_eq!(modified.str("db_instance_class"), Some("db.t3.small"));
    assert_eq!(modified.i64("allocated_storage"), Some(40));
    assert_eq!(modified.str("resource_id"), created.str("resource_id"));

    // Only an instruction: nothing to send, nothing reported.
    let before = committed(&before, &modified);
    let mut told = before.clone();
    told.insert("final_snapshot_identifier".into(), json!("shop-last"));
    assert_eq!(
        p.update(&ctx(), "shop", &before, &told).await.unwrap(),
        Props::new()
    );

    // A rename: the engine passes the new name, `before` holds the old.
    let mut renamed = told.clone();
    renamed.insert("db_instance_identifier".into(), json!("store"));
    let now = p.update(&ctx(), "store", &told, &renamed).await.unwrap();
    assert_eq!(now.str("db_instance_identifier"), Some("store"));
    let names: Vec<String> = p
        .list("us-east-1")
        .await
        .unwrap()
        .iter()
        .filter_map(|r| r.str("db_instance_identifier").map(str::to_owned))
        .collect();
    assert_eq!(names, vec!["store"]);

    let current = committed(&renamed, &now);
    p.delete(&ctx(), "store", &current).await.unwrap();
    assert!(p.list("us-east-1").await.unwrap().into_props().is_empty());
    assert!(snapshots(&rds).await.contains(&"shop-last".to_owned()));
    // Gone is done.
    p.delete(&ctx(), "store", &current).await.unwrap();
}

#[tokio::test]
async fn a_row_without_a_final_snapshot_choice_is_not_deleted() {
    let moto = Moto::start();
    let rds = moto.rds().await;
    let p = DbInstance::new(moto.clients().await);
    let desired = row("keepme");
    let created = p.create(&ctx(), &desired).await.unwrap();
    let e = p
        .delete(&ctx(), "keepme", &committed(&desired, &created))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Invalid);
    assert!(e.message.contains("skip_final_snapshot"), "{e}");
    assert_eq!(
        p.list("us-east-1").await.unwrap().into_props().len(),
        1,
        "still there"
    );

    let mut skip = committed(&desired, &created);
    skip.insert("skip_final_snapshot".into(), json!(true));
    p.delete(&ctx(), "keepme", &skip).await.unwrap();
    assert!(snapshots(&rds).await.is_empty(), "no final snapshot");
    assert_eq!(
        aws_error_code(
            rds.describe_db_instances()
                .db_instance_identifier("keepme")
                .send()
                .await
        ),
        "DBInstanceNotFound"
    );
}

#[tokio::test]
async fn a_managed_password_reports_its_secret_and_groups_are_set_whole() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let p = DbInstance::new(moto.clients().await);
    let vpcs = ec2.describe_vpcs().send().await.unwrap();
    let vpc = vpcs.vpcs()[0].vpc_id().unwrap().to_owned();
    let mut groups = Vec::new();
    for name in ["db-a", "db-b"] {
        let g = ec2
            .create_security_group()
            .group_name(name)
            .description("db")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap();
        groups.push(g.group_id().unwrap().to_owned());
    }
    groups.sort();

    let mut desired = row("managed");
    desired.remove("master_user_password");
    desired.insert("manage_master_user_password".into(), json!(true));
    desired.insert("vpc_security_group_ids".into(), json!([groups[0]]));
    let created = p.create(&ctx(), &desired).await.unwrap();
    assert_eq!(created["manage_master_user_password"], json!(true));
    assert!(
        created
            .str("master_user_secret_arn")
            .is_some_and(|a| a.starts_with("arn:aws:secretsmanager:")),
        "{created:?}"
    );
    assert_eq!(created["vpc_security_group_ids"], json!([groups[0]]));

    let before = committed(&desired, &created);
    let mut after = before.clone();
    after.insert("vpc_security_group_ids".into(), json!(groups));
    let now = p.update(&ctx(), "managed", &before, &after).await.unwrap();
    assert_eq!(now["vpc_security_group_ids"], json!(groups));
}
