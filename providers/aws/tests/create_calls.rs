//! The AWS calls each EC2 create makes (issue #15: moto, and AWS's rate
//! limits, make an apply's time the calls it sends), counted by the fault
//! proxy between the provider and moto. Each create must make only the
//! calls it needs: the create itself, the calls that finish it (a revoke, an
//! attach), and a describe only where the create's answer lacks a column
//! (a route, a key pair's type and creation time). An instance's readiness
//! is the engine's `ready` and is not counted here.

mod common;

use std::sync::Arc;

use common::{ctx, props, Moto};
use infrasql_aws::ec2::{
    elastic_ip::ElasticIp, instance::Instance, internet_gateway::InternetGateway,
    key_pair::KeyPair, route::Route, route_table::RouteTable, security_group::SecurityGroup,
    security_group_rule::SecurityGroupRule, subnet::Subnet, vpc::Vpc,
};
use infrasql_aws::{AwsSettings, Clients};
use infrasql_fault_proxy::FaultProxy;
use infrasql_provider::{Props, PropsExt, Resource};
use serde_json::json;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHyMGjLnwPpztjEoSDYQqZSKpD+CCkv+dbynor+h0z1k";

async fn clients_at(url: &str) -> Arc<Clients> {
    Arc::new(
        Clients::new(&AwsSettings {
            endpoint_url: Some(url.to_owned()),
            static_credentials: Some(("testing".into(), "testing".into())),
            region: Some("us-east-1".into()),
            max_concurrency: None,
            timeouts: Default::default(),
            limiter: Default::default(),
        })
        .await,
    )
}

/// Create one row through the proxy: (the row, the actions it sent).
async fn create(
    proxy: &FaultProxy,
    r: &dyn Resource,
    row: serde_json::Value,
) -> (Props, Vec<String>) {
    proxy.reset_log();
    let made = r.create(&ctx(), &props(row)).await.unwrap();
    let calls = proxy.log().into_iter().map(|c| c.action).collect();
    (made, calls)
}

#[tokio::test]
async fn each_ec2_create_makes_only_the_calls_it_needs() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let c = clients_at(&proxy.url).await;
    let check = |table: &str, calls: Vec<String>, want: &[&str]| {
        println!("{table}: {} call(s): {}", calls.len(), calls.join(", "));
        assert_eq!(calls, want, "{table}");
    };

    let (vpc, calls) = create(
        &proxy,
        &Vpc::new(c.clone()),
        json!({"region": "us-east-1", "cidr_block": "10.40.0.0/16", "name": "v",
               "tags": {"k": "v"}}),
    )
    .await;
    check("vpc", calls, &["CreateVpc"]);
    let vpc = vpc.str("vpc_id").unwrap().to_owned();

    let (subnet, calls) = create(
        &proxy,
        &Subnet::new(c.clone()),
        json!({"region": "us-east-1", "vpc_id": vpc, "cidr_block": "10.40.1.0/24",
               "map_public_ip_on_launch": true, "name": "s", "tags": {}}),
    )
    .await;
    check(
        "subnet (public IPs on launch)",
        calls,
        &["CreateSubnet", "ModifySubnetAttribute"],
    );
    assert_eq!(subnet.get("map_public_ip_on_launch"), Some(&json!(true)));
    let subnet = subnet.str("subnet_id").unwrap().to_owned();

    let (igw, calls) = create(
        &proxy,
        &InternetGateway::new(c.clone()),
        json!({"region": "us-east-1", "vpc_id": vpc, "name": "g", "tags": {}}),
    )
    .await;
    check(
        "internet_gateway (attached)",
        calls,
        &["CreateInternetGateway", "AttachInternetGateway"],
    );
    assert_eq!(igw.str("vpc_id"), Some(vpc.as_str()));
    assert_eq!(igw.str("attachment_state"), Some("available"));
    assert_eq!(igw.str("owner_id"), Some("123456789012"));
    let igw = igw.str("internet_gateway_id").unwrap().to_owned();

    let (rtb, calls) = create(
        &proxy,
        &RouteTable::new(c.clone()),
        json!({"region": "us-east-1", "vpc_id": vpc, "name": "rt", "tags": {}}),
    )
    .await;
    check("route_table", calls, &["CreateRouteTable"]);
    let rtb = rtb.str("route_table_id").unwrap().to_owned();

    let (_, calls) = create(
        &proxy,
        &Route::new(c.clone()),
        json!({"region": "us-east-1", "route_table_id": rtb,
               "destination_cidr_block": "0.0.0.0/0", "gateway_id": igw}),
    )
    .await;
    // CreateRoute answers only true: the route's state and origin are read.
    check("route", calls, &["CreateRoute", "DescribeRouteTables"]);

    let (eip, calls) = create(
        &proxy,
        &ElasticIp::new(c.clone()),
        json!({"region": "us-east-1", "name": "e", "domain": "vpc", "tags": {"k": "v"}}),
    )
    .await;
    check("elastic_ip", calls, &["AllocateAddress"]);
    assert!(eip
        .str("public_ip")
        .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()));
    assert_eq!(eip.get("tags"), Some(&json!({"k": "v"})));

    let (key, calls) = create(
        &proxy,
        &KeyPair::new(c.clone()),
        json!({"region": "us-east-1", "key_name": "k", "public_key_material": ED25519,
               "tags": {}}),
    )
    .await;
    // ImportKeyPair's answer has no key type or creation time.
    check("key_pair", calls, &["ImportKeyPair", "DescribeKeyPairs"]);
    assert!(key.str("create_time").is_some());

    let (sg, calls) = create(
        &proxy,
        &SecurityGroup::new(c.clone()),
        json!({"region": "us-east-1", "group_name": "web", "description": "d",
               "vpc_id": vpc, "name": "web", "tags": {"team": "a"}}),
    )
    .await;
    check(
        "security_group",
        calls,
        &["CreateSecurityGroup", "RevokeSecurityGroupEgress"],
    );
    assert_eq!(sg.str("owner_id"), Some("123456789012"));
    assert_eq!(sg.get("tags"), Some(&json!({"team": "a"})));
    let sg = sg.str("group_id").unwrap().to_owned();

    let (_, calls) = create(
        &proxy,
        &SecurityGroupRule::new(c.clone()),
        json!({"region": "us-east-1", "group_id": sg, "is_egress": false,
               "ip_protocol": "tcp", "from_port": 22, "to_port": 22,
               "cidr_ipv4": "10.0.0.0/8", "tags": {}}),
    )
    .await;
    check(
        "security_group_rule",
        calls,
        &["AuthorizeSecurityGroupIngress"],
    );

    let (_, calls) = create(
        &proxy,
        &Instance::new(c.clone()),
        json!({"region": "us-east-1", "image_id": "ami-760aaa0f", "instance_type": "t3.micro",
               "subnet_id": subnet, "name": "i", "tags": {}}),
    )
    .await;
    check("instance", calls, &["RunInstances"]);
}
