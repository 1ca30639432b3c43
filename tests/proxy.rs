//! The proxy is indistinguishable from PostgreSQL for real clients.

mod common;

use std::time::{Duration, Instant};

use common::{sqlstate, stderr, stdout, TestServer};
use tokio_postgres::types::{FromSql, ToSql, Type};

#[test]
fn psql_runs_commands_and_meta_commands_through_the_proxy() {
    let s = TestServer::start();
    let o = s.psql(&["-At", "-c", "select 40 + 2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "42");

    let o = s.psql(&["-c", "create table things (id int primary key, name text)"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.psql(&["-c", r"\d things"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Table \"public.things\"") && out.contains("things_pkey"),
        "{out}"
    );

    let o = s.psql(&["-c", r"\dt infra.*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("schema_file"), "{}", stdout(&o));
}

#[test]
fn psql_single_transaction_file_commits_all_or_nothing() {
    let s = TestServer::start();
    let dir = common::temp_dir();
    let good = dir.path().join("good.sql");
    std::fs::write(
        &good,
        "create table accounts (id int primary key, balance numeric);\n\
         insert into accounts values (1, 10.5), (2, 20);\n\
         update accounts set balance = balance + 1 where id = 2;\n",
    )
    .unwrap();
    let o = s.psql(&["-1", "-f", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.psql(&["-At", "-c", "select sum(balance) from accounts"]);
    assert_eq!(stdout(&o).trim(), "31.5");

    let bad = dir.path().join("bad.sql");
    std::fs::write(
        &bad,
        "insert into accounts values (3, 1);\ninsert into accounts values (1, 1);\n",
    )
    .unwrap();
    let o = s.psql(&["-1", "-f", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("duplicate key"), "{}", stderr(&o));
    let o = s.psql(&["-At", "-c", "select count(*) from accounts"]);
    assert_eq!(
        stdout(&o).trim(),
        "2",
        "the failed file must leave nothing behind"
    );
}

#[test]
fn psql_copy_in_and_out_round_trips() {
    let s = TestServer::start();
    let dir = common::temp_dir();
    let input = dir.path().join("in.csv");
    let mut csv = String::new();
    for i in 0..5000 {
        csv.push_str(&format!("{i},name {i},\"quoted, {i}\"\n"));
    }
    std::fs::write(&input, &csv).unwrap();
    let o = s.psql(&["-c", "create table c (id int, a text, b text)"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.psql(&[
        "-c",
        &format!(r"\copy c from '{}' with (format csv)", input.display()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("COPY 5000"), "{}", stdout(&o));

    // Inside an explicit transaction too.
    let o = s.psql(&[
        "-c",
        "begin",
        "-c",
        &format!(r"\copy c from '{}' with (format csv)", input.display()),
        "-c",
        "rollback",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let output = dir.path().join("out.csv");
    let o = s.psql(&[
        "-c",
        &format!(
            r"\copy (select * from c order by id) to '{}' with (format csv)",
            output.display()
        ),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), csv);
}

/// Captures a value's exact wire bytes, whatever its type.
#[derive(Debug, PartialEq)]
struct Raw(Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

const TYPED_QUERY: &str = "select $1::int2, $2::int4, $3::int8, $4::text, $5::bytea, $6::bool, \
     $7::jsonb, $8::uuid, $9::timestamptz, $10::inet, $11::int4[], $12::text, \
     12345.6789::numeric, '10.0.0.0/16'::cidr, array['a', null, 'c']::text[], null::int, \
     now() - now() as zero_interval, '{\"k\": [1, 2]}'::json";

async fn typed_rows(client: &tokio_postgres::Client) -> (Vec<Vec<Raw>>, Vec<Vec<Option<String>>>) {
    let uuid = uuid::Uuid::parse_str("a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8").unwrap();
    let ts = chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00.123456+02:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let ip: std::net::IpAddr = "192.168.1.20".parse().unwrap();
    let json = serde_json::json!({"a": 1, "b": [true, null, "x"]});
    let arr = vec![Some(1i32), None, Some(3)];
    let null_text: Option<String> = None;
    let bytes: &[u8] = b"\x00\x01\xff bytes";
    let params: Vec<&(dyn ToSql + Sync)> = vec![
        &-7i16,
        &2_000_000_000i32,
        &-9_000_000_000_000i64,
        &"héllo 'quoted' \\ text",
        &bytes,
        &true,
        &json,
        &uuid,
        &ts,
        &ip,
        &arr,
        &null_text,
    ];
    // Binary results (tokio-postgres asks for binary), prepared with parameters.
    let stmt = client.prepare(TYPED_QUERY).await.unwrap();
    let rows = client.query(&stmt, &params).await.unwrap();
    let binary = rows
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get::<_, Raw>(i)).collect())
        .collect();
    // Text results through the simple protocol.
    let text = client
        .simple_query(
            "select 1::int2, 2::int8, 'x'::text, '\\x00ff'::bytea, true, '{\"a\":1}'::jsonb, \
             'a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8'::uuid, \
             '2026-11-21 10:00:00+00'::timestamptz, '10.1.2.3/8'::inet, '10.0.0.0/8'::cidr, \
             array[1,2,null]::int[], null::text, 1.50::numeric",
        )
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect();
    (binary, text)
}

#[tokio::test]
async fn prepared_statements_give_identical_results_through_the_proxy_and_direct() {
    let s = TestServer::start();
    let proxied = s.connect().await;
    let direct = s.connect_direct().await;
    proxied.batch_execute("set timezone = 'UTC'").await.unwrap();
    direct.batch_execute("set timezone = 'UTC'").await.unwrap();
    let via_proxy = typed_rows(&proxied).await;
    let via_direct = typed_rows(&direct).await;
    assert_eq!(via_proxy.0.len(), 1);
    assert_eq!(via_proxy.0[0].len(), 18);
    assert_eq!(via_proxy, via_direct);
    // Spot-check decoded values, so equality is not equality of two wrongs.
    let row = proxied
        .query_one(
            "select $1::int8 + 1, $2::text || '!', $3::bytea",
            &[&41i64, &"hi", &vec![0u8, 255]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
    assert_eq!(row.get::<_, String>(1), "hi!");
    assert_eq!(row.get::<_, Vec<u8>>(2), vec![0u8, 255]);

    // Errors in the extended protocol keep the session usable.
    let e = proxied.query("select 1/0", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22012"));
    assert_eq!(
        proxied
            .query_one("select 7", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        7
    );
}

#[tokio::test]
async fn pipelined_extended_queries_keep_their_order() {
    let s = TestServer::start();
    let c = s.connect().await;
    c.batch_execute("create table p (n int)").await.unwrap();
    // tokio-postgres pipelines concurrent queries on one connection.
    let futs: Vec<_> = (0..50)
        .map(|i| {
            let c = &c;
            async move {
                if i % 5 == 0 {
                    c.execute("insert into p values ($1)", &[&i]).await.unwrap();
                }
                c.query_one("select $1::int * 2", &[&i])
                    .await
                    .unwrap()
                    .get::<_, i32>(0)
            }
        })
        .collect();
    let results = futures_util::future::join_all(futs).await;
    assert_eq!(results, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    let n: i64 = c
        .query_one("select count(*) from p", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10);
}

#[tokio::test]
async fn cancel_stops_a_running_query_within_a_second() {
    let s = TestServer::start();
    let c = s.connect().await;
    let token = c.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move {
        let r = c.simple_query("select pg_sleep(30)").await;
        (r.map(|_| ()), c)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (r, c) = tokio::time::timeout(Duration::from_secs(5), sleeper)
        .await
        .unwrap()
        .unwrap();
    let e = r.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "took {:?}",
        started.elapsed()
    );
    // The session survives the cancel.
    assert_eq!(
        c.query_one("select 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn fifty_concurrent_clients_do_mixed_work() {
    let s = TestServer::start_with(&["--pg-option", "max_connections=120"]);
    let setup = s.connect().await;
    setup
        .batch_execute("create table ledger (client int, n int, note text)")
        .await
        .unwrap();
    let conn = s.conn_string();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let mut c = common::connect(&conn).await.unwrap();
                for n in 0..20 {
                    match n % 4 {
                        0 => {
                            c.execute("insert into ledger values ($1, $2, 'auto')", &[&i, &n])
                                .await
                                .unwrap();
                        }
                        1 => {
                            let tx = c.transaction().await.unwrap();
                            tx.execute("insert into ledger values ($1, $2, 'tx')", &[&i, &n])
                                .await
                                .unwrap();
                            tx.commit().await.unwrap();
                        }
                        2 => {
                            let tx = c.transaction().await.unwrap();
                            tx.execute(
                                "insert into ledger values ($1, $2, 'rolled back')",
                                &[&i, &n],
                            )
                            .await
                            .unwrap();
                            tx.rollback().await.unwrap();
                        }
                        _ => {
                            let got: i64 = c
                                .query_one("select count(*) from ledger where client = $1", &[&i])
                                .await
                                .unwrap()
                                .get(0);
                            assert_eq!(got, (n / 4 * 2 + 2) as i64);
                        }
                    }
                }
                c.simple_query(&format!(
                    "insert into ledger values ({i}, 100, 'simple'); select 1"
                ))
                .await
                .unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total: i64 = setup
        .query_one("select count(*) from ledger", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 50 * (10 + 1));
    let rolled: i64 = setup
        .query_one(
            "select count(*) from ledger where note = 'rolled back'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rolled, 0);
}

#[tokio::test]
async fn implicit_and_multi_statement_transactions_behave_as_in_postgresql() {
    let s = TestServer::start();
    let c = s.connect().await;
    c.batch_execute("create table m (n int primary key)")
        .await
        .unwrap();
    // A failing statement in a multi-statement query undoes the earlier ones.
    let e = c
        .batch_execute("insert into m values (1); insert into m values (1)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("23505"));
    let n: i64 = c
        .query_one("select count(*) from m", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // Explicit blocks inside one query string.
    c.batch_execute("begin; insert into m values (1); commit; insert into m values (2)")
        .await
        .unwrap();
    let n: i64 = c
        .query_one("select count(*) from m", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    // A failed explicit block stays failed until ROLLBACK.
    c.batch_execute("begin").await.unwrap();
    assert!(c.batch_execute("insert into m values (1)").await.is_err());
    let e = c.batch_execute("select 1").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25P02"));
    c.batch_execute("rollback").await.unwrap();
    // Statements that cannot run in a transaction block still work.
    c.batch_execute("vacuum m").await.unwrap();
    // Savepoints.
    c.batch_execute("begin; insert into m values (3); savepoint a; insert into m values (4); rollback to a; commit")
        .await
        .unwrap();
    let ns: Vec<i32> = c
        .query("select n from m order by n", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ns, vec![1, 2, 3]);
}

#[test]
fn a_wrong_password_is_refused_with_28p01() {
    let s = TestServer::start();
    let o = std::process::Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &s.port.to_string(),
            "-U",
            common::USER,
            "-d",
            "infrasql",
        ])
        .args(["-c", "select 1"])
        .env("PGPASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("password authentication failed"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn auth_failures_carry_the_right_sqlstate() {
    let s = TestServer::start();
    let bad = s.conn_string().replace(&s.password(), "wrong");
    let e = common::connect(&bad).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("28P01"), "{e}");
    // The engine's role cannot log in through the proxy, even with its password.
    let pw = std::fs::read_to_string(s.data.join("engine.password")).unwrap();
    let engine = format!(
        "host=127.0.0.1 port={} user=infrasql_engine password={} dbname=infrasql",
        s.port,
        pw.trim()
    );
    let e = common::connect(&engine).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("28000"), "{e}");
    // Good credentials still work afterwards.
    s.connect().await.simple_query("select 1").await.unwrap();
}
