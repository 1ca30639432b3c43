//! Transaction control in every protocol form behaves as in the simple
//! protocol: COMMIT through Parse/Bind/Execute (named or unnamed, with
//! Describe), several transactions pipelined before one Sync, COMMIT AND
//! CHAIN, PREPARE TRANSACTION, and `infra.*` settings that fail closed.
//! Real PostgreSQL, real moto, messages as drivers send them.

mod common;
#[path = "common/raw.rs"]
mod raw;

use common::{Moto, TestServer, USER};
use raw::{first_error, has_error, quiet, Msg, Raw};

async fn vpcs_named(moto: &Moto, name: &str) -> Vec<String> {
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
        .iter()
        .filter_map(|v| v.vpc_id().map(str::to_owned))
        .collect()
}

fn insert_vpc(name: &str, cidr: &str) -> String {
    format!("INSERT INTO aws.vpc (name, cidr_block) VALUES ('{name}', '{cidr}')")
}

fn server(moto: &Moto) -> TestServer {
    TestServer::start_on(
        moto,
        &[
            "--auth",
            "trust",
            "--pg-option",
            "max_prepared_transactions=4",
        ],
    )
}

fn no_errors(msgs: &[Msg]) {
    assert!(
        !msgs.iter().any(|m| matches!(m, Msg::Error(..))),
        "unexpected error: {msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_through_the_extended_protocol_applies_and_commits() {
    let moto = Moto::start();
    let srv = server(&moto);
    let mut c = Raw::connect(srv.port, USER).await;

    // pgJDBC with autocommit off: BEGIN rides along with the first statement,
    // and commit() is an unnamed Parse/Bind/Describe/Execute of COMMIT.
    let got = c
        .unnamed("BEGIN")
        .unnamed(&insert_vpc("jdbc", "10.1.0.0/16"))
        .sync()
        .send(1)
        .await;
    no_errors(&got);
    assert_eq!(got.last(), Some(&Msg::Ready('T')));
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
    assert_eq!(vpcs_named(&moto, "jdbc").await.len(), 1);
    let rows = c
        .query("SELECT vpc_id FROM aws.vpc WHERE name = 'jdbc'")
        .send(1)
        .await;
    assert!(
        rows.iter().any(|m| matches!(m, Msg::DataRow(v) if v[0].as_deref().is_some_and(|id| id.starts_with("vpc-")))),
        "{rows:?}"
    );

    // A named COMMIT statement, prepared once and executed twice, in a
    // separate batch from its Parse (node-postgres' named statements,
    // pgJDBC after prepareThreshold).
    no_errors(&c.parse("tx_commit", "COMMIT").sync().send(1).await);
    for name in ["named-1", "named-2"] {
        no_errors(&c.query("BEGIN").send(1).await);
        no_errors(&c.query(&insert_vpc(name, "10.2.0.0/16")).send(1).await);
        let got = quiet(&c.bind("", "tx_commit").execute("").sync().send(1).await);
        assert_eq!(
            got,
            vec![
                Msg::BindComplete,
                Msg::Command("COMMIT".into()),
                Msg::Ready('I')
            ]
        );
        assert_eq!(vpcs_named(&moto, name).await.len(), 1, "{name}");
    }

    // Go's lib/pq in autocommit: Parse and Describe the unnamed statement,
    // Sync; then Bind and Execute it in a second batch. infrasql's own
    // BEGIN and hook statements must not destroy that unnamed statement.
    let got = quiet(
        &c.parse("", &insert_vpc("libpq", "10.13.0.0/16"))
            .describe_statement("")
            .sync()
            .send(1)
            .await,
    );
    no_errors(&got);
    let got = quiet(&c.bind("", "").execute("").sync().send(1).await);
    assert_eq!(
        got,
        vec![
            Msg::BindComplete,
            Msg::Command("INSERT 0 1".into()),
            Msg::Ready('I')
        ]
    );
    assert_eq!(vpcs_named(&moto, "libpq").await.len(), 1);
    // The unnamed statement is still there after the commit, as in
    // PostgreSQL: executing it again applies a second VPC.
    let got = quiet(&c.bind("", "").execute("").sync().send(1).await);
    assert!(got.contains(&Msg::Command("INSERT 0 1".into())), "{got:?}");
    assert_eq!(vpcs_named(&moto, "libpq").await.len(), 2);

    // psycopg ends a pipeline with Sync and then a lone Flush; the next
    // autocommit write is still an implicit transaction of its own.
    no_errors(&c.unnamed("SELECT 1").sync().flush_msg().send(1).await);
    let got = quiet(
        &c.unnamed(&insert_vpc("after-pipeline", "10.14.0.0/16"))
            .sync()
            .send(1)
            .await,
    );
    no_errors(&got);
    assert_eq!(vpcs_named(&moto, "after-pipeline").await.len(), 1);

    // A pipeline that reads, Flushes to fetch the result, then writes in
    // its implicit transaction (psycopg's pipeline in autocommit).
    let got = quiet(
        &c.unnamed("SELECT 1")
            .flush_msg()
            .unnamed(&insert_vpc("read-then-write", "10.15.0.0/16"))
            .sync()
            .send(1)
            .await,
    );
    no_errors(&got);
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    assert_eq!(vpcs_named(&moto, "read-then-write").await.len(), 1);

    // asyncpg prepares with Parse, Describe and Flush, then binds and runs.
    let got = quiet(
        &c.parse("", &insert_vpc("prepared-first", "10.17.0.0/16"))
            .describe_statement("")
            .flush_msg()
            .bind("", "")
            .execute("")
            .sync()
            .send(1)
            .await,
    );
    no_errors(&got);
    assert_eq!(vpcs_named(&moto, "prepared-first").await.len(), 1);

    // asyncpg prepares outside a transaction, then uses the statement in
    // one: the transaction stays the client's, and its ROLLBACK undoes it.
    no_errors(
        &c.parse("ins", &insert_vpc("asyncpg-tx", "10.29.0.0/16"))
            .describe_statement("ins")
            .flush_msg()
            .send_until(|m| *m == Msg::NoData)
            .await,
    );
    no_errors(&c.query("BEGIN").send(1).await);
    let got = quiet(&c.bind("", "ins").execute("").sync().send(1).await);
    no_errors(&got);
    assert_eq!(got.last(), Some(&Msg::Ready('T')), "{got:?}");
    assert!(vpcs_named(&moto, "asyncpg-tx").await.is_empty());
    no_errors(&c.query("ROLLBACK").send(1).await);
    assert!(vpcs_named(&moto, "asyncpg-tx").await.is_empty());
    let got = c
        .query("SELECT count(*) FROM aws.vpc WHERE name = 'asyncpg-tx'")
        .send(1)
        .await;
    assert!(
        got.contains(&Msg::DataRow(vec![Some("0".into())])),
        "{got:?}"
    );

    // A write after a COMMIT in the same batch is a new implicit
    // transaction, applied like the first.
    let got = quiet(
        &c.unnamed("BEGIN")
            .unnamed(&insert_vpc("batch-a", "10.18.0.0/16"))
            .unnamed("COMMIT")
            .unnamed(&insert_vpc("batch-b", "10.19.0.0/16"))
            .sync()
            .send(1)
            .await,
    );
    no_errors(&got);
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    assert_eq!(vpcs_named(&moto, "batch-a").await.len(), 1);
    assert_eq!(vpcs_named(&moto, "batch-b").await.len(), 1);

    // COPY FROM STDIN through the extended protocol, as libpq's
    // PQexecParams sends it: the backend ignores the Sync sent with the
    // Execute; the one after CopyDone ends the batch. Then in a block.
    no_errors(&c.query("CREATE TABLE public.copied (a int)").send(1).await);
    for in_block in [false, true] {
        if in_block {
            no_errors(&c.query("BEGIN").send(1).await);
        }
        let got = c
            .unnamed("COPY public.copied FROM STDIN")
            .sync()
            .send_until_copy_in()
            .await;
        no_errors(&got);
        let got = quiet(&c.copy_data("1\n").copy_done().sync().send(1).await);
        assert_eq!(
            got,
            vec![
                Msg::Command("COPY 1".into()),
                Msg::Ready(if in_block { 'T' } else { 'I' })
            ]
        );
        if in_block {
            no_errors(&c.query("COMMIT").send(1).await);
        }
    }
    // A COPY that fails before copy-in (no such table) is answered at its
    // own Sync; the next batch is a batch of its own.
    let got = quiet(
        &c.unnamed("COPY public.missing FROM STDIN")
            .sync()
            .send(1)
            .await,
    );
    assert_eq!(
        first_error(&got).map(|e| e.0).as_deref(),
        Some("42P01"),
        "{got:?}"
    );
    let got = quiet(
        &c.unnamed(&insert_vpc("after-copy", "10.28.0.0/16"))
            .sync()
            .send(1)
            .await,
    );
    no_errors(&got);
    assert_eq!(vpcs_named(&moto, "after-copy").await.len(), 1);
    let got = c.query("SELECT count(*) FROM public.copied").send(1).await;
    assert!(
        got.contains(&Msg::DataRow(vec![Some("2".into())])),
        "{got:?}"
    );

    // COMMIT with a comment after it is still a COMMIT.
    no_errors(&c.query("BEGIN").send(1).await);
    no_errors(
        &c.query(&insert_vpc("commented", "10.16.0.0/16"))
            .send(1)
            .await,
    );
    let got = quiet(&c.unnamed("COMMIT; -- done").sync().send(1).await);
    no_errors(&got);
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    assert_eq!(vpcs_named(&moto, "commented").await.len(), 1);

    // Two transactions pipelined before one Sync; the second one's Parse
    // goes out in a Flush before the rest (psycopg's pipeline mode).
    let got = quiet(
        &c.unnamed("BEGIN")
            .unnamed(&insert_vpc("pipe-1", "10.3.0.0/16"))
            .unnamed("COMMIT")
            .unnamed("BEGIN")
            .flush_msg()
            .unnamed(&insert_vpc("pipe-2", "10.4.0.0/16"))
            .unnamed("COMMIT")
            .sync()
            .send(1)
            .await,
    );
    no_errors(&got);
    let tags: Vec<&Msg> = got
        .iter()
        .filter(|m| matches!(m, Msg::Command(_)))
        .collect();
    assert_eq!(tags.len(), 6, "{got:?}");
    assert_eq!(tags[2], &Msg::Command("COMMIT".into()));
    assert_eq!(tags[5], &Msg::Command("COMMIT".into()));
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    assert_eq!(vpcs_named(&moto, "pipe-1").await.len(), 1);
    assert_eq!(vpcs_named(&moto, "pipe-2").await.len(), 1);

    // A read-only transaction in a pipeline.
    let got = quiet(
        &c.unnamed("BEGIN READ ONLY")
            .unnamed("SELECT 1")
            .unnamed("COMMIT")
            .sync()
            .send(1)
            .await,
    );
    no_errors(&got);
    assert_eq!(got.last(), Some(&Msg::Ready('I')));

    // COMMIT AND CHAIN: the first transaction is applied, the next one is
    // open at once and applied at its own COMMIT.
    no_errors(&c.query("BEGIN").send(1).await);
    no_errors(&c.query(&insert_vpc("chain-1", "10.5.0.0/16")).send(1).await);
    let got = quiet(&c.unnamed("COMMIT AND CHAIN").sync().send(1).await);
    assert_eq!(got.last(), Some(&Msg::Ready('T')), "{got:?}");
    assert_eq!(vpcs_named(&moto, "chain-1").await.len(), 1);
    let got = quiet(
        &c.unnamed(&insert_vpc("chain-2", "10.6.0.0/16"))
            .unnamed("COMMIT")
            .sync()
            .send(1)
            .await,
    );
    no_errors(&got);
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    assert_eq!(vpcs_named(&moto, "chain-2").await.len(), 1);

    // COMMIT AND CHAIN of an implicit transaction is refused, as in
    // PostgreSQL, in both protocols; nothing is applied, no block is left.
    let got = c
        .query(&format!(
            "{}; COMMIT AND CHAIN",
            insert_vpc("chain-implicit", "10.33.0.0/16")
        ))
        .send(1)
        .await;
    assert_eq!(
        first_error(&got).map(|e| e.0).as_deref(),
        Some("25P01"),
        "{got:?}"
    );
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    let got = quiet(
        &c.unnamed(&insert_vpc("chain-implicit", "10.33.0.0/16"))
            .unnamed("COMMIT AND CHAIN")
            .sync()
            .send(1)
            .await,
    );
    assert_eq!(
        first_error(&got).map(|e| e.0).as_deref(),
        Some("25P01"),
        "{got:?}"
    );
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    assert!(vpcs_named(&moto, "chain-implicit").await.is_empty());

    // ROLLBACK through the extended protocol applies nothing.
    no_errors(
        &c.unnamed("BEGIN")
            .unnamed(&insert_vpc("rolled", "10.7.0.0/16"))
            .sync()
            .send(1)
            .await,
    );
    let got = quiet(&c.unnamed("ROLLBACK").sync().send(1).await);
    assert!(got.contains(&Msg::Command("ROLLBACK".into())), "{got:?}");
    assert!(vpcs_named(&moto, "rolled").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_through_the_extended_protocol_skips_to_sync() {
    let moto = Moto::start();
    let srv = server(&moto);
    let mut c = Raw::connect(srv.port, USER).await;
    // A deferred constraint would make the backend's COMMIT fail after the
    // apply; infrasql checks it before any AWS call.
    no_errors(
        &c.query("CREATE TABLE public.guarded (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
            .send(1)
            .await,
    );
    let got = quiet(
        &c.unnamed("BEGIN")
            .unnamed(&insert_vpc("never", "10.8.0.0/16"))
            .unnamed("INSERT INTO public.guarded VALUES (1), (1)")
            .unnamed("COMMIT")
            .unnamed("SELECT 'skipped'")
            .sync()
            .send(1)
            .await,
    );
    let err = first_error(&got);
    assert_eq!(err.as_ref().map(|e| e.0.as_str()), Some("23505"), "{got:?}");
    assert!(
        !got.iter().any(|m| matches!(m, Msg::DataRow(_))),
        "messages after the failed COMMIT must be skipped: {got:?}"
    );
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    // Checked before the apply: AWS never saw the VPC.
    assert!(vpcs_named(&moto, "never").await.is_empty());
    let got = c.query("SELECT count(*) FROM infra.apply").send(1).await;
    assert!(
        got.contains(&Msg::DataRow(vec![Some("0".into())])),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_transaction_with_infrastructure_changes_is_refused_before_aws() {
    let moto = Moto::start();
    let srv = server(&moto);
    let mut c = Raw::connect(srv.port, USER).await;
    for extended in [false, true] {
        no_errors(&c.query("BEGIN").send(1).await);
        no_errors(
            &c.query(&insert_vpc("two-phase", "10.9.0.0/16"))
                .send(1)
                .await,
        );
        let got = if extended {
            c.unnamed("PREPARE TRANSACTION 'tp'").sync().send(1).await
        } else {
            c.query("PREPARE TRANSACTION 'tp'").send(1).await
        };
        let err = first_error(&got);
        let (code, msg) = err.unwrap_or_else(|| panic!("no error: {got:?}"));
        assert_eq!(code, "0A000");
        assert!(msg.contains("PREPARE TRANSACTION"), "{msg}");
        assert_eq!(got.last(), Some(&Msg::Ready('I')));
        assert!(vpcs_named(&moto, "two-phase").await.is_empty());
    }
    // Without infrastructure changes, two-phase commit passes through.
    no_errors(&c.query("BEGIN").send(1).await);
    no_errors(&c.query("CREATE TABLE public.tp (a int)").send(1).await);
    no_errors(&c.query("PREPARE TRANSACTION 'plain'").send(1).await);
    no_errors(&c.query("COMMIT PREPARED 'plain'").send(1).await);
    no_errors(&c.query("SELECT * FROM public.tp").send(1).await);
    let got = c.query("SELECT count(*) FROM infra.apply").send(1).await;
    assert!(
        got.contains(&Msg::DataRow(vec![Some("0".into())])),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infra_settings_accept_exactly_postgres_booleans_and_fail_closed() {
    let moto = Moto::start();
    let srv = server(&moto);
    let mut c = Raw::connect(srv.port, USER).await;
    let got = c.query("SHOW infra.dry_run").send(1).await;
    assert!(
        got.contains(&Msg::DataRow(vec![Some("off".into())])),
        "{got:?}"
    );

    // Every true spelling is a dry run: nothing reaches AWS.
    for (i, spelling) in ["t", "'T'", "true", "on", "yes", "1", "'y'"]
        .iter()
        .enumerate()
    {
        let name = format!("dry-{i}");
        no_errors(
            &c.query(&format!("SET infra.dry_run = {spelling}"))
                .send(1)
                .await,
        );
        no_errors(&c.query(&insert_vpc(&name, "10.10.0.0/16")).send(1).await);
        assert!(vpcs_named(&moto, &name).await.is_empty(), "{spelling}");
    }
    // Bad values and unknown names are refused at SET, in both protocols,
    // and the setting keeps its value.
    for bad in [
        "SET infra.dry_run = 'bogus'",
        "SET infra.dry_run TO maybe",
        "SET LOCAL infra.dry_run = on, off",
        "SET infra.dryrun = on",
    ] {
        let got = c.query(bad).send(1).await;
        let code = first_error(&got).map(|(code, _)| code);
        let want = if bad.contains("dryrun") {
            "42704"
        } else {
            "22023"
        };
        assert_eq!(code.as_deref(), Some(want), "{bad}: {got:?}");
        let got = quiet(&c.unnamed(bad).sync().send(1).await);
        assert!(has_error(&got, want), "{bad} (extended): {got:?}");
    }
    let got = c.query("SHOW infra.dry_run").send(1).await;
    assert!(
        got.contains(&Msg::DataRow(vec![Some("y".into())])),
        "{got:?}"
    );

    // A value smuggled in by set_config() is refused at COMMIT, before AWS.
    no_errors(
        &c.query("SELECT set_config('infra.dry_run', 'bogus', false)")
            .send(1)
            .await,
    );
    let got = c
        .query(&insert_vpc("smuggled", "10.11.0.0/16"))
        .send(1)
        .await;
    assert!(has_error(&got, "22023"), "{got:?}");
    assert!(vpcs_named(&moto, "smuggled").await.is_empty());

    // off in any spelling applies.
    no_errors(&c.query("SET infra.dry_run = 'OF'").send(1).await);
    no_errors(
        &c.query(&insert_vpc("applied", "10.12.0.0/16"))
            .send(1)
            .await,
    );
    assert_eq!(vpcs_named(&moto, "applied").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_postgresql_would_reject_never_reach_aws() {
    let moto = Moto::start();
    let srv = server(&moto);
    let mut c = Raw::connect(srv.port, USER).await;

    // PostgreSQL parses a whole multi-statement query before it runs any of
    // it: a syntax error at the end means nothing runs, COMMIT included.
    let got = c
        .query(&format!(
            "BEGIN; {}; COMMIT; SELEC 1",
            insert_vpc("ms-1", "10.20.0.0/16")
        ))
        .send(1)
        .await;
    let err = first_error(&got);
    let (code, msg) = err.unwrap_or_else(|| panic!("no error: {got:?}"));
    assert_eq!(code, "42601");
    assert!(msg.contains("SELEC"), "{msg}");
    assert!(!got.iter().any(|m| matches!(m, Msg::Command(_))), "{got:?}");
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    assert!(vpcs_named(&moto, "ms-1").await.is_empty());

    // Inside a block the error aborts it, as in PostgreSQL.
    no_errors(&c.query("BEGIN").send(1).await);
    let got = c
        .query(&format!("{}; SELEC 1", insert_vpc("ms-2", "10.21.0.0/16")))
        .send(1)
        .await;
    assert_eq!(got.last(), Some(&Msg::Ready('E')), "{got:?}");
    no_errors(&c.query("ROLLBACK").send(1).await);

    // A misspelt COMMIT is a syntax error, not a COMMIT: nothing is applied.
    no_errors(&c.query("BEGIN").send(1).await);
    no_errors(&c.query(&insert_vpc("typo", "10.22.0.0/16")).send(1).await);
    let got = c.query("COMMIT TRANSACTON").send(1).await;
    assert!(has_error(&got, "42601"), "{got:?}");
    assert!(
        !got.iter()
            .any(|m| matches!(m, Msg::Notice(n) if n.contains("applying"))),
        "{got:?}"
    );
    assert_eq!(got.last(), Some(&Msg::Ready('E')));
    no_errors(&c.query("ROLLBACK").send(1).await);
    assert!(vpcs_named(&moto, "typo").await.is_empty());
    let got = c.query("SELECT count(*) FROM infra.apply").send(1).await;
    assert!(
        got.contains(&Msg::DataRow(vec![Some("0".into())])),
        "{got:?}"
    );

    // An unterminated comment at the end is a syntax error too.
    let got = c
        .query(&format!(
            "BEGIN; {}; COMMIT; /* oops",
            insert_vpc("comment", "10.24.0.0/16")
        ))
        .send(1)
        .await;
    assert!(has_error(&got, "42601"), "{got:?}");
    assert!(vpcs_named(&moto, "comment").await.is_empty());

    // ...also without a COMMIT in the string.
    let got = c
        .query(&format!(
            "{}; /* oops",
            insert_vpc("comment-2", "10.27.0.0/16")
        ))
        .send(1)
        .await;
    assert!(has_error(&got, "42601"), "{got:?}");
    assert!(vpcs_named(&moto, "comment-2").await.is_empty());

    // In an aborted block, PostgreSQL still reports the syntax error first.
    no_errors(&c.query("BEGIN").send(1).await);
    let _ = c.query("SELECT 1/0").send(1).await;
    let got = c
        .query(&format!(
            "ROLLBACK; BEGIN; {}; COMMIT; SELEC 1",
            insert_vpc("aborted", "10.25.0.0/16")
        ))
        .send(1)
        .await;
    assert!(has_error(&got, "42601"), "{got:?}");
    assert_eq!(got.last(), Some(&Msg::Ready('E')));
    no_errors(&c.query("ROLLBACK").send(1).await);
    assert!(vpcs_named(&moto, "aborted").await.is_empty());

    // Inside a block, a string whose later statement needs a table an
    // earlier one creates runs as in PostgreSQL; the check leaves the block
    // as it was.
    no_errors(&c.query("BEGIN").send(1).await);
    let got = c
        .query("CREATE TEMP TABLE nm (n text, c text); INSERT INTO nm VALUES ('in-block', '10.26.0.0/16'); \
                INSERT INTO aws.vpc (name, cidr_block) SELECT n, c::cidr FROM nm; COMMIT")
        .send(1)
        .await;
    no_errors(&got);
    assert_eq!(got.last(), Some(&Msg::Ready('I')));
    assert_eq!(vpcs_named(&moto, "in-block").await.len(), 1);

    // A valid multi-statement query still runs statement by statement.
    let got = c
        .query(&format!(
            "CREATE TABLE public.made (a int); INSERT INTO public.made VALUES (1); {}",
            insert_vpc("ms-ok", "10.23.0.0/16")
        ))
        .send(1)
        .await;
    no_errors(&got);
    assert_eq!(vpcs_named(&moto, "ms-ok").await.len(), 1);
}

/// As in PostgreSQL, what a client sent before it went away is carried out:
/// a COMMIT received, and every statement of a script before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_sent_just_before_the_client_goes_away_is_carried_out() {
    let moto = Moto::start();
    let srv = server(&moto);
    let mut c = Raw::connect(srv.port, USER).await;
    no_errors(&c.query("BEGIN").send(1).await);
    no_errors(
        &c.query(&insert_vpc("gone-ext", "10.30.0.0/16"))
            .send(1)
            .await,
    );
    c.unnamed("COMMIT").sync().send_only().await;
    drop(c);
    let mut c = Raw::connect(srv.port, USER).await;
    c.query(&format!(
        "BEGIN; {}; SELECT pg_sleep(0.5); {}; COMMIT",
        insert_vpc("gone-script-1", "10.31.0.0/16"),
        insert_vpc("gone-script-2", "10.32.0.0/16")
    ))
    .send_only()
    .await;
    drop(c);
    let watcher = common::connect(&format!(
        "host=127.0.0.1 port={} user={USER} dbname=infrasql",
        srv.port
    ))
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let n: i64 = common::one(
            &watcher,
            "SELECT count(*) FROM aws.vpc WHERE name LIKE 'gone-%' AND vpc_id LIKE 'vpc-%'",
        )
        .await;
        if n == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{n} of 3 committed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for name in ["gone-ext", "gone-script-1", "gone-script-2"] {
        assert_eq!(vpcs_named(&moto, name).await.len(), 1, "{name}");
    }
}
