//! Load balancing through infrasql (issue #13): an application load
//! balancer in two subnets with a security group, a target group with an
//! instance target, a listener forwarding to it and a rule; changes in
//! place, drift and teardown. What AWS holds is read from moto with a raw
//! ELBv2 client.

mod common;

use common::{one, Moto, TestServer};
use infrasql_aws_elb::aws_sdk_elasticloadbalancingv2 as elbv2;
use tokio_postgres::Client;

/// A VPC, two subnets in two zones, two security groups, an instance, and
/// the load-balancing stack on them: one transaction.
const STACK: &str = "
BEGIN;
INSERT INTO aws.vpc (name, cidr_block) VALUES ('web', '10.90.0.0/16');
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'web-a', vpc_id, '10.90.1.0/24', 'us-east-1a' FROM aws.vpc;
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'web-b', vpc_id, '10.90.2.0/24', 'us-east-1b' FROM aws.vpc;
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'web-c', vpc_id, '10.90.3.0/24', 'us-east-1c' FROM aws.vpc;
INSERT INTO aws.security_group (group_name, description, vpc_id)
  SELECT g, g, vpc_id FROM aws.vpc, unnest(ARRAY['lb-1', 'lb-2']) AS g;
INSERT INTO aws.instance (name, image_id, subnet_id)
  SELECT 'app', 'ami-760aaa0f', subnet_id FROM aws.subnet WHERE name = 'web-a';
INSERT INTO aws.lb (name, tags) VALUES ('web', '{\"team\": \"web\"}');
INSERT INTO aws.lb_subnet (lb_arn, subnet_id)
  SELECT lb_arn, subnet_id FROM aws.lb, aws.subnet WHERE subnet.name IN ('web-a', 'web-b');
INSERT INTO aws.lb_security_group (lb_arn, group_id)
  SELECT lb_arn, group_id FROM aws.lb, aws.security_group WHERE group_name = 'lb-1';
INSERT INTO aws.lb_target_group (name, protocol, port, vpc_id, health_check_path, matcher)
  SELECT 'app', 'HTTP', 8080, vpc_id, '/health', '200' FROM aws.vpc;
INSERT INTO aws.lb_target (target_group_arn, instance_id, port)
  SELECT target_group_arn, instance_id, 8080 FROM aws.lb_target_group, aws.instance;
INSERT INTO aws.lb_listener (lb_arn, port, protocol, default_target_group_arn)
  SELECT lb_arn, 80, 'HTTP', target_group_arn FROM aws.lb, aws.lb_target_group;
INSERT INTO aws.lb_listener_rule (listener_arn, priority, conditions,
    fixed_response_status_code, fixed_response_content_type, fixed_response_body)
  SELECT listener_arn, 10, '[{\"Field\": \"path-pattern\", \"Values\": [\"/admin/*\"]}]',
         '403', 'text/plain', 'no' FROM aws.lb_listener;
COMMIT;";

async fn elb(moto: &Moto) -> elbv2::Client {
    moto.elb().await
}

async fn strings(c: &Client, sql: &str) -> Vec<String> {
    c.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The load balancer `web` as AWS has it.
async fn lb_in_aws(moto: &Moto) -> Option<elbv2::types::LoadBalancer> {
    elb(moto)
        .await
        .describe_load_balancers()
        .send()
        .await
        .unwrap()
        .load_balancers()
        .iter()
        .find(|l| l.load_balancer_name() == Some("web"))
        .cloned()
}

/// A target group's health-check path in AWS.
async fn health_path(moto: &Moto, tg_arn: &str) -> Option<String> {
    elb(moto)
        .await
        .describe_target_groups()
        .target_group_arns(tg_arn)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .health_check_path()
        .map(str::to_owned)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn subnets_of(l: &elbv2::types::LoadBalancer) -> Vec<String> {
    sorted(
        l.availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id().map(str::to_owned))
            .collect(),
    )
}

/// Every drift record of a table: kind, field and resolution.
async fn drift(c: &Client, table: &str) -> Vec<String> {
    strings(
        c,
        &format!(
            "SELECT kind || ' ' || coalesce(field, '') || ' ' || resolution FROM infra.drift
              WHERE table_name = '{table}' ORDER BY 1"
        ),
    )
    .await
}

#[tokio::test]
async fn an_application_load_balancer_stack_is_created_changed_in_place_synced_and_torn_down() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();

    // The load balancer: both subnets, the group, its tags, real ids.
    let lb_arn: String = one(&c, "SELECT lb_arn FROM aws.lb").await;
    assert!(lb_arn.contains(":loadbalancer/app/web/"), "{lb_arn}");
    let l = lb_in_aws(&moto).await.expect("the load balancer exists");
    let ab = strings(
        &c,
        "SELECT subnet_id FROM aws.subnet WHERE name IN ('web-a', 'web-b') ORDER BY 1",
    )
    .await;
    assert_eq!(subnets_of(&l), ab);
    let g1: String = one(
        &c,
        "SELECT group_id FROM aws.security_group WHERE group_name = 'lb-1'",
    )
    .await;
    let g2: String = one(
        &c,
        "SELECT group_id FROM aws.security_group WHERE group_name = 'lb-2'",
    )
    .await;
    assert_eq!(l.security_groups(), std::slice::from_ref(&g1));
    assert_eq!(l.scheme().map(|s| s.as_str()), Some("internet-facing"));
    assert_eq!(l.r#type().map(|s| s.as_str()), Some("application"));
    let row: String = one(
        &c,
        "SELECT dns_name || ' ' || state || ' ' || vpc_id FROM aws.lb",
    )
    .await;
    let vpc: String = one(&c, "SELECT vpc_id FROM aws.vpc").await;
    assert_eq!(
        row,
        format!("{} active {vpc}", l.dns_name().unwrap()),
        "ready waited for active"
    );
    let tags = elb(&moto)
        .await
        .describe_tags()
        .resource_arns(&lb_arn)
        .send()
        .await
        .unwrap();
    let tags: Vec<String> = tags.tag_descriptions()[0]
        .tags()
        .iter()
        .map(|t| format!("{}={}", t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert!(tags.contains(&"team=web".to_owned()), "{tags:?}");
    assert!(
        tags.iter()
            .any(|t| t.starts_with("infrasql:apply-id=apply-")),
        "{tags:?}"
    );

    // The target group with its health check, the instance target, the
    // listener forwarding to the group and the rule.
    let tg_arn: String = one(&c, "SELECT target_group_arn FROM aws.lb_target_group").await;
    let tg = elb(&moto)
        .await
        .describe_target_groups()
        .target_group_arns(&tg_arn)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .clone();
    assert_eq!(tg.target_group_name(), Some("app"));
    assert_eq!(tg.port(), Some(8080));
    assert_eq!(tg.vpc_id(), Some(vpc.as_str()));
    assert_eq!(tg.health_check_path(), Some("/health"));
    assert_eq!(tg.matcher().and_then(|m| m.http_code()), Some("200"));
    let instance: String = one(&c, "SELECT instance_id FROM aws.instance").await;
    let target_id: String = one(&c, "SELECT target_id FROM aws.lb_target").await;
    assert_eq!(target_id, format!("{tg_arn}|{instance}|8080"));
    let health = elb(&moto)
        .await
        .describe_target_health()
        .target_group_arn(&tg_arn)
        .send()
        .await
        .unwrap();
    let registered: Vec<&str> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|h| h.target().and_then(|t| t.id()))
        .collect();
    assert_eq!(registered, [instance.as_str()]);
    let listener_arn: String = one(&c, "SELECT listener_arn FROM aws.lb_listener").await;
    let listener = elb(&moto)
        .await
        .describe_listeners()
        .listener_arns(&listener_arn)
        .send()
        .await
        .unwrap()
        .listeners()[0]
        .clone();
    assert_eq!(listener.port(), Some(80));
    assert_eq!(
        listener.default_actions()[0].target_group_arn(),
        Some(tg_arn.as_str())
    );
    let rule_arn: String = one(&c, "SELECT rule_arn FROM aws.lb_listener_rule").await;
    let rule = elb(&moto)
        .await
        .describe_rules()
        .rule_arns(&rule_arn)
        .send()
        .await
        .unwrap()
        .rules()[0]
        .clone();
    assert_eq!(rule.priority(), Some("10"));
    assert_eq!(rule.conditions()[0].values(), ["/admin/*"]);
    let fixed = rule.actions()[0].fixed_response_config().unwrap();
    assert_eq!(fixed.status_code(), Some("403"));
    assert_eq!(fixed.message_body(), Some("no"));

    // Sync finds everything as it is: no drift after two rounds.
    for _ in 0..2 {
        one::<serde_json::Value>(&c, "SELECT infra.sync()").await;
    }
    let drifted: i64 = one(
        &c,
        "SELECT count(*) FROM infra.drift WHERE table_name LIKE 'aws.lb%'",
    )
    .await;
    assert_eq!(drifted, 0);

    // In place: subnets, security groups, the health check, the rule's
    // priority and conditions, the listener's action; same ARNs.
    c.batch_execute(
        "BEGIN;
         DELETE FROM aws.lb_subnet WHERE subnet_id = (SELECT subnet_id FROM aws.subnet WHERE name = 'web-b');
         INSERT INTO aws.lb_subnet (lb_arn, subnet_id)
           SELECT lb_arn, subnet_id FROM aws.lb, aws.subnet WHERE subnet.name = 'web-c';
         INSERT INTO aws.lb_security_group (lb_arn, group_id)
           SELECT lb_arn, group_id FROM aws.lb, aws.security_group WHERE group_name = 'lb-2';
         UPDATE aws.lb_target_group SET health_check_path = '/ready', healthy_threshold_count = 3;
         UPDATE aws.lb_listener_rule SET priority = 20,
           conditions = '[{\"Field\": \"path-pattern\", \"Values\": [\"/private/*\"]}]';
         COMMIT;",
    )
    .await
    .unwrap();
    let l = lb_in_aws(&moto).await.unwrap();
    let ac = strings(
        &c,
        "SELECT subnet_id FROM aws.subnet WHERE name IN ('web-a', 'web-c') ORDER BY 1",
    )
    .await;
    assert_eq!(subnets_of(&l), ac);
    assert_eq!(
        sorted(l.security_groups().to_vec()),
        sorted(vec![g1.clone(), g2.clone()])
    );
    assert_eq!(one::<String>(&c, "SELECT lb_arn FROM aws.lb").await, lb_arn);
    let tg = elb(&moto)
        .await
        .describe_target_groups()
        .target_group_arns(&tg_arn)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .clone();
    assert_eq!(tg.health_check_path(), Some("/ready"));
    assert_eq!(tg.healthy_threshold_count(), Some(3));
    let rule = elb(&moto)
        .await
        .describe_rules()
        .rule_arns(&rule_arn)
        .send()
        .await
        .unwrap()
        .rules()[0]
        .clone();
    assert_eq!(rule.priority(), Some("20"));
    assert_eq!(rule.conditions()[0].values(), ["/private/*"]);

    // A failing commit undoes its earlier steps: a rule made out of band
    // holds priority 30, so a new rule with it fails after the target
    // group it forwards to was changed; the change is undone.
    elb(&moto)
        .await
        .create_rule()
        .listener_arn(&listener_arn)
        .priority(30)
        .conditions(
            elbv2::types::RuleCondition::builder()
                .field("path-pattern")
                .values("/oob/*")
                .build(),
        )
        .actions(
            elbv2::types::Action::builder()
                .r#type(elbv2::types::ActionTypeEnum::Forward)
                .target_group_arn(&tg_arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let e = c
        .batch_execute(
            "BEGIN;
             UPDATE aws.lb_target_group SET health_check_path = '/failed';
             INSERT INTO aws.lb_listener_rule (listener_arn, priority, conditions, target_group_arn)
               SELECT listener_arn, 30, '[{\"Field\": \"path-pattern\", \"Values\": [\"/x/*\"]}]',
                      target_group_arn FROM aws.lb_listener, aws.lb_target_group;
             COMMIT;",
        )
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("a database error");
    assert!(db.message().contains("PriorityInUse"), "{}", db.message());
    assert_eq!(
        health_path(&moto, &tg_arn).await.as_deref(),
        Some("/ready"),
        "undone"
    );
    let rules: i64 = one(&c, "SELECT count(*) FROM aws.lb_listener_rule").await;
    assert_eq!(rules, 1);

    // Sync imports the rule made out of band, and an out-of-band change
    // of the health check is drift.
    elb(&moto)
        .await
        .modify_target_group()
        .target_group_arn(&tg_arn)
        .health_check_path("/elsewhere")
        .send()
        .await
        .unwrap();
    one::<serde_json::Value>(&c, "SELECT infra.sync()").await;
    let priorities: Vec<i32> = c
        .query("SELECT priority FROM aws.lb_listener_rule ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(priorities, [20, 30], "the out-of-band rule is imported");
    // adopt, the default policy: the row follows.
    assert_eq!(
        drift(&c, "aws.lb_target_group").await,
        ["changed health_check_path adopted"]
    );
    let path: String = one(&c, "SELECT health_check_path FROM aws.lb_target_group").await;
    assert_eq!(path, "/elsewhere");

    // Teardown in one commit: rule, listeners, targets, target group, load
    // balancer (the target group only goes once no listener uses it).
    c.batch_execute(
        "BEGIN;
         DELETE FROM aws.lb_listener_rule;
         DELETE FROM aws.lb_listener;
         DELETE FROM aws.lb_target;
         DELETE FROM aws.lb_target_group;
         DELETE FROM aws.lb;
         COMMIT;",
    )
    .await
    .unwrap();
    assert!(lb_in_aws(&moto).await.is_none());
    let groups = elb(&moto)
        .await
        .describe_target_groups()
        .send()
        .await
        .unwrap();
    assert!(groups.target_groups().is_empty(), "{groups:?}");
    let left: i64 = one(
        &c,
        "SELECT (SELECT count(*) FROM aws.lb) + (SELECT count(*) FROM aws.lb_subnet)
              + (SELECT count(*) FROM aws.lb_security_group) + (SELECT count(*) FROM aws.lb_target)",
    )
    .await;
    assert_eq!(left, 0);
}
