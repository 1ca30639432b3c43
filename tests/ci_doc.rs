//! docs/ci.md, run as written: its marked shell blocks, in the order of a
//! pull request's life (plan, apply, a second pull request, drift), against
//! a real infrasql on moto, connected through libpq's PG* variables as the
//! pipelines are; and every command of its two pipelines is one of those
//! blocks, so the YAML cannot drift from what is tested.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{one, stdout, Moto, TestServer};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ci.md")).expect("docs/ci.md")
}

/// The fenced block of `lang` after `<!-- ci: NAME -->`.
fn block(doc: &str, name: &str, lang: &str) -> String {
    let marker = format!("<!-- ci: {name} -->");
    let after = &doc[doc
        .find(&marker)
        .unwrap_or_else(|| panic!("no marker {marker}"))
        + marker.len()..];
    let fence = format!("```{lang}\n");
    let start = after.find(&fence).expect("its block") + fence.len();
    let len = after[start..].find("```").expect("the block's end");
    after[start..start + len].to_owned()
}

/// Every ```yaml block's commands: `run:` values and `script:` items,
/// literal (`|`) blocks line by line.
fn pipeline_commands(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in doc.split("```yaml\n").skip(1) {
        let yaml = &chunk[..chunk.find("```").expect("the block's end")];
        let lines: Vec<&str> = yaml.lines().collect();
        let indent = |l: &str| l.len() - l.trim_start().len();
        let mut script: Option<usize> = None;
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            let t = l.trim();
            if script.is_some_and(|s| indent(l) <= s && !t.is_empty()) {
                script = None;
            }
            // A step is `- run: ...` or a mapping's `run: ...`.
            let step = t.strip_prefix("- ").unwrap_or(t);
            let literal = step == "run: |" || (t == "- |" && script.is_some());
            if literal {
                i += 1;
                while i < lines.len()
                    && (indent(lines[i]) > indent(l) || lines[i].trim().is_empty())
                {
                    if !lines[i].trim().is_empty() {
                        out.push(lines[i].trim().to_owned());
                    }
                    i += 1;
                }
                continue;
            }
            if let Some(cmd) = step.strip_prefix("run: ") {
                out.push(cmd.to_owned());
            } else if t == "script:" {
                script = Some(indent(l));
            } else if let (Some(_), Some(cmd)) = (script, t.strip_prefix("- ")) {
                out.push(cmd.to_owned());
            }
            i += 1;
        }
    }
    out
}

struct Job<'a> {
    s: &'a TestServer,
    repo: &'a Path,
    stubs: &'a Path,
}

impl Job<'_> {
    /// A marked block as a pipeline's shell runs it (`sh -e`), in the
    /// repository, connected through the PG* variables.
    fn run(&self, name: &str) -> Output {
        let script = block(&doc(), name, "sh");
        let bin_dir = Path::new(common::bin()).parent().unwrap();
        let path = format!(
            "{}:{}:{}",
            self.stubs.display(),
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("sh")
            .args(["-e", "-c", &script])
            .current_dir(self.repo)
            .env("PATH", path)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.s.port.to_string())
            .env("PGUSER", common::USER)
            .env("PGPASSWORD", self.s.password())
            .env("PGDATABASE", "infrasql")
            .env("PGCONNECT_TIMEOUT", "10")
            .env("GITLAB_TOKEN", "glpat-test")
            .env("CI_API_V4_URL", "https://gitlab.example.com/api/v4")
            .env("CI_PROJECT_ID", "42")
            .env("CI_MERGE_REQUEST_IID", "7")
            .output()
            .expect("run sh")
    }

    fn add_file(&self, name: &str) {
        std::fs::write(
            self.repo.join(name),
            block(&doc(), &format!("file {name}"), "sql"),
        )
        .unwrap();
    }
}

#[test]
fn every_pipeline_command_is_a_tested_block() {
    let doc = doc();
    let tested: HashSet<String> = ["plan", "apply", "drift", "gitlab-comment"]
        .iter()
        .flat_map(|n| {
            block(&doc, n, "sh")
                .lines()
                .map(|l| l.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let commands = pipeline_commands(&doc);
    assert!(commands.len() >= 15, "{commands:#?}");
    for c in &commands {
        assert!(tested.contains(c), "a pipeline command no test runs: {c}");
    }
    for needed in [
        "infrasql apply migrations/",
        "infrasql status --fail-on-drift",
    ] {
        assert!(
            commands.iter().filter(|c| *c == needed).count() >= 2,
            "{needed} in both pipelines"
        );
    }
}

#[tokio::test]
async fn the_pull_request_flow_runs_as_documented() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let tmp = common::temp_dir();
    let repo = tmp.path().join("repo");
    let stubs = tmp.path().join("stubs");
    std::fs::create_dir_all(repo.join("migrations")).unwrap();
    std::fs::create_dir_all(&stubs).unwrap();
    // The stand-in for GitLab's API: records its arguments and the body.
    let curl = stubs.join("curl");
    std::fs::write(
        &curl,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > curl.args\ncp plan.md curl.body\n",
    )
    .unwrap();
    std::fs::set_permissions(&curl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let job = Job {
        s: &s,
        repo: &repo,
        stubs: &stubs,
    };

    // The first pull request: the network.
    job.add_file("migrations/0001_network.sql");
    let o = job.run("plan");
    assert!(o.status.success(), "{}", common::stderr(&o));
    let plan = std::fs::read_to_string(repo.join("plan.md")).unwrap();
    assert!(
        plan.starts_with("**Plan:** 1 to create, 0 to update"),
        "{plan}"
    );
    assert!(plan.contains("### `aws.vpc`"), "{plan}");
    assert!(moto.vpcs().await.is_empty(), "plan applies nothing");

    let o = job.run("gitlab-comment");
    assert!(o.status.success(), "{}", common::stderr(&o));
    let args = std::fs::read_to_string(repo.join("curl.args")).unwrap();
    assert!(
        args.contains("https://gitlab.example.com/api/v4/projects/42/merge_requests/7/notes"),
        "{args}"
    );
    assert!(args.contains("PRIVATE-TOKEN: glpat-test"), "{args}");
    assert!(args.contains("body=<plan.md"), "{args}");
    assert_eq!(
        std::fs::read_to_string(repo.join("curl.body")).unwrap(),
        plan
    );

    // Merged: applied.
    let o = job.run("apply");
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(
        stdout(&o).contains("0001_network.sql: applied"),
        "{}",
        stdout(&o)
    );
    assert_eq!(moto.vpcs().await.len(), 1);

    // The second pull request plans only its own file.
    job.add_file("migrations/0002_subnet.sql");
    let o = job.run("plan");
    assert!(o.status.success(), "{}", common::stderr(&o));
    let plan = std::fs::read_to_string(repo.join("plan.md")).unwrap();
    assert!(
        plan.starts_with("**Plan:** 1 to create, 0 to update"),
        "{plan}"
    );
    assert!(
        plan.contains("### `aws.subnet`") && !plan.contains("aws.vpc"),
        "{plan}"
    );
    let o = job.run("apply");
    assert!(o.status.success(), "{}", common::stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("0001_network.sql: already applied, skipped"),
        "{out}"
    );
    assert!(out.contains("0002_subnet.sql: applied"), "{out}");
    let db = s.connect().await;
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM aws.subnet").await, 1);
    assert_eq!(
        one::<i64>(&db, "SELECT count(*) FROM infra.migration").await,
        2
    );
    // A re-run of the merge pipeline applies nothing.
    let o = job.run("apply");
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(stdout(&o).contains("nothing to apply"), "{}", stdout(&o));
    // So does a plan: exit 0, an empty plan, the job passes.
    let o = job.run("plan");
    assert!(o.status.success(), "{}", common::stderr(&o));

    // The schedule: no drift, then someone tags the VPC in the console.
    db.query("SELECT infra.sync()", &[]).await.unwrap();
    let o = job.run("drift");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&o),
        common::stderr(&o)
    );
    assert!(stdout(&o).contains("open drift: 0"), "{}", stdout(&o));

    db.batch_execute(
        "INSERT INTO infra.drift_policy (table_name, policy) VALUES ('aws.vpc', 'report')",
    )
    .await
    .unwrap();
    let vpc: String = one(&db, "SELECT vpc_id FROM aws.vpc WHERE name = 'prod'").await;
    moto.ec2()
        .await
        .create_tags()
        .resources(&vpc)
        .tags(
            infrasql_aws::aws_sdk_ec2::types::Tag::builder()
                .key("owner")
                .value("someone")
                .build(),
        )
        .send()
        .await
        .unwrap();
    db.query("SELECT infra.sync()", &[]).await.unwrap();
    let o = job.run("drift");
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{}", common::stderr(&o));
    let listed = out
        .lines()
        .find(|l| l.contains(&vpc))
        .unwrap_or_else(|| panic!("psql lists the drift: {out}"));
    assert!(
        listed.contains("aws.vpc") && listed.contains("changed"),
        "{listed}"
    );
    assert!(out.contains("open drift: 1"), "{out}");
}
