//! Route tables, routes and route table associations against moto.
mod common;

use aws_sdk_ec2::types::{DomainType, RouteTable as AwsRouteTable};
use common::{ctx, props, Moto};
use infrasql_aws::ec2::route::Route;
use infrasql_aws::ec2::route_table::RouteTable;
use infrasql_aws::ec2::route_table_association::RouteTableAssociation;
use infrasql_provider::{ErrorClass, PropsExt, Resource};
use serde_json::json;

/// A VPC with one subnet and an attached internet gateway, made directly
/// through the SDK: (vpc, subnet, igw).
async fn network(ec2: &aws_sdk_ec2::Client) -> (String, String, String) {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.20.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.20.1.0/24")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_owned();
    let igw = ec2
        .create_internet_gateway()
        .send()
        .await
        .unwrap()
        .internet_gateway()
        .unwrap()
        .internet_gateway_id()
        .unwrap()
        .to_owned();
    ec2.attach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    (vpc, subnet, igw)
}

async fn table(ec2: &aws_sdk_ec2::Client, id: &str) -> Option<AwsRouteTable> {
    match ec2.describe_route_tables().route_table_ids(id).send().await {
        Ok(out) => out.route_tables().first().cloned(),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_route_table_is_created_listed_retagged_and_deleted() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let (vpc, _, _) = network(&ec2).await;
    let rt = RouteTable::new(moto.clients().await);

    let desired = props(
        json!({"region": "us-east-1", "vpc_id": vpc, "name": "public",
                               "tags": {"env": "test"}, "synced_at": null}),
    );
    let made = rt.create(&ctx(), &desired).await.unwrap();
    let id = made.str("route_table_id").unwrap().to_owned();
    assert!(id.starts_with("rtb-"), "{id}");
    assert_eq!(made.str("vpc_id"), Some(vpc.as_str()));
    assert_eq!(made.bool("is_main"), Some(false));
    assert_eq!(made.str("owner_id"), Some("123456789012"));
    assert_eq!(made.str("name"), Some("public"));
    assert_eq!(made.get("tags"), Some(&json!({"env": "test"})));
    assert!(
        !made.contains_key("synced_at"),
        "the provider never sets synced_at"
    );

    let t = table(&ec2, &id)
        .await
        .expect("the route table exists in AWS");
    assert_eq!(t.vpc_id(), Some(vpc.as_str()));
    assert!(t
        .tags()
        .iter()
        .any(|t| t.key() == Some("infrasql:apply-id") && t.value() == Some("test-apply")));
    assert!(t
        .tags()
        .iter()
        .any(|t| t.key() == Some("Name") && t.value() == Some("public")));

    let listed = rt.list("us-east-1").await.unwrap().into_props();
    assert!(listed
        .iter()
        .any(|p| p.str("route_table_id") == Some(&id) && p.str("name") == Some("public")));
    assert!(
        listed
            .iter()
            .any(|p| p.str("vpc_id") == Some(&vpc) && p.bool("is_main") == Some(true)),
        "the VPC's main route table is listed"
    );

    let mut after = made.clone();
    after.insert("name".into(), json!("public-a"));
    after.insert("tags".into(), json!({"team": "net"}));
    let updated = rt.update(&ctx(), &id, &made, &after).await.unwrap();
    assert_eq!(updated.str("name"), Some("public-a"));
    assert_eq!(updated.get("tags"), Some(&json!({"team": "net"})));
    let t = table(&ec2, &id).await.unwrap();
    assert!(!t.tags().iter().any(|t| t.key() == Some("env")));

    rt.delete(&ctx(), &id, &updated).await.unwrap();
    assert!(table(&ec2, &id).await.is_none());
    rt.delete(&ctx(), &id, &updated).await.unwrap();
}

#[tokio::test]
async fn a_route_is_created_retargeted_in_place_listed_and_deleted() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let (vpc, subnet, igw) = network(&ec2).await;
    let clients = moto.clients().await;
    let rt = RouteTable::new(clients.clone());
    let route = Route::new(clients);
    let rtb = rt
        .create(
            &ctx(),
            &props(json!({"region": "us-east-1", "vpc_id": vpc})),
        )
        .await
        .unwrap()
        .str("route_table_id")
        .unwrap()
        .to_owned();

    let desired = props(json!({
        "route_id": "pending-route-1", "region": "us-east-1", "route_table_id": rtb,
        "destination_cidr_block": "0.0.0.0/0", "gateway_id": igw,
        "nat_gateway_id": null, "vpc_peering_connection_id": null,
        "origin": null, "state": null, "synced_at": null}));
    let made = route.create(&ctx(), &desired).await.unwrap();
    let id = format!("{rtb}|0.0.0.0/0");
    assert_eq!(made.str("route_id"), Some(id.as_str()));
    assert_eq!(made.str("gateway_id"), Some(igw.as_str()));
    assert_eq!(made.get("nat_gateway_id"), Some(&json!(null)));
    assert_eq!(made.str("state"), Some("active"));
    assert_eq!(made.str("origin"), Some("CreateRoute"));

    let in_aws = |t: &AwsRouteTable| {
        t.routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .cloned()
    };
    let r = in_aws(&table(&ec2, &rtb).await.unwrap()).expect("the route exists in AWS");
    assert_eq!(r.gateway_id(), Some(igw.as_str()));

    // A second identical route is a conflict, as AWS says.
    let err = route.create(&ctx(), &desired).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict, "{err}");
    assert_eq!(err.code, "RouteAlreadyExists");

    let listed = route.list("us-east-1").await.unwrap().into_props();
    assert!(listed
        .iter()
        .any(|p| p.str("route_id") == Some(&id) && p.str("gateway_id") == Some(&igw)));
    assert!(
        !listed.iter().any(|p| p.str("gateway_id") == Some("local")
            || p.str("destination_cidr_block") == Some("10.20.0.0/16")),
        "local routes are not listed"
    );
    assert!(listed.iter().all(|p| p
        .str("route_id")
        .unwrap()
        .ends_with(p.str("destination_cidr_block").unwrap())));

    // Retarget to a NAT gateway: ReplaceRoute, same route.
    let eip = ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .send()
        .await
        .unwrap();
    let nat = ec2
        .create_nat_gateway()
        .subnet_id(&subnet)
        .allocation_id(eip.allocation_id().unwrap())
        .send()
        .await
        .unwrap()
        .nat_gateway()
        .unwrap()
        .nat_gateway_id()
        .unwrap()
        .to_owned();
    let mut after = made.clone();
    after.insert("gateway_id".into(), json!(null));
    after.insert("nat_gateway_id".into(), json!(nat));
    let updated = route.update(&ctx(), &id, &made, &after).await.unwrap();
    assert_eq!(updated.str("route_id"), Some(id.as_str()));
    assert_eq!(updated.str("nat_gateway_id"), Some(nat.as_str()));
    assert_eq!(updated.get("gateway_id"), Some(&json!(null)));
    let r = in_aws(&table(&ec2, &rtb).await.unwrap()).unwrap();
    assert_eq!(r.nat_gateway_id(), Some(nat.as_str()));
    assert_eq!(r.gateway_id(), None);

    route.delete(&ctx(), &id, &updated).await.unwrap();
    assert!(in_aws(&table(&ec2, &rtb).await.unwrap()).is_none());
    route.delete(&ctx(), &id, &updated).await.unwrap();
}

#[tokio::test]
async fn an_association_is_created_moved_listed_and_deleted() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let (vpc, subnet, _) = network(&ec2).await;
    let clients = moto.clients().await;
    let rt = RouteTable::new(clients.clone());
    let assoc = RouteTableAssociation::new(clients);
    let mut tables = Vec::new();
    for _ in 0..2 {
        let p = rt
            .create(
                &ctx(),
                &props(json!({"region": "us-east-1", "vpc_id": vpc})),
            )
            .await
            .unwrap();
        tables.push(p.str("route_table_id").unwrap().to_owned());
    }
    let (rtb1, rtb2) = (&tables[0], &tables[1]);

    let made = assoc
        .create(
            &ctx(),
            &props(json!({"region": "us-east-1", "route_table_id": rtb1, "subnet_id": subnet})),
        )
        .await
        .unwrap();
    let id = made.str("route_table_association_id").unwrap().to_owned();
    assert!(id.starts_with("rtbassoc-"), "{id}");
    assert_eq!(made.str("association_state"), Some("associated"));
    assert_eq!(made.bool("main"), Some(false));
    assert_eq!(made.str("subnet_id"), Some(subnet.as_str()));
    let t = table(&ec2, rtb1).await.unwrap();
    assert!(t
        .associations()
        .iter()
        .any(|a| a.route_table_association_id() == Some(&id) && a.subnet_id() == Some(&subnet)));

    let listed = assoc.list("us-east-1").await.unwrap().into_props();
    assert!(listed
        .iter()
        .any(|p| p.str("route_table_association_id") == Some(&id)
            && p.str("route_table_id") == Some(rtb1)));
    assert!(
        listed
            .iter()
            .all(|p| p.bool("main") == Some(false) && p.str("subnet_id").is_some()),
        "main associations are not listed"
    );

    // The engine replaces a row whose route_table_id changed by creating the
    // new association, then deleting the old one.
    let moved = assoc
        .create(
            &ctx(),
            &props(json!({"region": "us-east-1", "route_table_id": rtb2, "subnet_id": subnet})),
        )
        .await
        .unwrap();
    let new_id = moved.str("route_table_association_id").unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(moved.str("route_table_id"), Some(rtb2.as_str()));
    assoc.delete(&ctx(), &id, &made).await.unwrap();
    let t2 = table(&ec2, rtb2).await.unwrap();
    assert!(
        t2.associations()
            .iter()
            .any(|a| a.route_table_association_id() == Some(&new_id)
                && a.subnet_id() == Some(&subnet))
    );
    assert!(table(&ec2, rtb1).await.unwrap().associations().is_empty());

    // An association that already exists is adopted, not duplicated.
    let again = assoc
        .create(
            &ctx(),
            &props(json!({"region": "us-east-1", "route_table_id": rtb2, "subnet_id": subnet})),
        )
        .await
        .unwrap();
    assert_eq!(again, moved);

    // Nothing to change in place: update reports what is there.
    let same = assoc.update(&ctx(), &new_id, &moved, &moved).await.unwrap();
    assert_eq!(same, moved);

    // A table with an association cannot go: AWS's DependencyViolation.
    let err = rt
        .delete(&ctx(), rtb2, &props(json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict, "{err}");
    assert_eq!(err.code, "DependencyViolation");

    assoc.delete(&ctx(), &new_id, &moved).await.unwrap();
    assert!(table(&ec2, rtb2).await.unwrap().associations().is_empty());
    assoc.delete(&ctx(), &new_id, &moved).await.unwrap();
    let err = assoc
        .update(&ctx(), &new_id, &moved, &moved)
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::NotFound);
}
