//! The ELBv2 types against moto: every call real, every result read back
//! with a raw client.

mod common;

use common::{ctx, props, Moto};
use infrasql_aws_elb::aws_sdk_elasticloadbalancingv2 as elbv2;
use infrasql_aws_elb::{lb::Lb, listener::ListenerType, listener_rule::ListenerRuleType};
use infrasql_aws_elb::{target::TargetType, target_group::TargetGroupType};
use infrasql_provider::{calls::count_calls, ErrorClass, PropsExt, Readiness, Resource};
use serde_json::json;

#[tokio::test]
async fn a_load_balancer_is_created_with_its_sets_changed_both_ways_listed_and_deleted() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let (vpc, subnets, groups) = moto.network().await;
    let lb = Lb::new(clients.clone());
    let made = lb
        .create(
            &ctx(),
            &props(json!({
                "name": "web", "region": "us-east-1", "type": "application",
                "scheme": "internal", "ip_address_type": "ipv4",
                "subnet_ids": subnets, "security_group_ids": [groups[0]],
                "tags": {"team": "web"}
            })),
        )
        .await
        .unwrap();
    let arn = made.req_str("lb_arn").unwrap().to_owned();
    assert_eq!(made["subnet_ids"], json!(subnets));
    assert_eq!(made["security_group_ids"], json!([groups[0]]));
    assert_eq!(made["vpc_id"], json!(vpc));
    assert_eq!(made["scheme"], json!("internal"));
    assert_eq!(made["tags"], json!({"team": "web"}));
    assert_eq!(made["infrasql:apply-id"], json!("test-apply"));
    assert!(matches!(
        lb.ready(&ctx(), &arn, &made).await.unwrap(),
        Readiness::Ready(Some(p)) if p["state"] == json!("active") && p["tags"] == json!({"team": "web"})
    ));

    // Both groups and other tags, then back (the undo's direction).
    let mut after = made.clone();
    after.insert("security_group_ids".into(), json!(groups));
    after.insert("tags".into(), json!({"team": "api"}));
    let changed = lb.update(&ctx(), &arn, &made, &after).await.unwrap();
    assert_eq!(changed["security_group_ids"], json!(groups));
    assert_eq!(changed["tags"], json!({"team": "api"}));
    let raw = moto.elb().await;
    let seen = raw
        .describe_load_balancers()
        .load_balancer_arns(&arn)
        .send()
        .await
        .unwrap();
    let mut sgs = seen.load_balancers()[0].security_groups().to_vec();
    sgs.sort();
    assert_eq!(sgs, groups);
    let back = lb.update(&ctx(), &arn, &after, &made).await.unwrap();
    assert_eq!(back["security_group_ids"], json!([groups[0]]));
    assert_eq!(back["tags"], json!({"team": "web"}));

    let listed = lb.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["lb_arn"], json!(arn));
    assert_eq!(listed[0]["subnet_ids"], json!(subnets));
    assert_eq!(listed[0]["infrasql:apply-id"], json!("test-apply"));

    lb.delete(&ctx(), &arn, &made).await.unwrap();
    assert!(lb.list("us-east-1").await.unwrap().into_props().is_empty());
    lb.delete(&ctx(), &arn, &made)
        .await
        .expect("already gone is done");
}

#[tokio::test]
async fn listing_follows_pages_and_asks_for_tags_once_per_twenty() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let (_, subnets, _) = moto.network().await;
    let raw = moto.elb().await;
    // moto answers 50 load balancers per page.
    for i in 0..55 {
        raw.create_load_balancer()
            .name(format!("lb-{i}"))
            .set_subnets(Some(subnets.clone()))
            .tags(
                elbv2::types::Tag::builder()
                    .key("n")
                    .value(i.to_string())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let (listed, calls) = count_calls(Lb::new(clients).list("us-east-1")).await;
    let listed = listed.unwrap();
    assert_eq!(listed.len(), 55);
    assert!(listed
        .iter()
        .any(|p| p["name"] == json!("lb-54") && p["tags"] == json!({"n": "54"})));
    assert_eq!(calls, 2 + 3, "two pages, three DescribeTags of up to 20");
    // Made without a scheme, type or address type: AWS's defaults, which
    // the table's NOT NULL columns need (moto leaves them out).
    assert!(listed
        .iter()
        .all(|p| p["scheme"] == json!("internet-facing")
            && p["type"] == json!("application")
            && p["ip_address_type"] == json!("ipv4")));
}

#[tokio::test]
async fn a_target_group_listener_rule_and_target_are_made_changed_and_removed() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    let (vpc, subnets, groups) = moto.network().await;
    let lb = Lb::new(clients.clone())
        .create(
            &ctx(),
            &props(
                json!({"name": "web", "subnet_ids": subnets, "security_group_ids": [groups[0]]}),
            ),
        )
        .await
        .unwrap();
    let lb_arn = lb.req_str("lb_arn").unwrap().to_owned();

    let tgs = TargetGroupType::new(clients.clone());
    let tg = tgs
        .create(
            &ctx(),
            &props(json!({
                "name": "app", "protocol": "HTTP", "port": 8080, "vpc_id": vpc,
                "target_type": "ip", "health_check_path": "/health", "matcher": "200"
            })),
        )
        .await
        .unwrap();
    let tg_arn = tg.req_str("target_group_arn").unwrap().to_owned();
    assert_eq!(tg["health_check_path"], json!("/health"));
    assert_eq!(tg["port"], json!(8080));
    let mut tg2 = tg.clone();
    tg2.insert("health_check_path".into(), json!("/ready"));
    tg2.insert("unhealthy_threshold_count".into(), json!(4));
    let changed = tgs.update(&ctx(), &tg_arn, &tg, &tg2).await.unwrap();
    assert_eq!(changed["health_check_path"], json!("/ready"));
    assert_eq!(changed["unhealthy_threshold_count"], json!(4));
    let listed = tgs.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["health_check_path"], json!("/ready"));

    // An IP target, with its synthetic id and health.
    let targets = TargetType::new(clients.clone());
    let t = targets
        .create(
            &ctx(),
            &props(json!({"target_group_arn": tg_arn, "ip_address": "10.1.0.9", "port": 8080})),
        )
        .await
        .unwrap();
    let target_id = format!("{tg_arn}|10.1.0.9|8080");
    assert_eq!(t["target_id"], json!(target_id));
    assert_eq!(t["ip_address"], json!("10.1.0.9"));
    assert!(t["health_state"].is_string(), "{t:?}");
    let listed = targets.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["target_id"], json!(target_id));

    // A listener forwarding to the group, then a fixed response, then back.
    let listeners = ListenerType::new(clients.clone());
    let l = listeners
        .create(
            &ctx(),
            &props(json!({"lb_arn": lb_arn, "port": 80, "protocol": "HTTP",
                          "default_target_group_arn": tg_arn, "tags": {"a": "1"}})),
        )
        .await
        .unwrap();
    let l_arn = l.req_str("listener_arn").unwrap().to_owned();
    assert_eq!(l["default_target_group_arn"], json!(tg_arn));
    let mut fixed = l.clone();
    fixed.insert("default_target_group_arn".into(), json!(null));
    fixed.insert("fixed_response_status_code".into(), json!("404"));
    fixed.insert("fixed_response_content_type".into(), json!("text/plain"));
    let f = listeners.update(&ctx(), &l_arn, &l, &fixed).await.unwrap();
    assert_eq!(f["fixed_response_status_code"], json!("404"));
    assert_eq!(f["default_target_group_arn"], json!(null));
    let b = listeners.update(&ctx(), &l_arn, &fixed, &l).await.unwrap();
    assert_eq!(b["default_target_group_arn"], json!(tg_arn));
    let listed = listeners.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["tags"], json!({"a": "1"}));

    // A rule: a new priority and conditions in place.
    let rules = ListenerRuleType::new(clients.clone());
    let r = rules
        .create(
            &ctx(),
            &props(json!({"listener_arn": l_arn, "priority": 5,
                          "conditions": [{"Field": "path-pattern", "Values": ["/api/*"]}],
                          "target_group_arn": tg_arn})),
        )
        .await
        .unwrap();
    let r_arn = r.req_str("rule_arn").unwrap().to_owned();
    assert_eq!(r["priority"], json!(5));
    let mut r2 = r.clone();
    r2.insert("priority".into(), json!(7));
    r2.insert(
        "conditions".into(),
        json!([{"Field": "host-header", "Values": ["api.example.com"]}]),
    );
    let changed = rules.update(&ctx(), &r_arn, &r, &r2).await.unwrap();
    assert_eq!(changed["priority"], json!(7));
    assert_eq!(changed["conditions"], r2["conditions"]);
    let listed = rules.list("us-east-1").await.unwrap().into_props();
    assert_eq!(listed.len(), 1, "the default rule is no row: {listed:?}");
    assert_eq!(listed[0]["priority"], json!(7));

    // The group is in use: AWS refuses, a conflict.
    let e = tgs.delete(&ctx(), &tg_arn, &tg).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Conflict, "ResourceInUse")
    );

    rules.delete(&ctx(), &r_arn, &r).await.unwrap();
    listeners.delete(&ctx(), &l_arn, &l).await.unwrap();
    listeners
        .delete(&ctx(), &l_arn, &l)
        .await
        .expect("already gone is done");
    targets.delete(&ctx(), &target_id, &t).await.unwrap();
    assert!(targets
        .list("us-east-1")
        .await
        .unwrap()
        .into_props()
        .is_empty());
    tgs.delete(&ctx(), &tg_arn, &tg).await.unwrap();
    assert!(tgs.list("us-east-1").await.unwrap().into_props().is_empty());
}
