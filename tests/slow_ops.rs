//! Operations that take minutes in AWS: progress while COMMIT waits, cancel
//! (the client's CancelRequest, `infra.cancel_apply`), `infra.apply_timeout`,
//! `infra.wait = 'accepted'`, and the backend's idle-in-transaction timeout.
//!
//! moto answers at once, so the fault proxy makes chosen calls slow: moto
//! carries the call out at once and the answer reaches infrasql later, as
//! with a slow AWS. What AWS holds is checked on moto directly.

mod common;

use std::time::{Duration, Instant};

use common::{sqlstate, Moto, TestServer};
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::{Client, NoTls};

/// moto, the proxy in front of it, and infrasql using the proxy as AWS.
fn start() -> (Moto, FaultProxy, TestServer) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let server = TestServer::start_at(&proxy.url, &[]);
    (moto, proxy, server)
}

/// The apply id from the COMMIT's first NOTICE (`applying ... (apply-…)`),
/// awaited.
async fn apply_id(rx: &mut UnboundedReceiver<(Instant, String)>) -> String {
    loop {
        let (_, m) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("no NOTICE within 30 s")
            .expect("the notice channel closed");
        if m.starts_with("infrasql: applying") {
            let start = m.rfind("(apply-").expect("an apply id") + 1;
            return m[start..m.len() - 1].to_owned();
        }
    }
}

/// Await until the notice naming step 1 as started has arrived: the create
/// call is out.
async fn step_started(rx: &mut UnboundedReceiver<(Instant, String)>) {
    loop {
        let (_, m) = rx.recv().await.expect("the notice channel closed");
        if m.contains("step 1: started") {
            return;
        }
    }
}

/// Wait (up to 60 s) until AWS holds no VPC of ours: recovery deletes what
/// an abandoned create made, by its tag.
async fn no_vpcs_left(moto: &Moto) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = moto.vpcs().await;
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn apply_status(c: &Client, id: &str) -> String {
    c.query_one("SELECT status FROM infra.apply WHERE apply_id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

const VPC: &str = "INSERT INTO aws.vpc (name, cidr_block) VALUES ('slow', '10.9.0.0/16')";

#[tokio::test]
async fn a_slow_create_sends_progress_at_most_ten_seconds_apart() {
    let (_moto, proxy, s) = start();
    let (c, mut rx) = s.connect_with_notices().await;
    proxy.arm(
        Fault::on("CreateVpc")
            .times(1)
            .with(Effect::Delay(Duration::from_secs(25))),
    );
    let t = Instant::now();
    c.batch_execute(VPC).await.unwrap();
    let done = Instant::now();
    assert!(done - t >= Duration::from_secs(25), "the create was slow");
    let mut at = vec![t];
    let mut lines = Vec::new();
    while let Ok((when, m)) = rx.try_recv() {
        at.push(when);
        lines.push(m);
    }
    at.push(done);
    let widest = at.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        widest <= Duration::from_secs(10),
        "a gap of {widest:?} between notices: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("step 1: still waiting for AWS on aws.vpc \"slow\"")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_cancel_request_stops_a_slow_create_and_undoes_it() {
    let (moto, proxy, s) = start();
    let (c, mut rx) = s.connect_with_notices().await;
    proxy.arm(
        Fault::on("CreateVpc")
            .times(1)
            .with(Effect::Delay(Duration::from_secs(60))),
    );
    let cancel = c.cancel_token();
    let commit = tokio::spawn(async move {
        let r = c.batch_execute(VPC).await;
        (c, r)
    });
    let id = apply_id(&mut rx).await;
    step_started(&mut rx).await;
    let t = Instant::now();
    cancel.cancel_query(NoTls).await.unwrap();
    let (c, r) = commit.await.unwrap();
    let e = r.expect_err("the COMMIT was cancelled");
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let db = e.as_db_error().unwrap();
    assert!(db.message().contains("canceled"), "{}", db.message());
    assert!(
        db.detail().unwrap_or("").contains("abandoned"),
        "{:?}",
        db.detail()
    );
    assert_ne!(apply_status(&c, &id).await, "running");
    let n: i64 = c
        .query_one("SELECT count(*) FROM aws.vpc", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the row is rolled back");
    assert_eq!(no_vpcs_left(&moto).await, Vec::<String>::new());
    // The session goes on, and a later COMMIT is not cancelled by the old request.
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('next', '10.8.0.0/16')")
        .await
        .unwrap();
}

#[tokio::test]
async fn infra_cancel_apply_from_another_session_stops_the_wait_and_undoes_the_create() {
    let (moto, proxy, s) = start();
    let (c, mut rx) = s.connect_with_notices().await;
    // The launch is answered at once; the wait for `running` is slow.
    proxy.arm(Fault::on("DescribeInstances").with(Effect::Delay(Duration::from_secs(60))));
    let commit = tokio::spawn(async move {
        let r = c
            .batch_execute("INSERT INTO aws.instance (name, image_id) VALUES ('w', 'ami-760aaa0f')")
            .await;
        (c, r)
    });
    let id = apply_id(&mut rx).await;
    let other = s.connect().await;
    loop {
        let (_, m) = rx.recv().await.unwrap();
        if m.contains("step 1: done as i-") {
            break;
        }
    }
    let asked: bool = other
        .query_one("SELECT infra.cancel_apply($1)", &[&id])
        .await
        .unwrap()
        .get(0);
    assert!(asked);
    // The wait in flight stays slow; the undo's calls need not be.
    proxy.clear();
    let (c, r) = commit.await.unwrap();
    let e = r.expect_err("the COMMIT was cancelled");
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    let detail = e.as_db_error().unwrap().detail().unwrap_or("").to_owned();
    assert!(
        detail.contains("Undone: deleted aws.instance i-"),
        "{detail}"
    );
    assert_eq!(apply_status(&other, &id).await, "failed");
    let out = moto.ec2().await.describe_instances().send().await.unwrap();
    let states: Vec<String> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            i.state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned())
        })
        .collect();
    assert!(states.iter().all(|s| s == "terminated"), "{states:?}");
    drop(c);
}

#[tokio::test]
async fn infra_cancel_apply_refuses_what_is_not_there() {
    let (_moto, _proxy, s) = start();
    let c = s.connect().await;
    let e = c
        .query_one("SELECT infra.cancel_apply('apply-0000000000000000')", &[])
        .await
        .expect_err("no such apply");
    assert_eq!(sqlstate(&e).as_deref(), Some("42704"), "{e:?}");
}

#[tokio::test]
async fn apply_timeout_stops_a_slow_create_like_a_cancel() {
    let (moto, proxy, s) = start();
    let (c, mut rx) = s.connect_with_notices().await;
    proxy.arm(
        Fault::on("CreateVpc")
            .times(1)
            .with(Effect::Delay(Duration::from_secs(10))),
    );
    c.batch_execute("SET infra.apply_timeout = '2s'")
        .await
        .unwrap();
    let t = Instant::now();
    let e = c.batch_execute(VPC).await.expect_err("timed out");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
    let db = e.as_db_error().unwrap();
    assert!(
        db.message().contains("infra.apply_timeout"),
        "{}",
        db.message()
    );
    let id = apply_id(&mut rx).await;
    assert_ne!(apply_status(&c, &id).await, "running");
    assert_eq!(no_vpcs_left(&moto).await, Vec::<String>::new());
}

#[tokio::test]
async fn bad_wait_and_timeout_values_are_refused_at_set() {
    let (_moto, _proxy, s) = start();
    let c = s.connect().await;
    for bad in [
        "SET infra.wait = 'soon'",
        "SET infra.apply_timeout = '5 parsecs'",
    ] {
        let e = c.batch_execute(bad).await.expect_err(bad);
        assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{bad}: {e:?}");
    }
    c.batch_execute("SET infra.wait = accepted; SET infra.apply_timeout = '30min'")
        .await
        .unwrap();
}

#[tokio::test]
async fn wait_accepted_returns_before_the_instance_is_ready() {
    let (_moto, proxy, s) = start();
    let c = s.connect().await;
    proxy.arm(Fault::on("DescribeInstances").with(Effect::Delay(Duration::from_secs(30))));
    proxy.reset_log();
    c.batch_execute("SET infra.wait = 'accepted'")
        .await
        .unwrap();
    let t = Instant::now();
    c.batch_execute("INSERT INTO aws.instance (name, image_id) VALUES ('w', 'ami-760aaa0f')")
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(proxy.calls("RunInstances"), 1);
    let id: String = c
        .query_one("SELECT instance_id FROM aws.instance WHERE name = 'w'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(id.starts_with("i-"), "{id}");
}

#[tokio::test]
async fn a_short_idle_in_transaction_timeout_does_not_end_a_waiting_commit() {
    let (moto, proxy, s) = start();
    let c = s.connect().await;
    proxy.arm(
        Fault::on("CreateVpc")
            .times(1)
            .with(Effect::Delay(Duration::from_secs(3))),
    );
    c.batch_execute("SET idle_in_transaction_session_timeout = '1s'")
        .await
        .unwrap();
    c.batch_execute(&format!("BEGIN; {VPC}; COMMIT"))
        .await
        .unwrap();
    assert_eq!(moto.vpcs().await.len(), 1);
    let n: i64 = c
        .query_one("SELECT count(*) FROM aws.vpc WHERE name = 'slow'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}
