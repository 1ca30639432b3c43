//! The Prometheus metrics (issue 16, docs/metrics.md) against a real server
//! and moto: `infrasql::metrics::encode()`'s text, read with a Prometheus
//! text parser as a scraper would, moves after a session, a COMMIT, a
//! policy's denial and sync rounds, and names no secret and no resource id.
//!
//! The server runs in this process (`server::start`, as in
//! `tests/commit_hook.rs`): the metrics are the process's, and the HTTP
//! listener that serves them is another module's.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{one, sqlstate, Moto};
use infrasql::config::ServeArgs;
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};
use prometheus_parse::{Scrape, Value};

/// Credentials moto accepts; distinctive, so the text can be searched.
const ACCESS_KEY: &str = "AKIAMETRICSTEST00042";
const SECRET_KEY: &str = "metrics-test-secret-never-in-the-text";

fn scrape() -> Scrape {
    let text = infrasql::metrics::encode();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the text parses")
}

/// A sample's value (a counter, gauge or untyped number; a histogram's
/// `_count` is its own sample), or 0 when it is not there yet.
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{metric} is not a number: {other:?}"),
        })
        .sum()
}

/// How much a sample grew between two scrapes.
fn moved(before: &Scrape, after: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    value(after, metric, labels) - value(before, metric, labels)
}

/// Poll `f` until it holds, for at most 10 s.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct InProcess {
    running: Option<infrasql::server::Running>,
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
}

impl InProcess {
    async fn start(aws: &str) -> InProcess {
        // This process's AWS chain, as the server binary's would be.
        std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::remove_var("AWS_PROFILE");
        let tmp = common::temp_dir();
        let data = tmp.path().join("data");
        let cfg = ServeArgs {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(data.clone()),
            user: Some(common::USER.into()),
            pg_options: vec!["fsync=off".into()],
            aws_endpoint_url: Some(aws.to_owned()),
            // Rounds only when the test asks (`infra.sync`).
            sync_interval: Some(0.0),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let running = infrasql::server::start(cfg, None).await.unwrap();
        InProcess {
            running: Some(running),
            _tmp: tmp,
            data,
        }
    }

    fn password(&self) -> String {
        std::fs::read_to_string(self.data.join("password"))
            .unwrap()
            .trim()
            .to_owned()
    }

    async fn connect(&self) -> tokio_postgres::Client {
        common::connect(&format!(
            "host=127.0.0.1 port={} user={} password={} dbname=infrasql",
            self.running.as_ref().unwrap().local_addr.port(),
            common::USER,
            self.password()
        ))
        .await
        .unwrap()
    }

    async fn stop(mut self) {
        self.running.take().unwrap().shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_after_a_commit_a_denial_and_sync_rounds() {
    let moto = Moto::start();
    let s = InProcess::start(&moto.url).await;
    let s0 = scrape();

    // A session: started once, open while connected. The client may read
    // its ReadyForQuery a moment before the server counts the session.
    let c = s.connect().await;
    until("the session to count", || {
        value(&scrape(), "infrasql_client_sessions", &[]) == 1.0
    })
    .await;
    let started = "infrasql_client_sessions_started_total";
    let accepted = "infrasql_client_connections_accepted_total";
    let s1 = scrape();
    assert_eq!(moved(&s0, &s1, started, &[]), 1.0);
    assert_eq!(moved(&s0, &s1, accepted, &[]), 1.0);
    // A refused login is a connection, not a session.
    let port = s.running.as_ref().unwrap().local_addr.port();
    let wrong = format!(
        "host=127.0.0.1 port={port} user={} password=wrong dbname=infrasql",
        common::USER
    );
    let e = common::connect(&wrong).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("28P01"), "{e}");
    let s1 = scrape();
    assert_eq!(moved(&s0, &s1, accepted, &[]), 2.0);
    assert_eq!(moved(&s0, &s1, started, &[]), 1.0);
    assert_eq!(value(&s1, "infrasql_client_sessions", &[]), 1.0);

    // A COMMIT that creates a VPC: one commit, one apply, the EC2 call.
    c.batch_execute(
        "BEGIN; INSERT INTO aws.vpc (name, cidr_block, tags) VALUES ('m', '10.60.0.0/16', '{\"owner\": \"ops\"}'); COMMIT;",
    )
    .await
    .unwrap();
    let vpc: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'm'").await;
    let s2 = scrape();
    let committed = [("outcome", "committed")];
    assert_eq!(moved(&s1, &s2, "infrasql_commits_total", &committed), 1.0);
    let applied = [("source", "commit"), ("outcome", "applied")];
    assert_eq!(moved(&s1, &s2, "infrasql_applies_total", &applied), 1.0);
    assert_eq!(
        moved(&s1, &s2, "infrasql_apply_duration_seconds_count", &applied),
        1.0
    );
    let create = [
        ("service", "ec2"),
        ("action", "CreateVpc"),
        ("outcome", "success"),
    ];
    assert_eq!(moved(&s1, &s2, "infrasql_aws_requests_total", &create), 1.0);
    let limit = [("service", "ec2"), ("region", "us-east-1")];
    assert!(value(&s2, "infrasql_aws_concurrency_limit", &limit) >= 1.0);

    // A deny policy refuses the next VPC: a denial and a refused commit,
    // and no AWS call.
    c.batch_execute(
        "INSERT INTO infra.policy (name, severity, message, query) VALUES \
         ('vpc-owner', 'deny', 'every VPC needs an owner tag', \
          $$SELECT vpc_id AS resource_id FROM aws.vpc WHERE NOT tags ? 'owner'$$)",
    )
    .await
    .unwrap();
    let s3 = scrape();
    let e = c
        .batch_execute(
            "BEGIN; INSERT INTO aws.vpc (name, cidr_block) VALUES ('n', '10.61.0.0/16'); COMMIT;",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("IX200"), "{e:?}");
    let s4 = scrape();
    let denial = [("policy", "vpc-owner")];
    assert_eq!(
        moved(&s3, &s4, "infrasql_policy_denials_total", &denial),
        1.0
    );
    let refused = [("outcome", "refused")];
    assert_eq!(moved(&s3, &s4, "infrasql_commits_total", &refused), 1.0);
    assert_eq!(moved(&s3, &s4, "infrasql_aws_requests_total", &create), 0.0);

    // Sync: the first round imports; a VPC made behind infrasql's back is
    // then open drift under `report`.
    let _: serde_json::Value = one(&c, "SELECT infra.sync('aws.vpc')").await;
    let s5 = scrape();
    let pair = [("table", "aws.vpc"), ("region", "us-east-1")];
    let ok = [
        ("table", "aws.vpc"),
        ("region", "us-east-1"),
        ("outcome", "success"),
    ];
    assert_eq!(moved(&s4, &s5, "infrasql_sync_rounds_total", &ok), 1.0);
    assert_eq!(
        moved(
            &s4,
            &s5,
            "infrasql_sync_round_duration_seconds_count",
            &pair
        ),
        1.0
    );
    let age = value(&s5, "infrasql_sync_age_seconds", &pair);
    assert!((0.0..10.0).contains(&age), "age {age}");
    assert_eq!(
        value(&s5, "infrasql_drift_open", &[("table", "aws.vpc")]),
        0.0
    );
    c.batch_execute(
        "INSERT INTO infra.drift_policy (table_name, policy) VALUES ('aws.vpc', 'report')",
    )
    .await
    .unwrap();
    let stranger = moto
        .ec2()
        .await
        .create_vpc()
        .cidr_block("10.62.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_owned();
    let _: serde_json::Value = one(&c, "SELECT infra.sync('aws.vpc')").await;
    let s6 = scrape();
    assert_eq!(moved(&s5, &s6, "infrasql_sync_rounds_total", &ok), 1.0);
    assert_eq!(
        value(&s6, "infrasql_drift_open", &[("table", "aws.vpc")]),
        1.0
    );
    let open: i64 = one(
        &c,
        "SELECT count(*) FROM infra.drift WHERE resolution = 'open' AND table_name = 'aws.vpc'",
    )
    .await;
    assert_eq!(open, 1, "the gauge is the database's count");

    // Nothing in the text is a secret or names a resource.
    let text = infrasql::metrics::encode();
    for secret in [SECRET_KEY, ACCESS_KEY, &s.password(), &vpc, &stranger] {
        assert!(!text.contains(secret), "the metrics name {secret}");
    }
    assert!(!text.contains("10.6"), "no CIDR in the metrics");
    assert!(
        !text.to_lowercase().contains("select "),
        "no SQL in the metrics"
    );

    // Every sample's labels are the ones docs/metrics.md lists.
    let documented = documented();
    for sample in &s6.samples {
        let family = family_of(&sample.metric, &documented)
            .unwrap_or_else(|| panic!("{} is not in docs/metrics.md", sample.metric));
        for k in sample.labels.keys() {
            assert!(
                documented[family].labels.contains(k.as_str()),
                "{}'s label {k} is not in docs/metrics.md",
                sample.metric
            );
        }
    }

    // The session's end is counted once the server has seen it.
    drop(c);
    until("the session to close", || {
        value(&scrape(), "infrasql_client_sessions", &[]) == 0.0
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_and_lost_answers_are_counted_by_service_action_and_outcome() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = InProcess::start(&proxy.url).await;
    let c = s.connect().await;

    // AWS's throttling answer twice; the SDK's third attempt gets through.
    proxy.arm(Fault::on("DescribeVpcs").times(2).with(Effect::Throttle));
    let before = scrape();
    let _: serde_json::Value = one(&c, "SELECT infra.sync('aws.vpc')").await;
    let after = scrape();
    let list = |outcome| {
        [
            ("service", "ec2"),
            ("action", "DescribeVpcs"),
            ("outcome", outcome),
        ]
    };
    let requests = "infrasql_aws_requests_total";
    assert_eq!(moved(&before, &after, requests, &list("throttled")), 2.0);
    assert!(moved(&before, &after, requests, &list("success")) >= 1.0);
    let ec2 = [("service", "ec2"), ("region", "us-east-1")];
    assert_eq!(
        moved(&before, &after, "infrasql_aws_throttles_total", &ec2),
        2.0
    );
    assert_eq!(
        proxy.calls("DescribeVpcs") as f64,
        value(&after, requests, &list("throttled"))
            + value(&after, requests, &list("success"))
            + value(&after, requests, &list("error")),
        "every request the proxy saw is counted once"
    );
    // Throttled, the limit is back at its floor.
    assert_eq!(value(&after, "infrasql_aws_concurrency_limit", &ec2), 1.0);
    let ok = [
        ("table", "aws.vpc"),
        ("region", "us-east-1"),
        ("outcome", "success"),
    ];
    assert_eq!(
        moved(&before, &after, "infrasql_sync_rounds_total", &ok),
        1.0
    );

    // A connection reset before moto sees the call: no answer, then a retry.
    proxy.clear();
    proxy.arm(
        Fault::on("DescribeSubnets")
            .times(1)
            .with(Effect::ResetBefore),
    );
    let before = scrape();
    let _: serde_json::Value = one(&c, "SELECT infra.sync('aws.subnet')").await;
    let after = scrape();
    let list = |outcome| {
        [
            ("service", "ec2"),
            ("action", "DescribeSubnets"),
            ("outcome", outcome),
        ]
    };
    assert_eq!(moved(&before, &after, requests, &list("no_answer")), 1.0);
    assert!(moved(&before, &after, requests, &list("success")) >= 1.0);
    assert_eq!(
        moved(&before, &after, "infrasql_aws_throttles_total", &ec2),
        0.0
    );
    drop(c);
    s.stop().await;
}

/// One row of docs/metrics.md's table.
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
    help: String,
}

/// docs/metrics.md's table: `| name | type | labels | meaning |`.
fn documented() -> BTreeMap<String, Documented> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    let code = |s: &str| s.trim().trim_matches('`').to_owned();
    doc.lines()
        .filter(|l| l.starts_with("| `infrasql_"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 4, "four cells: {l}");
            let labels = cells[2]
                .split(',')
                .map(code)
                .filter(|s| !s.is_empty() && s != "—")
                .collect();
            let doc = Documented {
                kind: cells[1].trim().to_owned(),
                labels,
                help: cells[3].trim().to_owned(),
            };
            (code(cells[0]), doc)
        })
        .collect()
}

/// The documented family a sample belongs to (`x_total` → `x`,
/// `x_bucket` → `x`).
fn family_of<'d>(sample: &str, documented: &'d BTreeMap<String, Documented>) -> Option<&'d str> {
    ["", "_total", "_bucket", "_count", "_sum"]
        .iter()
        .filter_map(|suffix| sample.strip_suffix(suffix))
        .find_map(|name| documented.get_key_value(name).map(|(k, _)| k.as_str()))
}

#[test]
fn docs_metrics_md_lists_every_metric_with_its_type_and_help() {
    // A family with no sample yet writes no lines: one of each (this test
    // has a process of its own, nextest's rule).
    use infrasql::metrics::*;
    let _open = session_opened();
    commit_finished(CommitOutcome::Committed);
    apply_finished(
        ApplySource::Commit,
        ApplyOutcome::Applied,
        Duration::from_secs(1),
    );
    policy_denied("p");
    sync_round_finished("aws.vpc", "us-east-1", true, Duration::from_secs(1));
    set_open_drift(["aws.vpc".to_owned()], &[]);
    let text = encode();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
        }
    }
    let scraped = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let documented = documented();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        types.keys().collect::<Vec<_>>(),
        "docs/metrics.md lists what encode() has"
    );
    for (name, d) in &documented {
        assert_eq!(d.kind, types[name], "{name}'s type");
        // The HELP line less the full stop the registry adds.
        assert_eq!(
            d.help,
            scraped.docs[name].trim_end_matches('.'),
            "{name}'s meaning"
        );
    }
}
