//! `--aws-limiter` (issue 15): the adaptive concurrency limit per AWS
//! service and region falls when AWS throttles, and the COMMIT that met the
//! throttling still succeeds. The limit is read where an operator reads it:
//! the debug log's `infrasql::aws::limiter` lines.

mod common;

use common::{one, Moto, TestServer};
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};

/// One change of a limit, as logged.
#[derive(Debug)]
struct Change {
    service: String,
    limit: usize,
    from: usize,
    reason: String,
}

/// The log without its colours.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every limit change in the server's log, in order.
fn changes(s: &TestServer) -> Vec<Change> {
    plain(&s.stderr())
        .lines()
        .filter(|l| l.contains("infrasql::aws::limiter"))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_else(|| panic!("no {name} in {l}"))
                    .to_owned()
            };
            Change {
                service: field("service"),
                limit: field("limit").parse().unwrap(),
                from: field("from").parse().unwrap(),
                reason: field("reason"),
            }
        })
        .collect()
}

/// `n` security groups named `prefix-0`... in one transaction.
fn security_groups(prefix: &str, n: usize) -> String {
    format!(
        "BEGIN;
         INSERT INTO aws.security_group (group_name, vpc_id)
         SELECT '{prefix}-' || i, vpc_id FROM aws.vpc, generate_series(1, {n}) AS i
         WHERE name = 'main';
         COMMIT;"
    )
}

#[tokio::test]
async fn throttling_cuts_the_ec2_limit_and_the_commit_still_succeeds() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(
        &proxy.url,
        &["--aws-limiter", "adaptive", "--aws-concurrency", "8"],
    );
    let c = s.connect().await;
    c.batch_execute(
        "BEGIN; INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.0.0.0/16'); COMMIT;",
    )
    .await
    .unwrap();
    // Unthrottled, the limit climbs from 4 while the calls keep coming.
    c.batch_execute(&security_groups("warm", 16)).await.unwrap();
    let risen = changes(&s)
        .iter()
        .filter(|ch| ch.service == "ec2")
        .map(|ch| ch.limit)
        .max();
    assert!(risen.is_some_and(|l| l > 4), "{:?}", changes(&s));
    let before = changes(&s).len();

    // AWS's own throttling answer (EC2: 503 RequestLimitExceeded).
    proxy.arm(
        Fault::on("CreateSecurityGroup")
            .times(4)
            .with(Effect::Throttle),
    );
    c.batch_execute(&security_groups("hot", 16)).await.unwrap();
    assert!(proxy.calls("CreateSecurityGroup") >= 16 + 4);
    let after = changes(&s);
    let cut = after[before..]
        .iter()
        .find(|ch| ch.reason == "throttle")
        .unwrap_or_else(|| panic!("no cut for throttling: {after:?}"));
    assert_eq!(cut.service, "ec2");
    assert!(cut.limit < cut.from, "{cut:?}");
    assert!(cut.limit >= 1 && cut.from <= 8, "{cut:?}");
    // Every group was made, once.
    let rows: i64 = one(
        &c,
        "SELECT count(*) FROM aws.security_group WHERE group_name LIKE 'hot-%' AND group_id LIKE 'sg-%'",
    )
    .await;
    assert_eq!(rows, 16);
    let groups = moto
        .ec2()
        .await
        .describe_security_groups()
        .send()
        .await
        .unwrap();
    let hot = groups
        .security_groups()
        .iter()
        .filter(|g| g.group_name().is_some_and(|n| n.starts_with("hot-")))
        .count();
    assert_eq!(hot, 16);
}

#[test]
fn an_unknown_limiter_refuses_to_start() {
    let tmp = common::temp_dir();
    let e = TestServer::start_in(&tmp.path().join("data"), &["--aws-limiter", "bogus"])
        .err()
        .expect("--aws-limiter bogus must not start");
    assert!(e.contains("--aws-limiter \"bogus\""), "{e}");
    assert!(e.contains("neither adaptive nor fixed"), "{e}");
}

/// Issue 15's hang: an operation that holds its (service, region)'s only
/// permit and asks for a second waited forever. Every provider operation
/// now borrows the permit it holds (`limiter::Operations`), so at a limit
/// of 1 (the ceiling, adaptive by default) a sync round of every table and
/// an instance's COMMIT, at once, both finish.
#[tokio::test]
async fn a_sync_round_and_an_instance_commit_finish_at_a_limit_of_one() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &["--aws-concurrency", "1"]);
    let setup = s.connect().await;
    // An instance for the instance listing to describe per item (its root
    // volume), as it did holding its permit.
    setup
        .batch_execute(
            "BEGIN;
             INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.0.0.0/16');
             INSERT INTO aws.instance (name, image_id) VALUES ('first', 'ami-760aaa0f');
             COMMIT;",
        )
        .await
        .unwrap();
    let sync = async {
        let c = s.connect().await;
        one::<serde_json::Value>(&c, "select infra.sync()").await
    };
    let commit = async {
        let c = s.connect().await;
        c.batch_execute(
            "BEGIN;
             INSERT INTO aws.instance (name, image_id, root_volume_size)
             VALUES ('second', 'ami-760aaa0f', 12);
             COMMIT;",
        )
        .await
    };
    let (summary, committed) = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        tokio::join!(sync, commit)
    })
    .await
    .unwrap_or_else(|_| panic!("hung at a limit of 1: {}", s.stderr()));
    committed.unwrap();
    assert!(summary.is_object(), "{summary}");
    let instances: i64 = one(
        &setup,
        "SELECT count(*) FROM aws.instance WHERE instance_id LIKE 'i-%'",
    )
    .await;
    assert_eq!(instances, 2);
    let running = moto
        .ec2()
        .await
        .describe_instances()
        .send()
        .await
        .unwrap()
        .reservations()
        .iter()
        .map(|r| r.instances().len())
        .sum::<usize>();
    assert_eq!(running, 2);
    // The limit stayed where the ceiling holds it.
    assert!(
        changes(&s).iter().all(|ch| ch.limit == 1),
        "{:?}",
        changes(&s)
    );
}
