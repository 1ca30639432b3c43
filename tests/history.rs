//! The apply history (issue #11): `infra.apply` says who committed, from
//! where, what the plan was and where the change came from;
//! `infra.apply_action` has AWS's request ids and each action's duration;
//! changes to `infra.policy` are journaled too; `--history-retention`
//! deletes settled history, never unsettled.

mod common;

use std::time::{Duration, Instant};

use common::{one, sqlstate, Moto, TestServer, USER};
use tokio_postgres::Client;

/// The newest apply's id.
async fn last_apply(c: &Client) -> String {
    one(
        c,
        "SELECT apply_id FROM infra.apply ORDER BY started_at DESC, apply_id LIMIT 1",
    )
    .await
}

#[tokio::test]
async fn a_commit_records_who_from_where_its_summary_and_each_actions_request_ids() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = common::connect(&format!(
        "{} application_name=history-test",
        s.conn_string()
    ))
    .await
    .unwrap();
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('h', '10.70.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'h1', vpc_id, '10.70.1.0/24' FROM aws.vpc WHERE name = 'h';
         COMMIT;",
    )
    .await
    .unwrap();
    let id = last_apply(&c).await;
    let row = c
        .query_one(
            "SELECT username, host(client_addr), application_name, source, \
                    creates, updates, replaces, deletes, actions \
             FROM infra.apply WHERE apply_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), USER);
    // The real client's address: the backend itself only sees infrasql,
    // over a Unix socket.
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("history-test")
    );
    assert_eq!(row.get::<_, String>(3), "commit");
    let counts: Vec<i32> = (4..9).map(|i| row.get(i)).collect();
    assert_eq!(
        counts,
        [2, 0, 0, 0, 2],
        "creates, updates, replaces, deletes, actions"
    );

    let actions = c
        .query(
            "SELECT table_name, status, request_ids, duration IS NOT NULL AND duration >= interval '0' \
             FROM infra.apply_action WHERE apply_id = $1 ORDER BY step",
            &[&id],
        )
        .await
        .unwrap();
    let tables: Vec<String> = actions.iter().map(|r| r.get(0)).collect();
    assert_eq!(tables, ["aws.vpc", "aws.subnet"]);
    for a in &actions {
        let table: String = a.get(0);
        assert_eq!(a.get::<_, String>(1), "done", "{table}");
        let ids: Vec<String> = a.get(2);
        assert!(
            !ids.is_empty() && ids.iter().all(|i| !i.trim().is_empty()),
            "{table}: request ids {ids:?}"
        );
        assert!(a.get::<_, bool>(3), "{table}: a duration");
    }
    // Each action has its own calls, not the other one's.
    let first: Vec<String> = actions[0].get(2);
    let second: Vec<String> = actions[1].get(2);
    assert!(
        first.iter().all(|i| !second.contains(i)),
        "{first:?} {second:?}"
    );

    // A read-only COMMIT costs nothing: no apply row.
    let before: i64 = one(&c, "SELECT count(*) FROM infra.apply").await;
    c.batch_execute("BEGIN; SELECT count(*) FROM aws.vpc; COMMIT")
        .await
        .unwrap();
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM infra.apply").await,
        before
    );
}

#[tokio::test]
async fn the_source_a_client_declares_is_recorded_and_a_bad_one_applies_nothing() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let default: String = one(&c, "SHOW infra.apply_source").await;
    assert_eq!(default, "", "the default answers before any SET");

    c.batch_execute("SET infra.apply_source = 'migration 0001_x.sql'")
        .await
        .unwrap();
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('m', '10.71.0.0/16')")
        .await
        .unwrap();
    let id = last_apply(&c).await;
    let source: String = one(
        &c,
        &format!("SELECT source FROM infra.apply WHERE apply_id = '{id}'"),
    )
    .await;
    assert_eq!(source, "migration 0001_x.sql");

    // The transaction-local form the CLI uses.
    c.batch_execute(
        "RESET infra.apply_source;
         BEGIN;
         SELECT set_config('infra.apply_source', 'revert apply-00000000000000ab', true);
         UPDATE aws.vpc SET tags = '{\"k\": \"v\"}' WHERE name = 'm';
         COMMIT;",
    )
    .await
    .unwrap();
    let id = last_apply(&c).await;
    let row = c
        .query_one(
            "SELECT source, updates FROM infra.apply WHERE apply_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "revert apply-00000000000000ab");
    assert_eq!(row.get::<_, i32>(1), 1);

    // A bad value is refused at SET ...
    let e = c
        .batch_execute("SET infra.apply_source = 'bogus'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{e:?}");
    // ... and, smuggled in with set_config(), at COMMIT before any AWS call.
    let vpcs = moto.vpcs().await;
    let applies: i64 = one(&c, "SELECT count(*) FROM infra.apply").await;
    c.batch_execute(
        "BEGIN;
         SELECT set_config('infra.apply_source', 'sync-revert', true);
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('bad', '10.72.0.0/16');",
    )
    .await
    .unwrap();
    let e = c.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{e:?}");
    let message = e.as_db_error().unwrap().message().to_owned();
    assert!(
        message.contains("infra.apply_source") && message.contains("\"sync-revert\""),
        "{message}"
    );
    assert_eq!(moto.vpcs().await, vpcs, "no VPC was created in AWS");
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM aws.vpc WHERE name = 'bad'").await,
        0
    );
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM infra.apply").await,
        applies
    );
}

#[tokio::test]
async fn changes_to_policies_are_journaled_in_their_own_transaction() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "INSERT INTO infra.policy (name, severity, message, query) VALUES \
         ('p1', 'warn', 'first', 'SELECT vpc_id AS resource_id FROM aws.vpc WHERE false')",
    )
    .await
    .unwrap();
    let first = last_apply(&c).await;
    let row = c
        .query_one(
            "SELECT status, source, username, actions, creates, xid IS NOT NULL FROM infra.apply WHERE apply_id = $1",
            &[&first],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "succeeded");
    assert_eq!(row.get::<_, String>(1), "commit");
    assert_eq!(row.get::<_, String>(2), USER);
    assert_eq!((row.get::<_, i32>(3), row.get::<_, i32>(4)), (1, 1));
    assert!(row.get::<_, bool>(5));
    let created = c
        .query_one(
            "SELECT action, table_name, resource_id, status, before IS NULL, after->>'message' \
             FROM infra.apply_action WHERE apply_id = $1",
            &[&first],
        )
        .await
        .unwrap();
    assert_eq!(created.get::<_, String>(0), "create");
    assert_eq!(created.get::<_, String>(1), "infra.policy");
    assert_eq!(created.get::<_, String>(2), "p1");
    assert_eq!(created.get::<_, String>(3), "done");
    assert!(created.get::<_, bool>(4));
    assert_eq!(created.get::<_, String>(5), "first");

    // Two policies changed in one transaction: one apply, two actions. A
    // forged apply id in the setting is not written to.
    c.batch_execute(&format!(
        "BEGIN;
         SELECT set_config('infrasql.policy_apply', '{first}', true);
         SET LOCAL infra.apply_source = 'migration 0002_policies.sql';
         UPDATE infra.policy SET message = 'second' WHERE name = 'p1';
         INSERT INTO infra.policy (name, severity, message, query) VALUES \
           ('p2', 'warn', 'other', 'SELECT vpc_id AS resource_id FROM aws.vpc WHERE false');
         COMMIT;"
    ))
    .await
    .unwrap();
    let second = last_apply(&c).await;
    assert_ne!(second, first);
    let row = c
        .query_one(
            "SELECT source, actions, creates, updates, deletes FROM infra.apply WHERE apply_id = $1",
            &[&second],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "migration 0002_policies.sql");
    let counts: Vec<i32> = (1..5).map(|i| row.get(i)).collect();
    assert_eq!(counts, [2, 1, 1, 0], "actions, creates, updates, deletes");
    let updated = c
        .query_one(
            "SELECT before->>'message', after->>'message' FROM infra.apply_action \
             WHERE apply_id = $1 AND resource_id = 'p1'",
            &[&second],
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.get::<_, String>(0), updated.get::<_, String>(1)),
        ("first".to_owned(), "second".to_owned())
    );
    assert_eq!(
        one::<i32>(
            &c,
            &format!("SELECT actions FROM infra.apply WHERE apply_id = '{first}'")
        )
        .await,
        1
    );

    // Rolled back: nothing recorded.
    let applies: i64 = one(&c, "SELECT count(*) FROM infra.apply").await;
    c.batch_execute("BEGIN; DELETE FROM infra.policy WHERE name = 'p1'; ROLLBACK")
        .await
        .unwrap();
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM infra.apply").await,
        applies
    );
    // A delete keeps the policy as it was.
    c.batch_execute("DELETE FROM infra.policy WHERE name = 'p2'")
        .await
        .unwrap();
    let deleted = c
        .query_one(
            "SELECT action, before->>'query', after IS NULL FROM infra.apply_action WHERE apply_id = $1",
            &[&last_apply(&c).await],
        )
        .await
        .unwrap();
    assert_eq!(deleted.get::<_, String>(0), "delete");
    assert!(deleted.get::<_, String>(1).contains("aws.vpc"));
    assert!(deleted.get::<_, bool>(2));
}

#[tokio::test]
async fn retention_deletes_old_settled_history_and_keeps_the_unsettled() {
    let moto = Moto::start();
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let aws = [
        "--aws-endpoint-url",
        moto.url.as_str(),
        "--sync-interval",
        "0",
    ];
    let mut first = TestServer::start_in(&data, &aws).unwrap();
    let engine = first.connect_engine().await;
    // Three days old: one settled, one still being undone (recovery's next
    // try far away, so it stays unsettled); one settled an hour ago.
    engine
        .batch_execute(
            "INSERT INTO infra.apply (apply_id, status, username, started_at, finished_at, next_attempt_at) VALUES
               ('apply-00000000000000a1', 'succeeded', 'old', now() - interval '3 days', now() - interval '3 days', NULL),
               ('apply-00000000000000a2', 'attention', 'old', now() - interval '3 days', now() - interval '3 days', now() + interval '1 year'),
               ('apply-00000000000000a3', 'failed', 'recent', now() - interval '1 hour', now() - interval '1 hour', NULL);
             INSERT INTO infra.apply_action (apply_id, step, action, table_name, resource_id, region, status)
               VALUES ('apply-00000000000000a1', 1, 'create', 'aws.vpc', 'vpc-0old', 'us-east-1', 'done');",
        )
        .await
        .unwrap();
    drop(engine);
    first.stop();

    // An invalid retention refuses to start: it must not delete sooner.
    let e = match TestServer::start_in(
        &data,
        &[&aws[..], &["--history-retention", "soon"]].concat(),
    ) {
        Ok(_) => panic!("started with --history-retention soon"),
        Err(e) => e,
    };
    assert!(e.contains("--history-retention"), "{e}");

    let s =
        TestServer::start_in(&data, &[&aws[..], &["--history-retention", "1d"]].concat()).unwrap();
    let engine = s.connect_engine().await;
    let kept = || async {
        engine
            .query(
                "SELECT apply_id FROM infra.apply WHERE apply_id LIKE 'apply-00000000000000a_' ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while kept().await.contains(&"apply-00000000000000a1".to_owned()) {
        assert!(
            Instant::now() < deadline,
            "the old settled apply is still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        kept().await,
        ["apply-00000000000000a2", "apply-00000000000000a3"]
    );
    let actions: i64 = one(
        &engine,
        "SELECT count(*) FROM infra.apply_action WHERE apply_id = 'apply-00000000000000a1'",
    )
    .await;
    assert_eq!(actions, 0, "its actions went with it");
}
