//! `infra.revert(apply_id)` and `infrasql revert` against a real server on
//! moto: a create, an update and a delete undone (checked in AWS), the
//! refusal when a later apply touched the same resource, a deleted
//! database that needs the opt-in and says its data is gone, quoting, and
//! the command's plan and `--yes`.

mod common;

use std::process::{Command, Output};

use common::{one, sqlstate, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::Filter;
use tokio_postgres::Client;

/// The id of the apply the last COMMIT made.
async fn last_apply(c: &Client) -> String {
    one(
        c,
        "SELECT apply_id FROM infra.apply ORDER BY started_at DESC LIMIT 1",
    )
    .await
}

async fn revert_sql(c: &Client, apply_id: &str) -> String {
    c.query_one("SELECT infra.revert($1)", &[&apply_id])
        .await
        .unwrap_or_else(|e| panic!("infra.revert({apply_id}): {e:?}"))
        .get(0)
}

/// Runs a revert script as a user would: in one transaction.
async fn run_script(c: &Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    c.batch_execute(&format!("BEGIN;\n{sql}\nCOMMIT;")).await
}

/// A VPC's tags in AWS, Name included.
async fn aws_vpc_tags(moto: &Moto, vpc_id: &str) -> Vec<(String, String)> {
    let out = moto
        .ec2()
        .await
        .describe_vpcs()
        .vpc_ids(vpc_id)
        .send()
        .await
        .unwrap();
    let mut tags: Vec<(String, String)> = out.vpcs()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .filter(|(k, _)| !k.starts_with("infrasql:"))
        .collect();
    tags.sort();
    tags
}

/// (subnet id, CIDR) of the subnets of a VPC in AWS.
async fn aws_subnets(moto: &Moto, vpc_id: &str) -> Vec<(String, String)> {
    let out = moto
        .ec2()
        .await
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .send()
        .await
        .unwrap();
    out.subnets()
        .iter()
        .map(|s| {
            (
                s.subnet_id().unwrap().to_owned(),
                s.cidr_block().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Whether AWS has the DB instance.
async fn rds_has(moto: &Moto, id: &str) -> bool {
    moto.rds()
        .await
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .is_ok_and(|o| !o.db_instances().is_empty())
}

#[tokio::test]
async fn a_create_an_update_and_a_delete_are_undone_in_aws() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;

    // A create: the revert deletes the VPC.
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('made', '10.81.0.0/16')")
        .await
        .unwrap();
    let created = last_apply(&c).await;
    let made: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'made'").await;
    assert!(moto.vpcs().await.contains(&made));
    let sql = revert_sql(&c, &created).await;
    assert!(
        sql.contains(&format!("DELETE FROM aws.vpc WHERE vpc_id = '{made}';")),
        "{sql}"
    );
    assert!(
        sql.contains(&format!(
            "SELECT set_config('infra.apply_source', 'revert {created}', true);"
        )),
        "{sql}"
    );
    assert!(
        !sql.contains("allow_replace = on"),
        "nothing is lost: {sql}"
    );
    run_script(&c, &sql).await.unwrap();
    assert!(
        !moto.vpcs().await.contains(&made),
        "the VPC is gone from AWS"
    );
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM aws.vpc WHERE name = 'made'").await,
        0
    );

    // An update, with a quote in the old value: the old name and tags come back.
    c.batch_execute(
        "INSERT INTO aws.vpc (name, cidr_block, tags) VALUES ('it''s mine', '10.82.0.0/16', '{\"env\": \"dev\"}')",
    )
    .await
    .unwrap();
    let vpc: String = one(
        &c,
        "SELECT vpc_id FROM aws.vpc WHERE cidr_block = '10.82.0.0/16'",
    )
    .await;
    c.batch_execute(&format!(
        "UPDATE aws.vpc SET name = 'renamed', tags = '{{\"env\": \"prod\"}}' WHERE vpc_id = '{vpc}'"
    ))
    .await
    .unwrap();
    let updated = last_apply(&c).await;
    assert_eq!(
        aws_vpc_tags(&moto, &vpc).await,
        [
            ("Name".into(), "renamed".into()),
            ("env".into(), "prod".into())
        ]
    );
    let sql = revert_sql(&c, &updated).await;
    assert!(
        sql.contains(&format!(
            "UPDATE aws.vpc SET name = 'it''s mine', tags = '{{\"env\": \"dev\"}}' WHERE vpc_id = '{vpc}';"
        )),
        "{sql}"
    );
    run_script(&c, &sql).await.unwrap();
    assert_eq!(
        aws_vpc_tags(&moto, &vpc).await,
        [
            ("Name".to_owned(), "it's mine".to_owned()),
            ("env".to_owned(), "dev".to_owned())
        ]
    );
    assert_eq!(
        one::<String>(
            &c,
            &format!("SELECT name FROM aws.vpc WHERE vpc_id = '{vpc}'")
        )
        .await,
        "it's mine"
    );

    // A delete: the subnet comes back with its recorded values, under a new id.
    c.batch_execute(&format!(
        "INSERT INTO aws.subnet (name, vpc_id, cidr_block) VALUES ('bob''s', '{vpc}', '10.82.1.0/24')"
    ))
    .await
    .unwrap();
    let old: String = one(&c, "SELECT subnet_id FROM aws.subnet WHERE name = 'bob''s'").await;
    c.batch_execute(&format!("DELETE FROM aws.subnet WHERE subnet_id = '{old}'"))
        .await
        .unwrap();
    let deleted = last_apply(&c).await;
    assert!(aws_subnets(&moto, &vpc).await.is_empty());
    let sql = revert_sql(&c, &deleted).await;
    assert!(sql.contains("INSERT INTO aws.subnet ("), "{sql}");
    assert!(sql.contains("'bob''s'"), "{sql}");
    assert!(
        !sql.contains("allow_replace = on"),
        "a subnet holds no data: {sql}"
    );
    run_script(&c, &sql).await.unwrap();
    let now = aws_subnets(&moto, &vpc).await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0].0, old, "a new subnet, with a new id");
    assert_eq!(now[0].1, "10.82.1.0/24");
    assert_eq!(
        one::<String>(&c, "SELECT subnet_id FROM aws.subnet WHERE name = 'bob''s'").await,
        now[0].0,
        "the row carries the new id"
    );
    // The revert is an apply of its own, which can be reverted in turn.
    let again = last_apply(&c).await;
    assert_ne!(again, deleted);
    assert!(revert_sql(&c, &again)
        .await
        .contains("DELETE FROM aws.subnet"));

    // A replace: undone by an UPDATE of the replace-forcing column, which
    // replaces the VPC again, back to its old CIDR.
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('moved', '10.86.0.0/16')")
        .await
        .unwrap();
    c.batch_execute("UPDATE aws.vpc SET cidr_block = '10.87.0.0/16' WHERE name = 'moved'")
        .await
        .unwrap();
    let replaced = last_apply(&c).await;
    let new_id: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'moved'").await;
    let sql = revert_sql(&c, &replaced).await;
    assert!(
        sql.contains(&format!(
            "UPDATE aws.vpc SET cidr_block = '10.86.0.0/16' WHERE vpc_id = '{new_id}';"
        )),
        "{sql}"
    );
    run_script(&c, &sql).await.unwrap();
    let back: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'moved'").await;
    assert_ne!(back, new_id);
    let cidrs: Vec<String> = moto
        .ec2()
        .await
        .describe_vpcs()
        .send()
        .await
        .unwrap()
        .vpcs()
        .iter()
        .filter(|v| {
            v.cidr_block()
                .is_some_and(|b| b.starts_with("10.86.") || b.starts_with("10.87."))
        })
        .map(|v| format!("{} {}", v.vpc_id().unwrap(), v.cidr_block().unwrap()))
        .collect();
    assert_eq!(cidrs, [format!("{back} 10.86.0.0/16")]);
}

#[tokio::test]
async fn a_later_apply_on_the_same_resource_blocks_the_revert_and_is_named() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('a', '10.83.0.0/16')")
        .await
        .unwrap();
    let first = last_apply(&c).await;
    c.batch_execute("UPDATE aws.vpc SET tags = '{\"owner\": \"ops\"}' WHERE name = 'a'")
        .await
        .unwrap();
    let second = last_apply(&c).await;

    let e = c
        .query_one("SELECT infra.revert($1)", &[&first])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"));
    let db = e.as_db_error().unwrap();
    assert!(db.message().contains(&second), "{}", db.message());
    assert!(db.message().contains("aws.vpc"), "{}", db.message());
    // The later one itself can be reverted.
    assert!(revert_sql(&c, &second)
        .await
        .contains("UPDATE aws.vpc SET tags = '{}'"));

    // An apply that did not succeed, and one that does not exist.
    let engine = s.connect_engine().await;
    engine
        .batch_execute(
            "INSERT INTO infra.apply (apply_id, status, username) VALUES ('apply-refused', 'failed', 'x')",
        )
        .await
        .unwrap();
    let e = c
        .query_one("SELECT infra.revert('apply-refused')", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"));
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("its status is failed"),
        "{e:?}"
    );
    let e = c
        .query_one("SELECT infra.revert('apply-nope')", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42704"));
}

#[tokio::test]
async fn a_deleted_database_comes_back_empty_only_with_the_opt_in() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    // In a security group: its join row is deleted with it and comes back.
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('db', '10.85.0.0/16');
         INSERT INTO aws.security_group (group_name, description, vpc_id)
           SELECT 'g1', 'g1', vpc_id FROM aws.vpc WHERE name = 'db';
         INSERT INTO aws.db_instance (db_instance_identifier, engine, db_instance_class,
             allocated_storage, master_username, master_user_password, skip_final_snapshot)
         VALUES ('shop', 'postgres', 'db.t3.micro', 20, 'admin', 'correct-horse', true);
         INSERT INTO aws.db_instance_security_group (db_instance_identifier, group_id)
           SELECT 'shop', group_id FROM aws.security_group WHERE group_name = 'g1';
         COMMIT;",
    )
    .await
    .unwrap();
    let g1: String = one(
        &c,
        "SELECT group_id FROM aws.security_group WHERE group_name = 'g1'",
    )
    .await;
    c.batch_execute("DELETE FROM aws.db_instance WHERE db_instance_identifier = 'shop'")
        .await
        .unwrap();
    let deleted = last_apply(&c).await;
    assert!(!rds_has(&moto, "shop").await);

    let sql = revert_sql(&c, &deleted).await;
    let header: Vec<&str> = sql.lines().take_while(|l| l.starts_with("--")).collect();
    let header = header.join("\n");
    assert!(header.contains("comes back empty"), "{sql}");
    assert!(header.contains("master_user_password"), "{sql}");
    assert!(!sql.contains("correct-horse"), "{sql}");
    assert!(sql.contains("INSERT INTO aws.db_instance ("), "{sql}");
    assert!(
        sql.contains(&format!(
            "INSERT INTO aws.db_instance_security_group (db_instance_identifier, group_id) VALUES ('shop', '{g1}');"
        )),
        "{sql}"
    );

    // The command says how to opt in, and plans the create with it.
    let o = revert_cmd(&s, &[&deleted]);
    assert_eq!(o.status.code(), Some(1));
    let err = common::stderr(&o);
    assert!(
        err.contains("55000") && err.contains("--allow-replace"),
        "{err}"
    );
    let o = revert_cmd(&s, &["--allow-replace", &deleted]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("1 to create, 0 to update, 0 to replace, 0 to delete"),
        "{out}"
    );
    assert!(common::stderr(&o).contains("comes back empty"));
    assert!(!rds_has(&moto, "shop").await, "the plan applied nothing");

    // Without the opt-in the script itself refuses, before any AWS call.
    let e = run_script(&c, &sql).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("55000"));
    assert!(
        e.as_db_error()
            .unwrap()
            .hint()
            .unwrap_or_default()
            .contains("infra.allow_replace = on"),
        "{e:?}"
    );
    c.batch_execute("ROLLBACK").await.unwrap();
    assert!(!rds_has(&moto, "shop").await);

    // With it (and the password the comment asks for), the database is back.
    c.batch_execute("SET infra.allow_replace = on")
        .await
        .unwrap();
    run_script(
        &c,
        &format!(
            "{sql}\nUPDATE aws.db_instance SET master_user_password = 'new-horse' \
             WHERE db_instance_identifier = 'shop';"
        ),
    )
    .await
    .unwrap();
    assert!(rds_has(&moto, "shop").await);
    let groups: Vec<String> = moto
        .rds()
        .await
        .describe_db_instances()
        .db_instance_identifier("shop")
        .send()
        .await
        .unwrap()
        .db_instances()[0]
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
        .collect();
    assert_eq!(groups, [g1], "back in its security group");
    assert_eq!(
        one::<String>(
            &c,
            "SELECT db_instance_class FROM aws.db_instance WHERE db_instance_identifier = 'shop'"
        )
        .await,
        "db.t3.micro"
    );
}

#[tokio::test]
async fn a_changed_set_of_groups_is_set_back_in_place() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('app', '10.88.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'app-a', vpc_id, '10.88.1.0/24' FROM aws.vpc;
         INSERT INTO aws.security_group (group_name, description, vpc_id)
           SELECT g, g, vpc_id FROM aws.vpc, unnest(ARRAY['g1', 'g2']) AS g;
         INSERT INTO aws.instance (name, image_id, subnet_id) SELECT 'web', 'ami-760aaa0f', subnet_id FROM aws.subnet;
         INSERT INTO aws.instance_security_group (instance_id, group_id)
           SELECT i.instance_id, g.group_id FROM aws.instance i, aws.security_group g WHERE g.group_name = 'g1';
         COMMIT;",
    )
    .await
    .unwrap();
    let web: String = one(
        &c,
        "SELECT instance_id FROM aws.instance WHERE name = 'web'",
    )
    .await;
    let g1: String = one(
        &c,
        "SELECT group_id FROM aws.security_group WHERE group_name = 'g1'",
    )
    .await;
    let g2: String = one(
        &c,
        "SELECT group_id FROM aws.security_group WHERE group_name = 'g2'",
    )
    .await;
    c.batch_execute(&format!(
        "BEGIN;
         DELETE FROM aws.instance_security_group WHERE group_id = '{g1}';
         INSERT INTO aws.instance_security_group (instance_id, group_id) VALUES ('{web}', '{g2}');
         COMMIT;"
    ))
    .await
    .unwrap();
    let swapped = last_apply(&c).await;
    let attached = || async {
        let out = moto
            .ec2()
            .await
            .describe_instances()
            .instance_ids(&web)
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .flat_map(|i| i.security_groups())
            .filter_map(|g| g.group_id().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(attached().await, std::slice::from_ref(&g2));

    let sql = revert_sql(&c, &swapped).await;
    assert!(
        sql.contains(&format!(
            "DELETE FROM aws.instance_security_group WHERE instance_id = '{web}' AND group_id = '{g2}';"
        )),
        "{sql}"
    );
    run_script(&c, &sql).await.unwrap();
    assert_eq!(
        attached().await,
        [g1],
        "the old group is attached again, in place"
    );
    assert_eq!(
        one::<String>(
            &c,
            "SELECT instance_id FROM aws.instance WHERE name = 'web'"
        )
        .await,
        web
    );
}

fn revert_cmd(s: &TestServer, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg("revert")
        .args(["--url", &s.conn_string()])
        .args(args)
        .output()
        .expect("run infrasql revert")
}

#[tokio::test]
async fn the_command_prints_the_plan_and_applies_it_with_yes() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('cli', '10.84.0.0/16')")
        .await
        .unwrap();
    let apply = last_apply(&c).await;
    let vpc: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'cli'").await;

    let o = revert_cmd(&s, &[&apply]);
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("0 to create, 0 to update, 0 to replace, 1 to delete"),
        "{out}"
    );
    assert!(out.contains(&vpc), "{out}");
    assert!(common::stderr(&o).contains(&format!("-- Undoes apply {apply}")));
    assert!(moto.vpcs().await.contains(&vpc), "the plan applied nothing");

    let o = revert_cmd(&s, &["--yes", &apply]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("applying 0 to create, 0 to update, 0 to replace, 1 to delete"),
        "the engine's notices: {out}"
    );
    assert!(out.contains("applied 1 actions"), "{out}");
    assert!(out.contains(&format!("reverted {apply}")), "{out}");
    assert!(
        !moto.vpcs().await.contains(&vpc),
        "the VPC is gone from AWS"
    );

    // Reverting it again: the later apply (the revert) touched the VPC.
    let o = revert_cmd(&s, &[&apply]);
    assert_eq!(o.status.code(), Some(1));
    let err = common::stderr(&o);
    assert!(err.contains("55000"), "{err}");
    assert!(err.contains("later apply"), "{err}");
}
