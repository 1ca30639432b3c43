mod common;

use common::{aws_error_code, ctx, props, Moto};
use infrasql_aws::ec2::vpc::Vpc;
use infrasql_provider::{PropsExt, Resource};
use serde_json::json;

#[tokio::test]
async fn a_vpc_is_created_tagged_listed_retagged_and_deleted() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let vpc = Vpc::new(clients);
    let desired = props(
        json!({"region": "us-east-1", "name": "main", "cidr_block": "10.1.0.0/16",
                               "instance_tenancy": "default", "tags": {"env": "test"}}),
    );
    let made = vpc.create(&ctx(), &desired).await.unwrap();
    let id = made.str("vpc_id").unwrap().to_owned();
    assert!(id.starts_with("vpc-"));
    assert_eq!(made.str("state"), Some("available"));
    assert_eq!(made.get("tags"), Some(&json!({"env": "test"})));

    // Independently of the provider: the tags, including the apply id, are in AWS.
    let ec2 = moto.ec2().await;
    let out = ec2.describe_vpcs().vpc_ids(&id).send().await.unwrap();
    let tags = out.vpcs()[0].tags();
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("infrasql:apply-id") && t.value() == Some("test-apply")));
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("Name") && t.value() == Some("main")));

    let listed = vpc.list("us-east-1").await.unwrap().into_props();
    assert!(listed
        .iter()
        .any(|p| p.str("vpc_id") == Some(&id) && p.str("name") == Some("main")));
    assert!(
        listed.iter().any(|p| p.bool("is_default") == Some(true)),
        "moto's default VPC is listed"
    );

    let mut after = made.clone();
    after.insert("tags".into(), json!({"env": "prod", "team": "net"}));
    after.insert("name".into(), json!(null));
    let updated = vpc.update(&ctx(), &id, &made, &after).await.unwrap();
    assert_eq!(
        updated.get("tags"),
        Some(&json!({"env": "prod", "team": "net"}))
    );
    assert_eq!(updated.get("name"), Some(&json!(null)));

    vpc.delete(&ctx(), &id, &updated).await.unwrap();
    let gone = ec2.describe_vpcs().vpc_ids(&id).send().await;
    assert_eq!(aws_error_code(gone), "InvalidVpcID.NotFound");
    // Deleting again is not an error: the goal is reached.
    vpc.delete(&ctx(), &id, &updated).await.unwrap();
}
