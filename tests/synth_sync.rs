//! The synthetic EC2 endpoint of the 100k benchmark (`bench/synth_ec2.py`,
//! `bench/sync_100k.sh`) at CI size: infrasql imports all it serves through
//! the SDK's own parsing, the rows hold its values, and a second round
//! changes nothing. Also `--sync-tables`: a round covers only the tables
//! named, and a name that is no table refuses to start.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{one, TestServer};

const TABLES: &str = "aws.vpc,aws.subnet,aws.security_group,aws.security_group_rule,aws.instance";

/// `bench/synth_ec2.py` on a free port; killed on drop.
struct Synth {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Synth {
    /// `vpcs` VPCs (100 resources each), pages of `page` items.
    fn start(vpcs: u32, page: u32) -> Synth {
        let dir = common::temp_dir();
        let port_file = dir.path().join("port");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/synth_ec2.py");
        let child = Command::new("python3")
            .arg(script)
            .args(["--vpcs", &vpcs.to_string(), "--page", &page.to_string()])
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 bench/synth_ec2.py");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "synth_ec2.py did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Synth {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests served so far, by action (`GET /_synth/stats`).
    fn actions(&self) -> serde_json::Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "GET /_synth/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let body = out.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str::<serde_json::Value>(body).unwrap()["actions"].clone()
    }
}

impl Drop for Synth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn count(c: &tokio_postgres::Client, table: &str) -> i64 {
    one(c, &format!("select count(*) from {table}")).await
}

#[tokio::test]
async fn the_synthetic_endpoint_is_imported_whole_and_a_second_round_changes_nothing() {
    // 3 VPCs: 300 resources; pages of 50 make every listing but the VPCs'
    // follow nextToken.
    let synth = Synth::start(3, 50);
    let s = TestServer::start_at(
        &synth.url(),
        &["--sync-tables", TABLES, "--sync-regions", "us-east-1"],
    );
    let c = s.connect().await;
    let summary: serde_json::Value = one(&c, "select infra.sync()").await;
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    for (table, n) in [
        ("aws.vpc", 3),
        ("aws.subnet", 27),
        ("aws.security_group", 120),
        ("aws.security_group_rule", 120),
        ("aws.instance", 30),
        // Every instance has its own group, every other one the default too.
        ("aws.instance_security_group", 45),
    ] {
        assert_eq!(count(&c, table).await, n, "{table}");
    }
    // Only the watched tables had a round.
    let synced: Vec<String> = c
        .query("select table_name from infra.sync_status order by 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        synced,
        [
            "aws.instance",
            "aws.security_group",
            "aws.security_group_rule",
            "aws.subnet",
            "aws.vpc"
        ]
    );
    // What the SDK parsed is what the endpoint serves.
    let row: String = one(
        &c,
        "select concat_ws(' ', cidr_block, cidr_blocks::text, instance_tenancy, is_default, name, tags::text) \
         from aws.vpc where vpc_id = 'vpc-00000000000000001'",
    )
    .await;
    assert_eq!(
        row,
        r#"10.1.0.0/16 {10.1.0.0/16} default f synth-1 {"bench": "synth"}"#
    );
    let row: String = one(
        &c,
        "select concat_ws(' ', vpc_id, cidr_block, availability_zone, availability_zone_id, state, subnet_arn) \
         from aws.subnet where subnet_id = 'subnet-0000000000000000a'",
    )
    .await;
    assert_eq!(
        row,
        "vpc-00000000000000001 10.1.1.0/24 us-east-1b use1-az2 available \
         arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0000000000000000a"
    );
    let row: String = one(
        &c,
        "select concat_ws(' ', group_name, vpc_id, owner_id) from aws.security_group \
         where group_id = 'sg-00000000000000028'",
    )
    .await;
    assert_eq!(row, "default vpc-00000000000000001 123456789012");
    // A rule from the VPC's default group; an all-traffic egress rule has no ports.
    let row: String = one(
        &c,
        "select concat_ws(' ', group_id, is_egress, ip_protocol, from_port, to_port, \
         coalesce(cidr_ipv4::text, '-'), referenced_group_id, description) \
         from aws.security_group_rule where security_group_rule_id = 'sgr-00000000000000003'",
    )
    .await;
    assert_eq!(
        row,
        "sg-00000000000000003 f tcp 22 22 - sg-00000000000000000 synthetic"
    );
    let row: String = one(
        &c,
        "select concat_ws(' ', is_egress, ip_protocol, coalesce(from_port::text, 'null'), cidr_ipv4) \
         from aws.security_group_rule where security_group_rule_id = 'sgr-00000000000000002'",
    )
    .await;
    assert_eq!(row, "t -1 null 0.0.0.0/0");
    let row: String = one(
        &c,
        "select concat_ws(' ', subnet_id, vpc_id, state, instance_type, availability_zone, \
         private_ip_address, root_volume_size, root_volume_type, launch_time at time zone 'UTC') \
         from aws.instance where instance_id = 'i-0000000000000000b'",
    )
    .await;
    assert_eq!(
        row,
        "subnet-0000000000000000a vpc-00000000000000001 running t3.micro us-east-1b \
         10.1.1.5 8 gp3 2026-11-01 00:00:00"
    );
    let groups: String = one(
        &c,
        "select string_agg(group_id, ' ' order by group_id) from aws.instance_security_group \
         where instance_id = 'i-0000000000000000a'",
    )
    .await;
    assert_eq!(groups, "sg-00000000000000028 sg-00000000000000029");

    let summary: serde_json::Value = one(&c, "select infra.sync()").await;
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    assert_eq!(count(&c, "infra.drift").await, 0, "nothing changed");
    assert_eq!(count(&c, "aws.security_group_rule").await, 120);
    // Two rounds; pages of 50: groups and rules 3 pages each, instances and
    // volumes 1 (both ask for more per page), subnets 1, VPCs 1.
    assert_eq!(
        synth.actions(),
        serde_json::json!({
            "DescribeVpcs": 2,
            "DescribeSubnets": 2,
            "DescribeSecurityGroups": 6,
            "DescribeSecurityGroupRules": 6,
            "DescribeInstances": 2,
            "DescribeVolumes": 2,
        })
    );
}

#[test]
fn sync_tables_naming_no_table_refuses_to_start() {
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let err = TestServer::start_in(
        &data,
        &[
            "--aws-endpoint-url",
            "http://127.0.0.1:9",
            "--sync-tables",
            "aws.vpc,aws.vcp",
        ],
    )
    .err()
    .expect("refused");
    assert!(
        err.contains("--sync-tables: no resource table aws.vcp"),
        "{err}"
    );
    let err = TestServer::start_in(&data, &["--sync-tables", "aws.vpc,"])
        .err()
        .expect("refused");
    assert!(
        err.contains("--sync-tables has an empty table name"),
        "{err}"
    );
}
