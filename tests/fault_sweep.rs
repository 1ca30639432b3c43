//! The cloud-fault sweep (issue #14): one fault at each AWS call of a
//! commit, in turn, of every kind AWS shows (throttling, 500, 503, a reset
//! before AWS sees the call, a reset after AWS carried it out, an answer
//! later than the SDK's attempt timeout), for a create commit, a delete
//! commit and sync rounds. After every case: the COMMIT succeeded or failed
//! naming the resource and AWS's cause; once recovery settles, the rows
//! equal moto (nothing infrasql made is left without a row, no row names
//! something missing).
//!
//! The default run is a subset that still hits every call and every kind
//! (kind rotates with the call); `INFRASQL_SWEEP=full` runs every kind at
//! every call (`bench/fault_sweep.sh`, figures in bench/README.md).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{one, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::Filter;
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};
use tokio_postgres::Client;

const KINDS: [&str; 6] = [
    "throttle",
    "500",
    "503",
    "reset-before",
    "reset-after",
    "delay",
];

fn effect(kind: usize) -> Effect {
    match kind {
        0 => Effect::Throttle,
        1 => Effect::Status500,
        2 => Effect::Status503,
        3 => Effect::ResetBefore,
        4 => Effect::ResetAfter,
        // Past the attempt timeout the server is started with (2 s).
        _ => Effect::Delay(Duration::from_millis(2500)),
    }
}

fn full() -> bool {
    std::env::var("INFRASQL_SWEEP").is_ok_and(|v| v == "full")
}

/// (call, kind) pairs for `calls` calls: every kind at every call in the
/// full sweep; else one kind per call, rotating (`shift` varies the start
/// between scenarios).
fn cases(calls: usize, shift: usize) -> Vec<(usize, usize)> {
    (1..=calls)
        .flat_map(|i| {
            let kinds: Vec<usize> = if full() {
                (0..KINDS.len()).collect()
            } else {
                vec![(i + shift) % KINDS.len()]
            };
            kinds.into_iter().map(move |k| (i, k))
        })
        .collect()
}

#[derive(Default, Debug)]
struct Tally {
    run: usize,
    succeeded: usize,
    failed_cleanly: usize,
    unclean: Vec<String>,
    orphans: Vec<String>,
    lost: Vec<String>,
}

impl Tally {
    fn report(&self, scenario: &str, started: Instant) {
        println!(
            "fault sweep {scenario}: cases {} succeeded {} failed cleanly {} unclean {} orphans {} lost {} in {:.0} s",
            self.run,
            self.succeeded,
            self.failed_cleanly,
            self.unclean.len(),
            self.orphans.len(),
            self.lost.len(),
            started.elapsed().as_secs_f64()
        );
        assert!(self.unclean.is_empty(), "{:#?}", self.unclean);
        assert!(self.orphans.is_empty(), "{:#?}", self.orphans);
        assert!(self.lost.is_empty(), "{:#?}", self.lost);
        assert_eq!(self.run, self.succeeded + self.failed_cleanly);
    }
}

struct Rig {
    moto: Moto,
    proxy: FaultProxy,
    _server: TestServer,
    c: Client,
}

async fn rig() -> Rig {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let server = TestServer::start_at(
        &proxy.url,
        &[
            "--aws-timeouts",
            "connect=1s,read=2s,attempt=2s,operation=20s",
        ],
    );
    let c = server.connect().await;
    Rig {
        moto,
        proxy,
        _server: server,
        c,
    }
}

/// Eight actions over four types: a VPC, two subnets, a security group,
/// two rules, two instances; `k` makes names and CIDRs unique per case.
fn create_sql(k: usize) -> String {
    // VPCs may overlap: the octet only has to be valid.
    let o = k % 256;
    format!(
        "BEGIN;
INSERT INTO aws.vpc (name, cidr_block) VALUES ('v{k}', '10.{o}.0.0/16');
INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 's{k}a', vpc_id, '10.{o}.1.0/24' FROM aws.vpc WHERE name = 'v{k}';
INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 's{k}b', vpc_id, '10.{o}.2.0/24' FROM aws.vpc WHERE name = 'v{k}';
INSERT INTO aws.security_group (group_name, description, vpc_id) SELECT 'g{k}', 'sweep', vpc_id FROM aws.vpc WHERE name = 'v{k}';
INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4)
  SELECT group_id, 'tcp', 22, 22, '10.0.0.0/8' FROM aws.security_group WHERE group_name = 'g{k}';
INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4)
  SELECT group_id, 'tcp', 443, 443, '0.0.0.0/0' FROM aws.security_group WHERE group_name = 'g{k}';
INSERT INTO aws.instance (name, image_id, instance_type, subnet_id)
  SELECT 'i{k}' || n, 'ami-760aaa0f', 't3.micro', subnet_id FROM aws.subnet, generate_series(1, 2) n WHERE name = 's{k}a';
COMMIT;"
    )
}

/// Everything case `k` made, in one commit.
fn delete_sql(k: usize) -> String {
    format!(
        "BEGIN;
DELETE FROM aws.instance WHERE name LIKE 'i{k}_';
DELETE FROM aws.security_group_rule WHERE group_id IN (SELECT group_id FROM aws.security_group WHERE group_name = 'g{k}');
DELETE FROM aws.security_group WHERE group_name = 'g{k}';
DELETE FROM aws.subnet WHERE name LIKE 's{k}_';
DELETE FROM aws.vpc WHERE name = 'v{k}';
COMMIT;"
    )
}

/// The ids of each type, in the rows and in moto (only what carries an
/// `infrasql:apply-id` tag, and rules of those groups; terminated
/// instances are gone).
async fn state(r: &Rig) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut rows = BTreeSet::new();
    for (table, id) in [
        ("vpc", "vpc_id"),
        ("subnet", "subnet_id"),
        ("security_group", "group_id"),
        ("security_group_rule", "security_group_rule_id"),
        ("instance", "instance_id"),
    ] {
        for row in
            r.c.query(&format!("SELECT {id} FROM aws.{table}"), &[])
                .await
                .unwrap()
        {
            rows.insert(format!("{table} {}", row.get::<_, String>(0)));
        }
    }
    let ec2 = r.moto.ec2().await;
    let ours = || {
        Filter::builder()
            .name("tag-key")
            .values("infrasql:apply-id")
            .build()
    };
    // Every page: moto pages its answers too, and a sweep makes hundreds.
    let mut aws = BTreeSet::new();
    let vpcs = ec2
        .describe_vpcs()
        .filters(ours())
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    aws.extend(vpcs.iter().map(|v| format!("vpc {}", v.vpc_id().unwrap())));
    let subnets = ec2
        .describe_subnets()
        .filters(ours())
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    aws.extend(
        subnets
            .iter()
            .map(|s| format!("subnet {}", s.subnet_id().unwrap())),
    );
    let groups = ec2
        .describe_security_groups()
        .filters(ours())
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    let group_ids: BTreeSet<&str> = groups.iter().filter_map(|g| g.group_id()).collect();
    aws.extend(group_ids.iter().map(|g| format!("security_group {g}")));
    let rules = ec2
        .describe_security_group_rules()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    aws.extend(
        rules
            .iter()
            .filter(|r| r.group_id().is_some_and(|g| group_ids.contains(g)))
            .map(|r| {
                format!(
                    "security_group_rule {}",
                    r.security_group_rule_id().unwrap()
                )
            }),
    );
    let reservations = ec2
        .describe_instances()
        .filters(ours())
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    aws.extend(
        reservations
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
            .map(|i| format!("instance {}", i.instance_id().unwrap())),
    );
    (rows, aws)
}

/// Wait (up to 60 s) until the newest apply is settled.
async fn settle(c: &Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: String = one(
            c,
            "SELECT status FROM infra.apply ORDER BY started_at DESC LIMIT 1",
        )
        .await;
        if !["running", "undoing"].contains(&status.as_str()) || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The words a clean failure's message names the cause with.
const CAUSES: [&str; 7] = [
    "RequestLimitExceeded",
    "InternalError",
    "Unavailable",
    "timed out",
    "could not reach",
    "unreadable response",
    "abandoned",
];

/// Run one COMMIT with `fault` armed and check the case.
async fn case(r: &Rig, t: &mut Tally, label: String, sql: &str, fault: Option<Fault>) {
    if let Some(f) = fault {
        r.proxy.arm(f);
    }
    let result = r.c.batch_execute(sql).await;
    r.proxy.clear();
    t.run += 1;
    match result {
        Ok(()) => t.succeeded += 1,
        Err(e) => match e.as_db_error() {
            Some(db)
                if db.message().contains("aws.")
                    && CAUSES.iter().any(|w| db.message().contains(w)) =>
            {
                t.failed_cleanly += 1
            }
            _ => t.unclean.push(format!("{label}: {e:?}")),
        },
    }
    let status = settle(&r.c).await;
    let (rows, aws) = state(r).await;
    for o in aws.difference(&rows) {
        t.orphans.push(format!("{label} ({status}): {o}"));
    }
    for l in rows.difference(&aws) {
        t.lost.push(format!("{label} ({status}): {l}"));
    }
}

/// The calls one fault-free run of `sql` makes.
fn calls_of(r: &Rig) -> usize {
    r.proxy.log().len()
}

#[tokio::test]
async fn every_call_of_a_create_commit_survives_one_fault() {
    let r = rig().await;
    let started = Instant::now();
    r.proxy.reset_log();
    r.c.batch_execute(&create_sql(1)).await.unwrap();
    let calls = calls_of(&r);
    assert!(calls >= 8, "{:?}", r.proxy.log());
    let mut t = Tally::default();
    for (k, (i, kind)) in cases(calls, 0).into_iter().enumerate() {
        let label = format!("create call {i} {}", KINDS[kind]);
        let fault = Fault::any().nth(i).with(effect(kind));
        case(&r, &mut t, label, &create_sql(k + 2), Some(fault)).await;
    }
    t.report("create", started);
}

#[tokio::test]
async fn every_call_of_a_delete_commit_survives_one_fault() {
    let r = rig().await;
    let started = Instant::now();
    r.c.batch_execute(&create_sql(1)).await.unwrap();
    r.proxy.reset_log();
    r.c.batch_execute(&delete_sql(1)).await.unwrap();
    let (rows, aws) = state(&r).await;
    let log: Vec<_> = r
        .proxy
        .log()
        .iter()
        .map(|c| (c.action.clone(), c.status, c.body.clone()))
        .collect();
    assert_eq!(rows, aws, "{log:#?}");
    let calls = calls_of(&r);
    assert!(calls >= 8, "{:?}", r.proxy.log());
    let mut t = Tally::default();
    for (k, (i, kind)) in cases(calls, 3).into_iter().enumerate() {
        let k = k + 2;
        r.c.batch_execute(&create_sql(k)).await.unwrap();
        let label = format!("delete call {i} {}", KINDS[kind]);
        let fault = Fault::any().nth(i).with(effect(kind));
        case(&r, &mut t, label, &delete_sql(k), Some(fault)).await;
    }
    t.report("delete", started);
}

/// The sync round of the sweep: the five types the commits made, one
/// `infra.sync(table)` each (a round of every type makes 32 calls, most of
/// them listings of types with no rows here).
async fn round(c: &Client) -> Result<(), tokio_postgres::Error> {
    for t in [
        "aws.vpc",
        "aws.subnet",
        "aws.security_group",
        "aws.security_group_rule",
        "aws.instance",
    ] {
        c.query_one(&format!("SELECT infra.sync('{t}')"), &[])
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_fault_in_a_sync_round_never_deletes_rows() {
    let r = rig().await;
    let started = Instant::now();
    r.c.batch_execute(&create_sql(1)).await.unwrap();
    // The first round imports moto's defaults (the default VPC, its subnets).
    let _: serde_json::Value = one(&r.c, "SELECT infra.sync()").await;
    r.proxy.reset_log();
    round(&r.c).await.unwrap();
    let calls = calls_of(&r);
    let mut t = Tally::default();
    for (i, kind) in cases(calls, 1) {
        let label = format!("sync call {i} {}", KINDS[kind]);
        let before = state(&r).await.0;
        r.proxy.arm(Fault::any().nth(i).with(effect(kind)));
        let outcome = round(&r.c).await;
        r.proxy.clear();
        t.run += 1;
        match outcome {
            Ok(_) => t.succeeded += 1,
            Err(e) => t.unclean.push(format!("{label}: {e:?}")),
        }
        // The first round imported moto's defaults; a later one changes nothing.
        let rows = state(&r).await.0;
        for l in before.difference(&rows) {
            t.lost.push(format!("{label}: row {l} removed"));
        }
        for o in rows.difference(&before) {
            t.orphans.push(format!("{label}: row {o} added"));
        }
    }
    t.report("sync", started);

    // A listing that fails past the SDK's retries: the round reports it in
    // infra.sync_status and removes no row.
    let before = state(&r).await.0;
    r.proxy
        .arm(Fault::on("DescribeSubnets").with(Effect::Status503));
    let _ = r.c.query_one("SELECT infra.sync()", &[]).await;
    r.proxy.clear();
    let error: Option<String> = one(
        &r.c,
        "SELECT last_error FROM infra.sync_status WHERE table_name = 'aws.subnet' AND region = 'us-east-1'",
    )
    .await;
    assert!(
        error.as_deref().is_some_and(|e| e.contains("Unavailable")),
        "{error:?}"
    );
    assert_eq!(state(&r).await.0, before);
}
