//! Aurora DB clusters and DB snapshots through infrasql (issue #10): what
//! AWS holds is read from moto directly.

mod common;

use common::{one, sqlstate, Moto, TestServer};
use tokio_postgres::Client;

/// A PostgreSQL DB instance made directly through the SDK, outside infrasql.
async fn raw_instance(moto: &Moto, id: &str) {
    moto.rds()
        .await
        .create_db_instance()
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

async fn snapshot_exists(moto: &Moto, id: &str) -> bool {
    let out = moto
        .rds()
        .await
        .describe_db_snapshots()
        .send()
        .await
        .unwrap();
    out.db_snapshots()
        .iter()
        .any(|s| s.db_snapshot_identifier() == Some(id))
}

async fn clusters(moto: &Moto) -> Vec<String> {
    let out = moto
        .rds()
        .await
        .describe_db_clusters()
        .send()
        .await
        .unwrap();
    out.db_clusters()
        .iter()
        .filter_map(|c| c.db_cluster_identifier().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_inserted_snapshot_is_taken_and_a_deleted_one_removed() {
    let moto = Moto::start();
    raw_instance(&moto, "orders").await;
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "INSERT INTO aws.db_snapshot (db_snapshot_identifier, db_instance_identifier, tags)
         VALUES ('orders-1', 'orders', '{\"env\": \"prod\"}')",
    )
    .await
    .unwrap();
    assert!(snapshot_exists(&moto, "orders-1").await);
    let row: String = one(
        &c,
        "SELECT status || ' ' || snapshot_type || ' ' || engine FROM aws.db_snapshot
          WHERE db_snapshot_identifier = 'orders-1'",
    )
    .await;
    assert_eq!(row, "available manual postgres");

    let e = c
        .batch_execute(
            "UPDATE aws.db_snapshot SET db_snapshot_identifier = 'orders-2'
              WHERE db_snapshot_identifier = 'orders-1'",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("428C9"), "{e}");

    c.batch_execute("DELETE FROM aws.db_snapshot WHERE db_snapshot_identifier = 'orders-1'")
        .await
        .unwrap();
    assert!(!snapshot_exists(&moto, "orders-1").await);
    let left: i64 = one(
        &c,
        "SELECT count(*) FROM aws.db_snapshot WHERE db_snapshot_identifier = 'orders-1'",
    )
    .await;
    assert_eq!(left, 0);
}

/// A VPC with two subnets in two zones, a DB subnet group of them, a
/// security group and a cluster in that subnet group with that group, in
/// one transaction.
const CLUSTER: &str = "
BEGIN;
INSERT INTO aws.vpc (name, cidr_block) VALUES ('db', '10.80.0.0/16');
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'db-' || z, vpc_id, ('10.80.' || n || '.0/24')::cidr, 'us-east-1' || z
    FROM aws.vpc, (VALUES ('a', 1), ('b', 2)) AS zones (z, n);
INSERT INTO aws.db_subnet_group (db_subnet_group_name, description) VALUES ('ledger-net', 'ledger subnets');
INSERT INTO aws.db_subnet_group_subnet (db_subnet_group_name, subnet_id)
  SELECT 'ledger-net', subnet_id FROM aws.subnet;
INSERT INTO aws.security_group (group_name, description, vpc_id)
  SELECT 'ledger-db', 'ledger database', vpc_id FROM aws.vpc;
INSERT INTO aws.db_cluster (db_cluster_identifier, engine, master_username, master_user_password,
                            database_name, db_subnet_group_name)
  VALUES ('ledger', 'aurora-postgresql', 'ledger_admin', 'a-long-secret', 'ledger', 'ledger-net');
INSERT INTO aws.db_cluster_security_group (db_cluster_identifier, group_id)
  SELECT 'ledger', group_id FROM aws.security_group WHERE group_name = 'ledger-db';
COMMIT;";

async fn delete_error(c: &Client) -> tokio_postgres::Error {
    c.batch_execute("DELETE FROM aws.db_cluster WHERE db_cluster_identifier = 'ledger'")
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_cluster_with_a_subnet_group_and_a_security_group_is_created_and_deleted_with_a_final_snapshot(
) {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(CLUSTER).await.unwrap();

    let out = moto
        .rds()
        .await
        .describe_db_clusters()
        .db_cluster_identifier("ledger")
        .send()
        .await
        .unwrap();
    let group: String = one(
        &c,
        "SELECT group_id FROM aws.security_group WHERE group_name = 'ledger-db'",
    )
    .await;
    let made = &out.db_clusters()[0];
    assert_eq!(
        made.vpc_security_groups()[0].vpc_security_group_id(),
        Some(group.as_str())
    );
    let row: String = one(
        &c,
        "SELECT status || ' ' || port || ' ' || (master_user_password IS NULL) || ' ' || endpoint
           FROM aws.db_cluster WHERE db_cluster_identifier = 'ledger'",
    )
    .await;
    assert_eq!(
        row,
        format!("available 5432 true {}", made.endpoint().unwrap()),
        "the password never rests in the row"
    );
    assert_eq!(made.db_subnet_group(), Some("ledger-net"));
    // Sync finds the rows as AWS has them: nothing changes, no drift (the
    // first round imports without drift records, the second would record).
    for _ in 0..2 {
        one::<serde_json::Value>(&c, "SELECT infra.sync()").await;
    }
    let drift: i64 = one(
        &c,
        "SELECT count(*) FROM infra.drift WHERE table_name LIKE 'aws.db_%'",
    )
    .await;
    assert_eq!(drift, 0);
    let kept: String = one(
        &c,
        "SELECT db_subnet_group_name || ' ' || count(g.group_id)
           FROM aws.db_cluster c JOIN aws.db_cluster_security_group g USING (db_cluster_identifier)
          WHERE db_cluster_identifier = 'ledger' GROUP BY db_subnet_group_name",
    )
    .await;
    assert_eq!(kept, "ledger-net 1");

    // Neither choice: refused at the statement, nothing sent.
    let e = delete_error(&c).await;
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{e}");
    let db = e.as_db_error().unwrap();
    assert!(
        db.message().contains("skip_final_snapshot"),
        "{}",
        db.message()
    );
    assert!(db.hint().unwrap().contains("final_snapshot_identifier"));
    assert_eq!(clusters(&moto).await, vec!["ledger".to_owned()]);

    // A choice made in the same transaction does not count (the delete
    // would run with the row as it was), and the error says so.
    let e = c
        .batch_execute(
            "BEGIN;
             UPDATE aws.db_cluster SET skip_final_snapshot = true WHERE db_cluster_identifier = 'ledger';
             DELETE FROM aws.db_cluster WHERE db_cluster_identifier = 'ledger';
             COMMIT;",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{e}");
    assert!(
        e.as_db_error()
            .unwrap()
            .hint()
            .unwrap()
            .contains("same transaction"),
        "{e:?}"
    );
    c.batch_execute("ROLLBACK").await.unwrap();

    c.batch_execute(
        "UPDATE aws.db_cluster SET final_snapshot_identifier = 'ledger-final'
          WHERE db_cluster_identifier = 'ledger'",
    )
    .await
    .unwrap();
    c.batch_execute("DELETE FROM aws.db_cluster WHERE db_cluster_identifier = 'ledger'")
        .await
        .unwrap();
    assert!(clusters(&moto).await.is_empty());
    let snaps = moto
        .rds()
        .await
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("ledger-final")
        .send()
        .await
        .unwrap();
    assert_eq!(
        snaps.db_cluster_snapshots()[0].db_cluster_identifier(),
        Some("ledger"),
        "the final snapshot exists after the delete"
    );
    let joins: i64 = one(&c, "SELECT count(*) FROM aws.db_cluster_security_group").await;
    assert_eq!(joins, 0, "the cluster's group rows went with it");
}

#[tokio::test]
async fn deletion_protection_refuses_the_delete_before_any_aws_call() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(CLUSTER).await.unwrap();
    c.batch_execute(
        "UPDATE aws.db_cluster SET deletion_protection = true, skip_final_snapshot = true
          WHERE db_cluster_identifier = 'ledger'",
    )
    .await
    .unwrap();
    let protected = moto
        .rds()
        .await
        .describe_db_clusters()
        .db_cluster_identifier("ledger")
        .send()
        .await
        .unwrap();
    assert_eq!(protected.db_clusters()[0].deletion_protection(), Some(true));

    let e = delete_error(&c).await;
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{e}");
    let db = e.as_db_error().unwrap();
    assert!(
        db.message().contains("deletion protection is on"),
        "{}",
        db.message()
    );
    assert!(db.hint().unwrap().contains("deletion_protection = false"));
    assert_eq!(clusters(&moto).await, vec!["ledger".to_owned()]);

    // Turned off in the same transaction as the DELETE: AWS would still
    // see it on, so the error says to commit that first.
    let e = c
        .batch_execute(
            "UPDATE aws.db_cluster SET deletion_protection = false WHERE db_cluster_identifier = 'ledger';
             DELETE FROM aws.db_cluster WHERE db_cluster_identifier = 'ledger';",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{e}");
    assert!(
        e.as_db_error()
            .unwrap()
            .hint()
            .unwrap()
            .contains("does not count"),
        "{e:?}"
    );
    c.batch_execute("UPDATE aws.db_cluster SET deletion_protection = false WHERE db_cluster_identifier = 'ledger'")
        .await
        .unwrap();
    c.batch_execute("DELETE FROM aws.db_cluster WHERE db_cluster_identifier = 'ledger'")
        .await
        .unwrap();
    assert!(clusters(&moto).await.is_empty());
}

#[tokio::test]
async fn sync_lists_snapshots_taken_outside_infrasql_and_those_of_deleted_instances() {
    let moto = Moto::start();
    raw_instance(&moto, "billing").await;
    let rds = moto.rds().await;
    rds.create_db_snapshot()
        .db_instance_identifier("billing")
        .db_snapshot_identifier("billing-console")
        .send()
        .await
        .unwrap();
    // The instance goes, its final snapshot stays.
    rds.delete_db_instance()
        .db_instance_identifier("billing")
        .final_db_snapshot_identifier("billing-final")
        .send()
        .await
        .unwrap();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    one::<serde_json::Value>(&c, "SELECT infra.sync('aws.db_snapshot')").await;
    let rows: Vec<String> = c
        .query(
            "SELECT db_snapshot_identifier || ' ' || db_instance_identifier || ' ' || snapshot_type
               FROM aws.db_snapshot ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        rows,
        vec![
            "billing-console billing manual".to_owned(),
            "billing-final billing manual".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_cluster_with_one_instance_is_created_renamed_and_deleted() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.db_cluster (db_cluster_identifier, engine, master_username, master_user_password,
                                     skip_final_snapshot)
           VALUES ('ledger', 'aurora-postgresql', 'ledger_admin', 'a-long-secret', true);
         INSERT INTO aws.db_instance (db_instance_identifier, engine, db_instance_class, db_cluster_identifier)
           VALUES ('ledger-1', 'aurora-postgresql', 'db.r6g.large', 'ledger');
         COMMIT;",
    )
    .await
    .unwrap();
    let rds = moto.rds().await;
    let out = rds
        .describe_db_clusters()
        .db_cluster_identifier("ledger")
        .send()
        .await
        .unwrap();
    let members: Vec<&str> = out.db_clusters()[0]
        .db_cluster_members()
        .iter()
        .filter_map(|m| m.db_instance_identifier())
        .collect();
    assert_eq!(members, vec!["ledger-1"], "the instance joined the cluster");
    let out = rds
        .describe_db_instances()
        .db_instance_identifier("ledger-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.db_instances()[0].db_cluster_identifier(),
        Some("ledger")
    );

    // The listing reads the membership back: no drift of the cluster or of
    // the membership (the instance's NULL parameter group is adopted as
    // AWS's default, one drift row of db_instance's own).
    for _ in 0..2 {
        one::<serde_json::Value>(&c, "SELECT infra.sync()").await;
    }
    let row: String = one(
        &c,
        "SELECT db_cluster_identifier || ' ' || status FROM aws.db_instance
          WHERE db_instance_identifier = 'ledger-1'",
    )
    .await;
    assert_eq!(row, "ledger available");
    let drift: String = one(
        &c,
        "SELECT coalesce(string_agg(table_name || ' ' || kind || ' ' || coalesce(field, '') || ' ' || coalesce(known_value::text, '') || ' -> ' || coalesce(actual_value::text, ''), '; '), '')
           FROM infra.drift
          WHERE table_name LIKE 'aws.db_cluster%' OR field = 'db_cluster_identifier'",
    )
    .await;
    assert_eq!(drift, "");

    // AWS cannot move an instance to another cluster: refused at once.
    let e = c
        .batch_execute(
            "UPDATE aws.db_instance SET db_cluster_identifier = NULL
              WHERE db_instance_identifier = 'ledger-1'",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("428C9"), "{e}");

    // A rename of the cluster is made in place; the member's row follows
    // by cascade, which makes no call of its own (AWS renames the
    // membership; moto does not, so only the rows and the cluster are
    // checked here).
    c.batch_execute(
        "UPDATE aws.db_cluster SET db_cluster_identifier = 'ledger-v2'
          WHERE db_cluster_identifier = 'ledger'",
    )
    .await
    .unwrap();
    assert_eq!(clusters(&moto).await, vec!["ledger-v2".to_owned()]);
    let member: String = one(
        &c,
        "SELECT db_cluster_identifier FROM aws.db_instance WHERE db_instance_identifier = 'ledger-1'",
    )
    .await;
    assert_eq!(member, "ledger-v2");

    // The member needs no final-snapshot choice (the cluster holds the
    // data); both go in one transaction, the instance first.
    c.batch_execute(
        "BEGIN;
         DELETE FROM aws.db_instance WHERE db_instance_identifier = 'ledger-1';
         DELETE FROM aws.db_cluster WHERE db_cluster_identifier = 'ledger-v2';
         COMMIT;",
    )
    .await
    .unwrap();
    assert!(clusters(&moto).await.is_empty());
    let left = rds.describe_db_instances().send().await.unwrap();
    assert!(left.db_instances().is_empty(), "{left:?}");
}
