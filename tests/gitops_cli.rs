//! The GitOps agent's edges: `infrasql stack delete`, settings that refuse
//! to start, and a second node on the same database, which leaves the
//! rounds to the node holding the advisory lock.

mod common;

use std::path::Path;
use std::process::Command;

use common::gitops::{applied_at, serve, stack_row, until, Repo};
use common::{Moto, TestServer};

const NET: &str = "INSERT INTO aws.vpc (name, cidr_block, tags)
  VALUES ('net', '10.40.0.0/16', jsonb_build_object('env', :'environment', 'tier', 'one'));\n";

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
