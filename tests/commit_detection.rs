//! How the proxy knows a transaction changed infrastructure: from the
//! backend (schema 1010's marker), not from statements' first keywords.
//! Writes hidden in `SELECT f()` and writable CTEs are applied at COMMIT
//! even with `client_min_messages = warning` (Rails' default); the client
//! never sees the marker; and a transaction that changed nothing commits
//! exactly as PostgreSQL answers it. Real PostgreSQL, real moto.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::{Moto, TestServer, USER};
use raw::{quiet, Msg, Raw};

async fn vpcs_named(moto: &Moto, name: &str) -> usize {
    let ec2 = moto.ec2().await;
    ec2.describe_vpcs()
        .filters(
            infrasql_aws::aws_sdk_ec2::types::Filter::builder()
                .name("tag:Name")
                .values(name)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .vpcs()
        .len()
}

fn no_errors_nor_marker(msgs: &[Msg]) {
    assert!(
        !msgs.iter().any(|m| matches!(m, Msg::Error(..))),
        "unexpected error: {msgs:?}"
    );
    assert!(
        !msgs
            .iter()
            .any(|m| matches!(m, Msg::Notice(n) if n.contains("infrasql:change"))),
        "the marker reached the client: {msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_the_first_keyword_hides_are_applied_at_commit() {
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &["--auth", "trust"]);
    let mut c = Raw::connect(srv.port, USER).await;
    no_errors_nor_marker(
        &c.query(
            "CREATE FUNCTION public.make_vpc(n text) RETURNS int LANGUAGE sql AS \
             $$ INSERT INTO aws.vpc (name, cidr_block) VALUES (n, '10.40.0.0/16') RETURNING 1 $$",
        )
        .send(1)
        .await,
    );
    // Rails' default: the client asks for no notices at all.
    no_errors_nor_marker(&c.query("SET client_min_messages = warning").send(1).await);

    // Simple protocol, one statement per Query, as psql sends a script.
    for sql in ["BEGIN", "SELECT public.make_vpc('hidden-fn')"] {
        no_errors_nor_marker(&c.query(sql).send(1).await);
    }
    let got = c.query("COMMIT").send(1).await;
    no_errors_nor_marker(&got);
    assert_eq!(
        quiet(&got),
        vec![Msg::Command("COMMIT".into()), Msg::Ready('I')]
    );
    assert_eq!(vpcs_named(&moto, "hidden-fn").await, 1);

    // Extended protocol as pgJDBC sends it with autocommit off: a writable
    // CTE whose first word is WITH ... SELECT, then a COMMIT on its own.
    let got = c
        .unnamed("BEGIN")
        .unnamed(
            "WITH v AS (INSERT INTO aws.vpc (name, cidr_block) VALUES ('hidden-cte', '10.41.0.0/16') RETURNING 1) \
             SELECT count(*) FROM v",
        )
        .sync()
        .send(1)
        .await;
    no_errors_nor_marker(&got);
    let got = c.unnamed("COMMIT").sync().send(1).await;
    no_errors_nor_marker(&got);
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    assert_eq!(vpcs_named(&moto, "hidden-cte").await, 1);

    // Every captured row raises the marker; a bulk write shows none either.
    let got = c
        .query("BEGIN; SELECT public.make_vpc('bulk-' || g) FROM generate_series(1, 3) g; COMMIT")
        .send(1)
        .await;
    no_errors_nor_marker(&got);
    for g in 1..=3 {
        assert_eq!(vpcs_named(&moto, &format!("bulk-{g}")).await, 1);
    }
    let rows = c
        .query("SELECT count(*) FROM aws.vpc WHERE vpc_id LIKE 'vpc-%' AND name IN ('hidden-fn', 'hidden-cte', 'bulk-1', 'bulk-2', 'bulk-3')")
        .send(1)
        .await;
    assert!(
        rows.contains(&Msg::DataRow(vec![Some("5".into())])),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_changed_nothing_commits_as_postgresql_answers() {
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &["--auth", "trust"]);
    let mut c = Raw::connect(srv.port, USER).await;
    no_errors_nor_marker(&c.query("CREATE TABLE public.notes (t text)").send(1).await);

    // pgJDBC, autocommit off, reading and writing only its own tables.
    let got = c
        .unnamed("BEGIN")
        .unnamed("INSERT INTO public.notes VALUES ('kept')")
        .unnamed("SELECT count(*) FROM aws.vpc")
        .sync()
        .send(1)
        .await;
    no_errors_nor_marker(&got);
    let got = quiet(&c.unnamed("COMMIT").sync().send(1).await);
    assert_eq!(
        got,
        vec![
            Msg::ParseComplete,
            Msg::BindComplete,
            Msg::NoData,
            Msg::Command("COMMIT".into()),
            Msg::Ready('I')
        ]
    );
    // An UPDATE that matches no row changed nothing: nothing to apply.
    let got = c
        .query("BEGIN; UPDATE aws.vpc SET name = 'x' WHERE false; COMMIT")
        .send(1)
        .await;
    no_errors_nor_marker(&got);
    let rows = c.query("SELECT t FROM public.notes").send(1).await;
    assert!(
        rows.contains(&Msg::DataRow(vec![Some("kept".into())])),
        "{rows:?}"
    );

    // A COMMIT AND CHAIN keeps the block open after a read-only block.
    no_errors_nor_marker(&c.query("BEGIN").send(1).await);
    let got = quiet(&c.unnamed("COMMIT AND CHAIN").sync().send(1).await);
    assert_eq!(got.last(), Some(&Msg::Ready('T')), "{got:?}");
    no_errors_nor_marker(&c.query("ROLLBACK").send(1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autocommit_write_hidden_in_a_function_is_refused_with_the_way_out() {
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &[]);
    let c = srv.connect().await;
    c.batch_execute(
        "CREATE FUNCTION public.make_vpc(n text) RETURNS int LANGUAGE sql AS \
         $$ INSERT INTO aws.vpc (name, cidr_block) VALUES (n, '10.42.0.0/16') RETURNING 1 $$",
    )
    .await
    .unwrap();
    // Outside a block, a SELECT is not wrapped (a read pays no COMMIT round
    // trip), so the write reaches the commit path unsealed.
    let e = c
        .query("SELECT public.make_vpc('auto-fn')", &[])
        .await
        .unwrap_err();
    let db = refused_ix100(&e, "outside a transaction block");
    assert!(
        db.hint().is_some_and(|h| h.contains("BEGIN ... COMMIT")),
        "{db:?}"
    );
    // The simple protocol, as psql sends it: the same refusal.
    let e = c
        .batch_execute("SELECT public.make_vpc('auto-fn')")
        .await
        .unwrap_err();
    assert_eq!(
        e.as_db_error().map(|d| d.code().code()),
        Some("IX100"),
        "{e:?}"
    );
    assert_eq!(vpcs_named(&moto, "auto-fn").await, 0);
    let rows: i64 = c
        .query_one("SELECT count(*) FROM aws.vpc WHERE name = 'auto-fn'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "nothing is left half-done");

    // The way out the hint gives works on the same session.
    c.batch_execute("BEGIN; SELECT public.make_vpc('auto-fn'); COMMIT")
        .await
        .unwrap();
    assert_eq!(vpcs_named(&moto, "auto-fn").await, 1);

    // Straight to the backend the refusal still says why: a direct session.
    let direct = srv.connect_direct().await;
    let e = direct
        .batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('sneaky', '10.43.0.0/16')")
        .await
        .unwrap_err();
    refused_ix100(&e, "connected to the backend PostgreSQL directly");
}

/// The commit path's refusal (IX100), whose DETAIL says `why`.
fn refused_ix100<'a>(
    e: &'a tokio_postgres::Error,
    why: &str,
) -> &'a tokio_postgres::error::DbError {
    let db = e.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "IX100", "{e:?}");
    assert!(db.detail().is_some_and(|d| d.contains(why)), "{db:?}");
    db
}

/// Prepared reads go to the backend straight from the read buffer
/// (`wire::session::fast`); a write pipelined behind them in the same
/// packet, or inside the same block, must still reach the commit hook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_reads_forwarded_whole_never_hide_a_write_behind_them() {
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &["--auth", "trust"]);
    let mut c = Raw::connect(srv.port, USER).await;
    let insert = |name: &str, cidr: &str| {
        format!("INSERT INTO aws.vpc (name, cidr_block) VALUES ('{name}', '{cidr}')")
    };
    let got = c
        .parse("r", "SELECT 1")
        .parse("w1", &insert("fast-pipelined", "10.42.0.0/16"))
        .parse("w2", &insert("fast-in-block", "10.43.0.0/16"))
        .parse("c", "COMMIT")
        .sync()
        .send(1)
        .await;
    no_errors_nor_marker(&got);

    // Two read batches in one packet: each answered in full, in order.
    let got = c
        .bind("", "r")
        .execute("")
        .sync()
        .bind("", "r")
        .execute("")
        .sync()
        .send(2)
        .await;
    let one_read = [
        Msg::BindComplete,
        Msg::DataRow(vec![Some("1".into())]),
        Msg::Command("SELECT 1".into()),
        Msg::Ready('I'),
    ];
    assert_eq!(quiet(&got), [one_read.clone(), one_read.clone()].concat());

    // A read batch, then an autocommit write, in one packet.
    let got = c
        .bind("", "r")
        .execute("")
        .sync()
        .bind("", "w1")
        .execute("")
        .sync()
        .send(2)
        .await;
    no_errors_nor_marker(&got);
    assert_eq!(
        quiet(&got),
        [
            one_read.to_vec(),
            vec![
                Msg::BindComplete,
                Msg::Command("INSERT 0 1".into()),
                Msg::Ready('I')
            ]
        ]
        .concat()
    );
    assert_eq!(vpcs_named(&moto, "fast-pipelined").await, 1);

    // Reads inside a block that wrote, then a prepared COMMIT.
    no_errors_nor_marker(&c.query("BEGIN").send(1).await);
    no_errors_nor_marker(&c.bind("", "w2").execute("").sync().send(1).await);
    let got = c.bind("", "r").execute("").sync().send(1).await;
    assert_eq!(got.last(), Some(&Msg::Ready('T')), "{got:?}");
    assert_eq!(vpcs_named(&moto, "fast-in-block").await, 0);
    let got = c.bind("", "c").execute("").sync().send(1).await;
    no_errors_nor_marker(&got);
    assert_eq!(
        quiet(&got),
        vec![
            Msg::BindComplete,
            Msg::Command("COMMIT".into()),
            Msg::Ready('I')
        ]
    );
    assert_eq!(vpcs_named(&moto, "fast-in-block").await, 1);
}
