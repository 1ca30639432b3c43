mod common;

use common::{aws_error_code, ctx, props, Moto};
use infrasql_aws::ec2::subnet::Subnet;
use infrasql_aws::ec2::vpc::Vpc;
use infrasql_provider::{ErrorClass, PropsExt, Resource};
use serde_json::json;

#[tokio::test]
async fn a_subnet_is_created_in_a_vpc_listed_modified_in_place_and_deleted() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let vpc = Vpc::new(clients.clone());
    let subnet = Subnet::new(clients);
    let made_vpc = vpc
        .create(
            &ctx(),
            &props(json!({"region": "us-east-1", "name": "main", "cidr_block": "10.1.0.0/16"})),
        )
        .await
        .unwrap();
    let vpc_id = made_vpc.str("vpc_id").unwrap().to_owned();

    let desired = props(json!({
        "region": "us-east-1", "name": "a", "vpc_id": vpc_id, "cidr_block": "10.1.1.0/24",
        "availability_zone": "us-east-1b", "map_public_ip_on_launch": true,
        "tags": {"tier": "public"}
    }));
    let made = subnet.create(&ctx(), &desired).await.unwrap();
    let id = made.str("subnet_id").unwrap().to_owned();
    assert!(id.starts_with("subnet-"), "{id}");
    assert_eq!(made.str("state"), Some("available"));
    assert_eq!(made.str("vpc_id"), Some(vpc_id.as_str()));
    assert_eq!(made.str("cidr_block"), Some("10.1.1.0/24"));
    assert_eq!(made.str("availability_zone"), Some("us-east-1b"));
    assert_eq!(made.bool("map_public_ip_on_launch"), Some(true));
    assert_eq!(made.str("name"), Some("a"));
    assert_eq!(made.get("tags"), Some(&json!({"tier": "public"})));
    assert_eq!(made.str("owner_id"), Some("123456789012"));
    assert_eq!(made.bool("default_for_az"), Some(false));
    assert!(made.i64("available_ip_address_count").unwrap() > 200);
    assert!(made.str("availability_zone_id").is_some());
    assert!(made.str("subnet_arn").unwrap().ends_with(&id));
    assert!(!made.contains_key("synced_at"));

    // Independently of the provider: it exists, public mapping on, tags set.
    let ec2 = moto.ec2().await;
    let out = ec2.describe_subnets().subnet_ids(&id).send().await.unwrap();
    let s = &out.subnets()[0];
    assert_eq!(s.vpc_id(), Some(vpc_id.as_str()));
    assert_eq!(s.cidr_block(), Some("10.1.1.0/24"));
    assert_eq!(s.availability_zone(), Some("us-east-1b"));
    assert_eq!(s.map_public_ip_on_launch(), Some(true));
    let tags = s.tags();
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("infrasql:apply-id") && t.value() == Some("test-apply")));
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("Name") && t.value() == Some("a")));
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("tier") && t.value() == Some("public")));

    // Listed, with the default VPC's default subnets.
    let listed = subnet.list("us-east-1").await.unwrap().into_props();
    let mine = listed
        .iter()
        .find(|p| p.str("subnet_id") == Some(&id))
        .expect("listed");
    assert_eq!(mine, &made);
    assert!(
        listed
            .iter()
            .any(|p| p.bool("default_for_az") == Some(true)),
        "moto's default subnets are listed"
    );

    // In place: public mapping off, renamed, tags changed.
    let mut after = made.clone();
    after.insert("map_public_ip_on_launch".into(), json!(false));
    after.insert("name".into(), json!("a-private"));
    after.insert("tags".into(), json!({"tier": "private"}));
    let updated = subnet.update(&ctx(), &id, &made, &after).await.unwrap();
    assert_eq!(updated.str("subnet_id"), Some(id.as_str()));
    assert_eq!(updated.bool("map_public_ip_on_launch"), Some(false));
    assert_eq!(updated.str("name"), Some("a-private"));
    assert_eq!(updated.get("tags"), Some(&json!({"tier": "private"})));
    let s = ec2.describe_subnets().subnet_ids(&id).send().await.unwrap();
    assert_eq!(s.subnets()[0].map_public_ip_on_launch(), Some(false));

    // A subnet left in it keeps the VPC from being deleted.
    let err = vpc.delete(&ctx(), &vpc_id, &made_vpc).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict, "{err}");
    assert_eq!(err.code, "DependencyViolation");

    subnet.delete(&ctx(), &id, &updated).await.unwrap();
    let gone = ec2.describe_subnets().subnet_ids(&id).send().await;
    assert_eq!(aws_error_code(gone), "InvalidSubnetID.NotFound");
    // Deleting again is not an error: the goal is reached.
    subnet.delete(&ctx(), &id, &updated).await.unwrap();
    vpc.delete(&ctx(), &vpc_id, &made_vpc).await.unwrap();
}

#[tokio::test]
async fn a_subnet_without_a_zone_gets_one_from_aws() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let vpc = Vpc::new(clients.clone());
    let subnet = Subnet::new(clients);
    let vpc_id = vpc
        .create(&ctx(), &props(json!({"cidr_block": "10.2.0.0/16"})))
        .await
        .unwrap()
        .str("vpc_id")
        .unwrap()
        .to_owned();
    let made = subnet
        .create(
            &ctx(),
            &props(
                json!({"region": "us-east-1", "vpc_id": vpc_id, "cidr_block": "10.2.0.0/20",
                          "availability_zone": null, "map_public_ip_on_launch": false,
                          "tags": {}}),
            ),
        )
        .await
        .unwrap();
    assert!(made
        .str("availability_zone")
        .unwrap()
        .starts_with("us-east-1"));
    assert_eq!(made.bool("map_public_ip_on_launch"), Some(false));
    assert_eq!(made.get("name"), Some(&json!(null)));
    assert_eq!(made.get("tags"), Some(&json!({})));
}

#[tokio::test]
async fn an_overlapping_subnet_is_a_conflict_and_leaves_nothing_behind() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let vpc = Vpc::new(clients.clone());
    let subnet = Subnet::new(clients);
    let vpc_id = vpc
        .create(&ctx(), &props(json!({"cidr_block": "10.3.0.0/16"})))
        .await
        .unwrap()
        .str("vpc_id")
        .unwrap()
        .to_owned();
    subnet
        .create(
            &ctx(),
            &props(json!({"vpc_id": vpc_id, "cidr_block": "10.3.0.0/24"})),
        )
        .await
        .unwrap();
    let err = subnet
        .create(
            &ctx(),
            &props(json!({"vpc_id": vpc_id, "cidr_block": "10.3.0.0/25"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict, "{err}");
    assert_eq!(err.code, "InvalidSubnet.Conflict");

    // Outside the VPC's range: invalid, not a conflict.
    let err = subnet
        .create(
            &ctx(),
            &props(json!({"vpc_id": vpc_id, "cidr_block": "192.168.0.0/24"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid, "{err}");

    // A VPC that does not exist.
    let err = subnet
        .create(
            &ctx(),
            &props(json!({"vpc_id": "vpc-0123456789abcdef0", "cidr_block": "10.9.0.0/24"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");

    let ec2 = moto.ec2().await;
    let out = ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.subnets().len(), 1, "only the first subnet exists");
}
