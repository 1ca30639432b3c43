//! The wire fuzzer (issue #14): startup packets, message framing and the
//! statement classifier get arbitrary and mutated input; nothing may panic
//! or hang, and the properties in `fuzz/targets.rs` must hold. The
//! regression corpus `tests/fuzz_corpus/` is replayed on every run, and
//! garbage sent over TCP to a running server must leave it serving.
//!
//! `bench/fuzz.sh [seconds]` runs the same targets for a time box.

mod common;
mod fuzz;

use std::time::Duration;

use fuzz::{Budget, Target, TARGETS};

/// Cases per target in CI: a few seconds each on a 2-core machine.
const CI_CASES: u64 = 20_000;

fn run(t: &'static Target) {
    let budget = Budget::from_env(CI_CASES);
    fuzz::quiet_panics();
    let out = fuzz::fuzz(t, &budget);
    drop(std::panic::take_hook());
    // Read by bench/fuzz.sh.
    println!(
        "fuzz {}: {} cases, {} panics (seed {:#x})",
        t.name,
        out.cases,
        out.failures.len(),
        budget.seed
    );
    let listed: Vec<String> = out
        .failures
        .iter()
        .map(|(p, m)| format!("{}: {m}", p.display()))
        .collect();
    assert!(
        listed.is_empty(),
        "{} panicked:\n{}",
        t.name,
        listed.join("\n")
    );
}

#[test]
fn fuzz_startup_packets() {
    run(&TARGETS[0]);
}

#[test]
fn fuzz_message_framing() {
    run(&TARGETS[1]);
}

#[test]
fn fuzz_statement_classifier() {
    run(&TARGETS[2]);
}

/// Every input that once found a bug, and the seeds, through the same
/// functions.
#[test]
fn the_regression_corpus_replays_cleanly() {
    for t in TARGETS {
        let files = fuzz::corpus(t);
        assert!(!files.is_empty(), "tests/fuzz_corpus/{} is empty", t.name);
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let r = std::panic::catch_unwind(|| (t.run)(&data));
            assert!(r.is_ok(), "{} panics on {}", t.name, f.display());
        }
    }
}

/// A valid StartupMessage for `user`, so the garbage after it reaches the
/// session's framing.
fn login(user: &str) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0, 0, 3, 0, 0];
    for s in ["user", user, "database", "infrasql", ""] {
        p.extend_from_slice(s.as_bytes());
        p.push(0);
    }
    let len = (p.len() as i32).to_be_bytes();
    p[..4].copy_from_slice(&len);
    p
}

/// Send `data`, close our side, and read what comes back until the server
/// closes (or a second passes: a partial frame may leave it waiting).
async fn send_garbage(port: u16, data: Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        panic!("the server stopped accepting connections");
    };
    let _ = s.write_all(&data).await;
    let _ = s.shutdown().await;
    let mut buf = [0u8; 4096];
    let read_all = async { while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), read_all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_over_tcp_leaves_the_server_serving() {
    use rand::SeedableRng;
    // An AWS endpoint nothing listens on: a stray `infra.sync(` in the
    // garbage fails at once instead of reaching a cloud.
    let s = common::TestServer::start_with(&[
        "--auth",
        "trust",
        "--aws-endpoint-url",
        "http://127.0.0.1:9",
        "--sync-interval",
        "0",
    ]);
    let bystander = s.connect().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(Budget::from_env(0).seed);
    let inputs: Vec<Vec<u8>> = (0..300)
        .map(|i| match i % 3 {
            0 => fuzz::gen::startup(&mut rng),
            1 => fuzz::gen::bytes(&mut rng, 300),
            _ => [login(common::USER), fuzz::gen::frames(&mut rng)].concat(),
        })
        .collect();
    for chunk in inputs.chunks(30) {
        let mut set = tokio::task::JoinSet::new();
        for data in chunk {
            set.spawn(send_garbage(s.port, data.clone()));
        }
        while let Some(r) = set.join_next().await {
            r.expect("garbage sender");
        }
    }
    // The session that was open all along, and a new one, still work.
    let one: i32 = bystander.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let fresh = s.connect().await;
    let two: i32 = fresh.query_one("SELECT 2", &[]).await.unwrap().get(0);
    assert_eq!(two, 2);
    let log = s.stderr();
    assert!(!log.contains("panicked"), "a task panicked:\n{log}");
}
