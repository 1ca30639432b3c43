//! The GitOps agent (`serve --gitops-repo`): a local repository over
//! `file://`, made with the `git` binary, and a server following it every
//! second. Commits create, update, roll back and prune a stack; a broken
//! stack fails alone; a stack whose directory is gone and a fetch that
//! fails apply nothing; self_heal reverts a change made in AWS; a large
//! prune waits for `infrasql stack confirm`; one set of files serves two
//! stacks with different variables. Conditions are awaited with a deadline.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{one, Moto, TestServer};
use tokio_postgres::Client;

/// A git repository in a temp dir, committed to by "Ada".
struct Repo {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let tmp = common::temp_dir();
        let dir = tmp.path().join("infra-repo");
        std::fs::create_dir(&dir).unwrap();
        let r = Repo { _tmp: tmp, dir };
        r.git(&["init", "--quiet", "--initial-branch=main"]);
        r
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn git(&self, args: &[&str]) -> String {
        let o = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
            .args(args)
            .output()
            .expect("run git");
        assert!(o.status.success(), "git {args:?}: {}", common::stderr(&o));
        common::stdout(&o).trim().to_owned()
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn remove(&self, path: &str) {
        self.git(&["rm", "-r", "--quiet", path]);
    }

    /// Commit everything; the new commit's SHA.
    fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }
}

fn serve(moto: &Moto, repo: &Repo) -> TestServer {
    let url = repo.url();
    TestServer::start_on(
        moto,
        &[
            "--gitops-repo",
            &url,
            "--gitops-path",
            "infra",
            "--gitops-interval",
            "1s",
        ],
    )
}

/// Poll `f` until it returns Some, for up to 60 s; a timeout shows the
/// agent's log lines.
async fn until<T, F, Fut>(s: &TestServer, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            let log = s.stderr();
            let agent: Vec<&str> = log.lines().filter(|l| l.contains("gitops")).collect();
            panic!(
                "timed out waiting for {what}; the agent logged:\n{}",
                agent.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One stack's row of infra.stack: (revision, status, resources, error).
async fn stack_row(
    c: &Client,
    name: &str,
) -> Option<(Option<String>, String, i64, Option<String>)> {
    c.query_opt(
        "SELECT revision, status, resources, error FROM infra.stack WHERE name = $1",
        &[&name],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
}

/// Wait until the stack is applied at `sha`; its resource count.
async fn applied_at(s: &TestServer, c: &Client, name: &str, sha: &str) -> i64 {
    until(s, &format!("stack {name} applied at {sha}"), || async {
        stack_row(c, name)
            .await
            .filter(|(rev, status, _, _)| rev.as_deref() == Some(sha) && status != "failed")
            .map(|r| r.2)
    })
    .await
}

async fn vpc_tag(moto: &Moto, vpc: &str, key: &str) -> Option<String> {
    let out = moto
        .ec2()
        .await
        .describe_vpcs()
        .vpc_ids(vpc)
        .send()
        .await
        .unwrap();
    out.vpcs()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value().map(str::to_owned))
}

const NET: &str = "INSERT INTO aws.vpc (name, cidr_block, tags)
  VALUES ('net', '10.40.0.0/16', jsonb_build_object('env', :'environment', 'tier', 'one'));\n";
const SUBNET: &str = "INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'a', vpc_id, '10.40.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'net';\n";

#[tokio::test]
async fn commits_create_update_roll_back_and_prune_and_nothing_else_deletes() {
    let moto = Moto::start();
    let repo = Repo::new();
    repo.write("infra/net/stack.toml", "environment = \"staging\"\n");
    repo.write("infra/net/01_vpc.sql", NET);
    repo.write("infra/marker/stack.toml", "# round 1\n");
    repo.write(
        "infra/old/01.sql",
        &NET.replace("'net'", "'old'")
            .replace(":'environment'", "'old'")
            .replace("10.40.", "10.41."),
    );
    let c1 = repo.commit("net: a VPC");
    let s = serve(&moto, &repo);
    let db = s.connect().await;

    // A commit creates the stack, named <dir>.<environment>.
    assert_eq!(applied_at(&s, &db, "net.staging", &c1).await, 1);
    let vpc: String = one(
        &db,
        "SELECT vpc_id FROM aws.vpc WHERE stack = 'net.staging'",
    )
    .await;
    assert_eq!(
        vpc_tag(&moto, &vpc, "env").await.as_deref(),
        Some("staging")
    );
    let (source, author): (String, String) = {
        let r = db
            .query_one(
                "SELECT source, author FROM infra.stack WHERE name = 'net.staging'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(source, format!("git {} infra/net", repo.url()));
    assert_eq!(author, "Ada <ada@example.com>");
    assert_eq!(applied_at(&s, &db, "old", &c1).await, 1);
    assert_eq!(moto.vpcs().await.len(), 2);

    // delete = true removes a stack's resources, then the stack.
    repo.write("infra/old/stack.toml", "delete = true\n");
    repo.commit("retire old");
    until(&s, "stack old deleted", || async {
        stack_row(&db, "old").await.is_none().then_some(())
    })
    .await;
    assert_eq!(moto.vpcs().await, vec![vpc.clone()]);

    // A second commit updates it, a third adds a subnet.
    repo.write("infra/net/01_vpc.sql", &NET.replace("'one'", "'two'"));
    let c2 = repo.commit("net: tier two");
    assert_eq!(applied_at(&s, &db, "net.staging", &c2).await, 1);
    assert_eq!(vpc_tag(&moto, &vpc, "tier").await.as_deref(), Some("two"));
    repo.write("infra/net/02_subnet.sql", SUBNET);
    let c3 = repo.commit("net: a subnet");
    assert_eq!(applied_at(&s, &db, "net.staging", &c3).await, 2);

    // git revert deletes the file again: the subnet is pruned, in AWS too.
    repo.git(&["revert", "--no-edit", "HEAD"]);
    let c4 = repo.git(&["rev-parse", "HEAD"]);
    assert_eq!(applied_at(&s, &db, "net.staging", &c4).await, 1);
    let subnets = moto
        .ec2()
        .await
        .describe_subnets()
        .filters(
            infrasql_aws::aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(subnets.subnets().is_empty(), "{subnets:?}");

    // A broken stack fails alone; the other stack of the commit applies.
    repo.write(
        "infra/broken/01.sql",
        "INSERT INTO aws.vpc (name, cidr_block) VALUS ('x', '10.9.0.0/16');\n",
    );
    repo.write("infra/net/01_vpc.sql", &NET.replace("'one'", "'three'"));
    let c5 = repo.commit("broken, and tier three");
    assert_eq!(applied_at(&s, &db, "net.staging", &c5).await, 1);
    let (_, status, _, error) = until(&s, "stack broken failed", || async {
        stack_row(&db, "broken").await.filter(|r| r.1 == "failed")
    })
    .await;
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(
        error.contains("01.sql:1") && error.contains("42601"),
        "{error}"
    );
    let backoff: bool = one(
        &db,
        "SELECT next_attempt_at > now() FROM infra.stack WHERE name = 'broken'",
    )
    .await;
    assert!(
        backoff,
        "a failed stack is retried after a backoff, not in a tight loop"
    );

    // The net directory disappears: nothing of it is pruned.
    repo.remove("infra/net");
    repo.write("infra/marker/stack.toml", "# round 2\n");
    let c6 = repo.commit("net moved away by mistake");
    applied_at(&s, &db, "marker", &c6).await;
    let (rev, status, resources, _) = stack_row(&db, "net.staging").await.unwrap();
    assert_eq!(
        (rev.as_deref(), status.as_str(), resources),
        (Some(c5.as_str()), "synced", 1)
    );
    assert_eq!(moto.vpcs().await, vec![vpc.clone()]);

    // A commit without the gitops path applies nothing either.
    repo.remove("infra");
    repo.write("README", "moved to infra2/\n");
    let c7 = repo.commit("infra/ moved away by mistake");
    until(&s, "the missing path logged", || async {
        s.stderr()
            .contains("has no stack directories at")
            .then_some(())
    })
    .await;

    // Nor does a fetch that fails (the repository moved away).
    std::fs::rename(&repo.dir, repo.dir.with_extension("moved")).unwrap();
    until(&s, "a failed fetch logged", || async {
        s.stderr().contains("cannot fetch main").then_some(())
    })
    .await;
    let marker = stack_row(&db, "marker").await.unwrap();
    assert_eq!(
        marker.0.as_deref(),
        Some(c6.as_str()),
        "{c7} applied nothing"
    );
    let net = stack_row(&db, "net.staging").await.unwrap();
    assert_eq!((net.0.as_deref(), net.2), (Some(c5.as_str()), 1));
    assert_eq!(moto.vpcs().await, vec![vpc]);
}

const WEB: &str = "INSERT INTO aws.vpc (name, cidr_block, tags)
  VALUES ('web', :'cidr', jsonb_build_object('env', :'environment'));\n";

fn subnets(octet: u8, n: u8) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 's{i}', vpc_id, '10.{octet}.{i}.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'web';\n"
            )
        })
        .collect()
}

fn web(repo: &Repo, env: &str, octet: u8, self_heal: bool, n_subnets: u8) {
    repo.write(
        &format!("infra/web-{env}/stack.toml"),
        &format!(
            "name = \"web.{env}\"\nenvironment = \"{env}\"\nself_heal = {self_heal}\n\n[vars]\ncidr = \"10.{octet}.0.0/16\"\n"
        ),
    );
    repo.write(&format!("infra/web-{env}/01_vpc.sql"), WEB);
    repo.write(
        &format!("infra/web-{env}/02_subnets.sql"),
        &subnets(octet, n_subnets),
    );
}

#[tokio::test]
async fn self_heal_prune_confirmation_and_one_set_of_files_for_two_stacks() {
    let moto = Moto::start();
    let repo = Repo::new();
    web(&repo, "staging", 50, true, 1);
    web(&repo, "prod", 51, false, 2);
    let c1 = repo.commit("web in staging and prod");
    let s = serve(&moto, &repo);
    let db = s.connect().await;

    // The same files, different variables.
    assert_eq!(applied_at(&s, &db, "web.staging", &c1).await, 2);
    assert_eq!(applied_at(&s, &db, "web.prod", &c1).await, 3);
    let cidrs: Vec<String> = db
        .query(
            "SELECT stack || ' ' || cidr_block::text FROM aws.vpc ORDER BY stack",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(cidrs, ["web.prod 10.51.0.0/16", "web.staging 10.50.0.0/16"]);

    // A change made in AWS: reverted in staging (self_heal), reported in prod.
    let _: serde_json::Value = one(&db, "SELECT infra.sync()").await;
    let id = |stack: &'static str| {
        let db = &db;
        async move {
            one::<String>(
                db,
                &format!("SELECT vpc_id FROM aws.vpc WHERE stack = '{stack}'"),
            )
            .await
        }
    };
    let (staging, prod) = (id("web.staging").await, id("web.prod").await);
    let ec2 = moto.ec2().await;
    for vpc in [&staging, &prod] {
        ec2.create_tags()
            .resources(vpc)
            .tags(
                infrasql_aws::aws_sdk_ec2::types::Tag::builder()
                    .key("env")
                    .value("console")
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let _: serde_json::Value = one(&db, "SELECT infra.sync()").await;
    assert_eq!(
        vpc_tag(&moto, &staging, "env").await.as_deref(),
        Some("staging")
    );
    assert_eq!(
        vpc_tag(&moto, &prod, "env").await.as_deref(),
        Some("console")
    );
    let prod_row = stack_row(&db, "web.prod").await.unwrap();
    assert_eq!(prod_row.1, "drifted");

    // Removing both of prod's subnets (2 of 3 resources) waits for a person.
    repo.remove("infra/web-prod/02_subnets.sql");
    let c2 = repo.commit("prod: no subnets");
    let (_, _, resources, error) = until(&s, "web.prod waiting", || async {
        stack_row(&db, "web.prod")
            .await
            .filter(|r| r.1 == "waiting")
    })
    .await;
    assert_eq!(resources, 3, "nothing was pruned");
    let error = error.unwrap();
    assert!(
        error.contains("would delete 2 of the stack's 3 resources"),
        "{error}"
    );
    assert!(error.contains("infrasql stack confirm web.prod"), "{error}");
    let o = Command::new(common::bin())
        .args(["stack", "confirm", "web.prod", "--url", &s.conn_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(
        common::stdout(&o).contains("confirmed"),
        "{}",
        common::stdout(&o)
    );
    assert_eq!(applied_at(&s, &db, "web.prod", &c2).await, 1);

    // Confirming a stack that waits for nothing is an error that says so.
    let e = db
        .query_one("SELECT infra.stack_confirm('web.prod')", &[])
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&e).as_deref(), Some("55000"));

    // Nothing was deleted in staging by the prod change.
    assert_eq!(moto.vpcs().await.len(), 2);
}

/// `infrasql stack delete` prunes then forgets; a stack with resources
/// cannot be dropped behind its back.
#[tokio::test]
async fn stack_delete_from_the_command_line() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    let files: &Path = dir.path();
    common::write_file(files, "01.sql", &NET.replace(":'environment'", "'dev'"));
    let o = Command::new(common::bin())
        .args(["apply", "--url", &s.conn_string(), "--stack", "net"])
        .arg(files)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let db = s.connect().await;
    let e = db
        .query_one("SELECT infra.stack_drop('net')", &[])
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&e).as_deref(), Some("2BP01"));
    let o = Command::new(common::bin())
        .args(["stack", "delete", "net", "--url", &s.conn_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(
        common::stdout(&o),
        "stack net: deleted (1 resource(s) pruned)\n"
    );
    assert!(stack_row(&db, "net").await.is_none());
    assert!(moto.vpcs().await.is_empty());
    let o = Command::new(common::bin())
        .args(["stack", "delete", "net", "--url", &s.conn_string()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("stack net does not exist"),
        "{}",
        common::stderr(&o)
    );
}

/// Bad settings refuse to start; a second node on the same database
/// (`--database-url`) leaves the rounds to the node holding the lock.
#[tokio::test]
async fn bad_settings_refuse_to_start_and_one_node_of_two_runs_the_agent() {
    let tmp = common::temp_dir();
    let e = TestServer::start_in(
        &tmp.path().join("bad"),
        &[
            "--gitops-repo",
            "file:///nowhere",
            "--gitops-interval",
            "0s",
        ],
    )
    .err()
    .expect("refused");
    assert!(
        e.contains("--gitops-interval \"0s\" must be a positive duration"),
        "{e}"
    );

    let moto = Moto::start();
    let repo = Repo::new();
    repo.write("infra/marker/stack.toml", "# one\n");
    let c1 = repo.commit("marker");
    let a = serve(&moto, &repo);
    let db = a.connect().await;
    applied_at(&a, &db, "marker", &c1).await;
    let (url, engine, pw) = (repo.url(), a.engine_conn_string(), a.password());
    let b = TestServer::start_in_env(
        &tmp.path().join("b"),
        &[
            "--aws-endpoint-url",
            &moto.url,
            "--sync-interval",
            "0",
            "--database-url",
            &engine,
            "--gitops-repo",
            &url,
            "--gitops-path",
            "infra",
            "--gitops-interval",
            "1s",
        ],
        &[("PGUSER", common::USER), ("PGPASSWORD", pw.as_str())],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    until(&b, "the second node to skip a round", || async {
        b.stderr()
            .contains("another node runs the agent")
            .then_some(())
    })
    .await;
    // The first node still applies.
    repo.write("infra/marker/stack.toml", "# two\n");
    let c2 = repo.commit("marker two");
    applied_at(&a, &db, "marker", &c2).await;
    assert!(
        !b.stderr().contains("stack marker applied"),
        "{}",
        b.stderr()
    );
}
