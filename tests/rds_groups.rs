//! DB subnet groups, parameter groups and parameters through infrasql
//! (issue #10). What AWS holds is read from moto with a raw client; what
//! infrasql sent, from the fault proxy in front of moto.
//!
//! moto 5.2.1 has no ResetDBParameterGroup (it answers 500), so where a
//! parameter is reset the proxy answers that one call as AWS does, and the
//! test checks the request. No test changes a subnet group's subnets in
//! place: moto forgets a group on ModifyDBSubnetGroup (see
//! providers/aws/src/rds/db_subnet_group.rs; its provider test checks the
//! request instead).

mod common;

use common::{one, sqlstate, Moto, TestServer};
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};
use tokio_postgres::Client;

/// A VPC, two subnets in two zones, a subnet group with both, a parameter
/// group with two parameters: one transaction.
const STACK: &str = "
BEGIN;
INSERT INTO aws.vpc (name, cidr_block) VALUES ('db', '10.80.0.0/16');
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'db-a', vpc_id, '10.80.1.0/24', 'us-east-1a' FROM aws.vpc;
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'db-b', vpc_id, '10.80.2.0/24', 'us-east-1b' FROM aws.vpc;
INSERT INTO aws.db_subnet_group (db_subnet_group_name, description, tags)
  VALUES ('app-db', 'app databases', '{\"team\": \"db\"}');
INSERT INTO aws.db_subnet_group_subnet (db_subnet_group_name, subnet_id)
  SELECT 'app-db', subnet_id FROM aws.subnet;
INSERT INTO aws.db_parameter_group (db_parameter_group_name, family, description)
  VALUES ('app-pg', 'postgres16', 'app settings');
INSERT INTO aws.db_parameter (db_parameter_group_name, parameter_name, parameter_value)
  VALUES ('app-pg', 'work_mem', '4096');
INSERT INTO aws.db_parameter (db_parameter_group_name, parameter_name, parameter_value, apply_method)
  VALUES ('app-pg', 'max_connections', '50', 'pending-reboot');
COMMIT;";

/// AWS's answer to ResetDBParameterGroup, which moto does not implement.
fn reset_answer(group: &str) -> String {
    format!(
        "<ResetDBParameterGroupResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
         <ResetDBParameterGroupResult><DBParameterGroupName>{group}</DBParameterGroupName>\
         </ResetDBParameterGroupResult><ResponseMetadata><RequestId>r-1</RequestId>\
         </ResponseMetadata></ResetDBParameterGroupResponse>"
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The values of a query-protocol body whose keys start with `prefix`.
fn sent(body: &str, prefix: &str) -> Vec<String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v.to_owned())
        .collect()
}

async fn strings(c: &Client, sql: &str) -> Vec<String> {
    c.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The subnets of a subnet group in AWS, sorted.
async fn subnets_in_aws(moto: &Moto, group: &str) -> Vec<String> {
    let out = moto
        .rds()
        .await
        .describe_db_subnet_groups()
        .db_subnet_group_name(group)
        .send()
        .await
        .unwrap();
    sorted(
        out.db_subnet_groups()
            .iter()
            .flat_map(|g| g.subnets())
            .filter_map(|s| s.subnet_identifier().map(str::to_owned))
            .collect(),
    )
}

/// A group's user parameters in AWS as `name=value (method)`, sorted.
async fn parameters_in_aws(moto: &Moto, group: &str) -> Vec<String> {
    let out = moto
        .rds()
        .await
        .describe_db_parameters()
        .db_parameter_group_name(group)
        .source("user")
        .send()
        .await
        .unwrap();
    sorted(
        out.parameters()
            .iter()
            .map(|p| {
                format!(
                    "{}={} ({})",
                    p.parameter_name().unwrap_or(""),
                    p.parameter_value().unwrap_or(""),
                    p.apply_method().map(|m| m.as_str()).unwrap_or("")
                )
            })
            .collect(),
    )
}

#[tokio::test]
async fn a_subnet_group_and_a_parameter_group_with_two_parameters_are_one_commit_then_changed_and_deleted(
) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();

    // The subnet group: both subnets (real ids, in two zones), in one call.
    let subnets = strings(&c, "SELECT subnet_id FROM aws.subnet ORDER BY subnet_id").await;
    assert_eq!(subnets.len(), 2);
    assert!(
        subnets.iter().all(|s| s.starts_with("subnet-")),
        "{subnets:?}"
    );
    assert_eq!(subnets_in_aws(&moto, "app-db").await, subnets);
    assert_eq!(
        strings(
            &c,
            "SELECT subnet_id FROM aws.db_subnet_group_subnet WHERE db_subnet_group_name = 'app-db' ORDER BY subnet_id"
        )
        .await,
        subnets,
        "the join rows follow the real subnet ids"
    );
    assert_eq!(proxy.calls("CreateDBSubnetGroup"), 1);
    assert_eq!(proxy.calls("ModifyDBSubnetGroup"), 0);
    let (vpc, group_vpc, status, arn): (String, String, String, String) = {
        let r = c
            .query_one(
                "SELECT v.vpc_id, g.vpc_id, g.status, g.arn FROM aws.db_subnet_group g, aws.vpc v",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    assert_eq!(group_vpc, vpc);
    assert_eq!(status, "Complete");
    assert!(arn.ends_with(":subgrp:app-db"), "{arn}");

    // The parameter group and its two parameters.
    assert_eq!(
        parameters_in_aws(&moto, "app-pg").await,
        [
            "max_connections=50 (pending-reboot)",
            "work_mem=4096 (immediate)"
        ]
    );
    assert_eq!(
        strings(&c, "SELECT parameter_id FROM aws.db_parameter ORDER BY 1").await,
        ["app-pg/max_connections", "app-pg/work_mem"]
    );

    // A new value in place: the same row, the same id, one modify.
    let modifies = proxy.calls("ModifyDBParameterGroup");
    c.batch_execute(
        "UPDATE aws.db_parameter SET parameter_value = '8192' WHERE parameter_name = 'work_mem'",
    )
    .await
    .unwrap();
    assert_eq!(proxy.calls("ModifyDBParameterGroup"), modifies + 1);
    assert_eq!(
        parameters_in_aws(&moto, "app-pg").await,
        [
            "max_connections=50 (pending-reboot)",
            "work_mem=8192 (immediate)"
        ]
    );
    assert_eq!(
        strings(&c, "SELECT parameter_id FROM aws.db_parameter ORDER BY 1").await,
        ["app-pg/max_connections", "app-pg/work_mem"]
    );

    // Neither group can be renamed: refused at the statement.
    for sql in [
        "UPDATE aws.db_subnet_group SET db_subnet_group_name = 'other'",
        "UPDATE aws.db_parameter_group SET db_parameter_group_name = 'other'",
    ] {
        let e = c.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("428C9"), "{sql}: {e}");
        let db = e.as_db_error().unwrap();
        assert!(
            db.message().contains("cannot be renamed"),
            "{}",
            db.message()
        );
        assert!(db.hint().is_some_and(|h| h.contains("INSERT")), "{db:?}");
    }

    // RDS keeps names in lower case: another spelling is refused at once.
    let e = c
        .batch_execute(
            "INSERT INTO aws.db_parameter_group (db_parameter_group_name, family, description) \
             VALUES ('App-PG', 'postgres16', 'x')",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("23514"), "{e}");

    // DELETE resets that one parameter, not the group.
    proxy.arm(Fault::on("ResetDBParameterGroup").with(Effect::Answer(reset_answer("app-pg"))));
    c.batch_execute("DELETE FROM aws.db_parameter WHERE parameter_name = 'max_connections'")
        .await
        .unwrap();
    let resets: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|call| call.action == "ResetDBParameterGroup")
        .collect();
    assert_eq!(resets.len(), 1);
    assert_eq!(sent(&resets[0].body, "DBParameterGroupName"), ["app-pg"]);
    assert_eq!(
        sent(&resets[0].body, "Parameters."),
        ["max_connections", "pending-reboot"]
    );
    assert!(sent(&resets[0].body, "ResetAllParameters").is_empty());
    assert_eq!(
        strings(&c, "SELECT parameter_id FROM aws.db_parameter").await,
        ["app-pg/work_mem"]
    );

    // Everything goes in one transaction: the group's last parameter is
    // reset before the group is deleted (children first), the subnet group
    // before its subnets.
    proxy.reset_log();
    c.batch_execute(
        "BEGIN;
         DELETE FROM aws.db_parameter_group;
         DELETE FROM aws.db_subnet_group;
         DELETE FROM aws.subnet;
         DELETE FROM aws.vpc;
         COMMIT;",
    )
    .await
    .unwrap();
    let order: Vec<String> = proxy
        .log()
        .into_iter()
        .map(|call| call.action)
        .filter(|a| {
            [
                "ResetDBParameterGroup",
                "DeleteDBParameterGroup",
                "DeleteDBSubnetGroup",
                "DeleteSubnet",
            ]
            .contains(&a.as_str())
        })
        .collect();
    let at = |a: &str| {
        order
            .iter()
            .position(|x| x == a)
            .unwrap_or_else(|| panic!("{a} in {order:?}"))
    };
    assert!(
        at("ResetDBParameterGroup") < at("DeleteDBParameterGroup"),
        "{order:?}"
    );
    assert!(at("DeleteDBSubnetGroup") < at("DeleteSubnet"), "{order:?}");
    let rds = moto.rds().await;
    let pgs = rds.describe_db_parameter_groups().send().await.unwrap();
    assert!(pgs.db_parameter_groups().is_empty(), "{pgs:?}");
    let sgs = rds.describe_db_subnet_groups().send().await.unwrap();
    assert!(sgs.db_subnet_groups().is_empty(), "{sgs:?}");
    for t in [
        "db_parameter",
        "db_parameter_group",
        "db_subnet_group",
        "db_subnet_group_subnet",
    ] {
        assert_eq!(
            one::<i64>(&c, &format!("SELECT count(*) FROM aws.{t}")).await,
            0,
            "aws.{t}"
        );
    }
}

#[tokio::test]
async fn sync_agrees_with_the_committed_groups_and_adopts_a_parameter_set_in_the_console() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();

    // What was committed is what sync reads: no drift on these tables.
    let summary: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    let drift =
        "SELECT coalesce(string_agg(table_name || '.' || coalesce(field, kind), ', '), '') \
                 FROM infra.drift WHERE table_name LIKE 'aws.db_%'";
    assert_eq!(one::<String>(&c, drift).await, "");

    // Set in the console: after a sync round it is a row.
    moto.rds()
        .await
        .modify_db_parameter_group()
        .db_parameter_group_name("app-pg")
        .parameters(
            infrasql_aws::aws_sdk_rds::types::Parameter::builder()
                .parameter_name("log_min_duration_statement")
                .parameter_value("250")
                .apply_method(infrasql_aws::aws_sdk_rds::types::ApplyMethod::Immediate)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let summary: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    let row = c
        .query_one(
            "SELECT parameter_id, db_parameter_group_name, parameter_value, apply_method \
             FROM aws.db_parameter WHERE parameter_name = 'log_min_duration_statement'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "app-pg/log_min_duration_statement");
    assert_eq!(row.get::<_, String>(1), "app-pg");
    assert_eq!(row.get::<_, String>(2), "250");
    assert_eq!(row.get::<_, String>(3), "immediate");
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM aws.db_parameter").await,
        3,
        "the two committed parameters are still rows"
    );
}

#[tokio::test]
async fn a_subnet_group_with_subnets_of_two_vpcs_is_refused_at_the_statement() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('a', '10.81.0.0/16'), ('b', '10.82.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
           SELECT 'in-' || name, vpc_id, replace(cidr_block::text, '0.0/16', '1.0/24')::cidr, 'us-east-1a'
           FROM aws.vpc;
         INSERT INTO aws.db_subnet_group (db_subnet_group_name, description) VALUES ('mixed', 'x');
         INSERT INTO aws.db_subnet_group_subnet (db_subnet_group_name, subnet_id)
           SELECT 'mixed', subnet_id FROM aws.subnet WHERE name = 'in-a';",
    )
    .await
    .unwrap();
    let e = c
        .batch_execute(
            "INSERT INTO aws.db_subnet_group_subnet (db_subnet_group_name, subnet_id)
             SELECT 'mixed', subnet_id FROM aws.subnet WHERE name = 'in-b'",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("23514"), "{e}");
    let db = e.as_db_error().unwrap();
    assert!(
        db.message()
            .starts_with("DB subnet group mixed: subnet \"in-b\""),
        "{}",
        db.message()
    );
    assert!(
        db.detail().is_some_and(|d| d.contains("different VPCs")),
        "{db:?}"
    );
    c.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn a_new_description_replaces_a_parameter_group_unless_parameters_use_it() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "INSERT INTO aws.db_parameter_group (db_parameter_group_name, family, description)
         VALUES ('solo', 'postgres16', 'first')",
    )
    .await
    .unwrap();

    // AWS cannot change a description: the group is deleted and created
    // again under its name (delete first: the name would collide).
    c.batch_execute("UPDATE aws.db_parameter_group SET description = 'second'")
        .await
        .unwrap();
    let groups = moto
        .rds()
        .await
        .describe_db_parameter_groups()
        .send()
        .await
        .unwrap();
    let described: Vec<(String, String)> = groups
        .db_parameter_groups()
        .iter()
        .map(|g| {
            (
                g.db_parameter_group_name().unwrap().to_owned(),
                g.description().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(described, [("solo".to_owned(), "second".to_owned())]);

    // With a parameter row it would leave the parameter behind: refused
    // before any AWS call.
    c.batch_execute(
        "INSERT INTO aws.db_parameter (db_parameter_group_name, parameter_name, parameter_value)
         VALUES ('solo', 'work_mem', '1024')",
    )
    .await
    .unwrap();
    let e = c
        .batch_execute("UPDATE aws.db_parameter_group SET description = 'third'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("2BP01"), "{e}");
    assert_eq!(
        one::<String>(&c, "SELECT description FROM aws.db_parameter_group").await,
        "second"
    );
}
