mod common;

use common::{aws_error_code, ctx, props, Moto};
use infrasql_aws::ec2::internet_gateway::InternetGateway;
use infrasql_aws::ec2::vpc::Vpc;
use infrasql_provider::{ErrorClass, PropsExt, Resource};
use serde_json::json;

async fn new_vpc(vpc: &Vpc, cidr: &str) -> String {
    vpc.create(&ctx(), &props(json!({"cidr_block": cidr})))
        .await
        .unwrap()
        .str("vpc_id")
        .unwrap()
        .to_owned()
}

/// The VPCs a gateway is attached to, straight from the API.
async fn attached(ec2: &aws_sdk_ec2::Client, id: &str) -> Vec<String> {
    let out = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(id)
        .send()
        .await
        .unwrap();
    out.internet_gateways()[0]
        .attachments()
        .iter()
        .filter_map(|a| a.vpc_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_gateway_is_created_attached_moved_detached_and_deleted() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let vpc = Vpc::new(clients.clone());
    let igw = InternetGateway::new(clients);
    let first = new_vpc(&vpc, "10.1.0.0/16").await;
    let second = new_vpc(&vpc, "10.2.0.0/16").await;
    let ec2 = moto.ec2().await;

    let desired = props(json!({"region": "us-east-1", "name": "gw", "vpc_id": first,
                               "tags": {"env": "test"}}));
    let made = igw.create(&ctx(), &desired).await.unwrap();
    let id = made.str("internet_gateway_id").unwrap().to_owned();
    assert!(id.starts_with("igw-"), "{id}");
    assert_eq!(made.str("vpc_id"), Some(first.as_str()));
    assert_eq!(made.str("attachment_state"), Some("available"));
    assert_eq!(made.str("owner_id"), Some("123456789012"));
    assert_eq!(made.str("name"), Some("gw"));
    assert_eq!(made.get("tags"), Some(&json!({"env": "test"})));
    assert_eq!(attached(&ec2, &id).await, vec![first.clone()]);
    let out = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(&id)
        .send()
        .await
        .unwrap();
    let tags = out.internet_gateways()[0].tags();
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("infrasql:apply-id") && t.value() == Some("test-apply")));
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("Name") && t.value() == Some("gw")));

    let listed = igw.list("us-east-1").await.unwrap().into_props();
    let mine = listed
        .iter()
        .find(|p| p.str("internet_gateway_id") == Some(&id))
        .expect("listed");
    assert_eq!(mine, &made);

    // Moved to the other VPC in place: same gateway, new attachment.
    let mut moved = made.clone();
    moved.insert("vpc_id".into(), json!(second));
    moved.insert("tags".into(), json!({"env": "prod"}));
    let updated = igw.update(&ctx(), &id, &made, &moved).await.unwrap();
    assert_eq!(updated.str("internet_gateway_id"), Some(id.as_str()));
    assert_eq!(updated.str("vpc_id"), Some(second.as_str()));
    assert_eq!(updated.get("tags"), Some(&json!({"env": "prod"})));
    assert_eq!(attached(&ec2, &id).await, vec![second.clone()]);

    // Detached: vpc_id NULL.
    let mut detached = updated.clone();
    detached.insert("vpc_id".into(), json!(null));
    let updated2 = igw.update(&ctx(), &id, &updated, &detached).await.unwrap();
    assert_eq!(updated2.get("vpc_id"), Some(&json!(null)));
    assert_eq!(updated2.get("attachment_state"), Some(&json!(null)));
    assert!(attached(&ec2, &id).await.is_empty());

    // Attached again, then deleted while attached: delete detaches first.
    let again = igw.update(&ctx(), &id, &updated2, &updated).await.unwrap();
    assert_eq!(again.str("vpc_id"), Some(second.as_str()));
    igw.delete(&ctx(), &id, &again).await.unwrap();
    let gone = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(&id)
        .send()
        .await;
    assert_eq!(aws_error_code(gone), "InvalidInternetGatewayID.NotFound");
    // Deleting again is not an error: the goal is reached.
    igw.delete(&ctx(), &id, &again).await.unwrap();
    // The VPC is free to go.
    vpc.delete(&ctx(), &second, &props(json!({})))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_gateway_created_detached_stays_detached() {
    let moto = Moto::start();
    let igw = InternetGateway::new(moto.clients().await);
    let made = igw
        .create(&ctx(), &props(json!({"region": "us-east-1", "tags": {}})))
        .await
        .unwrap();
    assert_eq!(made.get("vpc_id"), Some(&json!(null)));
    assert_eq!(made.get("attachment_state"), Some(&json!(null)));
    assert_eq!(made.get("name"), Some(&json!(null)));
    let id = made.str("internet_gateway_id").unwrap();
    assert!(attached(&moto.ec2().await, id).await.is_empty());
}

#[tokio::test]
async fn attaching_to_a_missing_vpc_fails_and_leaves_no_gateway() {
    let moto = Moto::start();
    let igw = InternetGateway::new(moto.clients().await);
    let err = igw
        .create(
            &ctx(),
            &props(json!({"name": "orphan", "vpc_id": "vpc-0123456789abcdef0"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");
    assert_eq!(err.code, "InvalidVpcID.NotFound");
    let ec2 = moto.ec2().await;
    let out = ec2.describe_internet_gateways().send().await.unwrap();
    assert!(
        !out.internet_gateways()
            .iter()
            .flat_map(|g| g.tags())
            .any(|t| t.value() == Some("orphan")),
        "the half-made gateway was deleted"
    );
}

#[tokio::test]
async fn an_attached_gateway_cannot_be_deleted_directly() {
    // What delete guards against: AWS refuses to delete an attached gateway.
    let moto = Moto::start();
    let clients = moto.clients().await;
    let vpc_id = new_vpc(&Vpc::new(clients.clone()), "10.4.0.0/16").await;
    let igw = InternetGateway::new(clients);
    let made = igw
        .create(&ctx(), &props(json!({"vpc_id": vpc_id})))
        .await
        .unwrap();
    let id = made.str("internet_gateway_id").unwrap();
    let ec2 = moto.ec2().await;
    let err = ec2
        .delete_internet_gateway()
        .internet_gateway_id(id)
        .send()
        .await
        .unwrap_err();
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    assert_eq!(err.code(), Some("DependencyViolation"));
    // The provider's delete detaches first, so it succeeds.
    igw.delete(&ctx(), id, &made).await.unwrap();
}
