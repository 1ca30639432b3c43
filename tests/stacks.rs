//! Declarative stacks in SQL (`schema/0760_stacks.sql`): a stack run's
//! INSERTs name resources by natural key, so the same files converge; what
//! they no longer declare is pruned; lookups see only the stack. Real
//! PostgreSQL and moto.

mod common;

use common::{Moto, TestServer};
use tokio_postgres::Client;

const NETWORK: &str = "
INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.70.0.0/16');
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'a', vpc_id, '10.70.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'main';
";

/// One stack run in one transaction; the plan it made, as (action, table).
async fn run(
    db: &Client,
    stack: &str,
    sql: &str,
    opts: &str,
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    let (adopt, prune) = (opts.contains("adopt"), !opts.contains("no-prune"));
    db.batch_execute("BEGIN").await?;
    let r = async {
        db.execute("SELECT infra.stack_begin($1, $2)", &[&stack, &adopt])
            .await?;
        db.batch_execute(sql).await?;
        db.execute("SELECT infra.stack_finish($1)", &[&prune])
            .await?;
        let plan = db
            .query("SELECT action, \"table\" FROM infra.plan", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        db.batch_execute("COMMIT").await?;
        Ok(plan)
    }
    .await;
    if r.is_err() {
        let _ = db.batch_execute("ROLLBACK").await;
    }
    r
}

async fn count(db: &Client, sql: &str) -> i64 {
    common::one::<i64>(db, sql).await
}

#[tokio::test]
async fn the_same_files_converge_and_a_removed_statement_prunes() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let db = s.connect().await;

    let plan = run(&db, "web", NETWORK, "").await.unwrap();
    assert_eq!(plan.len(), 2, "{plan:?}");
    assert_eq!(moto.vpcs().await.len(), 1);
    // Again: nothing to do.
    let plan = run(&db, "web", NETWORK, "").await.unwrap();
    assert!(plan.is_empty(), "{plan:?}");
    assert_eq!(moto.vpcs().await.len(), 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM aws.vpc WHERE stack = 'web'").await,
        1
    );

    // A changed value is an update of the same resource.
    let tagged = NETWORK.replace(
        "aws.vpc (name, cidr_block) VALUES ('main', '10.70.0.0/16')",
        "aws.vpc (name, cidr_block, tags) VALUES ('main', '10.70.0.0/16', '{\"team\": \"web\"}')",
    );
    assert_ne!(tagged, NETWORK);
    let plan = run(&db, "web", &tagged, "").await.unwrap();
    assert_eq!(plan, vec![("update".to_string(), "aws.vpc".to_string())]);

    // Without the subnet's statement: --no-prune keeps it, a run prunes it.
    let vpc_only = tagged.split(";\n").next().unwrap().to_string() + ";";
    let plan = run(&db, "web", &vpc_only, "no-prune").await.unwrap();
    assert!(plan.is_empty(), "{plan:?}");
    let plan = run(&db, "web", &vpc_only, "").await.unwrap();
    assert_eq!(plan, vec![("delete".to_string(), "aws.subnet".to_string())]);
    assert_eq!(count(&db, "SELECT count(*) FROM aws.subnet").await, 0);
    let status: String =
        common::one(&db, "SELECT status FROM infra.stack WHERE name = 'web'").await;
    assert_eq!(status, "synced");
}

#[tokio::test]
async fn two_environments_each_find_their_own_main() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let db = s.connect().await;
    run(&db, "web.staging", NETWORK, "").await.unwrap();
    let prod = NETWORK.replace("10.70.", "10.71.");
    run(&db, "web.prod", &prod, "").await.unwrap();
    assert_eq!(moto.vpcs().await.len(), 2);
    // Each subnet is in its own stack's VPC.
    let wrong = count(
        &db,
        "SELECT count(*) FROM aws.subnet s JOIN aws.vpc v USING (vpc_id) WHERE s.stack IS DISTINCT FROM v.stack",
    )
    .await;
    assert_eq!(wrong, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM aws.subnet").await, 2);
    // Re-running one leaves the other alone.
    assert!(run(&db, "web.staging", NETWORK, "")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        count(&db, "SELECT count(*) FROM aws.vpc WHERE stack = 'web.prod'").await,
        1
    );
}

#[tokio::test]
async fn a_resource_declared_twice_names_both_statements() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let db = s.connect().await;
    let sql = "SELECT set_config('infra.stack_statement', 'net.sql:1', true);
               INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.70.0.0/16');
               SELECT set_config('infra.stack_statement', 'net.sql:2', true);
               INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.72.0.0/16');";
    let e = run(&db, "web", sql, "").await.unwrap_err();
    let db_err = e.as_db_error().expect("a database error");
    assert_eq!(db_err.code().code(), "23505");
    assert!(
        db_err
            .message()
            .contains("aws.vpc name = 'main' is declared twice in stack web"),
        "{}",
        db_err.message()
    );
    assert_eq!(
        db_err.detail(),
        Some("First declared at net.sql:1, again at net.sql:2.")
    );
    assert!(moto.vpcs().await.is_empty());
}

#[tokio::test]
async fn unmanaged_resources_are_adopted_only_when_asked() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let db = s.connect().await;
    db.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.70.0.0/16')")
        .await
        .unwrap();
    let e = run(&db, "web", NETWORK, "").await.unwrap_err();
    let db_err = e.as_db_error().expect("a database error");
    assert_eq!(db_err.code().code(), "42710");
    assert!(
        db_err
            .detail()
            .unwrap_or("")
            .contains("aws.vpc name = 'main'"),
        "{db_err:?}"
    );
    assert_eq!(moto.vpcs().await.len(), 1);

    // Adopting tags the VPC with its stack; the subnet is new.
    let plan = run(&db, "web", NETWORK, "adopt").await.unwrap();
    assert_eq!(
        plan,
        vec![
            ("update".to_string(), "aws.vpc".to_string()),
            ("create".to_string(), "aws.subnet".to_string())
        ]
    );
    assert_eq!(moto.vpcs().await.len(), 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM aws.vpc WHERE stack = 'web'").await,
        1
    );
}

#[tokio::test]
async fn a_plain_edit_of_a_stack_row_is_refused_unless_allowed() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let db = s.connect().await;
    run(&db, "web", NETWORK, "").await.unwrap();
    let e = db
        .batch_execute("UPDATE aws.vpc SET tags = '{\"x\": \"1\"}' WHERE name = 'main'")
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&e).as_deref(), Some("55000"));
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("aws.vpc name = 'main' belongs to stack web"),
        "{e:?}"
    );
    let e = db
        .batch_execute("DELETE FROM aws.subnet")
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&e).as_deref(), Some("55000"));

    db.batch_execute(
        "BEGIN; SET LOCAL infra.allow_stack_edit = on;
         UPDATE aws.vpc SET tags = '{\"x\": \"1\"}' WHERE name = 'main'; COMMIT;",
    )
    .await
    .unwrap();
    let status: String =
        common::one(&db, "SELECT status FROM infra.stack WHERE name = 'web'").await;
    assert_eq!(status, "out_of_sync");
    // The files win again, and the stack is synced.
    let plan = run(&db, "web", NETWORK, "").await.unwrap();
    assert_eq!(plan, vec![("update".to_string(), "aws.vpc".to_string())]);
    let status: String =
        common::one(&db, "SELECT status FROM infra.stack WHERE name = 'web'").await;
    assert_eq!(status, "synced");
}

async fn stack_tag_of(moto: &Moto, vpc_id: &str) -> Option<String> {
    let out = moto
        .ec2()
        .await
        .describe_vpcs()
        .vpc_ids(vpc_id)
        .send()
        .await
        .unwrap();
    out.vpcs()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("infrasql:stack"))
        .and_then(|t| t.value().map(str::to_owned))
}

/// Membership is in AWS too: a fresh database on the same cloud finds the
/// stacks again after its first sync, and an adopted resource gets the tag.
#[tokio::test]
async fn membership_survives_the_loss_of_the_database() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let db = s.connect().await;
    db.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('legacy', '10.80.0.0/16')")
        .await
        .unwrap();
    run(&db, "web", NETWORK, "").await.unwrap();
    let legacy: String = common::one(&db, "SELECT vpc_id FROM aws.vpc WHERE name = 'legacy'").await;
    assert_eq!(stack_tag_of(&moto, &legacy).await, None);
    let adopt = format!(
        "{NETWORK}INSERT INTO aws.vpc (name, cidr_block) VALUES ('legacy', '10.80.0.0/16');"
    );
    let plan = run(&db, "web", &adopt, "adopt").await.unwrap();
    assert_eq!(plan, vec![("update".to_string(), "aws.vpc".to_string())]);
    assert_eq!(stack_tag_of(&moto, &legacy).await.as_deref(), Some("web"));
    drop(db);
    drop(s);

    let fresh = TestServer::start_on(&moto, &[]);
    let db = fresh.connect().await;
    db.batch_execute("SELECT infra.sync()").await.unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM aws.vpc WHERE stack = 'web'").await,
        2
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM aws.subnet WHERE stack = 'web'").await,
        1
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM infra.stack WHERE name = 'web'").await,
        1
    );
    // And the files still converge on the imported rows.
    assert!(run(&db, "web", &adopt, "").await.unwrap().is_empty());
}

/// After a sync imported what AWS made with the VPC (its default security
/// group, its main route table, outside any stack), the stack can still
/// prune the VPC: AWS deletes those with it.
#[tokio::test]
async fn a_synced_vpc_can_be_pruned() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let db = s.connect().await;
    run(&db, "web", NETWORK, "").await.unwrap();
    db.batch_execute("SELECT infra.sync()").await.unwrap();
    let plan = run(&db, "web", "", "").await.unwrap();
    assert_eq!(plan.len(), 2, "{plan:?}");
    assert!(moto.vpcs().await.is_empty());
    // (moto's default VPC stays, with its own main table and group.)
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM aws.vpc WHERE is_default IS NOT TRUE"
        )
        .await,
        0
    );
}

/// The same in a plain session: a VPC whose main route table and default
/// group sync imported is deleted with one DeleteVpc.
#[tokio::test]
async fn a_synced_vpc_can_be_deleted() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let db = s.connect().await;
    db.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('solo', '10.74.0.0/16')")
        .await
        .unwrap();
    db.batch_execute("SELECT infra.sync()").await.unwrap();
    let vpc: String = common::one(&db, "SELECT vpc_id FROM aws.vpc WHERE name = 'solo'").await;
    let of_vpc = |t: &str| format!("SELECT count(*) FROM aws.{t} WHERE vpc_id = '{vpc}'");
    assert_eq!(count(&db, &of_vpc("route_table")).await, 1);
    assert_eq!(count(&db, &of_vpc("security_group")).await, 1);
    db.batch_execute("DELETE FROM aws.vpc WHERE name = 'solo'")
        .await
        .unwrap();
    assert!(moto.vpcs().await.is_empty());
    assert_eq!(count(&db, &of_vpc("route_table")).await, 0);
    assert_eq!(count(&db, &of_vpc("security_group")).await, 0);
    // Nothing but the VPC was asked of AWS.
    let actions: Vec<String> = db
        .query(
            "SELECT action || ' ' || table_name FROM infra.apply_action",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions.iter().filter(|a| a.ends_with("aws.vpc")).count(),
        2,
        "{actions:?}"
    );
    assert!(
        actions.iter().all(|a| a.ends_with("aws.vpc")),
        "{actions:?}"
    );
}
