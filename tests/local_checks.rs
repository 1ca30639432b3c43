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
