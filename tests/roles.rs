//! Who may change what (issue #14): the reader, operator and admin groups
//! of a database, login roles made by `infrasql role add`, operators
//! limited to a tag by `infrasql role scope` (row-level security), and
//! `--tls-required`. Each user connects through infrasql with its own
//! login, so PostgreSQL's privileges and policies judge its statements.

mod common;

use std::process::{Command, Stdio};

use common::{bin, connect, one, sqlstate, stderr, stdout, Moto, TestServer, USER};

/// `infrasql role ...` as the first-start login role (an admin).
fn role(s: &TestServer, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("role")
        .args(args)
        .args(["--url", &s.conn_string()])
        .output()
        .expect("run infrasql role")
}

/// A new login role of `kind`; its password is the one line on stdout.
fn add(s: &TestServer, name: &str, kind: &str) -> String {
    let o = role(s, &["add", name, kind]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "only the password on stdout: {out:?}");
    assert_eq!(lines[0].len(), 32, "{out:?}");
    lines[0].to_owned()
}

async fn login(s: &TestServer, user: &str, password: &str) -> tokio_postgres::Client {
    connect(&format!(
        "host=127.0.0.1 port={} user={user} password={password} dbname=infrasql",
        s.port
    ))
    .await
    .unwrap_or_else(|e| panic!("{user} logs in: {e}"))
}

/// The statement fails with `code`; returns the message.
async fn refused(c: &tokio_postgres::Client, sql: &str, code: &str) -> String {
    let e = c
        .batch_execute(sql)
        .await
        .expect_err(&format!("{sql} must fail"));
    assert_eq!(sqlstate(&e).as_deref(), Some(code), "{sql}: {e:?}");
    e.as_db_error().unwrap().message().to_owned()
}

async fn applies(admin: &tokio_postgres::Client) -> i64 {
    one(admin, "SELECT count(*) FROM infra.apply").await
}

#[tokio::test]
async fn readers_read_operators_change_resources_admins_change_policies() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let admin = s.connect().await;
    // The groups are named after the database; the first-start login role
    // is an admin.
    let groups: Vec<String> = admin
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'infrasql\\_infra\\_%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        groups,
        [
            "infrasql_infra_admin",
            "infrasql_infra_operator",
            "infrasql_infra_reader"
        ]
    );
    let is_admin: bool = one(
        &admin,
        &format!("SELECT pg_has_role('{USER}', 'infrasql_infra_admin', 'MEMBER')"),
    )
    .await;
    assert!(is_admin);
    // On loopback, plaintext is not warned about.
    assert!(!s.stderr().contains("without TLS"), "{}", s.stderr());

    let reader_pw = add(&s, "rita", "--reader");
    let operator_pw = add(&s, "olga", "--operator");
    let admin_pw = add(&s, "adam", "--admin");
    // Shown once: not in the server's log.
    for pw in [&reader_pw, &operator_pw, &admin_pw] {
        assert!(
            !s.stderr().contains(pw.as_str()),
            "a password is in the log"
        );
    }
    let again = role(&s, &["add", "rita", "--operator"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("role \"rita\" already exists"),
        "{}",
        stderr(&again)
    );
    assert!(stdout(&again).is_empty(), "no password for a role not made");

    // A reader reads the inventory, the journal and the drift...
    let rita = login(&s, "rita", &reader_pw).await;
    for table in [
        "aws.vpc",
        "infra.apply",
        "infra.drift",
        "infra.plan",
        "infra.sync_status",
    ] {
        let _: i64 = one(&rita, &format!("SELECT count(*) FROM {table}")).await;
    }
    // ...and changes nothing: refused at the statement, nothing sent to AWS.
    let vpcs_before = moto.vpcs().await.len();
    let msg = refused(
        &rita,
        "INSERT INTO aws.vpc (cidr_block) VALUES ('10.61.0.0/16')",
        "42501",
    )
    .await;
    assert!(msg.contains("permission denied for table vpc"), "{msg}");
    refused(&rita, "DELETE FROM infra.policy", "42501").await;
    refused(
        &rita,
        "SELECT infra.role_add('eve', 'admin', 'SCRAM-SHA-256$x')",
        "42501",
    )
    .await;
    assert_eq!(moto.vpcs().await.len(), vpcs_before);
    assert_eq!(applies(&admin).await, 0);

    // An operator changes resources: the COMMIT reaches AWS.
    let olga = login(&s, "olga", &operator_pw).await;
    olga.batch_execute("INSERT INTO aws.vpc (cidr_block) VALUES ('10.62.0.0/16')")
        .await
        .unwrap();
    let vpc_id: String = one(
        &olga,
        "SELECT vpc_id FROM aws.vpc WHERE cidr_block = '10.62.0.0/16'",
    )
    .await;
    assert!(moto.vpcs().await.contains(&vpc_id), "{vpc_id} is in AWS");
    let by: String = one(&admin, "SELECT username FROM infra.apply").await;
    assert_eq!(by, "olga");
    // ...but not the rules every change is judged by.
    refused(
        &olga,
        "INSERT INTO infra.policy (name, query, message) VALUES ('p', 'SELECT 1 AS resource_id', 'm')",
        "42501",
    )
    .await;
    refused(
        &olga,
        "INSERT INTO infra.drift_policy (table_name, policy) VALUES ('aws.vpc', 'revert')",
        "42501",
    )
    .await;

    // An admin does.
    let adam = login(&s, "adam", &admin_pw).await;
    adam.batch_execute(
        "INSERT INTO infra.policy (name, query, message, severity) \
             VALUES ('p', 'SELECT NULL::text AS resource_id WHERE false', 'm', 'warn'); \
         INSERT INTO infra.drift_policy (table_name, policy) VALUES ('aws.vpc', 'report')",
    )
    .await
    .unwrap();
    let policies: i64 = one(&rita, "SELECT count(*) FROM infra.policy").await;
    assert_eq!(policies, 1, "the reader reads the policies");
}

#[tokio::test]
async fn a_scoped_operator_sees_and_changes_only_its_scope() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let admin = s.connect().await;
    admin
        .batch_execute(
            "INSERT INTO aws.vpc (cidr_block, tags) VALUES \
                 ('10.71.0.0/16', '{\"team\": \"payments\"}'), ('10.72.0.0/16', '{\"team\": \"web\"}')",
        )
        .await
        .unwrap();
    let pw = add(&s, "pat", "--operator");
    let o = role(&s, &["scope", "pat", "--tag", "team=payments"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = role(&s, &["scope", USER, "--tag", "team=payments"]);
    assert!(!o.status.success(), "an admin cannot be scoped");
    assert!(stderr(&o).contains("is an admin"), "{}", stderr(&o));

    let pat = login(&s, "pat", &pw).await;
    let seen: String = one(
        &pat,
        "SELECT string_agg(cidr_block::text, ',') FROM aws.vpc",
    )
    .await;
    assert_eq!(seen, "10.71.0.0/16", "rows outside the scope are invisible");

    let vpcs = moto.vpcs().await.len();
    let before = applies(&admin).await;
    // An INSERT outside the scope, or without the tag: refused at the
    // statement, before any plan.
    for sql in [
        "INSERT INTO aws.vpc (cidr_block, tags) VALUES ('10.73.0.0/16', '{\"team\": \"web\"}')",
        "INSERT INTO aws.vpc (cidr_block) VALUES ('10.73.0.0/16')",
        // An UPDATE that moves its row out of the scope.
        "UPDATE aws.vpc SET tags = '{\"team\": \"web\"}' WHERE cidr_block = '10.71.0.0/16'",
    ] {
        let msg = refused(&pat, sql, "42501").await;
        assert!(msg.contains("row-level security"), "{sql}: {msg}");
    }
    // An UPDATE or DELETE of a row outside the scope changes nothing and
    // plans nothing.
    for sql in [
        "UPDATE aws.vpc SET tags = '{\"team\": \"payments\"}' WHERE cidr_block = '10.72.0.0/16'",
        "DELETE FROM aws.vpc WHERE cidr_block = '10.72.0.0/16'",
    ] {
        let n = pat.execute(sql, &[]).await.unwrap();
        assert_eq!(n, 0, "{sql}");
    }
    assert_eq!(applies(&admin).await, before, "nothing was applied");
    assert_eq!(moto.vpcs().await.len(), vpcs, "nothing reached AWS");
    let web: String = one(
        &admin,
        "SELECT tags ->> 'team' FROM aws.vpc WHERE cidr_block = '10.72.0.0/16'",
    )
    .await;
    assert_eq!(web, "web");

    // Inside the scope: end to end.
    pat.batch_execute(
        "BEGIN; \
         INSERT INTO aws.vpc (cidr_block, tags) VALUES ('10.74.0.0/16', '{\"team\": \"payments\", \"env\": \"dev\"}'); \
         COMMIT",
    )
    .await
    .unwrap();
    let vpc_id: String = one(
        &pat,
        "SELECT vpc_id FROM aws.vpc WHERE cidr_block = '10.74.0.0/16'",
    )
    .await;
    assert!(moto.vpcs().await.contains(&vpc_id));
    assert_eq!(applies(&admin).await, before + 1);
}

/// A self-signed certificate and its key, as files.
fn with_cert(tmp: &std::path::Path) -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = tmp.join("server.crt");
    let key_path = tmp.join("server.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (
        cert_path.to_str().unwrap().to_owned(),
        key_path.to_str().unwrap().to_owned(),
    )
}

fn psql(s: &TestServer, sslmode: &str) -> std::process::Output {
    Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user={USER} dbname=infrasql sslmode={sslmode}",
            s.port
        ))
        .args(["-X", "-At", "-c", "select 1"])
        .env("PGPASSWORD", s.password())
        .output()
        .unwrap()
}

#[tokio::test]
async fn tls_required_refuses_plaintext_clients() {
    let tmp = common::temp_dir();
    let (cert, key) = with_cert(tmp.path());
    let s = TestServer::start_with(&["--tls-cert", &cert, "--tls-key", &key, "--tls-required"]);
    let o = psql(&s, "require");
    assert_eq!(stdout(&o).trim(), "1", "{}", stderr(&o));
    // No SSLRequest at all: refused before the password is asked for.
    let o = psql(&s, "disable");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("this server requires TLS"),
        "{}",
        stderr(&o)
    );
    // libpq's prefer tries TLS first: it gets in.
    let o = psql(&s, "prefer");
    assert_eq!(stdout(&o).trim(), "1", "{}", stderr(&o));

    let e = connect(&format!(
        "host=127.0.0.1 port={} user={USER} password={} dbname=infrasql",
        s.port,
        s.password()
    ))
    .await
    .expect_err("plaintext is refused");
    assert_eq!(sqlstate(&e).as_deref(), Some("28000"), "{e:?}");

    // Without a certificate it does not start.
    let o = Command::new(bin())
        .args(["serve", "--tls-required", "--data-dir"])
        .arg(tmp.path().join("never"))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--tls-required needs a certificate"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_listener_off_loopback_without_tls_is_warned_about() {
    let s = TestServer::start_with(&["--listen", "0.0.0.0:0"]);
    let log = s.stderr();
    assert!(log.contains("WARN") && log.contains("without TLS"), "{log}");
}

/// An external database whose role may not create roles: infrasql stops
/// and prints what to run by hand; once that is done, the roles step
/// passes. (The rest of the schema still needs a superuser today: 0760
/// sets a custom parameter, which PostgreSQL refuses to others.)
#[tokio::test]
async fn without_createrole_the_statements_to_run_are_printed() {
    let moto = Moto::start();
    let host = TestServer::start_on(&moto, &[]);
    let engine = host.connect_engine().await;
    for sql in [
        "CREATE ROLE lim LOGIN PASSWORD 'lim-pw' NOCREATEROLE",
        "CREATE DATABASE lim OWNER lim",
    ] {
        engine.batch_execute(sql).await.unwrap();
    }
    let url = format!(
        "host={} port=5432 user=lim password=lim-pw dbname=lim",
        host.data.join("pgdata").display()
    );
    let tmp = common::temp_dir();
    let args = [
        "--aws-endpoint-url",
        moto.url.as_str(),
        "--sync-interval",
        "0",
        "--database-url",
        url.as_str(),
    ];
    let err = match TestServer::start_in(&tmp.path().join("a"), &args) {
        Ok(_) => panic!("started without its roles"),
        Err(e) => e,
    };
    assert!(
        err.contains("lim may not create them (it lacks CREATEROLE)"),
        "{err}"
    );
    let statements: Vec<&str> = err
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CREATE ROLE") || l.starts_with("GRANT"))
        .collect();
    assert_eq!(
        statements,
        [
            "CREATE ROLE \"lim_infra_reader\" NOLOGIN;",
            "CREATE ROLE \"lim_infra_operator\" NOLOGIN IN ROLE \"lim_infra_reader\";",
            "CREATE ROLE \"lim_infra_admin\" NOLOGIN IN ROLE \"lim_infra_operator\";",
            "GRANT \"lim_infra_reader\", \"lim_infra_operator\", \"lim_infra_admin\" TO \"lim\" WITH ADMIN OPTION;",
        ]
    );
    // A DBA runs them; then the roles step passes, creating nothing.
    engine.batch_execute(&statements.join("\n")).await.unwrap();
    let lim = connect(&url).await.unwrap();
    infrasql::store::roles::ensure(&lim, None)
        .await
        .expect("the roles exist");
    let n: i64 = one(
        &engine,
        "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'lim\\_infra\\_%'",
    )
    .await;
    assert_eq!(n, 3);
}
