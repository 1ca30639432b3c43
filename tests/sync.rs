//! The sync loop: rows follow the real cloud; drift is a table.
//! Out-of-band changes are made with direct AWS API calls, as a person in
//! the console would.

mod common;

use std::time::{Duration, Instant};

use common::{one, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Tag};
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};
use tokio_postgres::Client;

async fn sync(c: &Client) -> serde_json::Value {
    one(c, "select infra.sync()").await
}

/// A VPC with a subnet and a security group, made through infrasql.
async fn stack(c: &Client) -> (String, String, String) {
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('app', '10.30.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'app-a', vpc_id, '10.30.1.0/24' FROM aws.vpc WHERE name = 'app';
         INSERT INTO aws.security_group (group_name, description, vpc_id) SELECT 'app', 'app', vpc_id FROM aws.vpc WHERE name = 'app';
         INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4)
           SELECT group_id, 'tcp', 22, 22, '10.0.0.0/8' FROM aws.security_group WHERE group_name = 'app';
         COMMIT;",
    )
    .await
    .unwrap();
    (
        one(c, "select vpc_id from aws.vpc where name = 'app'").await,
        one(c, "select subnet_id from aws.subnet where name = 'app-a'").await,
        one(
            c,
            "select group_id from aws.security_group where group_name = 'app'",
        )
        .await,
    )
}

/// The four out-of-band changes of the issue.
async fn console_changes(moto: &Moto, vpc: &str, subnet: &str, sg: &str) -> String {
    let ec2 = moto.ec2().await;
    ec2.create_tags()
        .resources(vpc)
        .tags(Tag::builder().key("owner").value("console").build())
        .send()
        .await
        .unwrap();
    ec2.authorize_security_group_ingress()
        .group_id(sg)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(3389)
                .to_port(3389)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.delete_subnet().subnet_id(subnet).send().await.unwrap();
    ec2.create_security_group()
        .group_name("stranger")
        .description("made in the console")
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_prepopulated_account_is_imported_on_the_first_sync_without_drift() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.40.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_owned();
    ec2.create_security_group()
        .group_name("existing")
        .description("x")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let summary = sync(&c).await;
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    assert_eq!(
        one::<i64>(
            &c,
            &format!("select count(*) from aws.vpc where vpc_id = '{vpc}'")
        )
        .await,
        1
    );
    assert_eq!(
        one::<i64>(&c, "select count(*) from aws.vpc where is_default").await,
        1,
        "moto's default VPC, marked"
    );
    assert!(
        one::<i64>(&c, "select count(*) from aws.subnet").await >= 1,
        "default subnets"
    );
    assert_eq!(
        one::<i64>(
            &c,
            "select count(*) from aws.security_group where group_name = 'existing'"
        )
        .await,
        1
    );
    assert!(
        one::<i64>(
            &c,
            "select count(*) from aws.security_group where group_name = 'default'"
        )
        .await
            >= 2
    );
    assert_eq!(
        one::<i64>(&c, "select count(*) from infra.drift").await,
        0,
        "an import is not drift"
    );
    assert_eq!(
        one::<i64>(&c, "select count(*) from aws.vpc where synced_at is null").await,
        0
    );
    // sync_status has a row per region and type.
    // Global types (IAM, Route53) have one row, region 'global'.
    let rows: i64 = one(&c, "select count(*) from infra.sync_status where region in ('us-east-1', 'global') and last_error is null and api_calls >= 1").await;
    let tables: i64 = one(
        &c,
        "select count(distinct table_name) from infra.resource_column",
    )
    .await;
    assert!(tables >= 11, "{tables}");
    assert_eq!(rows, tables);
    // Each type's calls are its own, though all listings run at once: one
    // page each for this small account.
    let off: Vec<String> = c
        .query(
            "select table_name || ': ' || api_calls from infra.sync_status where api_calls <> 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(off.is_empty(), "tables not at one call: {off:?}");
    // Imported rows are real rows: infrasql can change them.
    c.batch_execute(&format!(
        "UPDATE aws.vpc SET name = 'adopted' WHERE vpc_id = '{vpc}'"
    ))
    .await
    .unwrap();
    let tags = ec2
        .describe_vpcs()
        .vpc_ids(&vpc)
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .tags()
        .to_vec();
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("Name") && t.value() == Some("adopted")));
}

#[tokio::test]
async fn instances_launched_outside_infrasql_are_imported_and_a_default_subnet_is_learnt() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.45.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.45.1.0/24")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_owned();
    let mut groups = Vec::new();
    for name in ["web", "admin"] {
        groups.push(
            ec2.create_security_group()
                .group_name(name)
                .description(name)
                .vpc_id(&vpc)
                .send()
                .await
                .unwrap()
                .group_id()
                .unwrap()
                .to_owned(),
        );
    }
    groups.sort();
    let console = ec2
        .run_instances()
        .image_id("ami-760aaa0f")
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .security_group_ids(&groups[1])
        .security_group_ids(&groups[0])
        .tag_specifications(
            infrasql_aws::aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(infrasql_aws::aws_sdk_ec2::types::ResourceType::Instance)
                .tags(Tag::builder().key("Name").value("console").build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_owned();

    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let summary = sync(&c).await;
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    let row = c
        .query_one(
            "select name, state, subnet_id, \
                    (select jsonb_agg(group_id order by group_id) from aws.instance_security_group j \
                     where j.instance_id = i.instance_id), vpc_id \
             from aws.instance i where instance_id = $1",
            &[&console],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("console"));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("running"));
    assert_eq!(row.get::<_, Option<String>>(2), Some(subnet.clone()));
    // Several groups: one join row each.
    assert_eq!(
        row.get::<_, Option<serde_json::Value>>(3),
        Some(serde_json::json!(groups))
    );
    assert_eq!(row.get::<_, Option<String>>(4), Some(vpc.clone()));

    // Launched through infrasql without a subnet: NULL until sync names the
    // default subnet it went to.
    c.batch_execute(
        "INSERT INTO aws.instance (name, image_id) VALUES ('defaults', 'ami-760aaa0f')",
    )
    .await
    .unwrap();
    let (id, subnet_before): (String, Option<String>) = {
        let r = c
            .query_one(
                "select instance_id, subnet_id from aws.instance where name = 'defaults'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(subnet_before, None);
    sync(&c).await;
    let learnt: Option<String> = one(
        &c,
        &format!("select subnet_id from aws.instance where instance_id = '{id}'"),
    )
    .await;
    let real = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .subnet_id()
        .unwrap()
        .to_owned();
    assert_eq!(learnt, Some(real));
    let drift = "select count(*) from infra.drift where table_name = 'aws.instance'";
    assert_eq!(one::<i64>(&c, drift).await, 1, "the subnet, adopted once");
    // Stable: nothing drifts on later rounds.
    sync(&c).await;
    assert_eq!(one::<i64>(&c, drift).await, 1);

    // Terminated outside infrasql: the row goes.
    ec2.terminate_instances()
        .instance_ids(&console)
        .send()
        .await
        .unwrap();
    sync(&c).await;
    assert_eq!(
        one::<i64>(
            &c,
            &format!("select count(*) from aws.instance where instance_id = '{console}'")
        )
        .await,
        0
    );
}

#[tokio::test]
async fn with_adopt_rows_take_the_clouds_values_and_drift_is_recorded() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    sync(&c).await;
    let (vpc, subnet, sg) = stack(&c).await;
    let stranger = console_changes(&moto, &vpc, &subnet, &sg).await;
    sync(&c).await;

    let tags: serde_json::Value = one(
        &c,
        &format!("select tags from aws.vpc where vpc_id = '{vpc}'"),
    )
    .await;
    assert_eq!(tags, serde_json::json!({"owner": "console"}));
    assert_eq!(
        one::<i64>(
            &c,
            &format!("select count(*) from aws.subnet where subnet_id = '{subnet}'")
        )
        .await,
        0
    );
    assert_eq!(
        one::<i64>(
            &c,
            &format!("select count(*) from aws.security_group where group_id = '{stranger}'")
        )
        .await,
        1
    );
    assert_eq!(one::<i64>(&c, &format!("select count(*) from aws.security_group_rule where group_id = '{sg}' and from_port = 3389")).await, 1);

    let drift = c
        .query("select table_name, resource_id, kind, coalesce(field, ''), resolution from infra.drift order by drift_id", &[])
        .await
        .unwrap();
    let drift: Vec<(String, String, String, String, String)> = drift
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let has = |t: &str, id: &str, kind: &str, field: &str| {
        drift.iter().any(|d| {
            d.0 == t
                && (id.is_empty() || d.1 == id)
                && d.2 == kind
                && d.3 == field
                && d.4 == "adopted"
        })
    };
    assert!(has("aws.vpc", &vpc, "changed", "tags"), "{drift:#?}");
    assert!(has("aws.subnet", &subnet, "disappeared", ""), "{drift:#?}");
    assert!(
        has("aws.security_group", &stranger, "appeared", ""),
        "{drift:#?}"
    );
    assert!(
        has("aws.security_group_rule", "", "appeared", ""),
        "{drift:#?}"
    );
    let known: serde_json::Value = one(
        &c,
        "select known_value from infra.drift where field = 'tags'",
    )
    .await;
    assert_eq!(known, serde_json::json!({}));
    let resolved: i64 = one(
        &c,
        "select count(*) from infra.drift where resolved_at is null",
    )
    .await;
    assert_eq!(resolved, 0);
    // Sync rewrites are not user intent: nothing to apply afterwards.
    c.batch_execute("BEGIN").await.unwrap();
    assert_eq!(one::<i64>(&c, "select count(*) from infra.plan").await, 0);
    c.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn with_revert_the_cloud_is_put_back_and_with_report_the_rows_keep_their_values() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    sync(&c).await;
    let (vpc, subnet, sg) = stack(&c).await;
    c.batch_execute(
        "INSERT INTO infra.drift_policy (table_name, policy) VALUES
           ('aws.vpc', 'revert'), ('aws.security_group_rule', 'revert'),
           ('aws.subnet', 'report'), ('aws.security_group', 'report')",
    )
    .await
    .unwrap();
    let stranger = console_changes(&moto, &vpc, &subnet, &sg).await;
    sync(&c).await;

    // Revert: the tag is gone again and the extra rule revoked, in AWS.
    let ec2 = moto.ec2().await;
    let v = ec2
        .describe_vpcs()
        .vpc_ids(&vpc)
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .clone();
    assert!(
        !v.tags().iter().any(|t| t.key() == Some("owner")),
        "{:?}",
        v.tags()
    );
    let g = ec2
        .describe_security_groups()
        .group_ids(&sg)
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .clone();
    assert!(
        !g.ip_permissions()
            .iter()
            .any(|p| p.from_port() == Some(3389)),
        "{:?}",
        g.ip_permissions()
    );
    assert!(
        g.ip_permissions().iter().any(|p| p.from_port() == Some(22)),
        "the desired rule stays"
    );
    let tags: serde_json::Value = one(
        &c,
        &format!("select tags from aws.vpc where vpc_id = '{vpc}'"),
    )
    .await;
    assert_eq!(tags, serde_json::json!({}));
    let reverted: Vec<String> = c
        .query("select table_name || ' ' || kind || ' ' || coalesce(field, '') || ' ' || coalesce(known_value::text, '') || ' -> ' || coalesce(actual_value::text, '') from infra.drift where resolution = 'reverted'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        reverted
            .iter()
            .any(|d| d.starts_with("aws.vpc changed tags")),
        "{reverted:#?}"
    );
    assert!(
        reverted
            .iter()
            .any(|d| d.starts_with("aws.security_group_rule appeared")
                && d.contains("\"from_port\": 3389")),
        "{reverted:#?}"
    );
    // Revert means "only what the rows say": rules AWS added by itself to
    // groups made outside infrasql (default egress) are revoked too.
    assert!(
        reverted
            .iter()
            .all(|d| d.starts_with("aws.vpc") || d.starts_with("aws.security_group_rule")),
        "{reverted:#?}"
    );
    let journaled: i64 = one(
        &c,
        "select count(*) from infra.apply where source = 'sync-revert' and status = 'succeeded'",
    )
    .await;
    assert!(journaled >= 1, "reverts go through the journal");

    // Report: the deleted subnet's row stays, the stranger is not imported, drift is open.
    assert_eq!(
        one::<i64>(
            &c,
            &format!("select count(*) from aws.subnet where subnet_id = '{subnet}'")
        )
        .await,
        1
    );
    assert_eq!(
        one::<i64>(
            &c,
            &format!("select count(*) from aws.security_group where group_id = '{stranger}'")
        )
        .await,
        0
    );
    let open_subnet: i64 = one(&c, &format!("select count(*) from infra.drift where resolution = 'open' and kind = 'disappeared' and resource_id = '{subnet}'")).await;
    assert_eq!(open_subnet, 1);
    let open_sg: i64 = one(&c, &format!("select count(*) from infra.drift where resolution = 'open' and kind = 'appeared' and resource_id = '{stranger}'")).await;
    assert_eq!(open_sg, 1);
    // Open drift is not repeated round after round.
    let open: i64 = one(
        &c,
        "select count(*) from infra.drift where resolution = 'open'",
    )
    .await;
    sync(&c).await;
    assert_eq!(
        one::<i64>(
            &c,
            "select count(*) from infra.drift where resolution = 'open'"
        )
        .await,
        open
    );
    let filters = Filter::builder().name("vpc-id").values(&vpc).build();
    let subnets = ec2
        .describe_subnets()
        .filters(filters)
        .send()
        .await
        .unwrap();
    assert!(subnets.subnets().is_empty(), "report does not recreate");
}

#[tokio::test]
async fn a_row_locked_by_an_open_transaction_is_left_alone_until_it_ends() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    sync(&c).await;
    let (vpc, _, _) = stack(&c).await;
    let user = s.connect().await;
    user.batch_execute(&format!(
        "BEGIN; UPDATE aws.vpc SET name = 'editing' WHERE vpc_id = '{vpc}'"
    ))
    .await
    .unwrap();
    let ec2 = moto.ec2().await;
    ec2.create_tags()
        .resources(&vpc)
        .tags(Tag::builder().key("owner").value("console").build())
        .send()
        .await
        .unwrap();

    let started = Instant::now();
    sync(&c).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "sync never waits on a user's lock"
    );
    assert_eq!(
        one::<i64>(
            &c,
            "select count(*) from infra.drift where table_name = 'aws.vpc'"
        )
        .await,
        0
    );
    // The user's uncommitted work is intact.
    assert_eq!(
        one::<String>(
            &user,
            &format!("select name from aws.vpc where vpc_id = '{vpc}'")
        )
        .await,
        "editing"
    );
    user.batch_execute("ROLLBACK").await.unwrap();

    sync(&c).await;
    let tags: serde_json::Value = one(
        &c,
        &format!("select tags from aws.vpc where vpc_id = '{vpc}'"),
    )
    .await;
    assert_eq!(tags, serde_json::json!({"owner": "console"}));
    assert_eq!(one::<i64>(&c, "select count(*) from infra.drift where table_name = 'aws.vpc' and resolution = 'adopted'").await, 1);
}

#[tokio::test]
async fn one_type_failing_does_not_stop_the_others() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    sync(&c).await;
    // Break one table for the engine: every row written to it now fails.
    let engine = s.connect_engine().await;
    engine
        .batch_execute("ALTER TABLE aws.key_pair ADD CONSTRAINT broken CHECK (false) NOT VALID")
        .await
        .unwrap();
    let ec2 = moto.ec2().await;
    ec2.create_key_pair()
        .key_name("console-key")
        .send()
        .await
        .unwrap();
    ec2.create_vpc()
        .cidr_block("10.50.0.0/16")
        .send()
        .await
        .unwrap();
    let summary = sync(&c).await;
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary}");
    assert_eq!(errors[0]["table"], "aws.key_pair");
    assert_eq!(
        one::<i64>(
            &c,
            "select count(*) from aws.vpc where cidr_block = '10.50.0.0/16'"
        )
        .await,
        1,
        "VPCs synced"
    );
    let err: String = one(
        &c,
        "select last_error from infra.sync_status where table_name = 'aws.key_pair'",
    )
    .await;
    assert!(err.contains("broken"), "{err}");
    // Fixed, it catches up next round.
    engine
        .batch_execute("ALTER TABLE aws.key_pair DROP CONSTRAINT broken")
        .await
        .unwrap();
    let summary = sync(&c).await;
    assert_eq!(summary["errors"], serde_json::json!([]));
    assert_eq!(
        one::<i64>(
            &c,
            "select count(*) from aws.key_pair where key_name = 'console-key'"
        )
        .await,
        1
    );
    // A failed round does not make the next one a first import: the key
    // made outside infrasql since the last good round is drift.
    assert_eq!(
        one::<i64>(
            &c,
            "select count(*) from infra.drift where table_name = 'aws.key_pair' and kind = 'appeared'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn with_a_short_interval_drift_shows_up_without_calling_sync() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &["--sync-interval", "1"]);
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('watched', '10.60.0.0/16')")
        .await
        .unwrap();
    let vpc: String = one(&c, "select vpc_id from aws.vpc where name = 'watched'").await;
    // Let the first (import) round pass.
    let deadline = Instant::now() + Duration::from_secs(30);
    while one::<i64>(&c, "select count(*) from infra.sync_status where table_name = 'aws.vpc' and last_finished is not null").await == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ec2 = moto.ec2().await;
    ec2.create_tags()
        .resources(&vpc)
        .tags(Tag::builder().key("touched").value("yes").build())
        .send()
        .await
        .unwrap();
    let changed = Instant::now();
    loop {
        let n: i64 = one(
            &c,
            &format!(
                "select count(*) from infra.drift where resource_id = '{vpc}' and field = 'tags'"
            ),
        )
        .await;
        if n == 1 {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(20),
            "no drift row after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_region_and_type_locked_by_another_node_is_skipped() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    sync(&c).await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('shared', '10.70.0.0/16')")
        .await
        .unwrap();
    let vpc: String = one(&c, "select vpc_id from aws.vpc where name = 'shared'").await;
    let ec2 = moto.ec2().await;
    ec2.create_tags()
        .resources(&vpc)
        .tags(Tag::builder().key("k").value("v").build())
        .send()
        .await
        .unwrap();
    // Another node holds aws.vpc in us-east-1 (the same lock a node takes).
    let other_node = s.connect_engine().await;
    other_node
        .batch_execute("SELECT pg_advisory_lock(hashtext('infrasql.sync.aws.vpc.us-east-1'))")
        .await
        .unwrap();
    sync(&c).await;
    assert_eq!(
        one::<i64>(
            &c,
            "select count(*) from infra.drift where table_name = 'aws.vpc'"
        )
        .await,
        0
    );
    let subnet_rounds: i64 = one(&c, "select count(*) from infra.sync_status where table_name = 'aws.subnet' and last_finished > now() - interval '1 minute'").await;
    assert_eq!(subnet_rounds, 1, "other types still sync");
    other_node
        .batch_execute("SELECT pg_advisory_unlock(hashtext('infrasql.sync.aws.vpc.us-east-1'))")
        .await
        .unwrap();
    sync(&c).await;
    assert_eq!(
        one::<i64>(
            &c,
            "select count(*) from infra.drift where table_name = 'aws.vpc'"
        )
        .await,
        1
    );
}

/// Polls `sql` (a boolean) until it holds; panics after `secs` seconds.
async fn until(c: &Client, sql: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !one::<bool>(c, sql).await {
        assert!(Instant::now() < deadline, "not within {secs} s: {sql}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_type_aws_denies_backs_off_while_the_others_keep_syncing() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    proxy.arm(Fault::on("DescribeKeyPairs").with(Effect::Error {
        status: 403,
        code: "UnauthorizedOperation".into(),
        message: "You are not authorized to perform this operation.".into(),
    }));
    let s = TestServer::start_at(&proxy.url, &["--sync-interval", "1"]);
    let c = s.connect().await;
    let status =
        "from infra.sync_status where table_name = 'aws.key_pair' and region = 'us-east-1'";
    // Rounds come every second; a failed pair waits 2, 4, 8 s...: by the
    // third failure the window is long enough to watch rounds skip it.
    until(
        &c,
        &format!("select exists (select 1 {status} and failures >= 3)"),
        60,
    )
    .await;
    let r = c
        .query_one(
            &format!("select last_error_class, last_error, failures, next_attempt_at > now(), now()::text {status}"),
            &[],
        )
        .await
        .unwrap();
    let calls = proxy.calls("DescribeKeyPairs");
    let (class, error, failures, ahead, read_at): (
        Option<String>,
        Option<String>,
        i32,
        bool,
        String,
    ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
    assert_eq!(class.as_deref(), Some("denied"));
    assert!(error.unwrap_or_default().contains("UnauthorizedOperation"));
    assert!(ahead, "next_attempt_at is in the future");
    assert!(calls >= 3, "{calls}");

    // The other tables keep syncing: a VPC made outside shows up.
    let vpc = moto
        .ec2()
        .await
        .create_vpc()
        .cidr_block("10.80.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_owned();
    until(
        &c,
        &format!("select exists (select 1 from aws.vpc where vpc_id = '{vpc}')"),
        30,
    )
    .await;
    // A whole round that started after the read, while the pair was
    // backing off, did not list key pairs.
    until(
        &c,
        &format!("select last_started > '{read_at}' and last_finished > last_started from infra.sync_status where table_name = 'aws.vpc' and region = 'us-east-1'"),
        30,
    )
    .await;
    let r = c
        .query_one(
            &format!("select (select last_started from infra.sync_status where table_name = 'aws.vpc' and region = 'us-east-1') < next_attempt_at, failures {status}"),
            &[],
        )
        .await
        .unwrap();
    assert!(
        r.get::<_, bool>(0),
        "no round ran while the pair backed off: a slow machine?"
    );
    assert_eq!(r.get::<_, i32>(1), failures);
    assert_eq!(
        proxy.calls("DescribeKeyPairs"),
        calls,
        "not called before next_attempt_at"
    );
    let others: Vec<String> = c
        .query(
            "select table_name from infra.sync_status where table_name <> 'aws.key_pair' and last_error is not null",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(others.is_empty(), "{others:?}");

    // A user asking tries now, backoff or not, and sees the class.
    let summary = one::<serde_json::Value>(&c, "select infra.sync('aws.key_pair')").await;
    assert_eq!(summary["errors"][0]["class"], "denied", "{summary}");
    assert!(proxy.calls("DescribeKeyPairs") > calls);
    // Allowed again: one success resets the backoff.
    proxy.clear();
    let summary = one::<serde_json::Value>(&c, "select infra.sync('aws.key_pair')").await;
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    let reset: bool = one(
        &c,
        &format!(
            "select failures = 0 and next_attempt_at is null and last_error_class is null {status}"
        ),
    )
    .await;
    assert!(reset);
}
