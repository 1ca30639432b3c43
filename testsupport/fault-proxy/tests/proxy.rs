//! The proxy against a real moto server and the real SDK: injected errors
//! parse as AWS's own, resets land before or after moto did the work,
//! delays are felt, calls are counted.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};

/// moto's server on a free loopback port (as tests/common/mod.rs).
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server on PATH (pip install 'moto[server]')");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SDK as infrasql configures it: standard retry, 3 attempts.
async fn sdk(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::from_keys(
            "testing", "testing", None,
        ))
        .load()
        .await
}

async fn ec2(endpoint: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&sdk(endpoint).await)
}

async fn non_default_vpcs(ec2: &aws_sdk_ec2::Client) -> usize {
    let out = ec2.describe_vpcs().send().await.unwrap();
    out.vpcs()
        .iter()
        .filter(|v| v.is_default() != Some(true))
        .count()
}

#[tokio::test]
async fn ec2_throttling_parses_as_request_limit_exceeded_and_outlasts_the_sdk_retries() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let ec2 = ec2(&proxy.url).await;
    ec2.describe_vpcs().send().await.unwrap();
    assert_eq!(proxy.calls("DescribeVpcs"), 1, "setup calls pass");

    // Armed after setup: six in a row is two failed operations of 3 attempts.
    proxy.arm(Fault::on("DescribeVpcs").times(6).with(Effect::Throttle));
    for round in 1..=2 {
        let err = ec2.describe_vpcs().send().await.unwrap_err();
        assert_eq!(
            err.code(),
            Some("RequestLimitExceeded"),
            "{}",
            DisplayErrorContext(&err)
        );
        assert_eq!(err.message(), Some("Request limit exceeded."));
        assert_eq!(
            proxy.calls("DescribeVpcs"),
            1 + 3 * round,
            "3 attempts each"
        );
    }
    assert_eq!(
        proxy.forwarded("DescribeVpcs"),
        1,
        "no throttled call reached moto"
    );
    ec2.describe_vpcs()
        .send()
        .await
        .expect("the rule is used up");
    assert_eq!(proxy.calls("DescribeVpcs"), 8);
    let log = proxy.log();
    assert_eq!(log.last().unwrap().status, Some(200));
    assert_eq!(log[1].status, Some(503));
    assert_eq!(log[1].service, "ec2");
}

#[tokio::test]
async fn server_errors_in_ec2_and_query_formats_and_custom_codes() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let ec2 = ec2(&proxy.url).await;

    proxy.arm(
        Fault::on("DescribeSubnets")
            .times(3)
            .with(Effect::Status500),
    );
    let err = ec2.describe_subnets().send().await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("InternalError"),
        "{}",
        DisplayErrorContext(&err)
    );
    proxy.arm(
        Fault::on("DescribeSubnets")
            .times(3)
            .with(Effect::Status503),
    );
    let err = ec2.describe_subnets().send().await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("Unavailable"),
        "{}",
        DisplayErrorContext(&err)
    );
    assert_eq!(proxy.calls("DescribeSubnets"), 6);

    // A client error is not retried.
    proxy.arm(Fault::on("DescribeKeyPairs").with(Effect::Error {
        status: 403,
        code: "UnauthorizedOperation".into(),
        message: "You are not authorized to perform this operation.".into(),
    }));
    let err = ec2.describe_key_pairs().send().await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("UnauthorizedOperation"),
        "{}",
        DisplayErrorContext(&err)
    );
    assert_eq!(proxy.calls("DescribeKeyPairs"), 1);

    // STS speaks the query protocol as RDS and IAM do: <ErrorResponse>.
    let sts = aws_sdk_sts::Client::new(&sdk(&proxy.url).await);
    proxy.arm(
        Fault::on("GetCallerIdentity")
            .times(2)
            .with(Effect::Throttle),
    );
    let me = sts
        .get_caller_identity()
        .send()
        .await
        .expect("third attempt passes");
    assert_eq!(me.account(), Some("123456789012"));
    assert_eq!(proxy.calls("GetCallerIdentity"), 3);
    proxy.arm(
        Fault::on("GetCallerIdentity")
            .times(3)
            .with(Effect::Status503),
    );
    let err = sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("ServiceUnavailable"),
        "{}",
        DisplayErrorContext(&err)
    );
    proxy.clear();
    proxy.arm(Fault::on("GetCallerIdentity").with(Effect::Throttle));
    proxy.arm(Fault::on("GetCallerIdentity").with(Effect::Status500));
    let err = sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(err.code(), Some("Throttling"), "the first rule armed wins");
}

#[tokio::test]
async fn a_reset_after_leaves_the_vpc_created_while_the_sdk_sees_an_error() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let via_proxy = ec2(&proxy.url).await;
    let direct = ec2(&moto.url).await;

    proxy.arm(Fault::on("CreateVpc").times(3).with(Effect::ResetAfter));
    let err = via_proxy
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.code().is_none(),
        "no answer, so no AWS code: {}",
        DisplayErrorContext(&err)
    );
    assert!(
        matches!(err, aws_sdk_ec2::error::SdkError::DispatchFailure(_)),
        "{}",
        DisplayErrorContext(&err)
    );
    let attempts = proxy.calls("CreateVpc");
    assert!(attempts >= 1);
    assert_eq!(proxy.forwarded("CreateVpc"), attempts);
    assert_eq!(
        non_default_vpcs(&direct).await,
        attempts,
        "every attempt was carried out by moto, though the SDK saw none succeed"
    );
    assert!(proxy.log().iter().all(|c| c.status.is_none()));

    proxy.clear();
    proxy.arm(Fault::on("CreateVpc").times(3).with(Effect::ResetBefore));
    via_proxy
        .create_vpc()
        .cidr_block("10.1.0.0/16")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        proxy.forwarded("CreateVpc"),
        attempts,
        "nothing more reached moto"
    );
    assert_eq!(non_default_vpcs(&direct).await, attempts);

    // The SDK recovers on a new connection once the faults are gone.
    via_proxy
        .create_vpc()
        .cidr_block("10.2.0.0/16")
        .send()
        .await
        .unwrap();
    assert_eq!(non_default_vpcs(&direct).await, attempts + 1);
}

#[tokio::test]
async fn delays_are_felt_and_the_log_keeps_the_sequence() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let ec2 = ec2(&proxy.url).await;
    ec2.describe_vpcs().send().await.unwrap(); // warm the connection
    proxy.reset_log();

    proxy.delay("DescribeVpcs", Duration::from_millis(800));
    let t = Instant::now();
    ec2.describe_vpcs().send().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    ec2.describe_subnets().send().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "other actions are not delayed"
    );

    // Call numbers count every action: the 2nd call from now fails once,
    // and the SDK's retry passes.
    proxy.clear();
    proxy.reset_log();
    proxy.arm(Fault::any().nth(2).with(Effect::Status503));
    ec2.describe_vpcs().send().await.unwrap();
    ec2.describe_subnets().send().await.unwrap();
    assert_eq!(proxy.calls("DescribeVpcs"), 1, "no AWS call happened");
    assert_eq!(proxy.calls("DeleteVpc"), 0);
    let seq: Vec<(usize, String, Option<u16>, bool)> = proxy
        .log()
        .into_iter()
        .map(|c| (c.n, c.action, c.status, c.forwarded))
        .collect();
    assert_eq!(
        seq,
        [
            (1, "DescribeVpcs".to_owned(), Some(200), true),
            (2, "DescribeSubnets".to_owned(), Some(503), false),
            (3, "DescribeSubnets".to_owned(), Some(200), true),
        ]
    );
}
