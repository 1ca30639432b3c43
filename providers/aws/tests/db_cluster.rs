//! Aurora DB clusters and DB snapshots against moto.
//!
//! moto quirks (moto 5.2), where real AWS differs:
//! - A cluster is `creating` in CreateDBCluster's answer and `available`
//!   from the next DescribeDBClusters on (AWS: minutes), so the first
//!   `ready` poll says ready; a snapshot is `available` at once.
//! - DeleteDBCluster removes the cluster at once (AWS: `deleting` for
//!   minutes), so `delete`'s wait passes on its first poll; a final
//!   snapshot is taken whatever SkipFinalSnapshot says, and without a
//!   choice nothing is refused (AWS: InvalidParameterCombination), so the
//!   refusal is tested at the server, where it is made before any call.
//! - DeleteDBSnapshot deletes automated snapshots too (AWS refuses:
//!   InvalidDBSnapshotState), so that refusal is AWS's alone.
mod common;

use common::{aws_error_code, ctx, props, Moto};
use infrasql_aws::aws_sdk_rds;
use infrasql_aws::rds::db_cluster::DbCluster;
use infrasql_aws::rds::db_snapshot::DbSnapshot;
use infrasql_provider::{ErrorClass, Props, PropsExt, Readiness, Resource};
use serde_json::json;

/// A PostgreSQL DB instance made directly through the SDK.
async fn instance(rds: &aws_sdk_rds::Client, id: &str) {
    rds.create_db_instance()
        .db_instance_identifier(id)
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("admin1")
        .master_user_password("secret-password")
        .send()
        .await
        .unwrap();
}

async fn snapshot_ids(rds: &aws_sdk_rds::Client) -> Vec<String> {
    let out = rds.describe_db_snapshots().send().await.unwrap();
    out.db_snapshots()
        .iter()
        .filter_map(|s| s.db_snapshot_identifier().map(str::to_owned))
        .collect()
}

fn find<'a>(listed: &'a [Props], key: &str, id: &str) -> Option<&'a Props> {
    listed.iter().find(|p| p.str(key) == Some(id))
}

#[tokio::test]
async fn a_manual_snapshot_is_taken_listed_retagged_and_deleted() {
    let moto = Moto::start();
    let raw = moto.rds().await;
    instance(&raw, "orders").await;
    let snapshots = DbSnapshot::new(moto.clients().await);
    let made = snapshots
        .create(
            &ctx(),
            &props(json!({
                "db_snapshot_identifier": "orders-before-upgrade",
                "db_instance_identifier": "orders",
                "tags": {"env": "prod"},
            })),
        )
        .await
        .unwrap();
    assert_eq!(
        made.str("db_snapshot_identifier"),
        Some("orders-before-upgrade")
    );
    assert_eq!(made.str("snapshot_type"), Some("manual"));
    assert!(made
        .str("arn")
        .is_some_and(|a| a.starts_with("arn:aws:rds:")));
    let ready = snapshots
        .ready(&ctx(), "orders-before-upgrade", &made)
        .await
        .unwrap();
    assert!(matches!(ready, Readiness::Ready(Some(ref p)) if p.str("status") == Some("available")));

    let listed = snapshots.list("us-east-1").await.unwrap().into_props();
    let row = find(&listed, "db_snapshot_identifier", "orders-before-upgrade")
        .expect("the new snapshot is listed");
    assert_eq!(row.str("db_instance_identifier"), Some("orders"));
    assert_eq!(row.str("engine"), Some("postgres"));
    assert_eq!(row["tags"], json!({"env": "prod"}));
    assert_eq!(row.str(infrasql_provider::APPLY_TAG), Some("test-apply"));
    // The instance's automated snapshot is listed as well.
    assert!(
        listed
            .iter()
            .any(|p| p.str("snapshot_type") == Some("automated")),
        "automated snapshots are listed: {listed:?}"
    );

    let mut after = row.clone();
    after.insert("tags".into(), json!({"env": "test"}));
    let updated = snapshots
        .update(&ctx(), "orders-before-upgrade", row, &after)
        .await
        .unwrap();
    assert_eq!(updated["tags"], json!({"env": "test"}));

    snapshots
        .delete(&ctx(), "orders-before-upgrade", &after)
        .await
        .unwrap();
    assert!(!snapshot_ids(&raw)
        .await
        .contains(&"orders-before-upgrade".to_owned()));
    // Gone already is done.
    snapshots
        .delete(&ctx(), "orders-before-upgrade", &after)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_snapshot_of_a_missing_instance_is_refused_as_not_found() {
    let moto = Moto::start();
    let snapshots = DbSnapshot::new(moto.clients().await);
    let e = snapshots
        .create(
            &ctx(),
            &props(json!({"db_snapshot_identifier": "s1", "db_instance_identifier": "nope"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::NotFound);
    assert_eq!(e.code, "DBInstanceNotFound");
}

/// Two security groups in a new VPC, made directly through the SDK.
async fn groups(moto: &Moto) -> (String, String) {
    let ec2 = moto.ec2().await;
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.70.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for name in ["db-a", "db-b"] {
        let id = ec2
            .create_security_group()
            .group_name(name)
            .description(name)
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_owned();
        ids.push(id);
    }
    ids.sort();
    (ids[0].clone(), ids[1].clone())
}

fn cluster_row(a: &str) -> Props {
    props(json!({
        "db_cluster_identifier": "ledger",
        "engine": "aurora-postgresql",
        "master_username": "ledger_admin",
        "master_user_password": "a-long-secret",
        "vpc_security_group_ids": [a],
        "backup_retention_period": 3,
        "deletion_protection": false,
        "storage_encrypted": false,
        "database_name": "ledger",
        "apply_immediately": true,
        "skip_final_snapshot": false,
        "final_snapshot_identifier": null,
        "tags": {"team": "payments"},
    }))
}

async fn cluster_ids(rds: &aws_sdk_rds::Client) -> Vec<String> {
    let out = rds.describe_db_clusters().send().await.unwrap();
    out.db_clusters()
        .iter()
        .filter_map(|c| c.db_cluster_identifier().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_cluster_is_created_changed_renamed_and_deleted_with_a_final_snapshot() {
    let moto = Moto::start();
    let raw = moto.rds().await;
    let (a, b) = groups(&moto).await;
    let clients = moto.clients().await;
    let clusters = DbCluster::new(clients.clone());
    let row = cluster_row(&a);
    let made = clusters.create(&ctx(), &row).await.unwrap();
    assert_eq!(made.str("db_cluster_identifier"), Some("ledger"));
    assert_eq!(made["vpc_security_group_ids"], json!([a]));
    assert_eq!(
        made.i64("port"),
        Some(5432),
        "the engine's default port is filled in"
    );
    assert!(made
        .str("endpoint")
        .is_some_and(|e| e.starts_with("ledger.cluster-")));
    assert!(
        made.get("master_user_password").is_none(),
        "a secret is never read back"
    );
    assert_eq!(
        made["db_subnet_group_name"],
        json!(null),
        "the default group stays NULL"
    );
    let ready = clusters.ready(&ctx(), "ledger", &made).await.unwrap();
    assert!(matches!(ready, Readiness::Ready(Some(ref p)) if p.str("status") == Some("available")));

    let listed = clusters.list("us-east-1").await.unwrap().into_props();
    let seen = find(&listed, "db_cluster_identifier", "ledger").expect("listed");
    assert_eq!(seen.i64("backup_retention_period"), Some(3));
    assert_eq!(seen["tags"], json!({"team": "payments"}));
    for instruction in [
        "apply_immediately",
        "skip_final_snapshot",
        "final_snapshot_identifier",
    ] {
        assert!(
            seen.get(instruction).is_none(),
            "{instruction} is never listed"
        );
    }

    // Only instructions changed: no call at all.
    let mut before = row.clone();
    before.remove("master_user_password");
    let mut chosen = before.clone();
    chosen.insert("final_snapshot_identifier".into(), json!("ledger-final"));
    let calls = clients.api_calls();
    let kept = clusters
        .update(&ctx(), "ledger", &before, &chosen)
        .await
        .unwrap();
    assert_eq!(
        clients.api_calls(),
        calls,
        "an UPDATE of only instructions makes no call"
    );
    assert!(kept.get("final_snapshot_identifier").is_none());

    // In place: retention, protection, the groups, the tags.
    let mut after = chosen.clone();
    after.insert("backup_retention_period".into(), json!(7));
    after.insert("deletion_protection".into(), json!(true));
    after.insert("vpc_security_group_ids".into(), json!([a, b]));
    after.insert("tags".into(), json!({"team": "ledger"}));
    let changed = clusters
        .update(&ctx(), "ledger", &chosen, &after)
        .await
        .unwrap();
    assert_eq!(changed.i64("backup_retention_period"), Some(7));
    assert_eq!(changed["deletion_protection"], json!(true));
    assert_eq!(changed["vpc_security_group_ids"], json!([a, b]));
    assert_eq!(changed["tags"], json!({"team": "ledger"}));

    // Renamed in place: update gets the new name as id, the old in before.
    let mut renamed = after.clone();
    renamed.insert("db_cluster_identifier".into(), json!("ledger-v2"));
    let moved = clusters
        .update(&ctx(), "ledger-v2", &after, &renamed)
        .await
        .unwrap();
    assert_eq!(moved.str("db_cluster_identifier"), Some("ledger-v2"));
    assert_eq!(
        moved.str("resource_id"),
        made.str("resource_id"),
        "the same cluster"
    );
    assert_eq!(cluster_ids(&raw).await, vec!["ledger-v2".to_owned()]);

    // Deletion protection on: AWS refuses (the server refuses earlier).
    let e = clusters
        .delete(&ctx(), "ledger-v2", &renamed)
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidParameterCombination");
    let mut open = renamed.clone();
    open.insert("deletion_protection".into(), json!(false));
    clusters
        .update(&ctx(), "ledger-v2", &renamed, &open)
        .await
        .unwrap();

    clusters.delete(&ctx(), "ledger-v2", &open).await.unwrap();
    assert!(cluster_ids(&raw).await.is_empty());
    let snaps = raw
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("ledger-final")
        .send()
        .await
        .unwrap();
    assert_eq!(
        snaps.db_cluster_snapshots()[0].db_cluster_identifier(),
        Some("ledger-v2"),
        "the final snapshot exists after the delete"
    );
}

#[tokio::test]
async fn a_cluster_without_a_master_user_is_refused_by_aws() {
    let moto = Moto::start();
    let clusters = DbCluster::new(moto.clients().await);
    let mut row = cluster_row("sg-12345678");
    row.remove("master_username");
    let e = clusters.create(&ctx(), &row).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Invalid);
    assert_eq!(e.code, "InvalidParameterValue");
    let raw = moto.rds().await;
    assert_eq!(
        aws_error_code(
            raw.describe_db_clusters()
                .db_cluster_identifier("ledger")
                .send()
                .await
        ),
        "DBClusterNotFoundFault"
    );
}
