//! infrasql's own failures are told apart from AWS's: when the apply journal
//! cannot be written, the COMMIT fails with infrasql's class (IX900), not
//! "AWS could not be reached" (IX005), and nothing is applied.

mod common;

use common::{one, sqlstate, Moto, TestServer};

/// Make writes to `table` fail the way a full disk or a broken constraint
/// would: with a database error infrasql did not cause.
async fn break_table(engine: &tokio_postgres::Client, table: &str) {
    engine
        .batch_execute(&format!(
            "CREATE FUNCTION infra.test_broken() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$; \
             CREATE TRIGGER test_broken BEFORE INSERT ON {table} \
             FOR EACH ROW EXECUTE FUNCTION infra.test_broken();"
        ))
        .await
        .unwrap();
}

async fn mend_table(engine: &tokio_postgres::Client, table: &str) {
    engine
        .batch_execute(&format!(
            "DROP TRIGGER test_broken ON {table}; DROP FUNCTION infra.test_broken();"
        ))
        .await
        .unwrap();
}

const INSERT_VPC: &str =
    "BEGIN; INSERT INTO aws.vpc (name, cidr_block) VALUES ('j', '10.40.0.0/16'); COMMIT";

#[tokio::test]
async fn a_journal_that_cannot_start_fails_the_commit_as_infrasqls_own_failure() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let engine = s.connect_engine().await;
    let c = s.connect().await;
    break_table(&engine, "infra.apply").await;

    let err = c.batch_execute(INSERT_VPC).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("IX900"), "{err:?}");
    let db = err.as_db_error().unwrap();
    assert!(
        db.message()
            .contains("cannot write infrasql's apply journal")
            && db.message().contains("No space left on device"),
        "{}",
        db.message()
    );
    assert!(db.detail().unwrap_or("").contains("Nothing was applied"));
    assert_eq!(moto.vpcs().await.len(), 0, "nothing reached AWS");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.vpc").await, 0);

    // Once the database is mended, the same session commits.
    mend_table(&engine, "infra.apply").await;
    c.batch_execute(INSERT_VPC).await.unwrap();
    assert_eq!(moto.vpcs().await.len(), 1);
}

#[tokio::test]
async fn a_step_that_cannot_be_journaled_is_not_sent_to_aws() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let engine = s.connect_engine().await;
    let c = s.connect().await;
    break_table(&engine, "infra.apply_action").await;

    let err = c.batch_execute(INSERT_VPC).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("IX900"), "{err:?}");
    let db = err.as_db_error().unwrap();
    assert!(
        db.message()
            .starts_with("infrasql could not create VPC \"j\"")
            && db
                .message()
                .contains("cannot write infrasql's apply journal"),
        "{}",
        db.message()
    );
    assert!(
        db.hint().unwrap_or("").contains("infrasql's own database"),
        "{:?}",
        db.hint()
    );
    assert_eq!(moto.vpcs().await.len(), 0, "the step was never sent");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.vpc").await, 0);
    let status: String = one(&engine, "SELECT status FROM infra.apply").await;
    assert_eq!(status, "failed");
    mend_table(&engine, "infra.apply_action").await;
}
