//! Many sessions committing at once while the sync loop runs every second.
//!
//! Disjoint commits (each session its own VPC) all succeed. Commits to one
//! VPC serialise on its row, or fail cleanly with a serialization or lock
//! SQLSTATE and nothing applied; the last successful value is what the row
//! and AWS end with, and the sync loop never undoes it. `bench/load.sh`
//! runs the ignored `load_figures` for throughput and COMMIT latency.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{one, Moto, TestServer};

const SESSIONS: usize = 20;

/// The `v` tag of a VPC, as moto has it.
async fn aws_tag(moto: &Moto, vpc_id: &str) -> Option<String> {
    let out = moto
        .ec2()
        .await
        .describe_vpcs()
        .vpc_ids(vpc_id)
        .send()
        .await
        .unwrap();
    out.vpcs()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("v"))
        .and_then(|t| t.value().map(str::to_owned))
}

/// One COMMIT per session at once; each session runs `sql(i)`. Returns per
/// session the result (SQLSTATE on failure) and the COMMIT's latency and
/// when it ended.
async fn at_once(
    s: &TestServer,
    sql: impl Fn(usize) -> String,
) -> Vec<(Result<(), String>, Duration, Instant)> {
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        clients.push(s.connect().await);
    }
    let go = Arc::new(tokio::sync::Barrier::new(SESSIONS));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let sql = sql(i);
            let go = go.clone();
            tokio::spawn(async move {
                go.wait().await;
                let t = Instant::now();
                let r = c.batch_execute(&sql).await.map_err(|e| {
                    common::sqlstate(&e).unwrap_or_else(|| format!("no SQLSTATE: {e}"))
                });
                (r, t.elapsed(), Instant::now())
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Wait until a sync round of `aws.vpc` has finished after `after`.
async fn a_sync_round_after(c: &tokio_postgres::Client, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM infra.sync_status WHERE table_name = 'aws.vpc' \
         AND last_started > '{after}'::timestamptz AND last_finished >= last_started \
         AND last_error IS NULL)"
    );
    while !one::<bool>(c, &sql).await {
        assert!(Instant::now() < deadline, "no sync round after {after}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Figures {
    commits: usize,
    wall: Duration,
    /// COMMIT latencies of the disjoint and of the same-VPC commits.
    disjoint: Vec<Duration>,
    same: Vec<Duration>,
}

/// Rounds of disjoint and of conflicting commits; checks every invariant
/// and returns what was measured.
async fn load(rounds: usize) -> Figures {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &["--sync-interval", "1"]);
    let c = s.connect().await;
    let mut values = Vec::new();
    for i in 0..SESSIONS {
        values.push(format!("('load-{i}', '10.{i}.0.0/16')"));
    }
    c.batch_execute(&format!(
        "INSERT INTO aws.vpc (name, cidr_block) VALUES {}, ('shared', '10.200.0.0/16')",
        values.join(", ")
    ))
    .await
    .unwrap();
    let shared: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'shared'").await;
    let mut figures = Figures {
        commits: 0,
        wall: Duration::ZERO,
        disjoint: Vec::new(),
        same: Vec::new(),
    };
    for round in 0..rounds {
        // (a) Disjoint: every commit succeeds.
        let t = Instant::now();
        let got = at_once(&s, |i| {
            format!(
                "UPDATE aws.vpc SET tags = '{{\"v\": \"{round}-{i}\"}}' WHERE name = 'load-{i}'"
            )
        })
        .await;
        figures.wall += t.elapsed();
        for (i, (r, lat, _)) in got.iter().enumerate() {
            assert_eq!(r, &Ok(()), "disjoint commit {i} of round {round}");
            figures.disjoint.push(*lat);
            figures.commits += 1;
        }

        // (b) One VPC: serialised, or refused cleanly.
        let t = Instant::now();
        let got = at_once(&s, |i| {
            format!("UPDATE aws.vpc SET tags = '{{\"v\": \"shared-{round}-{i}\"}}' WHERE name = 'shared'")
        })
        .await;
        figures.wall += t.elapsed();
        let mut last: Option<(Instant, usize)> = None;
        let mut refused: Vec<usize> = Vec::new();
        for (i, (r, lat, end)) in got.iter().enumerate() {
            match r {
                Ok(()) => {
                    figures.same.push(*lat);
                    figures.commits += 1;
                    if last.is_none_or(|(e, _)| *end > e) {
                        last = Some((*end, i));
                    }
                }
                Err(code) => {
                    assert!(
                        matches!(code.as_str(), "40001" | "40P01" | "55P03"),
                        "a conflicting commit failed with {code}, not a serialization or lock error"
                    );
                    refused.push(i);
                }
            }
        }
        let (_, winner) = last.expect("at least one commit to the shared VPC succeeds");
        let want = format!("shared-{round}-{winner}");
        let now: String = one(&c, "SELECT now()::text").await;
        let engine = s.connect_engine().await;
        // Settled, then a full sync round on top: the sync loop never
        // undoes a committed change.
        let deadline = Instant::now() + Duration::from_secs(60);
        while one::<i64>(
            &engine,
            "SELECT count(*) FROM infra.apply WHERE status NOT IN ('succeeded', 'failed', 'recovered')",
        )
        .await
            > 0
        {
            assert!(Instant::now() < deadline, "applies never settled");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a_sync_round_after(&engine, &now).await;
        let row: String = one(&c, "SELECT tags ->> 'v' FROM aws.vpc WHERE name = 'shared'").await;
        assert_eq!(row, want, "the row is the last successful commit's value");
        assert_eq!(
            aws_tag(&moto, &shared).await.as_deref(),
            Some(want.as_str())
        );
        for i in 0..SESSIONS {
            let row: String = one(
                &c,
                &format!("SELECT tags ->> 'v' FROM aws.vpc WHERE name = 'load-{i}'"),
            )
            .await;
            assert_eq!(row, format!("{round}-{i}"), "disjoint VPC {i} after sync");
        }
        // The refused values were never applied (the row lock made them
        // wait, so none reached AWS to be undone): none is in AWS now.
        for i in refused {
            assert_ne!(row, format!("shared-{round}-{i}"));
        }
    }
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sessions_commit_at_once_while_sync_runs_every_second() {
    let f = load(1).await;
    // Every disjoint commit and at least one to the shared VPC.
    assert!(f.commits > SESSIONS);
}

/// `bench/load.sh`: `LOAD_ROUNDS` rounds (5 by default); prints throughput
/// and COMMIT latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by bench/load.sh"]
async fn load_figures() {
    let rounds = std::env::var("LOAD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut f = load(rounds).await;
    println!(
        "{} commits ({SESSIONS} sessions, {rounds} rounds of disjoint + same-VPC) in {:.1} s of commit time: {:.1} commits/s",
        f.commits,
        f.wall.as_secs_f64(),
        f.commits as f64 / f.wall.as_secs_f64(),
    );
    for (kind, l) in [("disjoint", &mut f.disjoint), ("same VPC", &mut f.same)] {
        l.sort();
        println!(
            "{kind} commits: {} ; COMMIT latency p50 {} ms, p99 {} ms, max {} ms",
            l.len(),
            percentile(l, 0.5).as_millis(),
            percentile(l, 0.99).as_millis(),
            l.last().unwrap().as_millis(),
        );
    }
}
