//! Real clients against infrasql and moto (issue 8, "Tests"): pgJDBC with
//! autocommit off, psycopg 3's pipeline mode, node-postgres' named COMMIT,
//! SQLAlchemy's ORM, the dbmate migration runner and `psql -1 -f`.
//!
//! Each client runs as the user would run it, as a subprocess (the programs
//! are in tests/clients/, installed by scripts/setup). The test checks what
//! the user sees (exit status, output), the rows through infrasql, and AWS
//! itself through moto's API.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{Moto, TestServer, USER};

/// A client that hangs (a protocol deadlock) fails its test instead of the suite.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// A client command with libpq's environment pointing at `srv`.
fn client(srv: &TestServer, program: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(program);
    c.current_dir(clients_dir())
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", srv.port.to_string())
        .env("PGUSER", USER)
        .env("PGPASSWORD", srv.password())
        .env("PGDATABASE", "infrasql")
        .env("PGSSLMODE", "disable")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    c
}

/// Run to completion; a missing program names the setup step.
async fn run(cmd: &mut tokio::process::Command, what: &str) -> Output {
    match tokio::time::timeout(CLIENT_TIMEOUT, cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => panic!("{what}: cannot run it ({e}); run scripts/setup"),
        Err(_) => panic!("{what}: no answer within {CLIENT_TIMEOUT:?}"),
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The client exited 0; otherwise fail with everything it printed.
fn succeeded(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed:\n{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The words of the stdout line that starts with `prefix` (prefix words dropped).
fn line<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    let l = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"));
    l[prefix.len()..].split_whitespace().collect()
}

/// Non-default VPCs in AWS by Name tag.
async fn aws_vpcs(moto: &Moto) -> BTreeMap<String, String> {
    let ec2 = moto.ec2().await;
    let out = ec2.describe_vpcs().send().await.unwrap();
    out.vpcs()
        .iter()
        .filter(|v| v.is_default() != Some(true))
        .map(|v| {
            let name = v
                .tags()
                .iter()
                .find(|t| t.key() == Some("Name"))
                .and_then(|t| t.value())
                .unwrap_or("")
                .to_owned();
            (name, v.vpc_id().unwrap_or_default().to_owned())
        })
        .collect()
}

/// Subnets in AWS by Name tag: (subnet id, vpc id).
async fn aws_subnets(moto: &Moto) -> BTreeMap<String, (String, String)> {
    let ec2 = moto.ec2().await;
    let out = ec2.describe_subnets().send().await.unwrap();
    out.subnets()
        .iter()
        .filter(|s| s.default_for_az() != Some(true))
        .map(|s| {
            let name = s
                .tags()
                .iter()
                .find(|t| t.key() == Some("Name"))
                .and_then(|t| t.value())
                .unwrap_or("")
                .to_owned();
            (
                name,
                (
                    s.subnet_id().unwrap_or_default().to_owned(),
                    s.vpc_id().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

/// The row's vpc_id through infrasql, if the row exists.
async fn row_vpc_id(srv: &TestServer, name: &str) -> Option<String> {
    let c = srv.connect().await;
    c.query_opt("select vpc_id from aws.vpc where name = $1", &[&name])
        .await
        .unwrap()
        .map(|r| r.get(0))
}

/// The client's reported id is AWS's: a real `vpc-` id, the row's, and a VPC
/// with that name and id in moto.
async fn assert_applied(moto: &Moto, srv: &TestServer, name: &str, reported: &str, out: &str) {
    assert!(
        reported.starts_with("vpc-"),
        "{name}: the client saw {reported:?}, not a VPC id AWS assigned:\n{out}"
    );
    assert_eq!(
        row_vpc_id(srv, name).await.as_deref(),
        Some(reported),
        "{name}: the row"
    );
    let vpcs = aws_vpcs(moto).await;
    assert_eq!(
        vpcs.get(name).map(String::as_str),
        Some(reported),
        "{name}: in AWS (all: {vpcs:?})"
    );
}

// ---------------------------------------------------------------- pgJDBC

const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

/// Compile tests/clients/jdbc/ClientTest.java into a temp dir.
async fn compile_jdbc() -> tempfile::TempDir {
    assert!(
        Path::new(JDBC_JAR).exists(),
        "{JDBC_JAR} is missing: run scripts/setup (Debian package libpostgresql-jdbc-java)"
    );
    let classes = tempfile::tempdir().unwrap();
    let o = run(
        tokio::process::Command::new("javac")
            .args(["-encoding", "UTF-8", "-cp", JDBC_JAR, "-d"])
            .arg(classes.path())
            .arg(clients_dir().join("jdbc/ClientTest.java")),
        "javac",
    )
    .await;
    succeeded(&o, "javac ClientTest.java");
    classes
}

async fn java(srv: &TestServer, classes: &Path, args: &[&str]) -> Output {
    let cp = format!("{}:{JDBC_JAR}", classes.display());
    run(
        client(srv, "java")
            .args([
                "-Xshare:auto",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                &cp,
                "ClientTest",
            ])
            .args(args)
            .env(
                "JDBC_URL",
                format!("jdbc:postgresql://127.0.0.1:{}/infrasql", srv.port),
            ),
        &format!("java ClientTest {}", args.join(" ")),
    )
    .await
}

/// pgJDBC with `setAutoCommit(false)`: `commit()` applies, `rollback()` and a
/// rolled-back savepoint leave nothing in AWS. pgJDBC sends `commit()` as
/// Parse/Bind/Execute: with `prepareThreshold=0` as an unnamed statement,
/// otherwise (its default, and 1 here, which also server-prepares every
/// INSERT and SELECT) as a named one.
#[tokio::test]
async fn jdbc_autocommit_off_commit_rollback_and_savepoint() {
    let classes = compile_jdbc().await;
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &[]);

    // Both variants run before any check, so a failure shows both.
    let variants = [("0", "jdbc-unnamed"), ("1", "jdbc-named")];
    let mut outputs = Vec::new();
    for (threshold, prefix) in variants {
        let o = java(&srv, classes.path(), &["tx", threshold, prefix]).await;
        outputs.push((
            format!("pgJDBC, autocommit off, prepareThreshold={threshold}"),
            o,
        ));
    }
    let failed: Vec<String> = outputs
        .iter()
        .filter(|(_, o)| !o.status.success())
        .map(|(what, o)| format!("{what} failed:\n{}", text(o)))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));

    for ((_, prefix), (what, o)) in variants.iter().zip(&outputs) {
        let out = String::from_utf8_lossy(&o.stdout);

        // commit(): the row carries AWS's id and the VPC exists.
        let commit = format!("{prefix}-commit");
        let words = line(&out, "commit ");
        assert_eq!(words[0], commit, "{what}:\n{out}");
        assert_applied(&moto, &srv, &commit, words[1], &out).await;

        // rollback(): no row, nothing in AWS.
        let rollback = format!("{prefix}-rollback");
        let words = line(&out, "rollback ");
        assert_eq!(words, [rollback.as_str(), "absent"], "{what}:\n{out}");

        // Savepoint: A committed, B rolled back to the savepoint.
        let (a, b) = (format!("{prefix}-sp-a"), format!("{prefix}-sp-b"));
        let words = line(&out, "savepoint ");
        assert_eq!(words[0], a, "{what}:\n{out}");
        assert_applied(&moto, &srv, &a, words[1], &out).await;
        assert_eq!(&words[2..], [b.as_str(), "absent"], "{what}:\n{out}");

        let vpcs = aws_vpcs(&moto).await;
        assert!(
            !vpcs.contains_key(&rollback) && !vpcs.contains_key(&b),
            "{what}: a rolled-back VPC reached AWS: {vpcs:?}"
        );
    }
    // Exactly the four committed VPCs, nothing else.
    let vpcs = aws_vpcs(&moto).await;
    assert_eq!(vpcs.len(), 4, "{vpcs:?}");
}

/// What BI tools built on JDBC show as descriptions: `getTables` and
/// `getColumns` REMARKS of aws.vpc are the resource descriptions.
#[tokio::test]
async fn jdbc_metadata_remarks_describe_aws_vpc() {
    let classes = compile_jdbc().await;
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &[]);
    let o = java(&srv, classes.path(), &["remarks"]).await;
    let out = succeeded(&o, "pgJDBC DatabaseMetaData");

    let tables: Vec<&str> = out.lines().filter(|l| l.starts_with("table ")).collect();
    assert_eq!(tables.len(), 1, "getTables(aws.vpc):\n{out}");
    let columns: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("column "))
        .map(|l| l.split_once('\t').unwrap_or((l, "")))
        .collect();
    for col in ["vpc_id", "name", "cidr_block", "state", "tags"] {
        assert!(
            columns.iter().any(|(c, _)| *c == col),
            "getColumns(aws.vpc) has no {col}:\n{out}"
        );
    }
    let blank = |r: &str| r.trim().is_empty() || r == "null";
    let (_, table_remarks) = tables[0]["table ".len()..]
        .split_once('\t')
        .unwrap_or(("", ""));
    let blank_columns: Vec<&str> = columns
        .iter()
        .filter(|(_, r)| blank(r))
        .map(|(c, _)| *c)
        .collect();
    assert!(
        !blank(table_remarks) && blank_columns.is_empty(),
        "JDBC REMARKS are blank for the table aws.vpc: {}, for its columns: {blank_columns:?}\n{out}",
        blank(table_remarks)
    );
    // The name column says what it is (its description: the Name tag).
    let name = columns.iter().find(|(c, _)| *c == "name").unwrap().1;
    assert!(name.contains("Name"), "REMARKS of aws.vpc.name: {name:?}");
}

/// pgJDBC's generated keys (Hibernate, Spring's KeyHolder): the `id`
/// returned at INSERT never changes, so after commit() it finds the row,
/// which now carries AWS's id in place of the provisional one.
#[tokio::test]
async fn jdbc_generated_keys_find_the_row_after_commit() {
    let classes = compile_jdbc().await;
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &[]);
    let o = java(&srv, classes.path(), &["keys", "jdbc-keys"]).await;
    let out = succeeded(&o, "pgJDBC generated keys");
    let words = line(&out, "keys ");
    let (id, pending, real) = (words[0], words[1], words[2]);
    assert!(
        id.parse::<i64>().is_ok_and(|n| n > 0),
        "generated id: {out}"
    );
    assert!(pending.starts_with("pending-"), "vpc_id at INSERT: {out}");
    assert!(
        real.starts_with("vpc-"),
        "vpc_id after commit, by id: {out}"
    );
    assert_applied(&moto, &srv, "jdbc-keys", real, &out).await;
}

// ---------------------------------------------------------------- psycopg 3

/// psycopg 3's pipeline mode sends BEGIN, the INSERT and COMMIT as
/// Parse/Bind/Execute before one Sync: the COMMIT applies, and a transaction
/// that only reads commits too.
#[tokio::test]
async fn psycopg_pipeline_commit_and_read_only_commit() {
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &[]);
    let name = "psycopg-pipeline";
    let o = run(
        client(&srv, "python3").args(["psycopg_pipeline.py", name]),
        "python3 psycopg_pipeline.py",
    )
    .await;
    let out = succeeded(&o, "psycopg 3 pipeline mode");
    let words = line(&out, "commit ");
    assert_eq!(words[0], name, "{out}");
    assert_applied(&moto, &srv, name, words[1], &out).await;
    assert_eq!(line(&out, "read-only count "), ["1"], "{out}");
}

// ---------------------------------------------------------------- node-postgres

/// node-postgres: `client.query({name: 'commit', text: 'COMMIT'})` after
/// BEGIN and an INSERT applies; the second transaction reuses the named
/// statement (Bind/Execute without Parse).
#[tokio::test]
async fn node_postgres_named_commit() {
    let node_modules = clients_dir().join("node_modules/pg");
    assert!(
        node_modules.exists(),
        "{} is missing: run scripts/setup (npm ci in tests/clients)",
        node_modules.display()
    );
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &[]);
    let o = run(
        client(&srv, "node").args(["node_pg.js", "node-pg"]),
        "node node_pg.js",
    )
    .await;
    let out = succeeded(&o, "node-postgres named COMMIT");
    let mut ids = Vec::new();
    for l in out.lines().filter(|l| l.starts_with("commit ")) {
        let words: Vec<&str> = l.split_whitespace().collect();
        assert_applied(&moto, &srv, words[1], words[2], &out).await;
        ids.push(words[2].to_owned());
    }
    assert_eq!(ids.len(), 2, "two transactions:\n{out}");
    assert_ne!(ids[0], ids[1]);
}

// ---------------------------------------------------------------- SQLAlchemy

/// SQLAlchemy's ORM (automap over aws.vpc): add, commit, then reading an
/// attribute reloads the row by its primary key, which must not have changed
/// at COMMIT; the ORM then sees AWS's id.
#[tokio::test]
async fn sqlalchemy_orm_add_commit_refresh() {
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &[]);
    let url = format!(
        "postgresql+psycopg://{USER}:{}@127.0.0.1:{}/infrasql?sslmode=disable",
        srv.password(),
        srv.port
    );
    let name = "sqlalchemy-orm";
    let o = run(
        client(&srv, "python3").args(["sqlalchemy_orm.py", &url, name]),
        "python3 sqlalchemy_orm.py",
    )
    .await;
    let out = succeeded(&o, "SQLAlchemy ORM add/commit/refresh");
    // vpc <name> <vpc_id after commit> <vpc_id after refresh> <state>
    let words = line(&out, "vpc ");
    assert_eq!(words[0], name, "{out}");
    assert_eq!(words[1], words[2], "{out}");
    assert_applied(&moto, &srv, name, words[1], &out).await;
}

// ---------------------------------------------------------------- dbmate

/// A migration runner in its default transactional mode: dbmate's `migrate`
/// runs the migration and records its version in one transaction, so the
/// VPC and its subnet are created at its COMMIT; `rollback` deletes them.
#[tokio::test]
async fn dbmate_migration_creates_a_vpc_and_a_subnet() {
    let dbmate = clients_dir().join("node_modules/.bin/dbmate");
    assert!(
        dbmate.exists(),
        "{} is missing: run scripts/setup (npm ci in tests/clients)",
        dbmate.display()
    );
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &[]);
    let url = format!(
        "postgres://{USER}:{}@127.0.0.1:{}/infrasql?sslmode=disable",
        srv.password(),
        srv.port
    );
    let dbmate_cmd = |verb: &str| {
        let mut c = client(&srv, dbmate.to_str().unwrap());
        c.args(["--url", &url, "--migrations-dir", "dbmate/migrations"])
            .args(["--no-dump-schema", verb]);
        c
    };

    let o = run(&mut dbmate_cmd("migrate"), "dbmate migrate").await;
    let out = succeeded(&o, "dbmate migrate");
    assert!(
        out.contains("Applied: 20261129000000_network.sql"),
        "{}",
        text(&o)
    );

    let vpcs = aws_vpcs(&moto).await;
    let subnets = aws_subnets(&moto).await;
    let vpc = vpcs
        .get("dbmate-vpc")
        .unwrap_or_else(|| panic!("no VPC dbmate-vpc in AWS: {vpcs:?}"));
    let (subnet, subnet_vpc) = subnets
        .get("dbmate-subnet")
        .unwrap_or_else(|| panic!("no subnet dbmate-subnet in AWS: {subnets:?}"));
    assert_eq!(subnet_vpc, vpc, "the subnet is in the migration's VPC");
    let c = srv.connect().await;
    let row = c
        .query_one(
            "select v.vpc_id, s.subnet_id from aws.vpc v join aws.subnet s using (vpc_id) \
             where v.name = 'dbmate-vpc' and s.name = 'dbmate-subnet'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), *vpc);
    assert_eq!(row.get::<_, String>(1), *subnet);
    let version: String = common::one(&c, "select version from public.schema_migrations").await;
    assert_eq!(version, "20261129000000");

    let o = run(&mut dbmate_cmd("rollback"), "dbmate rollback").await;
    succeeded(&o, "dbmate rollback");
    assert!(!aws_vpcs(&moto).await.contains_key("dbmate-vpc"));
    assert!(!aws_subnets(&moto).await.contains_key("dbmate-subnet"));
}

// ---------------------------------------------------------------- psql

/// `psql -1 -f file.sql` wraps the file in one transaction: a good file is
/// applied at its COMMIT; a file whose last statement fails applies nothing.
#[tokio::test]
async fn psql_single_transaction_file_applies_all_or_nothing() {
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &[]);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.sql");
    std::fs::write(
        &good,
        "INSERT INTO aws.vpc (name, cidr_block) VALUES ('psql-vpc', '10.8.0.0/16');\n\
         INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)\n  \
           SELECT 'psql-subnet', vpc_id, '10.8.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'psql-vpc';\n",
    )
    .unwrap();
    let o = srv.psql(&["-1", "-f", good.to_str().unwrap()]);
    succeeded(&o, "psql -1 -f good.sql");
    let vpcs = aws_vpcs(&moto).await;
    let subnets = aws_subnets(&moto).await;
    let vpc = vpcs.get("psql-vpc").unwrap_or_else(|| panic!("{vpcs:?}"));
    assert_eq!(
        subnets.get("psql-subnet").map(|(_, v)| v),
        Some(vpc),
        "{subnets:?}"
    );
    assert_eq!(row_vpc_id(&srv, "psql-vpc").await.as_ref(), Some(vpc));

    let bad = dir.path().join("bad.sql");
    std::fs::write(
        &bad,
        "INSERT INTO aws.vpc (name, cidr_block) VALUES ('psql-bad', '10.9.0.0/16');\n\
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('psql-bad-2', '10.0.0.0/8');\n",
    )
    .unwrap();
    let o = srv.psql(&["-1", "-f", bad.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        common::stderr(&o).contains("check constraint"),
        "{}",
        text(&o)
    );
    let vpcs = aws_vpcs(&moto).await;
    assert_eq!(vpcs.len(), 1, "only psql-vpc: {vpcs:?}");
    assert_eq!(row_vpc_id(&srv, "psql-bad").await, None);
}
