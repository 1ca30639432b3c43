//! Errors at the statement: what AWS would certainly refuse is refused at
//! INSERT/UPDATE with 23514, before any AWS call (schema/0530_local_checks.sql).

mod common;

use common::{one, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::Filter;
use tokio_postgres::error::DbError;
use tokio_postgres::Client;

/// Run `setup` then `stmt` in a transaction that is rolled back; `stmt`
/// must fail. Nothing here is ever committed, so AWS is never called.
async fn refused(c: &Client, setup: &str, stmt: &str) -> DbError {
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute(setup)
        .await
        .unwrap_or_else(|e| panic!("{setup}: {e:?}"));
    let err = c
        .batch_execute(stmt)
        .await
        .expect_err("the statement is refused");
    c.batch_execute("ROLLBACK").await.unwrap();
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("{err:?}"))
        .clone();
    assert_eq!(db.code().code(), "23514", "{}", db.message());
    assert!(db.hint().is_some(), "every refusal has a hint: {db:?}");
    db
}

const TWO_VPCS: &str = "
    INSERT INTO aws.vpc (name, cidr_block) VALUES ('a', '10.10.0.0/16'), ('b', '10.20.0.0/16');
    INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'sa', vpc_id, '10.10.1.0/24' FROM aws.vpc WHERE name = 'a';
    INSERT INTO aws.security_group (name, group_name, vpc_id) SELECT 'gb', 'gb', vpc_id FROM aws.vpc WHERE name = 'b';
    INSERT INTO aws.route_table (name, vpc_id) SELECT 'rb', vpc_id FROM aws.vpc WHERE name = 'b';";

#[tokio::test]
async fn a_subnet_outside_its_vpc_is_refused_at_insert_and_aws_never_hears_of_it() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.0.0.0/16')")
        .await
        .unwrap();
    let vpc_id: String = one(&c, "select vpc_id from aws.vpc").await;
    let applies: i64 = one(&c, "select count(*) from infra.apply").await;

    let out = "INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'out', vpc_id, '10.1.1.0/24' FROM aws.vpc";
    let db = refused(&c, "", out).await;
    let msg = db.message();
    assert!(
        msg.contains("subnet \"out\"")
            && msg.contains(&format!(
                ": 10.1.1.0/24 is outside VPC \"main\" ({vpc_id}), whose CIDR blocks are 10.0.0.0/16"
            )),
        "{msg}"
    );
    assert!(db.hint().unwrap().contains("inside 10.0.0.0/16"), "{db:?}");
    // The same as an autocommit statement: refused before its COMMIT.
    let err = c.batch_execute(out).await.unwrap_err();
    assert_eq!(common::sqlstate(&err).as_deref(), Some("23514"));

    let ec2 = moto.ec2().await;
    let in_vpc = Filter::builder().name("vpc-id").values(&vpc_id).build();
    let subnets = ec2
        .describe_subnets()
        .filters(in_vpc.clone())
        .send()
        .await
        .unwrap();
    assert!(subnets.subnets().is_empty(), "nothing reached AWS");
    assert_eq!(
        one::<i64>(&c, "select count(*) from infra.apply").await,
        applies,
        "no apply was even started"
    );

    // A block associated outside infrasql counts once sync has seen it.
    ec2.associate_vpc_cidr_block()
        .vpc_id(&vpc_id)
        .cidr_block("10.50.0.0/16")
        .send()
        .await
        .unwrap();
    c.batch_execute("SELECT infra.sync()").await.unwrap();
    let blocks: String = one(
        &c,
        "select cidr_blocks::text from aws.vpc where name = 'main'",
    )
    .await;
    assert_eq!(blocks, "{10.0.0.0/16,10.50.0.0/16}");
    c.batch_execute("INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'second', vpc_id, '10.50.1.0/24' FROM aws.vpc WHERE name = 'main'")
        .await
        .unwrap();
    let subnets = ec2.describe_subnets().filters(in_vpc).send().await.unwrap();
    assert_eq!(subnets.subnets().len(), 1);
}

#[tokio::test]
async fn what_aws_would_refuse_for_certain_is_refused_at_the_statement() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;

    // Subnets of one VPC do not overlap, rows of the same transaction included.
    let db = refused(
        &c,
        TWO_VPCS,
        "INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'sa2', vpc_id, '10.10.1.128/25' FROM aws.vpc WHERE name = 'a'",
    )
    .await;
    assert!(
        db.message()
            .contains(": 10.10.1.128/25 overlaps subnet \"sa\"")
            && db.message().contains("10.10.1.0/24, in VPC \"a\""),
        "{}",
        db.message()
    );

    // A zone of another region.
    let db = refused(
        &c,
        TWO_VPCS,
        "INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone) SELECT 'z', vpc_id, '10.10.9.0/24', 'eu-west-1a' FROM aws.vpc WHERE name = 'a'",
    )
    .await;
    assert!(
        db.message()
            .contains("availability zone eu-west-1a is not in region us-east-1"),
        "{}",
        db.message()
    );

    // A reference to a resource of another region.
    let db = refused(
        &c,
        TWO_VPCS,
        "INSERT INTO aws.subnet (name, region, vpc_id, cidr_block) SELECT 'w', 'us-west-2', vpc_id, '10.10.8.0/24' FROM aws.vpc WHERE name = 'a'",
    )
    .await;
    assert!(
        db.message()
            .contains("aws.subnet \"w\" is in region us-west-2")
            && db.message().contains("is in region us-east-1"),
        "{}",
        db.message()
    );

    // An instance's subnet and security group in different VPCs.
    // Its groups are rows of aws.instance_security_group: checked per row.
    let with_instance = format!(
        "{TWO_VPCS}
         INSERT INTO aws.instance (name, image_id, subnet_id)
           SELECT 'web', 'ami-760aaa0f', subnet_id FROM aws.subnet;"
    );
    let db = refused(
        &c,
        &with_instance,
        "INSERT INTO aws.instance_security_group (instance_id, group_id)
           SELECT i.instance_id, g.group_id FROM aws.instance i, aws.security_group g",
    )
    .await;
    assert!(
        db.message().contains("instance \"web\"") && db.message().contains("security group \"gb\""),
        "{}",
        db.message()
    );

    // An association of a subnet with another VPC's route table.
    let db = refused(
        &c,
        TWO_VPCS,
        "INSERT INTO aws.route_table_association (route_table_id, subnet_id)
           SELECT r.route_table_id, s.subnet_id FROM aws.route_table r, aws.subnet s",
    )
    .await;
    assert!(
        db.message().contains("route table \"rb\""),
        "{}",
        db.message()
    );

    // A rule repeating another of its group, and (a CHECK of the table) a
    // port range upside down.
    let rule =
        "INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4)
                  SELECT group_id, 'tcp', 443, 443, '0.0.0.0/0' FROM aws.security_group";
    let db = refused(&c, &format!("{TWO_VPCS} {rule};"), rule).await;
    assert!(
        db.message().contains("of security group \"gb\""),
        "{}",
        db.message()
    );
    let db = refused(
        &c,
        TWO_VPCS,
        "INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4)
           SELECT group_id, 'tcp', 443, 80, '0.0.0.0/0' FROM aws.security_group",
    )
    .await;
    assert!(
        db.message()
            .contains("tcp ports 443 to 80 are not a port range"),
        "{}",
        db.message()
    );

    // What passes the checks goes through, and nothing above reached AWS.
    assert_eq!(one::<i64>(&c, "select count(*) from infra.apply").await, 0);
    c.batch_execute(&format!("BEGIN; {TWO_VPCS} COMMIT;"))
        .await
        .unwrap();
    assert_eq!(
        one::<i64>(
            &c,
            "select count(*) from aws.subnet where subnet_id like 'subnet-%'"
        )
        .await,
        1
    );
}

/// The engine's own writes (a sync importing what AWS has) skip the
/// triggers that only return at once for it, and rows in no stack skip the
/// stack guard (schema 1040): PostgreSQL does not even call them. A user's
/// writes still meet every check.
#[tokio::test]
async fn the_engine_skips_the_checks_it_is_exempt_from_and_a_user_still_meets_them() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let engine = s.connect_engine().await;

    // What a sync writes: real ids, a subnet whose VPC is in another
    // region (the engine writes what AWS says), a rule, an instance.
    // PostgreSQL counts the PL/pgSQL calls of this transaction.
    engine
        .batch_execute(
            "BEGIN; SET LOCAL track_functions = 'pl';
             INSERT INTO aws.vpc (vpc_id, name, cidr_block) VALUES ('vpc-0e1', 'a', '10.10.0.0/16');
             INSERT INTO aws.subnet (subnet_id, name, region, vpc_id, cidr_block)
                  VALUES ('subnet-0e1', 's', 'us-west-2', 'vpc-0e1', '10.10.1.0/24');
             INSERT INTO aws.security_group (group_id, name, group_name, vpc_id)
                  VALUES ('sg-0e1', 'g', 'g', 'vpc-0e1');
             INSERT INTO aws.security_group_rule (security_group_rule_id, group_id, ip_protocol, from_port, to_port, cidr_ipv4)
                  VALUES ('sgr-0e1', 'sg-0e1', 'tcp', 443, 443, '0.0.0.0/0');
             UPDATE aws.vpc SET tags = '{\"team\": \"x\"}' WHERE vpc_id = 'vpc-0e1';
             INSERT INTO aws.instance (instance_id, image_id, state) VALUES ('i-0e1', 'ami-760aaa0f', 'stopped');",
        )
        .await
        .unwrap();
    let calls: Vec<(String, i64)> = engine
        .query(
            "SELECT funcname::text, calls FROM pg_stat_xact_user_functions \
             WHERE schemaname = 'infra' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    engine.batch_execute("ROLLBACK").await.unwrap();
    let called = |f: &str| calls.iter().any(|(n, _)| n == f);
    // The counter works: keep_secret still runs for the engine, on the one
    // table here with a write-only column (the instance's user_data).
    assert!(calls.contains(&("keep_secret".to_string(), 1)), "{calls:?}");
    for skipped in [
        "guard",
        "capture",
        "require_commit_path",
        "stack_declare",
        "stack_guard",
        "check_tags",
        "check_same_region",
        "check_subnet",
        "check_rule",
        "check_referenced_group",
    ] {
        assert!(!called(skipped), "{skipped} ran for the engine: {calls:?}");
    }

    // A user's rows meet the checks as before: the other region is refused.
    let c = s.connect().await;
    let db = refused(
        &c,
        TWO_VPCS,
        "INSERT INTO aws.subnet (name, region, vpc_id, cidr_block) SELECT 'w', 'us-west-2', vpc_id, '10.10.8.0/24' FROM aws.vpc WHERE name = 'a'",
    )
    .await;
    assert!(
        db.message().contains("is in region us-east-1"),
        "{}",
        db.message()
    );
    // And a column AWS assigns is still the user's to leave out (guard).
    let err = c
        .batch_execute("BEGIN; INSERT INTO aws.vpc (name, cidr_block, vpc_id) VALUES ('x', '10.30.0.0/16', 'vpc-0mine')")
        .await
        .expect_err("guard refuses an AWS-assigned id");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("428C9"),
        "{err:?}"
    );
}
