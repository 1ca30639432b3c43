//! `infrasql apply` and `infrasql status`: the real binary against a real
//! server on moto. A migrations directory applied once and recorded, a
//! second run that applies nothing, a changed file refused (or accepted
//! with --allow-changed), a failing file not recorded, the CI log's
//! timestamped lines, and `psql -1 -f` giving the same result.

mod common;

use std::process::{Command, Output};

use common::{one, write_file as write, Moto, TestServer};
use sha2::{Digest, Sha256};

fn infrasql(s: &TestServer, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg(args[0])
        .args(["--url", &s.conn_string()])
        .args(&args[1..])
        .output()
        .expect("run infrasql")
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const VPC: &str =
    "-- the network\nINSERT INTO aws.vpc (name, cidr_block) VALUES ('mig', '10.61.0.0/16');\n";
const SUBNET: &str = "INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)\n  SELECT 'mig-a', vpc_id, '10.61.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'mig';\n";

/// Whether a line starts with an RFC 3339 UTC timestamp.
fn timestamped(line: &str) -> bool {
    line.split_once(' ')
        .is_some_and(|(t, _)| t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(t).is_ok())
}

#[tokio::test]
async fn a_directory_is_applied_once_recorded_and_shown_in_status() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    write(&migrations, "0001_vpc.sql", VPC);
    let subnet_file = write(&migrations, "0002_subnet.sql", SUBNET);
    write(&migrations, "README.txt", "not a migration");
    let m = migrations.display().to_string();

    let o = infrasql(&s, &["apply", &m]);
    let out = common::stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", common::stderr(&o));
    // Not a terminal: every line is timestamped, the actions' starts and
    // ends included.
    assert!(out.lines().all(timestamped), "{out}");
    let started = out
        .lines()
        .position(|l| l.contains("infrasql: step 1: started + create aws.vpc \"mig\""))
        .unwrap_or_else(|| panic!("{out}"));
    let done = out
        .lines()
        .position(|l| l.contains("infrasql: step 1: done as vpc-"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(started < done, "{out}");
    assert!(out.contains("0001_vpc.sql: applied (apply apply-"), "{out}");
    assert!(
        out.contains("0002_subnet.sql: applied (apply apply-"),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .ends_with("applied 2 files, 0 already applied"),
        "{out}"
    );

    // Both exist in AWS, in order (the subnet is in the VPC).
    let vpcs = moto.vpcs().await;
    assert_eq!(vpcs.len(), 1);
    let subnets = moto
        .ec2()
        .await
        .describe_subnets()
        .filters(
            infrasql_aws::aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpcs[0])
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(subnets.subnets().len(), 1);
    assert_eq!(subnets.subnets()[0].cidr_block(), Some("10.61.1.0/24"));

    // Recorded with their checksums and the applies that made them.
    let db = s.connect().await;
    let rows = db
        .query(
            "SELECT m.name, m.checksum, a.status, a.actions \
             FROM infra.migration m JOIN infra.apply a USING (apply_id) ORDER BY m.name",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, i32)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(3)))
        .collect();
    assert_eq!(
        got,
        [
            ("0001_vpc.sql".into(), sha256(VPC), 1),
            ("0002_subnet.sql".into(), sha256(SUBNET), 1)
        ]
    );

    // Again: nothing to apply, and it says so.
    let o = infrasql(&s, &["apply", &m]);
    let out = common::stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", common::stderr(&o));
    assert!(
        out.contains("0001_vpc.sql: already applied, skipped"),
        "{out}"
    );
    assert!(
        out.contains("nothing to apply: 2 files already applied"),
        "{out}"
    );
    assert!(!out.contains("infrasql: applying"), "{out}");
    assert_eq!(moto.vpcs().await.len(), 1);

    // A changed applied file stops the run before anything runs.
    let changed = SUBNET.replace("mig-a", "mig-b");
    std::fs::write(&subnet_file, &changed).unwrap();
    write(
        &migrations,
        "0003_more.sql",
        "INSERT INTO aws.vpc (name, cidr_block) VALUES ('later', '10.62.0.0/16');\n",
    );
    let o = infrasql(&s, &["apply", &m]);
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "0002_subnet.sql: applied with sha256 {}, its content now has sha256 {}",
            sha256(SUBNET),
            sha256(&changed)
        )),
        "{err}"
    );
    assert_eq!(moto.vpcs().await.len(), 1, "0003 must not run");

    // --allow-changed: the new content is recorded as applied, not run;
    // the new file runs.
    let o = infrasql(&s, &["apply", "--allow-changed", &m]);
    let out = common::stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", common::stderr(&o));
    assert!(
        out.contains("warning: 0002_subnet.sql changed after it was applied"),
        "{out}"
    );
    assert!(out.contains("0003_more.sql: applied"), "{out}");
    assert_eq!(
        one::<String>(
            &db,
            "SELECT checksum FROM infra.migration WHERE name = '0002_subnet.sql'"
        )
        .await,
        sha256(&changed)
    );
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM aws.subnet").await,
        1,
        "the changed file is not run again"
    );
    assert_eq!(moto.vpcs().await.len(), 2);
    let o = infrasql(&s, &["apply", &m]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    assert!(common::stdout(&o).contains("nothing to apply: 3 files already applied"));

    // status: the sync state after a round, the last apply.
    db.query("SELECT infra.sync()", &[]).await.unwrap();
    let last: String = one(
        &db,
        "SELECT apply_id FROM infra.migration WHERE name = '0003_more.sql'",
    )
    .await;
    let o = infrasql(&s, &["status"]);
    let out = common::stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", common::stderr(&o));
    assert!(out.starts_with("server: infrasql "), "{out}");
    let vpc_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("aws.vpc ") && l.contains("us-east-1"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(vpc_line.trim_end().ends_with("ok"), "{vpc_line}");
    assert!(out.contains("open drift: 0"), "{out}");
    let apply_line = out
        .lines()
        .find(|l| l.contains(&last))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(apply_line.contains(" 1 "), "one action: {apply_line}");

    let o = infrasql(&s, &["status", "--format", "json", "--fail-on-drift"]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["applies"][0]["apply_id"], last.as_str());
    assert!(j["sync"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["table"] == "aws.vpc" && r["error"].is_null()));
}

#[tokio::test]
async fn a_failing_file_stops_the_run_and_is_not_recorded() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    write(dir.path(), "0001_vpc.sql", VPC);
    let bad = write(
        dir.path(),
        "0002_bad.sql",
        "INSERT INTO aws.vpc (name, cidr_block) VALUES ('ok-then-undone', '10.70.0.0/16');\n\
         -- wrong:\nINSERT INTO aws.vpc (name, cidr_block)\n  VALUES ('x', 'not a cidr');\n",
    );
    write(
        dir.path(),
        "0003_never.sql",
        "INSERT INTO aws.vpc (name, cidr_block) VALUES ('never', '10.71.0.0/16');\n",
    );
    let o = infrasql(&s, &["apply", &dir.path().display().to_string()]);
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{bad}:4: 22P02")), "{err}");
    assert!(common::stdout(&o).contains("0001_vpc.sql: applied"));

    let db = s.connect().await;
    let names: Vec<String> = db
        .query("SELECT name FROM infra.migration ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["0001_vpc.sql"]);
    let vpcs: Vec<String> = db
        .query("SELECT name FROM aws.vpc ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(vpcs, ["mig"]);
    assert_eq!(moto.vpcs().await.len(), 1);
}

#[tokio::test]
async fn a_refused_commit_names_the_file_and_records_nothing() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let db = s.connect().await;
    db.batch_execute(
        "INSERT INTO infra.policy (name, query, message) VALUES ('no-lab', \
         'SELECT vpc_id AS resource_id FROM aws.vpc WHERE name = ''lab''', 'no lab networks')",
    )
    .await
    .unwrap();
    let dir = common::temp_dir();
    let f = write(
        dir.path(),
        "0001_lab.sql",
        "INSERT INTO aws.vpc (name, cidr_block) VALUES ('lab', '10.72.0.0/16');\n",
    );
    let o = infrasql(&s, &["apply", &f]);
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{f}: COMMIT failed")), "{err}");
    assert!(err.contains("IX200"), "{err}");
    assert!(err.contains("no lab networks"), "{err}");
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM infra.migration").await,
        0
    );
    assert!(moto.vpcs().await.is_empty());
}

#[tokio::test]
async fn transaction_control_in_a_file_is_refused_before_anything_runs() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    write(dir.path(), "0001_vpc.sql", VPC);
    let f = write(dir.path(), "0002_commit.sql", &format!("{SUBNET}COMMIT;\n"));
    let o = infrasql(&s, &["apply", &dir.path().display().to_string()]);
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{f}:3: a migration file runs in one transaction")),
        "{err}"
    );
    assert!(moto.vpcs().await.is_empty());
}

/// The rows that matter, without the ids AWS assigns.
async fn network(db: &tokio_postgres::Client) -> Vec<String> {
    db.query(
        "SELECT format('vpc %s %s %s %s', name, cidr_block, enable_dns_hostnames, tags) \
         FROM aws.vpc \
         UNION ALL \
         SELECT format('subnet %s %s %s in %s', s.name, s.cidr_block, s.availability_zone, v.name) \
         FROM aws.subnet s JOIN aws.vpc v USING (vpc_id) \
         UNION ALL \
         SELECT format('sg %s %s in %s', g.group_name, g.description, v.name) \
         FROM aws.security_group g JOIN aws.vpc v USING (vpc_id) \
         ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// What AWS has, without its ids: CIDRs and Name tags.
async fn in_aws(moto: &Moto) -> Vec<String> {
    let ec2 = moto.ec2().await;
    let name = |tags: &[infrasql_aws::aws_sdk_ec2::types::Tag]| {
        tags.iter()
            .find(|t| t.key() == Some("Name"))
            .and_then(|t| t.value())
            .unwrap_or_default()
            .to_string()
    };
    let mut out = Vec::new();
    for v in ec2.describe_vpcs().send().await.unwrap().vpcs() {
        if v.is_default() != Some(true) {
            out.push(format!(
                "vpc {} {}",
                name(v.tags()),
                v.cidr_block().unwrap_or_default()
            ));
        }
    }
    for s in ec2.describe_subnets().send().await.unwrap().subnets() {
        if s.default_for_az() != Some(true) {
            out.push(format!(
                "subnet {} {}",
                name(s.tags()),
                s.cidr_block().unwrap_or_default()
            ));
        }
    }
    for g in ec2
        .describe_security_groups()
        .send()
        .await
        .unwrap()
        .security_groups()
    {
        if g.group_name() != Some("default") {
            out.push(format!("sg {}", g.group_name().unwrap_or_default()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn psql_single_transaction_and_apply_give_the_same_result() {
    let change = "INSERT INTO aws.vpc (name, cidr_block, enable_dns_hostnames, tags)\n\
                    VALUES ('same', '10.80.0.0/16', true, '{\"team\": \"net\"}');\n\
                  INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)\n\
                    SELECT 'same-a', vpc_id, '10.80.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'same';\n\
                  INSERT INTO aws.security_group (group_name, description, vpc_id)\n\
                    SELECT 'same-web', 'web tier', vpc_id FROM aws.vpc WHERE name = 'same';\n";
    let mut results = Vec::new();
    for how in ["psql", "apply"] {
        let moto = Moto::start();
        let s = TestServer::start_on(&moto, &[]);
        let dir = common::temp_dir();
        let f = write(dir.path(), "change.sql", change);
        let o = match how {
            "psql" => s.psql(&["-1", "-f", &f]),
            _ => infrasql(&s, &["apply", &f]),
        };
        assert!(o.status.success(), "{how}: {}", common::stderr(&o));
        let db = s.connect().await;
        results.push((network(&db).await, in_aws(&moto).await));
    }
    assert_eq!(results[0].0.len(), 3, "{:?}", results[0]);
    assert_eq!(results[0].1.len(), 3, "{:?}", results[0]);
    assert_eq!(results[0], results[1]);
}

#[tokio::test]
async fn on_a_terminal_a_progress_bar_shows_the_actions() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    let f = write(dir.path(), "0001_vpc.sql", VPC);
    // script(1) gives the binary a terminal for its stdout.
    let cmd = format!("{} apply --url '{}' {f}", common::bin(), s.conn_string());
    let o = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .output()
        .expect("run script");
    let out = common::stdout(&o);
    assert!(o.status.success(), "{out}\n{}", common::stderr(&o));
    assert!(out.contains("0/1"), "the bar before the action ends: {out}");
    assert!(
        out.contains("infrasql: step 1: started + create aws.vpc"),
        "{out}"
    );
    assert!(out.contains("0001_vpc.sql: applied (apply apply-"), "{out}");
    assert!(
        !out.lines().any(timestamped),
        "no timestamps on a terminal: {out}"
    );
    assert_eq!(moto.vpcs().await.len(), 1);
}
