//! Secrets never rest (issue #10): a write-only value (an instance's user
//! data, a database's master password) is used for the AWS call and found
//! nowhere afterwards: not in a full `pg_dump`, not in the write-ahead log,
//! not in a NOTICE or an error, not in infrasql's log at trace level, not in
//! PostgreSQL's own log. Each search has a positive control: a marker
//! written in the same transactions (a tag) is found where rows go, so a
//! search that could not see the secret would fail the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{sqlstate, Moto, TestServer};
use infrasql_fault_proxy::FaultProxy;

/// A value no other test or log line would contain.
fn distinctive(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{what}Zq{nanos:09}xQ")
}

fn pg_bin() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("pg_dump").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's binaries")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_dump").exists())
        .collect();
    found.sort();
    found.pop().expect("pg_dump")
}

/// Everything the embedded cluster holds, as `pg_dump` writes it (as the
/// engine role, which owns the infra schema and its journal).
fn pg_dump(s: &TestServer) -> String {
    let pw = std::fs::read_to_string(s.data.join("engine.password")).unwrap();
    let out = Command::new(pg_bin().join("pg_dump"))
        .args(["-h"])
        .arg(s.data.join("pgdata"))
        .args(["-p", "5432", "-U", "infrasql_engine", "-d", "infrasql"])
        .env("PGPASSWORD", pw.trim())
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The raw bytes of every WAL segment: what a replica or a backup gets.
/// Raw, not `pg_waldump`'s summary, which does not print tuple data.
fn wal_bytes(s: &TestServer) -> Vec<u8> {
    let dir = s.data.join("pgdata").join("pg_wal");
    let mut all = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            all.extend(std::fs::read(e.path()).unwrap());
        }
    }
    assert!(!all.is_empty(), "no WAL in {}", dir.display());
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Search every place a secret could rest or leak; `marker` must be found
/// where rows go (the dump and the WAL).
fn assert_found_nowhere(s: &TestServer, secrets: &[String], marker: &str, said: &[String]) {
    let dump = pg_dump(s);
    let wal = wal_bytes(s);
    assert!(
        dump.contains(marker),
        "the control marker is not in the dump"
    );
    assert!(
        contains(&wal, marker),
        "the control marker is not in the WAL"
    );
    let server_log = s.stderr();
    assert!(
        server_log.contains("TRACE"),
        "the server did not log at trace level"
    );
    let pg_log = read(&s.data.join("postgres.log"));
    if std::env::var("SECRETS_DEBUG").is_ok() {
        std::fs::write("/tmp/secrets-server.log", &server_log).unwrap();
    }
    for secret in secrets {
        assert!(!dump.contains(secret.as_str()), "{secret} is in pg_dump");
        assert!(!contains(&wal, secret), "{secret} is in the WAL");
        assert!(
            !server_log.contains(secret.as_str()),
            "{secret} is in infrasql's trace log"
        );
        assert!(
            !pg_log.contains(secret.as_str()),
            "{secret} is in PostgreSQL's log"
        );
        for m in said {
            assert!(
                !m.contains(secret.as_str()),
                "{secret} was told to the client: {m}"
            );
        }
    }
}

#[tokio::test]
async fn user_data_is_used_for_the_launch_and_rests_nowhere() {
    use base64::Engine as _;
    use infrasql_aws::aws_sdk_ec2::types::InstanceAttributeName;
    let moto = Moto::start();
    let s = TestServer::start_at_env(&moto.url, &[("INFRASQL_LOG", "trace")]);
    let (c, mut notices) = s.connect_with_notices().await;
    let marker = distinctive("marker");
    let first = distinctive("userdataone");
    let second = distinctive("userdatatwo");
    let failed = distinctive("userdatafailed");
    let mut said = Vec::new();

    c.batch_execute(&format!(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block, tags) VALUES ('app', '10.41.0.0/16', '{{\"m\": \"{marker}\"}}');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
           SELECT 'app-a', vpc_id, '10.41.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'app';
         INSERT INTO aws.instance (name, image_id, instance_type, subnet_id, user_data)
           SELECT 'web-1', 'ami-760aaa0f', 't3.micro', subnet_id, '{first}'
           FROM aws.subnet WHERE name = 'app-a';"
    ))
    .await
    .unwrap();
    // Before COMMIT the row already holds NULL, and the plan says (secret).
    let row = c
        .query_one(
            "SELECT user_data, (SELECT changes::text FROM infra.plan WHERE \"table\" = 'aws.instance') \
             FROM aws.instance WHERE name = 'web-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    let plan: String = row.get(1);
    assert!(plan.contains("(secret)"), "{plan}");
    c.batch_execute("COMMIT").await.unwrap();

    // AWS got it.
    let id: String = c
        .query_one(
            "SELECT instance_id FROM aws.instance WHERE name = 'web-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let attr = moto
        .ec2()
        .await
        .describe_instance_attribute()
        .instance_id(&id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let sent = base64::engine::general_purpose::STANDARD
        .decode(attr.user_data().and_then(|v| v.value()).unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(sent).unwrap(), first);

    // Changed in place, then a launch AWS refuses, with a secret each.
    c.batch_execute(&format!(
        "UPDATE aws.instance SET user_data = '{second}' WHERE name = 'web-1'"
    ))
    .await
    .unwrap();
    // A subnet deleted behind infrasql's back (sync is off, its row stays):
    // AWS refuses a launch into it.
    c.batch_execute(
        "INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
           SELECT 'gone', vpc_id, '10.41.2.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'app'",
    )
    .await
    .unwrap();
    let gone: String = c
        .query_one("SELECT subnet_id FROM aws.subnet WHERE name = 'gone'", &[])
        .await
        .unwrap()
        .get(0);
    moto.ec2()
        .await
        .delete_subnet()
        .subnet_id(gone)
        .send()
        .await
        .unwrap();
    let refused = c
        .batch_execute(&format!(
            "INSERT INTO aws.instance (name, image_id, instance_type, subnet_id, user_data)
               SELECT 'bad', 'ami-760aaa0f', 't3.micro', subnet_id, '{failed}'
               FROM aws.subnet WHERE name = 'gone'"
        ))
        .await
        .expect_err("AWS refuses a launch into a deleted subnet");
    assert_eq!(
        common::sqlstate(&refused).as_deref().map(|s| &s[..2]),
        Some("IX"),
        "{refused:?}"
    );
    said.push(format!("{refused:?}"));
    // A statement PostgreSQL itself refuses, with a secret in its text: the
    // error is logged, the statement is not (log_min_error_statement).
    let in_statement = distinctive("statementsecret");
    let e = c
        .batch_execute(&format!(
            "UPDATE aws.instance SET user_data = '{in_statement}' WHERE name = 'web-1' AND 1/0 = 1"
        ))
        .await
        .expect_err("division by zero");
    said.push(format!("{e:?}"));
    while let Ok((_, m)) = notices.try_recv() {
        said.push(m);
    }
    assert_found_nowhere(&s, &[first, second, failed, in_statement], &marker, &said);
    assert!(
        read(&s.data.join("postgres.log")).contains("division by zero"),
        "PostgreSQL's log has its errors"
    );
}

#[tokio::test]
async fn a_database_password_is_used_for_create_and_modify_and_rests_nowhere() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at_env(&proxy.url, &[("INFRASQL_LOG", "trace")]);
    let (c, mut notices) = s.connect_with_notices().await;
    let marker = distinctive("marker");
    let first = distinctive("PwCreate");
    let second = distinctive("PwModify");
    let failed = distinctive("PwFailed");
    let mut said = Vec::new();

    c.batch_execute(&format!(
        "BEGIN;
         INSERT INTO aws.db_instance (db_instance_identifier, engine, db_instance_class,
             allocated_storage, master_username, master_user_password, skip_final_snapshot, tags)
           VALUES ('vault', 'postgres', 'db.t3.micro', 20, 'admin', '{first}', true,
                   '{{\"m\": \"{marker}\"}}');"
    ))
    .await
    .unwrap();
    let row = c
        .query_one(
            "SELECT master_user_password, (SELECT changes::text FROM infra.plan) \
             FROM aws.db_instance WHERE db_instance_identifier = 'vault'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0),
        None,
        "the row never holds it"
    );
    let plan: String = row.get(1);
    assert!(plan.contains("(secret)"), "{plan}");
    c.batch_execute("COMMIT").await.unwrap();

    // A new password, changed in place.
    c.batch_execute(&format!(
        "UPDATE aws.db_instance SET master_user_password = '{second}' \
         WHERE db_instance_identifier = 'vault'"
    ))
    .await
    .unwrap();

    // AWS got each one, in the call that needed it.
    let sent = |action: &str| -> Vec<String> {
        proxy
            .log()
            .into_iter()
            .filter(|call| call.action == action)
            .map(|call| call.body)
            .collect()
    };
    let creates = sent("CreateDBInstance");
    assert_eq!(creates.len(), 1);
    assert!(creates[0].contains(&format!("MasterUserPassword={first}")));
    let modifies = sent("ModifyDBInstance");
    assert_eq!(modifies.len(), 1);
    assert!(modifies[0].contains(&format!("MasterUserPassword={second}")));

    // A create AWS refuses: the identifier is taken behind infrasql's back.
    moto.rds()
        .await
        .create_db_instance()
        .db_instance_identifier("taken")
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("not-the-secret")
        .send()
        .await
        .unwrap();
    let refused = c
        .batch_execute(&format!(
            "INSERT INTO aws.db_instance (db_instance_identifier, engine, db_instance_class,
                 allocated_storage, master_username, master_user_password)
               VALUES ('taken', 'postgres', 'db.t3.micro', 20, 'admin', '{failed}')"
        ))
        .await
        .expect_err("AWS refuses an identifier in use");
    assert_eq!(
        sqlstate(&refused).as_deref().map(|s| &s[..2]),
        Some("IX"),
        "{refused:?}"
    );
    said.push(format!("{refused:?}"));
    assert!(
        sent("CreateDBInstance").iter().any(|b| b.contains(&failed)),
        "the refused create carried its password"
    );
    while let Ok((_, m)) = notices.try_recv() {
        said.push(m);
    }
    assert_found_nowhere(&s, &[first, second, failed], &marker, &said);
}

/// The AWS credentials sign every request and are found nowhere in the
/// server's log at trace: not the secret key, not the session token, not
/// the signed headers (`Authorization`, `X-Amz-Security-Token`) or a
/// presigned `Signature=`. The positive control: the access key id's
/// request went out (a COMMIT and a sync round reached moto), and the log
/// is at trace.
#[tokio::test]
async fn aws_credentials_and_signatures_are_never_logged() {
    const SECRET_KEY: &str = "infrasqlVERYSECRETsecretKEYdonotlog0000";
    const SESSION_TOKEN: &str = "infrasqlSESSIONtokenDONOTLOG";
    let moto = Moto::start();
    let s = TestServer::start_at_env(
        &moto.url,
        &[
            ("INFRASQL_LOG", "trace"),
            ("AWS_ACCESS_KEY_ID", "AKIAINFRASQLTESTKEY1"),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ],
    );
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('signed', '10.43.0.0/16')")
        .await
        .unwrap();
    let vpc_id: String = common::one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'signed'").await;
    assert!(
        moto.vpcs().await.contains(&vpc_id),
        "the COMMIT reached AWS"
    );
    let seen: i64 = common::one(
        &c,
        "SELECT (infra.sync('aws.vpc') ->> 'resources_seen')::bigint",
    )
    .await;
    assert!(seen >= 1, "the sync round listed the VPCs");

    let log = s.stderr();
    assert!(
        log.contains("TRACE"),
        "the server did not log at trace level"
    );
    if std::env::var("SECRETS_DEBUG").is_ok() {
        std::fs::write("/tmp/secrets-credentials.log", &log).unwrap();
    }
    let lower = log.to_lowercase();
    for needle in [SECRET_KEY, SESSION_TOKEN] {
        assert!(!log.contains(needle), "{needle} is in infrasql's trace log");
    }
    for needle in ["authorization", "x-amz-security-token", "signature="] {
        assert!(
            !lower.contains(needle),
            "{needle} is in infrasql's trace log: {}",
            lower
                .lines()
                .find(|l| l.contains(needle))
                .unwrap_or_default()
        );
    }
}
