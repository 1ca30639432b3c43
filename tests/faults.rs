//! COMMIT when AWS misbehaves: the fault proxy (testsupport/fault-proxy)
//! sits between infrasql and moto and fails, or loses the answers of,
//! chosen calls. What AWS really holds is checked on moto directly, never
//! through the proxy.

mod common;

use std::time::{Duration, Instant};

use common::{one, sqlstate, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::Filter;
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};

/// A VPC and a subnet in it, in one transaction.
const VPC_AND_SUBNET: &str = "
BEGIN;
INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.0.0.0/16');
INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'a', vpc_id, '10.0.1.0/24' FROM aws.vpc WHERE name = 'main';
COMMIT;";

/// moto, the proxy in front of it, and infrasql using the proxy as AWS.
fn start() -> (Moto, FaultProxy, TestServer) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let server = TestServer::start_at(&proxy.url, &[]);
    (moto, proxy, server)
}

/// Non-default subnets in AWS.
async fn aws_subnets(moto: &Moto) -> Vec<String> {
    let out = moto.ec2().await.describe_subnets().send().await.unwrap();
    out.subnets()
        .iter()
        .filter(|s| s.default_for_az() != Some(true))
        .filter_map(|s| s.subnet_id().map(str::to_owned))
        .collect()
}

/// VPCs carrying infrasql's `infrasql:apply-id` tag for `apply_id`.
async fn vpcs_tagged(moto: &Moto, apply_id: &str) -> Vec<String> {
    let tag = Filter::builder()
        .name("tag:infrasql:apply-id")
        .values(apply_id)
        .build();
    let out = moto
        .ec2()
        .await
        .describe_vpcs()
        .filters(tag)
        .send()
        .await
        .unwrap();
    out.vpcs()
        .iter()
        .filter_map(|v| v.vpc_id().map(str::to_owned))
        .collect()
}

/// (apply_id, status, error) of the newest apply.
async fn latest_apply(c: &tokio_postgres::Client) -> (String, String, Option<String>) {
    let r = c
        .query_one(
            "SELECT apply_id, status, error FROM infra.apply ORDER BY started_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// Wait (up to 90 s) until recovery has settled the apply; its status and error.
async fn settled(c: &tokio_postgres::Client, apply_id: &str) -> (String, Option<String>) {
    settled_beyond(c, apply_id, &["undoing", "running", "applied"]).await
}

/// Wait (up to 90 s) until the apply's status is none of `transient`.
async fn settled_beyond(
    c: &tokio_postgres::Client,
    apply_id: &str,
    transient: &[&str],
) -> (String, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = c
            .query_one(
                "SELECT status, error FROM infra.apply WHERE apply_id = $1",
                &[&apply_id],
            )
            .await
            .unwrap();
        let (status, error): (String, Option<String>) = (r.get(0), r.get(1));
        if !transient.contains(&status.as_str()) || Instant::now() > deadline {
            return (status, error);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_create_that_outlasts_the_sdk_retries_fails_the_commit_and_is_undone() {
    let (moto, proxy, s) = start();
    let c = s.connect().await;
    proxy.arm(Fault::on("CreateSubnet").times(6).with(Effect::Status503));

    let err = c.batch_execute(VPC_AND_SUBNET).await.unwrap_err();
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(sqlstate(&err).as_deref(), Some("IX005"), "{}", db.message());
    assert!(db.message().contains("aws.subnet"), "{}", db.message());
    assert!(db.message().contains("Unavailable"), "{}", db.message());
    let detail = db.detail().unwrap_or_default();
    assert!(
        detail.contains("Undone:") && detail.contains("aws.vpc"),
        "{detail}"
    );

    assert_eq!(proxy.calls("CreateSubnet"), 3, "the SDK's 3 attempts");
    assert_eq!(proxy.forwarded("CreateSubnet"), 0);
    assert_eq!(proxy.forwarded("CreateVpc"), 1);
    assert!(proxy.forwarded("DeleteVpc") >= 1, "the VPC was undone");
    assert!(moto.vpcs().await.is_empty(), "no VPC left in AWS");
    assert!(aws_subnets(&moto).await.is_empty());
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.vpc").await, 0);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.subnet").await, 0);
    // CreateSubnet's answer may have been lost after AWS carried it out,
    // so recovery looks for the subnet by its tag before the apply is final.
    let apply_id = latest_apply(&c).await.0;
    assert_eq!(settled(&c, &apply_id).await.0, "failed");

    // The faults left armed do not stop later work once cleared.
    proxy.clear();
    c.batch_execute(VPC_AND_SUBNET).await.unwrap();
    assert_eq!(moto.vpcs().await.len(), 1);
}

/// Issue 8: an undo that fails is journaled and retried by recovery until
/// the cloud equals the rows again; until then the apply shows `undoing`.
#[tokio::test]
async fn an_undo_that_fails_is_retried_by_recovery_until_the_cloud_matches_the_rows() {
    let (moto, proxy, s) = start();
    let c = s.connect().await;
    proxy.arm(Fault::on("CreateSubnet").times(6).with(Effect::Status503));
    proxy.arm(Fault::on("DeleteVpc").times(6).with(Effect::Status503));

    let err = c.batch_execute(VPC_AND_SUBNET).await.unwrap_err();
    assert!(err.as_db_error().is_some(), "{err:?}");
    assert!(proxy.calls("DeleteVpc") >= 1, "the undo was tried");
    assert_eq!(proxy.forwarded("DeleteVpc"), 0, "and failed");

    let (apply_id, status, error) = latest_apply(&c).await;
    assert_eq!(status, "undoing", "error: {error:?}");
    let error = error.expect("the reason the undo is not finished");
    assert!(error.contains("Unavailable"), "{error}");
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.vpc").await, 0);
    let left = vpcs_tagged(&moto, &apply_id).await;
    assert_eq!(
        left.len(),
        1,
        "the VPC is still in AWS, tagged with its apply"
    );
    assert_eq!(moto.vpcs().await, left);

    // AWS answers again: recovery (every few seconds, with backoff) finishes
    // the undo, and the apply keeps the outcome its COMMIT reported.
    proxy.clear();
    let (status, error) = settled(&c, &apply_id).await;
    assert_eq!(status, "failed", "error: {error:?}");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("deleted aws.vpc")),
        "{error:?}"
    );
    assert!(proxy.forwarded("DeleteVpc") >= 1);
    assert!(vpcs_tagged(&moto, &apply_id).await.is_empty());
    assert!(
        moto.vpcs().await.is_empty(),
        "no VPC created by infrasql is left"
    );
    assert!(aws_subnets(&moto).await.is_empty());
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.vpc").await, 0);
}

/// A delete AWS carried out but whose answer was lost: the SDK retries, AWS
/// says the subnet is gone, and a delete of something gone is done.
#[tokio::test]
async fn a_delete_whose_answer_is_lost_still_commits() {
    let (moto, proxy, s) = start();
    let c = s.connect().await;
    c.batch_execute(VPC_AND_SUBNET).await.unwrap();
    assert_eq!(aws_subnets(&moto).await.len(), 1);

    proxy.arm(Fault::on("DeleteSubnet").times(1).with(Effect::ResetAfter));
    c.batch_execute("BEGIN; DELETE FROM aws.subnet; DELETE FROM aws.vpc; COMMIT;")
        .await
        .unwrap();

    let deletes: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|call| call.action == "DeleteSubnet")
        .collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert!(deletes.iter().all(|d| d.forwarded));
    assert_eq!(deletes[0].status, None, "the first answer was lost");
    assert_eq!(deletes[1].status, Some(400), "InvalidSubnetID.NotFound");
    assert!(aws_subnets(&moto).await.is_empty());
    assert!(moto.vpcs().await.is_empty());
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.subnet").await, 0);
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM aws.vpc").await, 0);
}

/// An undo AWS refuses for want of permission cannot succeed by retrying:
/// the apply shows `attention` with AWS's reason, and once a person has
/// fixed the cause, `infra.retry_undo()` finishes it at once.
#[tokio::test]
async fn an_undo_that_needs_a_person_is_shown_as_attention() {
    let (moto, proxy, s) = start();
    let c = s.connect().await;
    proxy.arm(Fault::on("CreateSubnet").times(6).with(Effect::Status503));
    proxy.arm(Fault::on("DeleteVpc").with(Effect::Error {
        status: 403,
        code: "UnauthorizedOperation".into(),
        message: "You are not authorized to perform this operation.".into(),
    }));

    let err = c.batch_execute(VPC_AND_SUBNET).await.unwrap_err();
    assert!(err.as_db_error().is_some(), "{err:?}");
    let apply_id = latest_apply(&c).await.0;
    let (status, error) = settled(&c, &apply_id).await;
    assert_eq!(status, "attention", "error: {error:?}");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("UnauthorizedOperation")),
        "{error:?}"
    );
    assert_eq!(vpcs_tagged(&moto, &apply_id).await.len(), 1);

    // The permission is granted: a retry now, not in five minutes.
    proxy.clear();
    let retried: Option<String> = one(&c, &format!("SELECT infra.retry_undo('{apply_id}')")).await;
    assert_eq!(retried.as_deref(), Some("attention"));
    let (status, error) = settled_beyond(&c, &apply_id, &["attention", "undoing"]).await;
    assert_eq!(status, "failed", "error: {error:?}");
    assert!(vpcs_tagged(&moto, &apply_id).await.is_empty());
    assert!(moto.vpcs().await.is_empty());
}

/// Issue 14: an answer later than the SDK's attempt timeout never hangs the
/// COMMIT. A create whose answer timed out was carried out by AWS: it is
/// found by its token tag and adopted, not made twice. A read that times
/// out on every attempt fails the COMMIT, naming the resource and the cause.
#[tokio::test]
async fn an_answer_past_the_attempt_timeout_is_retried_or_fails_in_time() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &["--aws-timeouts", "attempt=1s,operation=8s"]);
    let c = s.connect().await;

    proxy.arm(Fault::on("CreateVpc").with(Effect::Delay(Duration::from_secs(3))));
    let started = Instant::now();
    c.batch_execute(VPC_AND_SUBNET).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        proxy.forwarded("CreateVpc"),
        1,
        "sent once, found, not resent"
    );
    let apply_id = latest_apply(&c).await.0;
    let ours = vpcs_tagged(&moto, &apply_id).await;
    assert_eq!(ours.len(), 1, "one VPC, not two");
    let row: String = one(&c, "SELECT vpc_id FROM aws.vpc").await;
    assert_eq!(ours, [row]);
    proxy.clear();

    proxy.arm(Fault::on("DescribeSubnets").with(Effect::Delay(Duration::from_secs(3))));
    let started = Instant::now();
    let err = c
        .batch_execute("UPDATE aws.subnet SET tags = '{\"team\": \"a\"}'")
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert!(db.message().contains("aws.subnet"), "{}", db.message());
    assert!(db.message().contains("timed out"), "{}", db.message());
}

/// The creates that take no client token beyond the sweep's types: an
/// internet gateway, a route table and an Elastic IP whose answers are lost
/// after moto made them are found by their create-token tag and adopted,
/// never sent again into a second one.
#[tokio::test]
async fn lost_create_answers_of_gateways_route_tables_and_addresses_make_no_duplicates() {
    let (moto, proxy, s) = start();
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.0.0.0/16')")
        .await
        .unwrap();
    for action in [
        "CreateInternetGateway",
        "CreateRouteTable",
        "AllocateAddress",
    ] {
        proxy.arm(Fault::on(action).times(1).with(Effect::ResetAfter));
    }
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.internet_gateway (name, vpc_id) SELECT 'gw', vpc_id FROM aws.vpc WHERE name = 'main';
         INSERT INTO aws.route_table (name, vpc_id) SELECT 'rt', vpc_id FROM aws.vpc WHERE name = 'main';
         INSERT INTO aws.elastic_ip (name) VALUES ('ip');
         COMMIT;",
    )
    .await
    .unwrap();

    for action in [
        "CreateInternetGateway",
        "CreateRouteTable",
        "AllocateAddress",
    ] {
        let sent: Vec<_> = proxy
            .log()
            .into_iter()
            .filter(|call| call.action == action)
            .collect();
        assert_eq!(sent.len(), 1, "{action} was sent again: {sent:?}");
        assert_eq!(sent[0].status, None, "{action}'s answer was lost");
    }
    let ec2 = moto.ec2().await;
    let gateways = ec2.describe_internet_gateways().send().await.unwrap();
    assert_eq!(gateways.internet_gateways().len(), 1);
    let row_gw: String = one(&c, "SELECT internet_gateway_id FROM aws.internet_gateway").await;
    assert_eq!(
        gateways.internet_gateways()[0].internet_gateway_id(),
        Some(row_gw.as_str())
    );
    let vpc_id: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'main'").await;
    let tables = ec2
        .describe_route_tables()
        .filters(Filter::builder().name("vpc-id").values(&vpc_id).build())
        .send()
        .await
        .unwrap();
    // The VPC's main table and the one made here.
    assert_eq!(tables.route_tables().len(), 2, "{tables:?}");
    let row_rt: String = one(
        &c,
        "SELECT route_table_id FROM aws.route_table WHERE name = 'rt'",
    )
    .await;
    assert!(tables
        .route_tables()
        .iter()
        .any(|t| t.route_table_id() == Some(row_rt.as_str())));
    let addresses = ec2.describe_addresses().send().await.unwrap();
    assert_eq!(addresses.addresses().len(), 1, "{addresses:?}");
    let row_ip: String = one(&c, "SELECT allocation_id FROM aws.elastic_ip").await;
    assert_eq!(
        addresses.addresses()[0].allocation_id(),
        Some(row_ip.as_str())
    );
}
