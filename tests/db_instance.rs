//! `aws.db_instance` through the server (issue #10): created with its
//! groups, changed in place, renamed, replaced only with the opt-in,
//! deleted only with a final-snapshot choice and without deletion
//! protection, and drift under each policy. What AWS holds is read from
//! moto directly; the calls infrasql made, from the fault proxy in front.

mod common;

use std::time::{Duration, Instant};

use common::{one, sqlstate, Moto, TestServer};
use infrasql_fault_proxy::FaultProxy;
use tokio_postgres::Client;

/// A VPC with groups g1..g3 and the database `shop` in g1, in one transaction.
const STACK: &str = "
BEGIN;
INSERT INTO aws.vpc (name, cidr_block) VALUES ('db', '10.70.0.0/16');
INSERT INTO aws.security_group (group_name, description, vpc_id)
  SELECT g, g, vpc_id FROM aws.vpc, unnest(ARRAY['g1', 'g2', 'g3']) AS g WHERE name = 'db';
INSERT INTO aws.db_instance (db_instance_identifier, engine, db_instance_class,
    allocated_storage, master_username, master_user_password, tags)
  VALUES ('shop', 'postgres', 'db.t3.micro', 20, 'admin', 'correct-horse', '{\"team\": \"data\"}');
INSERT INTO aws.db_instance_security_group (db_instance_identifier, group_id)
  SELECT 'shop', group_id FROM aws.security_group WHERE group_name = 'g1';
COMMIT;";

async fn group_id(c: &Client, name: &str) -> String {
    one(
        c,
        &format!("SELECT group_id FROM aws.security_group WHERE group_name = '{name}'"),
    )
    .await
}

/// The database as AWS has it, or `None`.
async fn aws_db(moto: &Moto, id: &str) -> Option<infrasql_aws::aws_sdk_rds::types::DbInstance> {
    moto.rds()
        .await
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .ok()
        .and_then(|o| o.db_instances().first().cloned())
}

/// Its VPC security groups in AWS, sorted.
async fn aws_groups(moto: &Moto, id: &str) -> Vec<String> {
    let db = aws_db(moto, id).await.expect("the database exists");
    let mut g: Vec<String> = db
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .map(str::to_owned)
        .collect();
    g.sort();
    g
}

/// RDS calls that change something (the background sync only describes).
fn rds_writes(proxy: &FaultProxy) -> usize {
    proxy
        .log()
        .iter()
        .filter(|c| c.service == "rds" && !c.action.starts_with("Describe"))
        .count()
}

async fn class_in_aws(moto: &Moto, id: &str) -> String {
    aws_db(moto, id)
        .await
        .and_then(|d| d.db_instance_class().map(str::to_owned))
        .unwrap_or_default()
}

async fn row_class(c: &Client) -> String {
    one(
        c,
        "SELECT db_instance_class FROM aws.db_instance WHERE db_instance_identifier = 'shop'",
    )
    .await
}

fn refusal(e: &tokio_postgres::Error) -> (String, String, String) {
    let d = e.as_db_error().expect("a database error");
    (
        d.code().code().to_owned(),
        d.message().to_owned(),
        d.hint().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_database_carries_its_endpoint_changes_in_place_and_is_renamed_in_place() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();
    let g1 = group_id(&c, "g1").await;

    let r = c
        .query_one(
            "SELECT endpoint_address, endpoint_port, status, arn, master_user_password \
             FROM aws.db_instance WHERE db_instance_identifier = 'shop'",
            &[],
        )
        .await
        .unwrap();
    let address: Option<String> = r.get(0);
    assert!(
        address.is_some_and(|a| !a.is_empty()),
        "the row carries the endpoint"
    );
    assert!(r.get::<_, Option<i32>>(1).is_some());
    assert_eq!(r.get::<_, Option<String>>(2).as_deref(), Some("available"));
    assert_eq!(
        r.get::<_, Option<String>>(4),
        None,
        "the password never rests"
    );
    assert_eq!(proxy.calls("CreateDBInstance"), 1);
    assert_eq!(aws_groups(&moto, "shop").await, vec![g1.clone()]);

    // Class and storage in place: the same identifier means no replace.
    c.batch_execute(
        "UPDATE aws.db_instance SET db_instance_class = 'db.t3.small', allocated_storage = 50 \
         WHERE db_instance_identifier = 'shop'",
    )
    .await
    .unwrap();
    let db = aws_db(&moto, "shop").await.unwrap();
    assert_eq!(db.db_instance_class(), Some("db.t3.small"));
    assert_eq!(db.allocated_storage(), Some(50));
    assert_eq!(proxy.calls("ModifyDBInstance"), 1);
    assert_eq!(proxy.calls("CreateDBInstance"), 1, "no replace");
    assert_eq!(proxy.calls("DeleteDBInstance"), 0, "no replace");

    // The user's instructions alone make no AWS call.
    let writes = rds_writes(&proxy);
    c.batch_execute(
        "UPDATE aws.db_instance SET apply_immediately = false, skip_final_snapshot = true \
         WHERE db_instance_identifier = 'shop'",
    )
    .await
    .unwrap();
    assert_eq!(rds_writes(&proxy), writes, "no AWS call for instructions");
    // Queued for the maintenance window: AWS is told so. (moto applies a
    // change at once whatever ApplyImmediately says, and reports nothing
    // pending, so the queued values themselves are unit-tested only.)
    c.batch_execute("UPDATE aws.db_instance SET db_instance_class = 'db.t3.medium'")
        .await
        .unwrap();
    let modify = proxy
        .log()
        .into_iter()
        .rev()
        .find(|call| call.action == "ModifyDBInstance")
        .unwrap();
    assert!(
        modify.body.contains("ApplyImmediately=false"),
        "{}",
        modify.body
    );
    assert!(
        modify.body.contains("DBInstanceClass=db.t3.medium"),
        "{}",
        modify.body
    );
    assert!(
        !modify.body.contains("AllocatedStorage"),
        "only what changed: {}",
        modify.body
    );
    c.batch_execute("UPDATE aws.db_instance SET apply_immediately = true")
        .await
        .unwrap();

    // A rename, in place: the join rows follow it.
    let resource: String = one(&c, "SELECT resource_id FROM aws.db_instance").await;
    c.batch_execute(
        "UPDATE aws.db_instance SET db_instance_identifier = 'store' \
         WHERE db_instance_identifier = 'shop'",
    )
    .await
    .unwrap();
    assert!(
        aws_db(&moto, "shop").await.is_none(),
        "the old name is gone"
    );
    let db = aws_db(&moto, "store").await.expect("renamed in AWS");
    assert_eq!(db.dbi_resource_id(), Some(resource.as_str()));
    assert_eq!(proxy.calls("CreateDBInstance"), 1, "a rename is no replace");
    assert_eq!(proxy.calls("DeleteDBInstance"), 0);
    let member: String = one(
        &c,
        "SELECT db_instance_identifier FROM aws.db_instance_security_group",
    )
    .await;
    assert_eq!(member, "store");
    let arn: String = one(&c, "SELECT arn FROM aws.db_instance").await;
    assert!(arn.ends_with(":db:store"), "{arn}");
}

#[tokio::test]
async fn an_engine_change_replaces_only_with_the_opt_in_and_a_new_identifier() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();
    c.batch_execute("UPDATE aws.db_instance SET skip_final_snapshot = true")
        .await
        .unwrap();

    // The same identifier: AWS would refuse the new database's name.
    let e = c
        .batch_execute("UPDATE aws.db_instance SET engine = 'mysql'")
        .await
        .unwrap_err();
    let (code, _, hint) = refusal(&e);
    assert_eq!(code, "55000");
    assert!(hint.contains("db_instance_identifier"), "{hint}");

    // Without the opt-in: refused at COMMIT, before any AWS call.
    let writes = rds_writes(&proxy);
    let e = c
        .batch_execute(
            "UPDATE aws.db_instance SET engine = 'mysql', db_instance_identifier = 'shop-mysql'",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{e:?}");
    let (_, message, hint) = refusal(&e);
    assert!(hint.contains("SET infra.allow_replace = on"), "{message} / {hint}");
    assert_eq!(rds_writes(&proxy), writes, "nothing sent to AWS");
    assert_eq!(
        aws_db(&moto, "shop").await.unwrap().engine(),
        Some("postgres")
    );

    // With it: the new database, then the old one deleted.
    c.batch_execute(
        "BEGIN; SET LOCAL infra.allow_replace = on;
         UPDATE aws.db_instance SET engine = 'mysql', db_instance_identifier = 'shop-mysql';
         COMMIT;",
    )
    .await
    .unwrap();
    assert!(
        aws_db(&moto, "shop").await.is_none(),
        "the old one is deleted"
    );
    let new = aws_db(&moto, "shop-mysql")
        .await
        .expect("the new one exists");
    assert_eq!(new.engine(), Some("mysql"));
    let engine: String = one(&c, "SELECT engine FROM aws.db_instance").await;
    assert_eq!(engine, "mysql");
}

#[tokio::test]
async fn deleting_needs_a_final_snapshot_choice_and_deletion_protection_off() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();
    let writes = rds_writes(&proxy);

    // Neither choice: refused at the statement, saying which columns to set.
    let e = c
        .batch_execute("DELETE FROM aws.db_instance WHERE db_instance_identifier = 'shop'")
        .await
        .unwrap_err();
    let (code, message, hint) = refusal(&e);
    assert_eq!(code, "55000");
    assert!(message.contains("shop"), "{message}");
    assert!(hint.contains("skip_final_snapshot"), "{hint}");
    assert!(hint.contains("final_snapshot_identifier"), "{hint}");
    // A choice made in the same transaction does not reach the delete.
    let e = c
        .batch_execute(
            "BEGIN; UPDATE aws.db_instance SET skip_final_snapshot = true;
             DELETE FROM aws.db_instance; COMMIT;",
        )
        .await
        .unwrap_err();
    assert_eq!(refusal(&e).0, "55000");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(rds_writes(&proxy), writes, "no AWS call");
    assert!(aws_db(&moto, "shop").await.is_some());

    // Deletion protection on: refused, saying to turn it off first.
    c.batch_execute(
        "UPDATE aws.db_instance SET deletion_protection = true, final_snapshot_identifier = 'shop-last'",
    )
    .await
    .unwrap();
    assert_eq!(
        aws_db(&moto, "shop").await.unwrap().deletion_protection(),
        Some(true)
    );
    let writes = rds_writes(&proxy);
    let e = c
        .batch_execute("DELETE FROM aws.db_instance")
        .await
        .unwrap_err();
    let (code, message, hint) = refusal(&e);
    assert_eq!(code, "55000");
    assert!(message.contains("deletion protection"), "{message}");
    assert!(hint.contains("deletion_protection = false"), "{hint}");
    assert_eq!(rds_writes(&proxy), writes, "no AWS call");

    // Off, then the delete keeps the final snapshot.
    c.batch_execute("UPDATE aws.db_instance SET deletion_protection = false")
        .await
        .unwrap();
    c.batch_execute("DELETE FROM aws.db_instance")
        .await
        .unwrap();
    assert!(aws_db(&moto, "shop").await.is_none());
    assert_eq!(proxy.calls("DeleteDBInstance"), 1);
    let snaps = moto
        .rds()
        .await
        .describe_db_snapshots()
        .db_snapshot_identifier("shop-last")
        .send()
        .await
        .unwrap();
    assert_eq!(snaps.db_snapshots().len(), 1, "the final snapshot exists");
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM aws.db_instance_security_group").await,
        0,
        "its join rows went with it"
    );
}

#[tokio::test]
async fn a_class_changed_in_the_console_is_adopted_reverted_or_reported() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();
    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    // AWS's default parameter group, filled in by the first rounds, is not
    // what this test looks at.
    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    let seen: i64 = one(&c, "SELECT coalesce(max(drift_id), 0) FROM infra.drift").await;
    let rds = moto.rds().await;
    let console = |class: &'static str| {
        let rds = rds.clone();
        async move {
            rds.modify_db_instance()
                .db_instance_identifier("shop")
                .db_instance_class(class)
                .apply_immediately(true)
                .send()
                .await
                .unwrap();
        }
    };
    let drift = |resolution: &'static str| {
        format!(
            "SELECT count(*) FROM infra.drift WHERE table_name = 'aws.db_instance' \
             AND resource_id = 'shop' AND field = 'db_instance_class' AND resolution = '{resolution}'"
        )
    };

    // adopt (the default): the row follows.
    console("db.t3.large").await;
    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    assert_eq!(row_class(&c).await, "db.t3.large");
    assert_eq!(one::<i64>(&c, &drift("adopted")).await, 1);

    // revert: AWS is set back to the row.
    c.batch_execute(
        "INSERT INTO infra.drift_policy (table_name, policy) VALUES ('aws.db_instance', 'revert')",
    )
    .await
    .unwrap();
    console("db.t3.medium").await;
    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    assert_eq!(class_in_aws(&moto, "shop").await, "db.t3.large");
    assert_eq!(row_class(&c).await, "db.t3.large");
    assert_eq!(one::<i64>(&c, &drift("reverted")).await, 1);

    // report: the row keeps its value, the drift stays open.
    c.batch_execute(
        "UPDATE infra.drift_policy SET policy = 'report' WHERE table_name = 'aws.db_instance'",
    )
    .await
    .unwrap();
    console("db.t3.xlarge").await;
    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    assert_eq!(row_class(&c).await, "db.t3.large");
    assert_eq!(class_in_aws(&moto, "shop").await, "db.t3.xlarge");
    assert_eq!(one::<i64>(&c, &drift("open")).await, 1);
    // No other column of the database drifted along the way.
    assert_eq!(
        one::<i64>(
            &c,
            &format!(
                "SELECT count(*) FROM infra.drift WHERE table_name = 'aws.db_instance' \
                 AND field IS DISTINCT FROM 'db_instance_class' AND drift_id > {seen}"
            )
        )
        .await,
        0
    );
}

#[tokio::test]
async fn two_transactions_adding_groups_to_one_database_both_take_effect() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c1 = s.connect().await;
    c1.batch_execute(STACK).await.unwrap();
    let (g1, g2, g3) = (
        group_id(&c1, "g1").await,
        group_id(&c1, "g2").await,
        group_id(&c1, "g3").await,
    );

    c1.batch_execute(&format!(
        "BEGIN; INSERT INTO aws.db_instance_security_group (db_instance_identifier, group_id) VALUES ('shop', '{g2}');"
    ))
    .await
    .unwrap();
    let c2 = s.connect().await;
    c2.batch_execute("BEGIN").await.unwrap();
    let second = {
        let sql = format!(
            "INSERT INTO aws.db_instance_security_group (db_instance_identifier, group_id) VALUES ('shop', '{g3}')"
        );
        tokio::spawn(async move {
            c2.batch_execute(&sql).await.unwrap();
            c2
        })
    };
    // The second waits for the first's lock on the database's row.
    let watch = s.connect().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while one::<i64>(
        &watch,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
         AND query LIKE 'INSERT INTO aws.db_instance_security_group%'",
    )
    .await
        != 1
    {
        assert!(Instant::now() < deadline, "the second INSERT never waited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c1.batch_execute("COMMIT").await.unwrap();
    let c2 = second.await.unwrap();
    c2.batch_execute("COMMIT").await.unwrap();

    let mut want = vec![g1, g2, g3];
    want.sort();
    assert_eq!(
        aws_groups(&moto, "shop").await,
        want,
        "neither change is lost"
    );
}

#[tokio::test]
async fn the_full_stack_in_one_transaction_carries_the_endpoint() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('db', '10.80.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
           SELECT 'db-' || z, vpc_id, cidr, 'us-east-1' || z
             FROM aws.vpc, (VALUES ('a', '10.80.1.0/24'::cidr), ('b', '10.80.2.0/24'::cidr)) AS s (z, cidr)
            WHERE name = 'db';
         INSERT INTO aws.security_group (group_name, description, vpc_id)
           SELECT 'db', 'db', vpc_id FROM aws.vpc WHERE name = 'db';
         INSERT INTO aws.db_subnet_group (db_subnet_group_name, description) VALUES ('shop-net', 'shop');
         INSERT INTO aws.db_subnet_group_subnet (db_subnet_group_name, subnet_id)
           SELECT 'shop-net', subnet_id FROM aws.subnet WHERE name IN ('db-a', 'db-b');
         INSERT INTO aws.db_parameter_group (db_parameter_group_name, family, description)
           VALUES ('shop-params', 'postgres16', 'shop');
         INSERT INTO aws.db_parameter (db_parameter_group_name, parameter_name, parameter_value)
           VALUES ('shop-params', 'work_mem', '8192'), ('shop-params', 'log_min_duration_statement', '500');
         INSERT INTO aws.db_instance (db_instance_identifier, engine, db_instance_class, allocated_storage,
             master_username, manage_master_user_password, db_subnet_group_name, db_parameter_group_name)
           VALUES ('shop', 'postgres', 'db.t3.micro', 20, 'admin', true, 'shop-net', 'shop-params');
         INSERT INTO aws.db_instance_security_group (db_instance_identifier, group_id)
           SELECT 'shop', group_id FROM aws.security_group WHERE group_name = 'db';
         COMMIT;",
    )
    .await
    .unwrap();
    assert_eq!(proxy.calls("CreateDBInstance"), 1);
    let r = c
        .query_one(
            "SELECT endpoint_address, endpoint_port, db_subnet_group_name, db_parameter_group_name, \
                    master_user_secret_arn FROM aws.db_instance",
            &[],
        )
        .await
        .unwrap();
    assert!(r.get::<_, Option<String>>(0).is_some_and(|a| !a.is_empty()));
    assert!(r.get::<_, Option<i32>>(1).is_some());
    assert_eq!(r.get::<_, Option<String>>(2).as_deref(), Some("shop-net"));
    assert_eq!(
        r.get::<_, Option<String>>(3).as_deref(),
        Some("shop-params")
    );
    assert!(
        r.get::<_, Option<String>>(4).is_some(),
        "AWS keeps the password"
    );

    let db = aws_db(&moto, "shop").await.unwrap();
    assert_eq!(
        db.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some("shop-net")
    );
    assert_eq!(db.db_subnet_group().unwrap().subnets().len(), 2);
    assert_eq!(
        db.db_parameter_groups()[0].db_parameter_group_name(),
        Some("shop-params")
    );
    let sg = group_id(&c, "db").await;
    assert_eq!(aws_groups(&moto, "shop").await, vec![sg]);
    // A group of another region is refused at the statement.
    let e = c
        .batch_execute(
            "INSERT INTO aws.db_instance (db_instance_identifier, region, engine, db_instance_class, \
             allocated_storage, master_username, db_subnet_group_name) \
             VALUES ('far', 'eu-west-1', 'postgres', 'db.t3.micro', 20, 'admin', 'shop-net')",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("23514"), "{e:?}");
    let params = moto
        .rds()
        .await
        .describe_db_parameters()
        .db_parameter_group_name("shop-params")
        .send()
        .await
        .unwrap();
    let mut set: Vec<(String, String)> = params
        .parameters()
        .iter()
        .filter(|p| {
            ["work_mem", "log_min_duration_statement"].contains(&p.parameter_name().unwrap_or(""))
        })
        .map(|p| {
            (
                p.parameter_name().unwrap_or("").to_owned(),
                p.parameter_value().unwrap_or("").to_owned(),
            )
        })
        .collect();
    set.sort();
    assert_eq!(
        set,
        vec![
            ("log_min_duration_statement".to_owned(), "500".to_owned()),
            ("work_mem".to_owned(), "8192".to_owned())
        ],
        "the instance's parameter group carries the two parameters"
    );
}
