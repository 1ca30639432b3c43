//! Crashes during an apply: `kill -9` of infrasql at a chosen phase of the
//! journal (the fault proxy holds one AWS call, or a row lock holds the
//! journal's last write), and of the embedded PostgreSQL. After the restart
//! and recovery, with no person involved: every apply is settled, the rows
//! equal moto's state, nothing infrasql created is left in moto that no row
//! names, and nothing is there twice.
//!
//! One trial per phase runs in CI; `bench/crash_trials.sh` runs the ignored
//! `crash_trials` with `CRASH_TRIALS` (30 by default), random kill times
//! included, and prints a table.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{one, Moto, TestServer};
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};
use tokio_postgres::Client;

/// Where the kill lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// CreateVpc reached moto; its answer never comes back.
    FirstCall,
    /// The VPC and subnet exist; CreateSecurityGroup is in flight.
    MidCreates,
    /// RunInstances, the last create, is in flight.
    LastCreate,
    /// Every create is done and written back into the client's transaction;
    /// the journal's `applied` waits on a row lock, the COMMIT is not sent.
    WriteBack,
    /// RunInstances failed; the undo's DeleteSubnet is in flight.
    Undo,
    /// At a random moment within 1.5 s of COMMIT (bench only).
    Random,
}

const PHASES: [Phase; 5] = [
    Phase::FirstCall,
    Phase::MidCreates,
    Phase::LastCreate,
    Phase::WriteBack,
    Phase::Undo,
];

/// The trial's network: VPC → subnet → security group (+ rule) → instance.
fn network(n: u32) -> String {
    format!(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('crash-{n}', '10.{n}.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
           SELECT 'crash-{n}', vpc_id, '10.{n}.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'crash-{n}';
         INSERT INTO aws.security_group (name, group_name, description, vpc_id)
           SELECT 'crash-{n}', 'crash-{n}', 'crash trial', vpc_id FROM aws.vpc WHERE name = 'crash-{n}';
         INSERT INTO aws.security_group_rule (group_id, is_egress, ip_protocol, from_port, to_port, cidr_ipv4)
           SELECT group_id, false, 'tcp', 22, 22, '10.0.0.0/8' FROM aws.security_group WHERE group_name = 'crash-{n}';
         INSERT INTO aws.instance (name, image_id, instance_type, subnet_id)
           SELECT 'crash-{n}', 'ami-760aaa0f', 't3.micro', subnet_id FROM aws.subnet WHERE name = 'crash-{n}';
         COMMIT;"
    )
}

async fn poll<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What AWS holds that infrasql may have made: VPCs (not the default one),
/// their subnets and security groups (not `default`), live instances.
#[derive(Debug, Default, PartialEq, Eq)]
struct Cloud {
    vpcs: BTreeSet<String>,
    subnets: BTreeSet<String>,
    groups: BTreeSet<String>,
    instances: BTreeSet<String>,
    /// Resources tagged `infrasql:apply-id`, as (kind, id, apply id).
    tagged: Vec<(String, String, String)>,
}

fn apply_tag(tags: &[infrasql_aws::aws_sdk_ec2::types::Tag]) -> Option<String> {
    tags.iter()
        .find(|t| t.key() == Some("infrasql:apply-id"))
        .and_then(|t| t.value().map(str::to_owned))
}

async fn cloud(moto: &Moto) -> Cloud {
    let ec2 = moto.ec2().await;
    let mut c = Cloud::default();
    let mut tagged = |kind: &str, id: &str, tags: &[_]| {
        if let Some(a) = apply_tag(tags) {
            c.tagged.push((kind.into(), id.into(), a));
        }
    };
    let vpcs = ec2.describe_vpcs().send().await.unwrap();
    let mut vpc_ids = BTreeSet::new();
    for v in vpcs.vpcs().iter().filter(|v| v.is_default() != Some(true)) {
        tagged("vpc", v.vpc_id().unwrap(), v.tags());
        vpc_ids.insert(v.vpc_id().unwrap().to_owned());
    }
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let mut subnet_ids = BTreeSet::new();
    for s in subnets.subnets() {
        if vpc_ids.contains(s.vpc_id().unwrap_or("")) {
            tagged("subnet", s.subnet_id().unwrap(), s.tags());
            subnet_ids.insert(s.subnet_id().unwrap().to_owned());
        }
    }
    let groups = ec2.describe_security_groups().send().await.unwrap();
    let mut group_ids = BTreeSet::new();
    for g in groups.security_groups() {
        if vpc_ids.contains(g.vpc_id().unwrap_or("")) && g.group_name() != Some("default") {
            tagged("group", g.group_id().unwrap(), g.tags());
            group_ids.insert(g.group_id().unwrap().to_owned());
        }
    }
    let mut instance_ids = BTreeSet::new();
    let reservations = ec2.describe_instances().send().await.unwrap();
    for r in reservations.reservations() {
        for i in r.instances() {
            let state = i.state().and_then(|s| s.name()).map(|n| n.as_str());
            if !matches!(state, Some("terminated") | Some("shutting-down")) {
                tagged("instance", i.instance_id().unwrap(), i.tags());
                instance_ids.insert(i.instance_id().unwrap().to_owned());
            }
        }
    }
    c.vpcs = vpc_ids;
    c.subnets = subnet_ids;
    c.groups = group_ids;
    c.instances = instance_ids;
    c
}

async fn ids(c: &Client, sql: &str) -> BTreeSet<String> {
    c.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The rows of the same resources.
async fn rows(c: &Client) -> Cloud {
    Cloud {
        vpcs: ids(c, "SELECT vpc_id FROM aws.vpc").await,
        subnets: ids(c, "SELECT subnet_id FROM aws.subnet").await,
        groups: ids(
            c,
            "SELECT group_id FROM aws.security_group WHERE group_name <> 'default'",
        )
        .await,
        instances: ids(c, "SELECT instance_id FROM aws.instance").await,
        tagged: Vec::new(),
    }
}

/// Wait until recovery has settled every apply (no person involved).
async fn settled(s: &TestServer) -> Client {
    let engine = s.connect_engine().await;
    poll("every apply settled", 90, || async {
        one::<i64>(
            &engine,
            "SELECT count(*) FROM infra.apply WHERE status NOT IN ('succeeded', 'failed', 'recovered')",
        )
        .await
            == 0
    })
    .await;
    engine
}

/// The three invariants; `Err` says which one failed.
async fn check(moto: &Moto, s: &TestServer) -> Result<(), String> {
    let c = s.connect().await;
    let (aws, rows) = (cloud(moto).await, rows(&c).await);
    let named: BTreeSet<&String> = rows
        .vpcs
        .iter()
        .chain(&rows.subnets)
        .chain(&rows.groups)
        .chain(&rows.instances)
        .collect();
    let orphans: Vec<_> = aws
        .tagged
        .iter()
        .filter(|(_, id, _)| !named.contains(id))
        .collect();
    if !orphans.is_empty() {
        return Err(format!("left in moto with no row: {orphans:?}"));
    }
    let aws_untagged = Cloud {
        tagged: Vec::new(),
        ..aws
    };
    if aws_untagged != rows {
        return Err(format!("rows {rows:?} differ from moto {aws_untagged:?}"));
    }
    Ok(())
}

fn kill(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

fn postmaster_pid(data: &Path) -> i32 {
    std::fs::read_to_string(data.join("pgdata/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// What one trial saw.
struct Outcome {
    /// The client's COMMIT succeeded before the kill.
    committed: bool,
    /// After the restart the trial's resources are rows (the apply's
    /// COMMIT had happened) rather than undone.
    kept: bool,
    /// The trial's apply as recovery left it.
    status: String,
}

/// Hold the phase, run trial `n`'s COMMIT, kill infrasql there.
async fn crash_at(moto: &Moto, proxy: &FaultProxy, s: &TestServer, n: u32, phase: Phase) -> bool {
    let engine = s.connect_engine().await;
    const HOLD: Duration = Duration::from_secs(120);
    match phase {
        Phase::FirstCall => proxy.delay("CreateVpc", HOLD),
        Phase::MidCreates => proxy.delay("CreateSecurityGroup", HOLD),
        Phase::LastCreate => proxy.delay("RunInstances", HOLD),
        Phase::Undo => {
            proxy.arm(Fault::on("RunInstances").times(1).with(Effect::Error {
                status: 400,
                code: "InvalidParameterValue".into(),
                message: "crash trial: refused".into(),
            }));
            proxy.delay("DeleteSubnet", HOLD);
        }
        // Long enough to take the row lock while the apply still runs.
        Phase::WriteBack => proxy.delay("RunInstances", Duration::from_secs(2)),
        Phase::Random => {}
    }
    let before = (
        proxy.forwarded("CreateVpc"),
        proxy.forwarded("CreateSecurityGroup"),
        proxy.forwarded("RunInstances"),
        proxy.forwarded("DeleteSubnet"),
    );
    let c = s.connect().await;
    let sql = network(n);
    let commit = tokio::spawn(async move { c.batch_execute(&sql).await });
    let lock = s.connect_engine().await;
    match phase {
        Phase::FirstCall => {
            poll("CreateVpc at moto", 30, || async {
                proxy.forwarded("CreateVpc") > before.0
            })
            .await
        }
        Phase::MidCreates => {
            poll("CreateSecurityGroup at moto", 30, || async {
                proxy.forwarded("CreateSecurityGroup") > before.1
            })
            .await
        }
        Phase::LastCreate => {
            poll("RunInstances at moto", 30, || async {
                proxy.forwarded("RunInstances") > before.2
            })
            .await
        }
        Phase::Undo => {
            poll("DeleteSubnet at moto", 30, || async {
                proxy.forwarded("DeleteSubnet") > before.3
            })
            .await
        }
        Phase::WriteBack => {
            // Lock the running apply's row while RunInstances is held: its
            // `applied` (written after the write-back, before the COMMIT)
            // waits on it.
            poll("RunInstances at moto", 30, || async {
                proxy.forwarded("RunInstances") > before.2
            })
            .await;
            lock.batch_execute(
                // NO KEY UPDATE: the journal's inserts of further actions
                // (their foreign key takes KEY SHARE) pass; its UPDATE waits.
                "BEGIN; SELECT 1 FROM infra.apply WHERE status = 'running' FOR NO KEY UPDATE",
            )
            .await
            .unwrap();
            let held = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                        AND query LIKE 'UPDATE infra.apply SET status%'";
            let deadline = Instant::now() + Duration::from_secs(60);
            while one::<i64>(&engine, held).await != 1 && !commit.is_finished() {
                if Instant::now() > deadline {
                    let journal: String = one(
                        &engine,
                        "SELECT string_agg(a.apply_id || ' ' || a.status || ' ' || coalesce(x.action || ' ' || x.status, ''), '; ') FROM infra.apply a LEFT JOIN infra.apply_action x USING (apply_id)",
                    )
                    .await;
                    let activity: String = one(
                        &engine,
                        "SELECT string_agg(coalesce(wait_event_type, '-') || '/' || coalesce(wait_event, '-') || ' ' || left(query, 80), E'\n') FROM pg_stat_activity",
                    )
                    .await;
                    panic!("not held: journal {journal}\n{activity}\n{}", s.stderr());
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            if commit.is_finished() {
                let journal: String = one(
                    &engine,
                    "SELECT string_agg(apply_id || ' ' || status || ' ' || coalesce(error, ''), '; ') FROM infra.apply",
                )
                .await;
                panic!(
                    "the COMMIT ended before the lock held it: {:?}; journal: {journal}\n{}",
                    commit.await,
                    s.stderr()
                );
            }
        }
        Phase::Random => {
            let ms = rand::random_range(0..1500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    let committed = commit.is_finished() && matches!(commit.await, Ok(Ok(())));
    kill(s.pid() as i32);
    // Let go of the row lock only once infrasql is dead.
    let _ = lock.batch_execute("ROLLBACK").await;
    proxy.clear();
    let _ = moto;
    committed
}

/// One trial: crash, restart on the same data dir, settle, check.
async fn trial(
    moto: &Moto,
    proxy: &FaultProxy,
    data: &Path,
    n: u32,
    phase: Phase,
) -> Result<Outcome, String> {
    let s = TestServer::start_in(
        data,
        &["--aws-endpoint-url", &proxy.url, "--sync-interval", "0"],
    )?;
    let committed = crash_at(moto, proxy, &s, n, phase).await;
    drop(s);
    let s = TestServer::start_in(
        data,
        &["--aws-endpoint-url", &proxy.url, "--sync-interval", "0"],
    )?;
    settled(&s).await;
    check(moto, &s)
        .await
        .map_err(|e| format!("{phase:?} #{n}: {e}\n{}", s.stderr()))?;
    let c = s.connect().await;
    let kept = one::<i64>(
        &c,
        &format!("SELECT count(*) FROM aws.instance WHERE name = 'crash-{n}'"),
    )
    .await
        == 1;
    if committed && !kept {
        return Err(format!(
            "{phase:?} #{n}: a COMMIT the client saw succeed was lost"
        ));
    }
    let status = one(
        &c,
        "SELECT status FROM infra.apply ORDER BY started_at DESC LIMIT 1",
    )
    .await;
    Ok(Outcome {
        committed,
        kept,
        status,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_each_phase_of_an_apply_is_settled_by_recovery() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    for (n, phase) in PHASES.into_iter().enumerate() {
        let out = trial(&moto, &proxy, &data, n as u32 + 1, phase)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Before the COMMIT, a crash undoes the whole network.
        assert!(
            !out.committed && !out.kept,
            "{phase:?}: kept a crashed apply"
        );
        assert_eq!(out.status, "recovered", "{phase:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_embedded_postgres_during_an_apply_is_reported_and_settled() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    proxy.delay("CreateSecurityGroup", Duration::from_secs(3));
    let c = s.connect().await;
    let commit = tokio::spawn(async move { c.batch_execute(&network(1)).await });
    poll("CreateSecurityGroup at moto", 30, || async {
        proxy.forwarded("CreateSecurityGroup") > 0
    })
    .await;
    kill(postmaster_pid(&s.data));
    let e = commit
        .await
        .unwrap()
        .expect_err("the COMMIT cannot succeed");
    assert!(
        e.is_closed() || common::sqlstate(&e).is_some(),
        "the client hears of it: {e:?}"
    );
    proxy.clear();
    // The supervisor brings PostgreSQL back; then recovery settles.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(c) = common::connect(&s.conn_string()).await {
            if c.simple_query("select 1").await.is_ok() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "backend never came back: {}",
            s.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settled(&s).await;
    check(&moto, &s)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.stderr()));
}

/// `bench/crash_trials.sh`: `CRASH_TRIALS` trials (30 by default), the
/// phases in turn with random kill times among them; prints a table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by bench/crash_trials.sh"]
async fn crash_trials() {
    let trials: u32 = std::env::var("CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let all = [
        Phase::FirstCall,
        Phase::MidCreates,
        Phase::LastCreate,
        Phase::WriteBack,
        Phase::Undo,
        Phase::Random,
    ];
    // phase → (trials, committed, kept, failed checks)
    let mut table: Vec<(Phase, u32, u32, u32, u32)> =
        all.iter().map(|p| (*p, 0, 0, 0, 0)).collect();
    let mut failures = Vec::new();
    let started = Instant::now();
    for n in 1..=trials {
        let phase = all[(n as usize - 1) % all.len()];
        let row = table.iter_mut().find(|r| r.0 == phase).unwrap();
        row.1 += 1;
        match trial(&moto, &proxy, &data, n, phase).await {
            Ok(o) => {
                row.2 += o.committed as u32;
                row.3 += o.kept as u32;
            }
            Err(e) => {
                row.4 += 1;
                failures.push(e);
            }
        }
    }
    println!("phase        trials  committed  kept(recovered as committed)  undone  failed-checks");
    for (p, t, c, k, f) in &table {
        println!(
            "{:<12} {t:>6} {c:>10} {k:>29} {:>7} {f:>14}",
            format!("{p:?}"),
            t - k - f
        );
    }
    println!(
        "{trials} trials in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
