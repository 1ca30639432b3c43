mod common;

use common::{aws_error_code, ctx, props, Moto};
use infrasql_aws::ec2::elastic_ip::ElasticIp;
use infrasql_provider::{ErrorClass, PropsExt, Resource};
use serde_json::json;

#[tokio::test]
async fn an_address_is_allocated_listed_retagged_and_released() {
    let moto = Moto::start();
    let eips = ElasticIp::new(moto.clients().await);
    let desired = props(
        json!({"region": "us-east-1", "name": "nat", "domain": "vpc",
                               "tags": {"env": "test"}}),
    );
    let made = eips.create(&ctx(), &desired).await.unwrap();
    let id = made.str("allocation_id").unwrap().to_owned();
    assert!(id.starts_with("eipalloc-"), "{id}");
    assert_eq!(made.str("domain"), Some("vpc"));
    assert_eq!(made.str("name"), Some("nat"));
    assert_eq!(made.get("tags"), Some(&json!({"env": "test"})));
    let ip: std::net::Ipv4Addr = made.str("public_ip").unwrap().parse().unwrap();
    assert_eq!(made.get("association_id"), Some(&json!(null)));
    assert_eq!(made.get("instance_id"), Some(&json!(null)));
    assert_eq!(made.get("network_interface_id"), Some(&json!(null)));
    assert_eq!(made.get("private_ip_address"), Some(&json!(null)));
    for k in ["public_ipv4_pool", "network_border_group"] {
        assert!(made.contains_key(k), "{k} is reported (even if NULL)");
    }
    assert!(!made.contains_key("synced_at"));

    // Independently of the provider.
    let ec2 = moto.ec2().await;
    let out = ec2
        .describe_addresses()
        .allocation_ids(&id)
        .send()
        .await
        .unwrap();
    let a = &out.addresses()[0];
    assert_eq!(a.public_ip(), Some(ip.to_string().as_str()));
    assert!(a
        .tags()
        .iter()
        .any(|t| t.key() == Some("infrasql:apply-id") && t.value() == Some("test-apply")));
    assert!(a
        .tags()
        .iter()
        .any(|t| t.key() == Some("Name") && t.value() == Some("nat")));

    let listed = eips.list("us-east-1").await.unwrap().into_props();
    let mine = listed
        .iter()
        .find(|p| p.str("allocation_id") == Some(&id))
        .expect("listed");
    assert_eq!(mine, &made);

    let mut after = made.clone();
    after.insert("name".into(), json!("nat-a"));
    after.insert("tags".into(), json!({}));
    let updated = eips.update(&ctx(), &id, &made, &after).await.unwrap();
    assert_eq!(updated.str("allocation_id"), Some(id.as_str()));
    assert_eq!(updated.str("public_ip"), made.str("public_ip"));
    assert_eq!(updated.str("name"), Some("nat-a"));
    assert_eq!(updated.get("tags"), Some(&json!({})));

    eips.delete(&ctx(), &id, &updated).await.unwrap();
    let gone = ec2.describe_addresses().allocation_ids(&id).send().await;
    assert_eq!(aws_error_code(gone), "InvalidAllocationID.NotFound");
    // Releasing again is not an error: the goal is reached.
    eips.delete(&ctx(), &id, &updated).await.unwrap();
}

#[tokio::test]
async fn a_released_address_is_not_found_and_only_vpc_addresses_are_made() {
    let moto = Moto::start();
    let eips = ElasticIp::new(moto.clients().await);
    let made = eips
        .create(&ctx(), &props(json!({"tags": {}})))
        .await
        .unwrap();
    assert_eq!(made.str("domain"), Some("vpc"));
    let id = made.str("allocation_id").unwrap().to_owned();
    eips.delete(&ctx(), &id, &made).await.unwrap();

    let mut after = made.clone();
    after.insert("name".into(), json!("late"));
    let err = eips.update(&ctx(), &id, &made, &after).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound, "{err}");

    let err = eips
        .create(&ctx(), &props(json!({"domain": "standard"})))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Invalid, "{err}");
    let ec2 = moto.ec2().await;
    let out = ec2.describe_addresses().send().await.unwrap();
    assert!(out.addresses().is_empty());
}

#[tokio::test]
async fn an_associated_address_reports_its_instance_and_is_released_anyway() {
    let moto = Moto::start();
    let eips = ElasticIp::new(moto.clients().await);
    let made = eips
        .create(&ctx(), &props(json!({"name": "web"})))
        .await
        .unwrap();
    let id = made.str("allocation_id").unwrap().to_owned();

    // Associated outside infrasql, as an instance module or the console would.
    let ec2 = moto.ec2().await;
    let run = ec2
        .run_instances()
        .image_id("ami-760aaa0f")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let instance = run.instances()[0].instance_id().unwrap().to_owned();
    let assoc = ec2
        .associate_address()
        .allocation_id(&id)
        .instance_id(&instance)
        .send()
        .await
        .unwrap();
    let association = assoc.association_id().unwrap().to_owned();

    let listed = eips.list("us-east-1").await.unwrap().into_props();
    let mine = listed
        .iter()
        .find(|p| p.str("allocation_id") == Some(&id))
        .expect("listed");
    assert_eq!(mine.str("instance_id"), Some(instance.as_str()));
    assert_eq!(mine.str("association_id"), Some(association.as_str()));
    let private: std::net::Ipv4Addr = mine
        .str("private_ip_address")
        .expect("private address reported")
        .parse()
        .unwrap();
    assert!(private.is_private(), "{private}");
    assert!(mine
        .str("network_interface_id")
        .unwrap()
        .starts_with("eni-"));

    eips.delete(&ctx(), &id, mine).await.unwrap();
    let gone = ec2.describe_addresses().allocation_ids(&id).send().await;
    assert_eq!(aws_error_code(gone), "InvalidAllocationID.NotFound");
}
