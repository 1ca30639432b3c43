//! Security groups and security group rules against moto.
mod common;

use aws_sdk_ec2::types::{Filter, SecurityGroupRule as AwsRule};
use common::{ctx, props, Moto};
use infrasql_aws::ec2::security_group::SecurityGroup;
use infrasql_aws::ec2::security_group_rule::SecurityGroupRule;
use infrasql_provider::{ErrorClass, Props, PropsExt, Resource};
use serde_json::json;

async fn vpc(ec2: &aws_sdk_ec2::Client, ipv6: bool) -> String {
    ec2.create_vpc()
        .cidr_block("10.30.0.0/16")
        .amazon_provided_ipv6_cidr_block(ipv6)
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_owned()
}

/// Every rule of a group, as AWS has it.
async fn rules_of(ec2: &aws_sdk_ec2::Client, group: &str) -> Vec<AwsRule> {
    ec2.describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(group).build())
        .send()
        .await
        .unwrap()
        .security_group_rules()
        .to_vec()
}

async fn rule(ec2: &aws_sdk_ec2::Client, id: &str) -> Option<AwsRule> {
    match ec2
        .describe_security_group_rules()
        .security_group_rule_ids(id)
        .send()
        .await
    {
        Ok(out) => out.security_group_rules().first().cloned(),
        Err(_) => None,
    }
}

fn group_row(vpc: &str, name: &str) -> Props {
    props(
        json!({"group_id": "pending-sg-1", "region": "us-east-1", "group_name": name,
                 "description": "web tier", "vpc_id": vpc, "name": name,
                 "tags": {"team": "web"}, "owner_id": null, "security_group_arn": null,
                 "synced_at": null}),
    )
}

#[tokio::test]
async fn a_security_group_starts_without_rules_and_is_listed_retagged_and_deleted() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let vpc = vpc(&ec2, false).await;
    let sg = SecurityGroup::new(moto.clients().await);

    let made = sg.create(&ctx(), &group_row(&vpc, "web")).await.unwrap();
    let id = made.str("group_id").unwrap().to_owned();
    assert!(id.starts_with("sg-"), "{id}");
    assert_eq!(made.str("group_name"), Some("web"));
    assert_eq!(made.str("description"), Some("web tier"));
    assert_eq!(made.str("vpc_id"), Some(vpc.as_str()));
    assert_eq!(made.str("owner_id"), Some("123456789012"));
    assert!(made
        .str("security_group_arn")
        .is_some_and(|a| a.ends_with(&format!("security-group/{id}"))));
    assert_eq!(made.str("name"), Some("web"));
    assert_eq!(made.get("tags"), Some(&json!({"team": "web"})));

    // In AWS: tagged, and AWS's default allow-all egress rule is gone.
    let g = ec2
        .describe_security_groups()
        .group_ids(&id)
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .clone();
    assert!(g.ip_permissions_egress().is_empty(), "{g:?}");
    assert!(rules_of(&ec2, &id).await.is_empty());
    assert!(g
        .tags()
        .iter()
        .any(|t| t.key() == Some("infrasql:apply-id") && t.value() == Some("test-apply")));

    // A second group of that name in the VPC: AWS's duplicate error.
    let err = sg
        .create(&ctx(), &group_row(&vpc, "web"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict, "{err}");
    assert_eq!(err.code, "InvalidGroup.Duplicate");

    let listed = sg.list("us-east-1").await.unwrap().into_props();
    assert!(listed
        .iter()
        .any(|p| p.str("group_id") == Some(&id) && p.str("name") == Some("web")));
    assert!(
        listed
            .iter()
            .any(|p| p.str("vpc_id") == Some(&vpc) && p.str("group_name") == Some("default")),
        "the VPC's default group is listed"
    );

    let mut after = made.clone();
    after.insert("name".into(), json!(null));
    after.insert("tags".into(), json!({"team": "edge", "env": "test"}));
    let updated = sg.update(&ctx(), &id, &made, &after).await.unwrap();
    assert_eq!(updated.get("name"), Some(&json!(null)));
    assert_eq!(
        updated.get("tags"),
        Some(&json!({"team": "edge", "env": "test"}))
    );

    sg.delete(&ctx(), &id, &updated).await.unwrap();
    assert!(ec2
        .describe_security_groups()
        .group_ids(&id)
        .send()
        .await
        .is_err());
    sg.delete(&ctx(), &id, &updated).await.unwrap();
}

#[tokio::test]
async fn both_default_egress_rules_of_an_ipv6_vpc_are_revoked() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let vpc = vpc(&ec2, true).await;
    // What AWS does without infrasql: two allow-all egress rules.
    let plain = ec2
        .create_security_group()
        .group_name("plain")
        .description("d")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    assert_eq!(rules_of(&ec2, plain.group_id().unwrap()).await.len(), 2);

    let sg = SecurityGroup::new(moto.clients().await);
    let made = sg.create(&ctx(), &group_row(&vpc, "v6")).await.unwrap();
    assert!(rules_of(&ec2, made.str("group_id").unwrap())
        .await
        .is_empty());
}

fn rule_row(group: &str, extra: serde_json::Value) -> Props {
    let mut p = props(json!({
        "security_group_rule_id": "pending-sgr-1", "region": "us-east-1", "name": null,
        "group_id": group, "is_egress": false, "ip_protocol": "tcp",
        "from_port": null, "to_port": null, "cidr_ipv4": null, "cidr_ipv6": null,
        "prefix_list_id": null, "referenced_group_id": null, "description": null,
        "tags": {}, "group_owner_id": null, "security_group_rule_arn": null,
        "synced_at": null}));
    for (k, v) in extra.as_object().unwrap() {
        p.insert(k.clone(), v.clone());
    }
    p
}

#[tokio::test]
async fn security_group_rules_are_authorized_listed_described_retagged_and_revoked() {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let vpc = vpc(&ec2, false).await;
    let clients = moto.clients().await;
    let sg = SecurityGroup::new(clients.clone());
    let rules = SecurityGroupRule::new(clients);
    let group = sg
        .create(&ctx(), &group_row(&vpc, "app"))
        .await
        .unwrap()
        .str("group_id")
        .unwrap()
        .to_owned();

    let https = rule_row(
        &group,
        json!({"from_port": 443, "to_port": 443, "cidr_ipv4": "10.0.0.0/8",
               "description": "https", "name": "https-in", "tags": {"k": "v"}}),
    );
    let made = rules.create(&ctx(), &https).await.unwrap();
    let id = made.str("security_group_rule_id").unwrap().to_owned();
    assert!(id.starts_with("sgr-"), "{id}");
    for (k, v) in [
        ("group_id", json!(group)),
        ("is_egress", json!(false)),
        ("ip_protocol", json!("tcp")),
        ("from_port", json!(443)),
        ("to_port", json!(443)),
        ("cidr_ipv4", json!("10.0.0.0/8")),
        ("cidr_ipv6", json!(null)),
        ("referenced_group_id", json!(null)),
        ("description", json!("https")),
        ("name", json!("https-in")),
        ("tags", json!({"k": "v"})),
        ("region", json!("us-east-1")),
    ] {
        assert_eq!(made.get(k), Some(&v), "{k}");
    }
    let r = rule(&ec2, &id).await.expect("the rule exists in AWS");
    assert_eq!(r.group_id(), Some(group.as_str()));
    assert_eq!(r.cidr_ipv4(), Some("10.0.0.0/8"));
    assert_eq!((r.from_port(), r.to_port()), (Some(443), Some(443)));
    assert!(r
        .tags()
        .iter()
        .any(|t| t.key() == Some("infrasql:apply-id") && t.value() == Some("test-apply")));

    // The same rule again: AWS's duplicate error.
    let err = rules.create(&ctx(), &https).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict, "{err}");
    assert_eq!(err.code, "InvalidPermission.Duplicate");

    let all_out = rules
        .create(
            &ctx(),
            &rule_row(
                &group,
                json!({"is_egress": true, "ip_protocol": "-1", "cidr_ipv4": "0.0.0.0/0"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(all_out.bool("is_egress"), Some(true));
    assert_eq!(all_out.get("from_port"), Some(&json!(null)));
    assert_eq!(all_out.get("to_port"), Some(&json!(null)));
    let v6_out = rules
        .create(
            &ctx(),
            &rule_row(
                &group,
                json!({"is_egress": true, "ip_protocol": "-1", "cidr_ipv6": "::/0"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(v6_out.str("cidr_ipv6"), Some("::/0"));
    let ssh_self = rules
        .create(
            &ctx(),
            &rule_row(
                &group,
                json!({"from_port": 22, "to_port": 22, "referenced_group_id": group}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(ssh_self.str("referenced_group_id"), Some(group.as_str()));
    let ping = rules
        .create(
            &ctx(),
            &rule_row(
                &group,
                json!({"ip_protocol": "icmp", "from_port": 8, "to_port": 0,
                       "cidr_ipv4": "0.0.0.0/0"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        (ping.i64("from_port"), ping.i64("to_port")),
        (Some(8), Some(0))
    );
    assert_eq!(rules_of(&ec2, &group).await.len(), 5);

    // List reports every rule as create did (DescribeSecurityGroupRules).
    let listed = rules.list("us-east-1").await.unwrap().into_props();
    for p in [&made, &all_out, &v6_out, &ssh_self, &ping] {
        let id = p.str("security_group_rule_id").unwrap();
        let found = listed
            .iter()
            .find(|l| l.str("security_group_rule_id") == Some(id))
            .unwrap_or_else(|| panic!("{id} listed"));
        assert_eq!(found, p);
    }

    // Description and tags change in place, the id stays.
    let mut after = made.clone();
    after.insert("description".into(), json!("https from the VPN"));
    after.insert("name".into(), json!(null));
    after.insert("tags".into(), json!({"k": "w"}));
    let updated = rules.update(&ctx(), &id, &made, &after).await.unwrap();
    assert_eq!(updated.str("security_group_rule_id"), Some(id.as_str()));
    assert_eq!(updated.str("description"), Some("https from the VPN"));
    assert_eq!(updated.get("name"), Some(&json!(null)));
    assert_eq!(updated.get("tags"), Some(&json!({"k": "w"})));
    let r = rule(&ec2, &id).await.unwrap();
    assert_eq!(r.description(), Some("https from the VPN"));
    assert!(!r.tags().iter().any(|t| t.key() == Some("Name")));

    // Clearing the description.
    let mut cleared = updated.clone();
    cleared.insert("description".into(), json!(null));
    let updated = rules.update(&ctx(), &id, &updated, &cleared).await.unwrap();
    assert_eq!(updated.get("description"), Some(&json!(null)));
    let r = rule(&ec2, &id).await.unwrap();
    assert!(r.description().unwrap_or_default().is_empty(), "{r:?}");

    // Revoke: an ingress and an egress rule, each by id.
    rules.delete(&ctx(), &id, &updated).await.unwrap();
    assert!(rule(&ec2, &id).await.is_none());
    rules.delete(&ctx(), &id, &updated).await.unwrap();
    let out_id = all_out.str("security_group_rule_id").unwrap();
    rules.delete(&ctx(), out_id, &all_out).await.unwrap();
    assert!(rule(&ec2, out_id).await.is_none());
    // Without the row's properties the provider looks the rule up itself.
    let v6_id = v6_out.str("security_group_rule_id").unwrap();
    rules.delete(&ctx(), v6_id, &Props::new()).await.unwrap();
    assert!(rule(&ec2, v6_id).await.is_none());
    rules.delete(&ctx(), v6_id, &Props::new()).await.unwrap();
    assert_eq!(rules_of(&ec2, &group).await.len(), 2);

    // A rule of a group that is gone is gone too.
    sg.delete(&ctx(), &group, &Props::new()).await.unwrap();
    let ping_id = ping.str("security_group_rule_id").unwrap();
    rules.delete(&ctx(), ping_id, &ping).await.unwrap();
}
