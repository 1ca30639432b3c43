//! Nothing committed is ever lost, and a refused COMMIT never takes effect.
//!
//! A COMMIT can fail after its apply: a serialization failure cannot be
//! foreseen. These tests make one happen for real (two SERIALIZABLE
//! transactions in a write skew, the second committing while the first's
//! AWS call is held by the fault proxy), race it against a commit that
//! succeeds on the same resource, and check both halves of the invariant:
//! the later commit's value is what the row and AWS end with, and the
//! refused value never reaches the rows, even with the sync loop running.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::time::{Duration, Instant};

use common::{one, sqlstate, Moto, TestServer};
use infrasql_fault_proxy::{Effect, FaultProxy};

/// Wait until `sql` (one boolean) is true; panics after 120 s (recovery retries a busy row).
async fn until(c: &tokio_postgres::Client, sql: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if one::<bool>(c, sql).await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {sql}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `round` tag of the VPC in AWS, read from moto directly.
async fn aws_round(moto: &Moto, vpc_id: &str) -> Option<String> {
    let out = moto
        .ec2()
        .await
        .describe_vpcs()
        .vpc_ids(vpc_id)
        .send()
        .await
        .unwrap();
    out.vpcs()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("round"))
        .and_then(|t| t.value().map(str::to_owned))
}

/// Open a SERIALIZABLE transaction that reads k=1, writes k=2 and runs
/// `change`; a second one that reads k=2 and writes k=1 then commits while
/// the first one's apply waits on AWS. Returns the first one's COMMIT error.
async fn commit_losing_a_write_skew(
    srv: &TestServer,
    watcher: &tokio_postgres::Client,
    change: &str,
) -> tokio_postgres::Error {
    // The sync loop rewrites the rows it confirms each round, so the
    // change may meet a serialization failure itself; a SERIALIZABLE
    // client retries that, and so does this one.
    let mut tries = 0;
    let t1 = loop {
        let t1 = srv.connect().await;
        let r = t1
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT v FROM public.skew WHERE k = 1; \
                 {change}; UPDATE public.skew SET v = v + 1 WHERE k = 2"
            ))
            .await;
        match r {
            Ok(()) => break t1,
            Err(e) if sqlstate(&e).as_deref() == Some("40001") && tries < 5 => tries += 1,
            Err(e) => panic!("{e:?}"),
        }
    };
    let commit = tokio::spawn(async move { t1.batch_execute("COMMIT").await });
    // The apply is under way (its AWS call is held by the proxy).
    until(
        watcher,
        "SELECT EXISTS (SELECT 1 FROM infra.apply WHERE status = 'running')",
    )
    .await;
    let t2 = srv.connect().await;
    t2.batch_execute(
        "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT v FROM public.skew WHERE k = 2; \
         UPDATE public.skew SET v = v + 1 WHERE k = 1; COMMIT",
    )
    .await
    .unwrap();
    commit.await.unwrap().unwrap_err()
}

async fn newest_apply(c: &tokio_postgres::Client) -> String {
    one(
        c,
        "SELECT apply_id FROM infra.apply ORDER BY started_at DESC LIMIT 1",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_racing_a_successful_one_never_undoes_it() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    // The sync loop runs often: it must not adopt the refused values.
    let srv = TestServer::start_at(&proxy.url, &["--sync-interval", "1"]);
    let c = srv.connect().await;
    c.batch_execute(
        "CREATE TABLE public.skew (k int PRIMARY KEY, v int NOT NULL); \
         INSERT INTO public.skew VALUES (1, 0), (2, 0)",
    )
    .await
    .unwrap();
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('race', '10.0.0.0/16')")
        .await
        .unwrap();
    let vpc_id: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'race'").await;

    for round in 0..4 {
        let refused = format!("refused-{round}");
        let later = format!("later-{round}");
        // Hold the tag call of the failing commit long enough for the other
        // transaction to commit first.
        proxy.delay("CreateTags", Duration::from_millis(1500));
        let err = commit_losing_a_write_skew(
            &srv,
            &c,
            &format!(
                "UPDATE aws.vpc SET tags = '{{\"round\": \"{refused}\"}}' WHERE name = 'race'"
            ),
        )
        .await;
        proxy.clear();
        assert_eq!(sqlstate(&err).as_deref(), Some("40001"), "{err:?}");
        let failed_apply = newest_apply(&c).await;
        // AWS took the refused value (the journal says so: recovery may
        // already have put it back by the time AWS could be asked).
        let row = c
            .query_one(
                "SELECT status, after -> 'tags' ->> 'round' FROM infra.apply_action \
                 WHERE apply_id = $1 AND action = 'update'",
                &[&failed_apply],
            )
            .await
            .unwrap();
        let (status, taken): (String, Option<String>) = (row.get(0), row.get(1));
        assert_eq!(taken.as_deref(), Some(refused.as_str()), "round {round}");
        // Done, or already undone by recovery.
        assert!(
            ["done", "undone"].contains(&status.as_str()),
            "round {round}: {status}"
        );

        // At once, another change to the same resource commits.
        c.batch_execute(&format!(
            "UPDATE aws.vpc SET tags = '{{\"round\": \"{later}\"}}' WHERE name = 'race'"
        ))
        .await
        .unwrap();

        until(
            &c,
            &format!(
                "SELECT status NOT IN ('running', 'applied', 'undoing') FROM infra.apply WHERE apply_id = '{failed_apply}'"
            ),
        )
        .await;
        // A later commit's values are never undone...
        assert_eq!(
            aws_round(&moto, &vpc_id).await.as_deref(),
            Some(later.as_str()),
            "round {round}"
        );
        let row: String = one(&c, "SELECT tags->>'round' FROM aws.vpc WHERE name = 'race'").await;
        assert_eq!(row, later, "round {round}");
        // ...and the refused value never became the rows.
        let adopted: i64 = one(
            &c,
            &format!(
                "SELECT count(*) FROM infra.drift WHERE resolution = 'adopted' AND actual_value::text LIKE '%{refused}%'"
            ),
        )
        .await;
        assert_eq!(adopted, 0, "round {round}: sync adopted the refused value");
        let status: String = one(
            &c,
            &format!("SELECT status FROM infra.apply WHERE apply_id = '{failed_apply}'"),
        )
        .await;
        // PostgreSQL detects the write skew either at the write-back (the
        // COMMIT is refused: `failed`) or at the backend's COMMIT itself
        // (the COMMIT was lost after the apply: `recovered`); both settle.
        assert!(
            ["failed", "recovered"].contains(&status.as_str()),
            "round {round}: {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_done_before_the_commit_failed_removes_the_row_and_is_never_recreated() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let srv = TestServer::start_at(&proxy.url, &[]);
    let c = srv.connect().await;
    c.batch_execute(
        "CREATE TABLE public.skew (k int PRIMARY KEY, v int NOT NULL); \
         INSERT INTO public.skew VALUES (1, 0), (2, 0); \
         BEGIN; \
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('keep', '10.0.0.0/16'); \
         INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'gone', vpc_id, '10.0.1.0/24' FROM aws.vpc WHERE name = 'keep'; \
         COMMIT",
    )
    .await
    .unwrap();
    let subnet_id: String = one(&c, "SELECT subnet_id FROM aws.subnet WHERE name = 'gone'").await;

    proxy.reset_log();
    // The delete reaches AWS at once; only its answer is held.
    proxy.arm(
        infrasql_fault_proxy::Fault::on("DeleteSubnet")
            .with(Effect::Delay(Duration::from_millis(1500))),
    );
    let err =
        commit_losing_a_write_skew(&srv, &c, "DELETE FROM aws.subnet WHERE name = 'gone'").await;
    proxy.clear();
    assert_eq!(sqlstate(&err).as_deref(), Some("40001"), "{err:?}");
    let apply_id = newest_apply(&c).await;
    until(
        &c,
        &format!(
            "SELECT status NOT IN ('running', 'applied', 'undoing') FROM infra.apply WHERE apply_id = '{apply_id}'"
        ),
    )
    .await;

    // The subnet is gone from AWS for good, and so is its row; the loss is
    // recorded with the apply's id.
    let subnets = moto
        .ec2()
        .await
        .describe_subnets()
        .filters(
            infrasql_aws::aws_sdk_ec2::types::Filter::builder()
                .name("subnet-id")
                .values(&subnet_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(subnets.subnets().is_empty(), "never re-created");
    assert_eq!(
        proxy.calls("CreateSubnet"),
        0,
        "no create in the user's name"
    );
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.subnet").await, 0);
    let recorded: i64 = one(
        &c,
        &format!(
            "SELECT count(*) FROM infra.drift WHERE resource_id = '{subnet_id}' AND kind = 'disappeared' \
             AND actual_value->>'deleted_by_apply' = '{apply_id}'"
        ),
    )
    .await;
    assert_eq!(recorded, 1);
    let action: String = one(
        &c,
        &format!("SELECT status FROM infra.apply_action WHERE apply_id = '{apply_id}' AND action = 'delete'"),
    )
    .await;
    assert_eq!(action, "kept");
    // The VPC, which the failed transaction did not touch, is still there.
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM aws.vpc WHERE name = 'keep'").await,
        1
    );
}

/// As in PostgreSQL, a COMMIT the server received is carried out even if
/// the client goes away before the answer: the apply under way finishes and
/// commits; it is not undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_during_its_commit_still_gets_it_committed() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let srv = TestServer::start_at(&proxy.url, &["--auth", "trust"]);
    let c = srv.connect().await;
    proxy.delay("CreateVpc", Duration::from_millis(1500));
    let mut gone = raw::Raw::connect(srv.port, common::USER).await;
    gone.query("INSERT INTO aws.vpc (name, cidr_block) VALUES ('orphan', '10.0.0.0/16')")
        .send_only()
        .await;
    until(
        &c,
        "SELECT EXISTS (SELECT 1 FROM infra.apply WHERE status = 'running')",
    )
    .await;
    drop(gone);
    until(
        &c,
        "SELECT EXISTS (SELECT 1 FROM infra.apply WHERE status = 'succeeded')",
    )
    .await;
    let id: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'orphan'").await;
    assert!(id.starts_with("vpc-"), "{id}");
    let out = moto
        .ec2()
        .await
        .describe_vpcs()
        .vpc_ids(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(out.vpcs().len(), 1);
}

/// While recovery has not settled an apply, the sync loop leaves its
/// resources alone; a resource AWS made inside one (a subnet of a VPC the
/// apply created) waits for a later round instead of failing its table's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_leaves_an_unsettled_applys_resources_and_their_children_alone() {
    let moto = Moto::start();
    let srv = TestServer::start_on(&moto, &[]);
    let c = srv.connect().await;
    let engine = srv.connect_engine().await;
    // An apply recovery will not look at for an hour.
    engine
        .batch_execute(
            "INSERT INTO infra.apply (apply_id, status, username, next_attempt_at) \
             VALUES ('apply-unsettled', 'undoing', 'tester', now() + interval '1 hour')",
        )
        .await
        .unwrap();
    let ec2 = moto.ec2().await;
    let tag = infrasql_aws::aws_sdk_ec2::types::Tag::builder()
        .key("infrasql:apply-id")
        .value("apply-unsettled")
        .build();
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .tag_specifications(
            infrasql_aws::aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(infrasql_aws::aws_sdk_ec2::types::ResourceType::Vpc)
                .tags(tag)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    ec2.create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.9.1.0/24")
        .send()
        .await
        .unwrap();

    c.batch_execute("SELECT infra.sync()").await.unwrap();
    let errors: i64 = one(
        &c,
        "SELECT count(*) FROM infra.sync_status WHERE last_error IS NOT NULL",
    )
    .await;
    let detail: Option<String> = one(
        &c,
        "SELECT string_agg(table_name || ': ' || last_error, '; ') FROM infra.sync_status",
    )
    .await;
    assert_eq!(errors, 0, "{detail:?}");
    let vpc_rows: i64 = one(
        &c,
        &format!("SELECT count(*) FROM aws.vpc WHERE vpc_id = '{vpc_id}'"),
    )
    .await;
    assert_eq!(vpc_rows, 0, "the unsettled apply's VPC is recovery's");
    let subnet_rows: i64 = one(
        &c,
        &format!("SELECT count(*) FROM aws.subnet WHERE vpc_id = '{vpc_id}'"),
    )
    .await;
    assert_eq!(subnet_rows, 0);
    // Settled (by hand here), the next round takes them in.
    engine
        .batch_execute(
            "UPDATE infra.apply SET status = 'failed' WHERE apply_id = 'apply-unsettled'",
        )
        .await
        .unwrap();
    c.batch_execute("SELECT infra.sync()").await.unwrap();
    let subnet_rows: i64 = one(
        &c,
        &format!("SELECT count(*) FROM aws.subnet WHERE vpc_id = '{vpc_id}'"),
    )
    .await;
    assert_eq!(subnet_rows, 1);
}
