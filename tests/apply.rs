//! COMMIT as apply: rows in aws.* tables against a real moto server,
//! checked through direct AWS API calls, not only through rows.

mod common;

use std::time::Duration;

use common::{one, sqlstate, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::Filter;
use tokio_postgres::{AsyncMessage, Client};

const PUBLIC_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3lH+cEOSZq0IPnhvFPLF+UzVk0T9UH68YvnF4xFvaQ00ctg8oK1TLVhEbHe9kNDSQ8UH7s1rxPJaqiFldCg/aeTu0V9PWscwUBZ+BGxJMp8DDG7qnh62pTOg/ZQQ/uqDyEHBk5Z/9LWRzq+EgjLAe6DwVm4OFGXG4XRNoKszMxh6D4BrJysx7inZKjhBV03x961G1s25YrzvU+i4zInSDVprgDv8i6r9ZmvZjC28pmLSTrVizN16uKJmAbHF7R9sslMvi3uO1FcGZCI5teccoYU3SXSBZmIH6ORvo8lb6J7JAlFOreyrJyXTpepgtisvV4oYuYjAQ46mB655ohWx5 test@infrasql";
/// Looks like a key; AWS (and moto) reject its format.
const BAD_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3F6yK0zd8JNSmFGsGSNRvvvm6zg/B9VRk5iB8f3zM0g8J2F1t3nJ5wGxwD1yY0U8Yx9l8eJt7XbQGQ0VcU6BO6JZ0ThXgq3yqY5XK6FTd1Lx6JYb3qZ5d2FZ7l7Jq8yQn5hF3b3B0sJ2r3w3c9aJx7tG8B1kV2e6pQ2yE4J5dKq7x8Z9v0L1m2N3o4P5q6R7s8T9u0V1w2X3y4Z5a6B7c8D9e0F1g2H3i4J5k6L7m8N9o0P1q2R3s4T5u6V7w8X9y0Z1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R9s0T1u2V3w4X5y6Z7a8B9c0 test@infrasql";

/// The full network of the issue, in one transaction.
const NETWORK: &str = "
BEGIN;
INSERT INTO aws.vpc (name, cidr_block, tags) VALUES ('main', '10.0.0.0/16', '{\"env\": \"test\"}');
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'a', vpc_id, '10.0.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'main';
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'b', vpc_id, '10.0.2.0/24', 'us-east-1b' FROM aws.vpc WHERE name = 'main';
INSERT INTO aws.internet_gateway (name, vpc_id) SELECT 'gw', vpc_id FROM aws.vpc WHERE name = 'main';
INSERT INTO aws.route_table (name, vpc_id) SELECT 'public', vpc_id FROM aws.vpc WHERE name = 'main';
INSERT INTO aws.route (route_table_id, destination_cidr_block, gateway_id)
  SELECT rt.route_table_id, '0.0.0.0/0', gw.internet_gateway_id
  FROM aws.route_table rt, aws.internet_gateway gw WHERE rt.name = 'public' AND gw.name = 'gw';
INSERT INTO aws.route_table_association (route_table_id, subnet_id)
  SELECT rt.route_table_id, s.subnet_id FROM aws.route_table rt, aws.subnet s WHERE rt.name = 'public';
INSERT INTO aws.security_group (name, group_name, description, vpc_id)
  SELECT 'web', 'web', 'web servers', vpc_id FROM aws.vpc WHERE name = 'main';
INSERT INTO aws.security_group_rule (group_id, is_egress, ip_protocol, from_port, to_port, cidr_ipv4, description)
  SELECT group_id, false, 'tcp', 443, 443, '0.0.0.0/0', 'https' FROM aws.security_group WHERE group_name = 'web';
INSERT INTO aws.security_group_rule (group_id, is_egress, ip_protocol, cidr_ipv4)
  SELECT group_id, true, '-1', '0.0.0.0/0' FROM aws.security_group WHERE group_name = 'web';
INSERT INTO aws.key_pair (key_name, public_key_material) VALUES ('deploy', 'PUBLIC_KEY');
INSERT INTO aws.elastic_ip (name) VALUES ('ip');
COMMIT;
";

fn network_sql() -> String {
    NETWORK.replace("PUBLIC_KEY", PUBLIC_KEY)
}

fn vpc_filter(id: &str) -> Filter {
    Filter::builder().name("vpc-id").values(id).build()
}

/// A client that also collects NOTICE messages.
async fn connect_with_notices(
    s: &TestServer,
) -> (Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (client, mut conn) = tokio_postgres::connect(&s.conn_string(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        use futures_util::StreamExt;
        while let Some(Ok(m)) = stream.next().await {
            if let AsyncMessage::Notice(n) = m {
                let _ = tx.send(n.message().to_owned());
            }
        }
    });
    (client, rx)
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(m) = rx.try_recv() {
        out.push(m);
    }
    out
}

#[tokio::test]
async fn a_full_network_in_one_transaction_exists_in_aws_and_then_goes_away() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let (c, mut notices) = connect_with_notices(&s).await;
    c.batch_execute(&network_sql()).await.unwrap();

    // Progress was reported per action, with timings.
    let lines = drain(&mut notices);
    assert!(
        lines.iter().any(|l| l.contains("applying 13 to create")),
        "{lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(": started ")).count(),
        13,
        "{lines:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(": done")).count(),
        13,
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains(" ms")));

    // Rows carry AWS's ids, and references follow them.
    let vpc_id: String = one(&c, "select vpc_id from aws.vpc where name = 'main'").await;
    assert!(vpc_id.starts_with("vpc-"), "{vpc_id}");
    let state: String = one(&c, "select state from aws.vpc where name = 'main'").await;
    assert_eq!(state, "available");
    let subnet_vpcs: Vec<String> = c
        .query(
            "select vpc_id from aws.subnet where vpc_id = $1",
            &[&vpc_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(subnet_vpcs.len(), 2);
    let pending: i64 = one(
        &c,
        "select (select count(*) from aws.vpc where vpc_id like 'pending-%') \
              + (select count(*) from aws.subnet where subnet_id like 'pending-%' or vpc_id like 'pending-%') \
              + (select count(*) from aws.route where gateway_id like 'pending-%' or route_table_id like 'pending-%')",
    )
    .await;
    assert_eq!(pending, 0, "no provisional id survives the write-back");

    // And AWS agrees, asked directly.
    let ec2 = moto.ec2().await;
    let vpc = &ec2
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .clone();
    assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
    assert!(vpc
        .tags()
        .iter()
        .any(|t| t.key() == Some("env") && t.value() == Some("test")));
    assert!(
        vpc.tags()
            .iter()
            .any(|t| t.key() == Some("infrasql:apply-id")),
        "tagged with its apply"
    );
    let subnets = ec2
        .describe_subnets()
        .filters(vpc_filter(&vpc_id))
        .send()
        .await
        .unwrap();
    let mut cidrs: Vec<_> = subnets
        .subnets()
        .iter()
        .filter_map(|s| s.cidr_block())
        .collect();
    cidrs.sort();
    assert_eq!(cidrs, vec!["10.0.1.0/24", "10.0.2.0/24"]);
    let igws = ec2
        .describe_internet_gateways()
        .filters(
            Filter::builder()
                .name("attachment.vpc-id")
                .values(&vpc_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(igws.internet_gateways().len(), 1, "the gateway is attached");
    let igw_id = igws.internet_gateways()[0]
        .internet_gateway_id()
        .unwrap()
        .to_owned();
    let rts = ec2
        .describe_route_tables()
        .filters(vpc_filter(&vpc_id))
        .send()
        .await
        .unwrap();
    let public = rts
        .route_tables()
        .iter()
        .find(|rt| {
            rt.tags()
                .iter()
                .any(|t| t.key() == Some("Name") && t.value() == Some("public"))
        })
        .expect("the public route table");
    assert!(public
        .routes()
        .iter()
        .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")
            && r.gateway_id() == Some(igw_id.as_str())));
    assert_eq!(
        public
            .associations()
            .iter()
            .filter(|a| a.subnet_id().is_some())
            .count(),
        2
    );
    let sgs = ec2
        .describe_security_groups()
        .filters(vpc_filter(&vpc_id))
        .filters(Filter::builder().name("group-name").values("web").build())
        .send()
        .await
        .unwrap();
    let sg = &sgs.security_groups()[0];
    assert!(sg
        .ip_permissions()
        .iter()
        .any(|p| p.from_port() == Some(443)
            && p.ip_ranges()
                .iter()
                .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))));
    assert_eq!(
        sg.ip_permissions_egress().len(),
        1,
        "exactly the egress rule we wrote"
    );
    let keys = ec2
        .describe_key_pairs()
        .key_names("deploy")
        .send()
        .await
        .unwrap();
    assert_eq!(keys.key_pairs().len(), 1);
    let eip_id: String = one(
        &c,
        "select allocation_id from aws.elastic_ip where name = 'ip'",
    )
    .await;
    let addrs = ec2
        .describe_addresses()
        .allocation_ids(&eip_id)
        .send()
        .await
        .unwrap();
    assert_eq!(addrs.addresses().len(), 1);

    // Delete the whole stack in one transaction (children first, as SQL
    // wants): 13 resources, more than the mass-delete guard lets through
    // unasked, so the session says it means it.
    c.batch_execute(
        "BEGIN;
         SET LOCAL infra.allow_mass_delete = on;
         DELETE FROM aws.route_table_association; DELETE FROM aws.route;
         DELETE FROM aws.route_table WHERE name = 'public';
         DELETE FROM aws.security_group_rule WHERE group_id IN (SELECT group_id FROM aws.security_group WHERE group_name = 'web');
         DELETE FROM aws.security_group WHERE group_name = 'web';
         DELETE FROM aws.internet_gateway WHERE name = 'gw';
         DELETE FROM aws.subnet WHERE vpc_id IN (SELECT vpc_id FROM aws.vpc WHERE name = 'main');
         DELETE FROM aws.vpc WHERE name = 'main';
         DELETE FROM aws.key_pair WHERE key_name = 'deploy';
         DELETE FROM aws.elastic_ip WHERE name = 'ip';
         COMMIT;",
    )
    .await
    .unwrap();
    assert!(moto.vpcs().await.is_empty());
    assert!(ec2
        .describe_key_pairs()
        .send()
        .await
        .unwrap()
        .key_pairs()
        .is_empty());
    assert!(ec2
        .describe_addresses()
        .send()
        .await
        .unwrap()
        .addresses()
        .is_empty());
    let gws = ec2.describe_internet_gateways().send().await.unwrap();
    assert!(gws
        .internet_gateways()
        .iter()
        .all(|g| g.internet_gateway_id() != Some(igw_id.as_str())));
}

#[tokio::test]
async fn an_instance_is_launched_into_a_new_network_and_terminated_with_it() {
    use infrasql_aws::aws_sdk_ec2::types::InstanceAttributeName;
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    // Everything by provisional ids, in one transaction.
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('app', '10.40.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
           SELECT 'app-a', vpc_id, '10.40.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'app';
         INSERT INTO aws.security_group (name, group_name, description, vpc_id)
           SELECT 'web', 'web', 'web servers', vpc_id FROM aws.vpc WHERE name = 'app';
         INSERT INTO aws.instance (name, image_id, instance_type, subnet_id, user_data, tags)
           SELECT 'web-1', 'ami-760aaa0f', 't3.micro', s.subnet_id,
                  E'#!/bin/sh\\necho secret-sauce\\n', '{\"role\": \"web\"}'
           FROM aws.subnet s WHERE s.name = 'app-a';
         INSERT INTO aws.instance_security_group (instance_id, group_id)
           SELECT i.instance_id, g.group_id FROM aws.instance i, aws.security_group g
           WHERE i.name = 'web-1' AND g.group_name = 'web';
         COMMIT;",
    )
    .await
    .unwrap();

    let row = c
        .query_one(
            "select i.instance_id, i.state, i.user_data, i.subnet_id = s.subnet_id, \
                    (select array_agg(j.group_id) from aws.instance_security_group j where j.instance_id = i.instance_id) = ARRAY[g.group_id], true, \
                    i.vpc_id = s.vpc_id, host(i.private_ip_address), i.availability_zone, i.launch_time is not null \
             from aws.instance i, aws.subnet s, aws.security_group g \
             where i.name = 'web-1' and s.name = 'app-a' and g.group_name = 'web'",
            &[],
        )
        .await
        .unwrap();
    let id: String = row.get(0);
    assert!(id.starts_with("i-"), "{id}");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("running"));
    assert_eq!(
        row.get::<_, Option<String>>(2),
        None,
        "user data is write-only"
    );
    for (col, what) in [(3, "subnet"), (4, "group"), (5, "all groups"), (6, "vpc")] {
        assert_eq!(row.get::<_, Option<bool>>(col), Some(true), "{what}");
    }
    assert!(row.get::<_, String>(7).starts_with("10.40.1."));
    assert_eq!(
        row.get::<_, Option<String>>(8).as_deref(),
        Some("us-east-1a")
    );
    assert_eq!(row.get::<_, Option<bool>>(9), Some(true));
    let subnet_id: String = one(&c, "select subnet_id from aws.subnet where name = 'app-a'").await;
    let group_id: String = one(
        &c,
        "select group_id from aws.security_group where group_name = 'web'",
    )
    .await;
    let vpc_id: String = one(&c, "select vpc_id from aws.vpc where name = 'app'").await;

    // AWS agrees, asked directly.
    let ec2 = moto.ec2().await;
    let i = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .clone();
    assert_eq!(i.subnet_id(), Some(subnet_id.as_str()));
    assert_eq!(i.instance_type().map(|t| t.as_str()), Some("t3.micro"));
    assert_eq!(
        i.security_groups()
            .iter()
            .filter_map(|g| g.group_id())
            .collect::<Vec<_>>(),
        vec![group_id.as_str()]
    );
    for (k, v) in [("Name", "web-1"), ("role", "web")] {
        assert!(
            i.tags()
                .iter()
                .any(|t| t.key() == Some(k) && t.value() == Some(v)),
            "{k}"
        );
    }
    assert!(i
        .tags()
        .iter()
        .any(|t| t.key() == Some("infrasql:apply-id")));
    let data = ec2
        .describe_instance_attribute()
        .instance_id(&id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD
        .decode(data.user_data().and_then(|v| v.value()).unwrap())
        .unwrap();
    assert_eq!(data, b"#!/bin/sh\necho secret-sauce\n");
    // The secret reached AWS and nowhere else infrasql keeps.
    let leaked: i64 = one(
        &c,
        "select count(*) from infra.apply_action \
         where coalesce(before::text, '') || coalesce(after::text, '') like '%secret-sauce%'",
    )
    .await;
    assert_eq!(leaked, 0);

    // Delete everything in one transaction: the instance is terminated
    // before its group, subnet and VPC go.
    c.batch_execute(
        "BEGIN;
         DELETE FROM aws.instance WHERE name = 'web-1';
         DELETE FROM aws.security_group WHERE group_name = 'web';
         DELETE FROM aws.subnet WHERE name = 'app-a';
         DELETE FROM aws.vpc WHERE name = 'app';
         COMMIT;",
    )
    .await
    .unwrap();
    let i = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .clone();
    assert_eq!(
        i.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("terminated")
    );
    assert!(moto.vpcs().await.is_empty());
    // A filter on a VPC that is gone matches nothing: an empty answer, not an error.
    let groups = ec2
        .describe_security_groups()
        .filters(vpc_filter(&vpc_id))
        .send()
        .await
        .unwrap();
    assert!(groups.security_groups().is_empty(), "{groups:?}");
    assert_eq!(one::<i64>(&c, "select count(*) from aws.instance").await, 0);
    let order: Vec<String> = c
        .query(
            "select table_name from infra.apply_action a join infra.apply p using (apply_id) \
             where a.action = 'delete' order by p.started_at desc, a.step limit 4",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(order[0], "aws.instance", "children first: {order:?}");
}

#[tokio::test]
async fn tags_change_in_place_and_a_cidr_change_replaces() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('v', '10.1.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 's', vpc_id, '10.1.1.0/24' FROM aws.vpc;
         COMMIT;",
    )
    .await
    .unwrap();
    let vpc_id: String = one(&c, "select vpc_id from aws.vpc").await;
    let subnet_id: String = one(&c, "select subnet_id from aws.subnet").await;

    // Tags: update in place, same id.
    c.batch_execute("UPDATE aws.vpc SET tags = '{\"team\": \"net\"}', name = 'renamed'")
        .await
        .unwrap();
    let ec2 = moto.ec2().await;
    let vpc = ec2
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .clone();
    assert!(vpc
        .tags()
        .iter()
        .any(|t| t.key() == Some("team") && t.value() == Some("net")));
    assert!(vpc
        .tags()
        .iter()
        .any(|t| t.key() == Some("Name") && t.value() == Some("renamed")));
    assert_eq!(
        one::<String>(&c, "select vpc_id from aws.vpc").await,
        vpc_id
    );

    // CIDR: a replace. New subnet, old one gone, row follows.
    c.batch_execute("UPDATE aws.subnet SET cidr_block = '10.1.2.0/24'")
        .await
        .unwrap();
    let new_id: String = one(&c, "select subnet_id from aws.subnet").await;
    assert_ne!(new_id, subnet_id);
    let subnets = ec2
        .describe_subnets()
        .filters(vpc_filter(&vpc_id))
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = subnets
        .subnets()
        .iter()
        .map(|s| (s.subnet_id().unwrap(), s.cidr_block().unwrap()))
        .collect();
    assert_eq!(ids, vec![(new_id.as_str(), "10.1.2.0/24")]);
}

#[tokio::test]
async fn a_failed_commit_undoes_everything_in_aws_and_in_the_tables() {
    let moto = Moto::start();
    // One call at a time: the subnet is created before the group is
    // refused, so there is a VPC and a subnet to undo.
    let s = TestServer::start_on(&moto, &["--aws-concurrency", "1"]);
    let c = s.connect().await;
    // Every new VPC comes with a group named "default" that no row shows
    // yet, so only AWS can refuse this one (overlaps and the like are
    // refused at the statement, see tests/local_checks.rs).
    let err = c
        .batch_execute(
            "BEGIN;
             INSERT INTO aws.vpc (name, cidr_block) VALUES ('doomed', '10.2.0.0/16');
             INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'one', vpc_id, '10.2.1.0/24' FROM aws.vpc;
             INSERT INTO aws.security_group (name, group_name, vpc_id) SELECT 'taken', 'default', vpc_id FROM aws.vpc;
             COMMIT;",
        )
        .await
        .unwrap_err();
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(db.code().code(), "IX001", "AWS refused: {}", db.message());
    assert!(
        db.message().contains("InvalidGroup.Duplicate"),
        "{}",
        db.message()
    );
    assert!(
        db.message().contains("aws.security_group"),
        "{}",
        db.message()
    );
    let detail = db.detail().unwrap_or_default();
    assert!(
        detail.contains("Undone:") && detail.contains("aws.vpc"),
        "{detail}"
    );

    assert!(moto.vpcs().await.is_empty(), "the VPC was deleted again");
    let ec2 = moto.ec2().await;
    let subnets = ec2.describe_subnets().send().await.unwrap();
    assert!(
        subnets
            .subnets()
            .iter()
            .all(|s| s.default_for_az() == Some(true)),
        "no subnet left behind"
    );
    assert_eq!(one::<i64>(&c, "select count(*) from aws.vpc").await, 0);
    assert_eq!(one::<i64>(&c, "select count(*) from aws.subnet").await, 0);
    // The apply is journaled, as failed, with its undone actions.
    let status: String = one(
        &c,
        "select status from infra.apply order by started_at desc limit 1",
    )
    .await;
    assert_eq!(status, "failed");
    let undone: i64 = one(
        &c,
        "select count(*) from infra.apply_action where status = 'undone'",
    )
    .await;
    assert!(undone >= 2, "vpc and first subnet undone, got {undone}");

    // An invalid request is told apart from a refusal.
    let err = c
        .batch_execute(&format!(
            "INSERT INTO aws.key_pair (key_name, public_key_material) VALUES ('bad', '{BAD_KEY}')"
        ))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("22023"), "{err:?}");
}

#[tokio::test]
async fn dry_run_shows_the_plan_and_applies_nothing() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let (c, mut notices) = connect_with_notices(&s).await;
    c.batch_execute("SET infra.dry_run = on").await.unwrap();
    let r = c
        .simple_query(
            "BEGIN; INSERT INTO aws.vpc (name, cidr_block) VALUES ('dry', '10.3.0.0/16');
             INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'x', vpc_id, '10.3.1.0/24' FROM aws.vpc;
             COMMIT;",
        )
        .await
        .unwrap();
    assert!(!r.is_empty());
    // The connection task forwards a notice before the answer that follows it.
    let lines = drain(&mut notices);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("dry run: plan: 2 to create")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("1. + create aws.vpc \"dry\"")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("2. + create aws.subnet \"x\"")),
        "{lines:#?}"
    );
    assert!(moto.vpcs().await.is_empty());
    assert_eq!(one::<i64>(&c, "select count(*) from aws.vpc").await, 0);
    // Autocommit statements are dry too.
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('dry2', '10.4.0.0/16')")
        .await
        .unwrap();
    assert!(moto.vpcs().await.is_empty());
    assert_eq!(one::<i64>(&c, "select count(*) from aws.vpc").await, 0);
}

#[tokio::test]
async fn infra_plan_previews_the_transaction_as_rows() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('old', '10.5.0.0/16')")
        .await
        .unwrap();
    let old_id: String = one(&c, "select vpc_id from aws.vpc").await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('new', '10.6.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'sn', vpc_id, '10.6.1.0/24' FROM aws.vpc WHERE name = 'new';
         UPDATE aws.vpc SET tags = '{\"k\": \"v\"}' WHERE name = 'old';",
    )
    .await
    .unwrap();
    let rows = c
        .query("select step, action, \"table\", resource_id, name, region, changes::text, depends_on from infra.plan", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let actions: Vec<(i32, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let vpc_step = actions
        .iter()
        .find(|a| a.2 == "aws.vpc" && a.1 == "create")
        .unwrap()
        .0;
    let subnet = rows
        .iter()
        .find(|r| r.get::<_, String>(2) == "aws.subnet")
        .unwrap();
    assert_eq!(
        subnet.get::<_, Vec<i32>>(7),
        vec![vpc_step],
        "the subnet waits for its VPC"
    );
    let update = rows
        .iter()
        .find(|r| r.get::<_, String>(1) == "update")
        .unwrap();
    assert_eq!(update.get::<_, String>(3), old_id);
    assert_eq!(update.get::<_, String>(5), "us-east-1");
    let changes: serde_json::Value = serde_json::from_str(&update.get::<_, String>(6)).unwrap();
    assert_eq!(
        changes,
        serde_json::json!({"tags": {"before": {}, "after": {"k": "v"}}})
    );
    // The preview follows the transaction as it changes.
    c.batch_execute("DELETE FROM aws.subnet WHERE name = 'sn'")
        .await
        .unwrap();
    assert_eq!(one::<i64>(&c, "select count(*) from infra.plan").await, 2);
    c.batch_execute("ROLLBACK").await.unwrap();
    // Outside a transaction the plan is empty, and nothing was applied.
    assert_eq!(one::<i64>(&c, "select count(*) from infra.plan").await, 0);
    assert_eq!(moto.vpcs().await, vec![old_id]);
}

#[tokio::test]
async fn concurrent_sessions_commit_disjoint_changes_and_serialise_on_one_row() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let a = s.connect().await;
    let b = s.connect().await;
    let (ra, rb) = tokio::join!(
        a.batch_execute(
            "BEGIN; INSERT INTO aws.vpc (name, cidr_block) VALUES ('a', '10.7.0.0/16'); COMMIT"
        ),
        b.batch_execute(
            "BEGIN; INSERT INTO aws.vpc (name, cidr_block) VALUES ('b', '10.8.0.0/16'); COMMIT"
        ),
    );
    ra.unwrap();
    rb.unwrap();
    assert_eq!(moto.vpcs().await.len(), 2);

    // Same row: the second UPDATE waits for the first COMMIT's row lock.
    a.batch_execute("BEGIN; UPDATE aws.vpc SET tags = '{\"by\": \"a\"}' WHERE name = 'a'")
        .await
        .unwrap();
    let b_task = {
        let conn = s.conn_string();
        tokio::spawn(async move {
            let b = common::connect(&conn).await.unwrap();
            b.batch_execute(
                "UPDATE aws.vpc SET tags = tags || '{\"also\": \"b\"}' WHERE name = 'a'",
            )
            .await
        })
    };
    let engine = s.connect_engine().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while one::<i64>(
        &engine,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%\"also\"%'",
    )
    .await
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "b never waited for a lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!b_task.is_finished(), "b waits on a's row lock");
    a.batch_execute("COMMIT").await.unwrap();
    b_task.await.unwrap().unwrap();
    let tags: serde_json::Value = one(&a, "select tags from aws.vpc where name = 'a'").await;
    assert_eq!(tags, serde_json::json!({"by": "a", "also": "b"}));
    let ec2 = moto.ec2().await;
    let id: String = one(&a, "select vpc_id from aws.vpc where name = 'a'").await;
    let vpc = ec2
        .describe_vpcs()
        .vpc_ids(&id)
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .clone();
    assert!(vpc.tags().iter().any(|t| t.key() == Some("by")));
    assert!(vpc.tags().iter().any(|t| t.key() == Some("also")));
}

#[tokio::test]
async fn cloud_assigned_columns_are_read_only_and_bad_values_fail_before_any_aws_call() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let e = c
        .batch_execute(
            "INSERT INTO aws.vpc (cidr_block, state) VALUES ('10.9.0.0/16', 'available')",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("428C9"));
    assert!(
        e.as_db_error().unwrap().message().contains("\"state\""),
        "{e:?}"
    );
    let e = c
        .batch_execute(
            "INSERT INTO aws.vpc (vpc_id, cidr_block) VALUES ('vpc-mine', '10.9.0.0/16')",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("428C9"), "{e:?}");
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('ro', '10.9.0.0/16')")
        .await
        .unwrap();
    let e = c
        .batch_execute("UPDATE aws.vpc SET owner_id = 'me'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("428C9"));
    assert!(e.as_db_error().unwrap().message().contains("owner_id"));

    let calls_before = moto.vpcs().await.len();
    for (sql, code) in [
        ("INSERT INTO aws.vpc (cidr_block) VALUES ('not a cidr')", "22P02"),
        ("INSERT INTO aws.vpc (cidr_block) VALUES ('10.0.0.0/8')", "23514"),
        ("INSERT INTO aws.vpc (cidr_block, instance_tenancy) VALUES ('10.1.0.0/16', 'shared')", "23514"),
        ("INSERT INTO aws.vpc (name) VALUES ('no cidr')", "23502"),
        ("INSERT INTO aws.subnet (vpc_id, cidr_block) VALUES ('vpc-nope', '10.0.0.0/24')", "23503"),
        (
            "INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4) \
             SELECT 'sg-x', 'tcp', 80, 70000, '0.0.0.0/0'",
            "23514",
        ),
        ("INSERT INTO aws.vpc (cidr_block, tags) VALUES ('10.1.0.0/16', '[1]')", "23514"),
    ] {
        let e = c.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some(code), "{sql}: {e:?}");
    }
    assert_eq!(
        moto.vpcs().await.len(),
        calls_before,
        "no AWS call was made"
    );
}

#[tokio::test]
async fn autocommit_applies_and_bypassing_infrasql_is_refused_by_the_database() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.execute(
        "INSERT INTO aws.vpc (name, cidr_block) VALUES ($1, $2::text::cidr)",
        &[&"auto", &"10.10.0.0/16"],
    )
    .await
    .unwrap();
    assert_eq!(moto.vpcs().await.len(), 1);
    let id: String = one(&c, "select vpc_id from aws.vpc").await;
    assert!(id.starts_with("vpc-"));

    // Straight to the backend, as the same user: the database refuses.
    let direct = s.connect_direct().await;
    let e = direct
        .batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('sneaky', '10.11.0.0/16')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("IX100"), "{e:?}");
    assert!(e
        .as_db_error()
        .unwrap()
        .message()
        .contains("must be committed through infrasql"));
    let e = direct
        .batch_execute("BEGIN; DELETE FROM aws.vpc; COMMIT")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("IX100"), "{e:?}");
    // Nor can the seal be forged.
    let e = direct
        .batch_execute("BEGIN; SELECT infra.seal('0000'); DELETE FROM aws.vpc; COMMIT")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e:?}");
    direct.batch_execute("ROLLBACK").await.ok();
    assert_eq!(one::<i64>(&c, "select count(*) from aws.vpc").await, 1);
    assert_eq!(moto.vpcs().await.len(), 1);
}

#[tokio::test]
async fn an_apply_lost_in_a_crash_is_found_by_its_journal_and_tag_and_undone() {
    use infrasql_aws::aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let ec2 = moto.ec2().await;
    // What a process killed during CreateVpc leaves: a tagged VPC in AWS, a
    // `started` journal row, and a client transaction that never committed.
    let orphan = ec2
        .create_vpc()
        .cidr_block("10.20.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(
                    Tag::builder()
                        .key("infrasql:apply-id")
                        .value("apply-crashed")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_owned();
    let engine = s.connect_engine().await;
    engine.batch_execute("BEGIN").await.unwrap();
    let xid: String = one(&engine, "select pg_current_xact_id()::text").await;
    engine.batch_execute("ROLLBACK").await.unwrap();
    engine
        .execute(
            "INSERT INTO infra.apply (apply_id, status, username, actions, xid) VALUES ('apply-crashed', 'running', 'tester', 1, $1::text::xid8)",
            &[&xid],
        )
        .await
        .unwrap();
    engine
        .batch_execute(
            "INSERT INTO infra.apply_action (apply_id, step, action, table_name, resource_id, region, status) \
             VALUES ('apply-crashed', 1, 'create', 'aws.vpc', 'pending-vpc-lost', 'us-east-1', 'started')",
        )
        .await
        .unwrap();
    // A normal apply is marked succeeded once its COMMIT is known to have happened.
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('kept', '10.21.0.0/16')")
        .await
        .unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let crashed: String = one(
            &engine,
            "select status from infra.apply where apply_id = 'apply-crashed'",
        )
        .await;
        let normal: String = one(
            &engine,
            "select status from infra.apply where apply_id <> 'apply-crashed'",
        )
        .await;
        if crashed == "recovered" && normal == "succeeded" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "crashed={crashed} normal={normal}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let left = moto.vpcs().await;
    assert!(!left.contains(&orphan), "the orphaned VPC was deleted");
    assert_eq!(left.len(), 1, "the committed VPC stays: {left:?}");
    let action: String = one(
        &engine,
        "select status from infra.apply_action where apply_id = 'apply-crashed'",
    )
    .await;
    assert_eq!(action, "undone");
}
