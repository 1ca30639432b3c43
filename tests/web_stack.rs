//! A web application's whole stack, deployed in one transaction and torn
//! down in a second one (issue #13): network, security groups, a role and
//! instance profile, two instances behind an application load balancer, a
//! versioned bucket with a policy, and a hosted zone with an alias record to
//! the load balancer. The deploy runs through `psql -1 -f`, as a migration
//! would. Everything is checked in moto with the raw SDK clients, and after
//! the teardown nothing infrasql made is left there.

mod common;

use common::{one, stdout, write_file, Moto, TestServer};

const BUCKET: &str = "infrasql-web-stack-assets";

fn deploy_sql() -> String {
    format!(
        r#"
INSERT INTO aws.vpc (name, cidr_block) VALUES ('web', '10.90.0.0/16');
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'web-a', vpc_id, '10.90.1.0/24', 'us-east-1a' FROM aws.vpc WHERE name = 'web';
INSERT INTO aws.subnet (name, vpc_id, cidr_block, availability_zone)
  SELECT 'web-b', vpc_id, '10.90.2.0/24', 'us-east-1b' FROM aws.vpc WHERE name = 'web';
INSERT INTO aws.internet_gateway (name, vpc_id) SELECT 'web', vpc_id FROM aws.vpc WHERE name = 'web';
INSERT INTO aws.route_table (name, vpc_id) SELECT 'web-public', vpc_id FROM aws.vpc WHERE name = 'web';
INSERT INTO aws.route (route_table_id, destination_cidr_block, gateway_id)
  SELECT route_table_id, '0.0.0.0/0', (SELECT internet_gateway_id FROM aws.internet_gateway WHERE name = 'web')
  FROM aws.route_table WHERE name = 'web-public';
INSERT INTO aws.route_table_association (route_table_id, subnet_id)
  SELECT (SELECT route_table_id FROM aws.route_table WHERE name = 'web-public'), subnet_id
  FROM aws.subnet WHERE name IN ('web-a', 'web-b');
INSERT INTO aws.security_group (group_name, description, vpc_id)
  SELECT g, g || ' traffic', vpc_id FROM aws.vpc, (VALUES ('web-lb'), ('web-app')) AS v(g) WHERE name = 'web';
INSERT INTO aws.security_group_rule (group_id, is_egress, ip_protocol, from_port, to_port, cidr_ipv4)
  SELECT group_id, false, 'tcp', 80, 80, '0.0.0.0/0' FROM aws.security_group WHERE group_name = 'web-lb';
INSERT INTO aws.security_group_rule (group_id, is_egress, ip_protocol, from_port, to_port, referenced_group_id)
  SELECT group_id, false, 'tcp', 80, 80, (SELECT group_id FROM aws.security_group WHERE group_name = 'web-lb')
  FROM aws.security_group WHERE group_name = 'web-app';
INSERT INTO aws.iam_role (role_name, assume_role_policy)
  VALUES ('web-app', '{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow",
    "Principal": {{"Service": "ec2.amazonaws.com"}}, "Action": "sts:AssumeRole"}}}}');
INSERT INTO aws.iam_instance_profile (instance_profile_name, role_name) VALUES ('web-app', 'web-app');
INSERT INTO aws.instance (name, image_id, instance_type, subnet_id, iam_instance_profile)
  SELECT 'web-' || right(name, 1), 'ami-760aaa0f', 't3.micro', subnet_id, 'web-app'
  FROM aws.subnet WHERE name IN ('web-a', 'web-b');
INSERT INTO aws.instance_security_group (instance_id, group_id)
  SELECT instance_id, (SELECT group_id FROM aws.security_group WHERE group_name = 'web-app')
  FROM aws.instance WHERE name IN ('web-a', 'web-b');
INSERT INTO aws.lb_target_group (name, protocol, port, vpc_id, health_check_path)
  SELECT 'web', 'HTTP', 80, vpc_id, '/health' FROM aws.vpc WHERE name = 'web';
INSERT INTO aws.lb_target (target_group_arn, instance_id, port)
  SELECT (SELECT target_group_arn FROM aws.lb_target_group WHERE name = 'web'), instance_id, 80
  FROM aws.instance WHERE name IN ('web-a', 'web-b');
INSERT INTO aws.lb (name, type, scheme) VALUES ('web', 'application', 'internet-facing');
INSERT INTO aws.lb_subnet (lb_arn, subnet_id)
  SELECT (SELECT lb_arn FROM aws.lb WHERE name = 'web'), subnet_id FROM aws.subnet WHERE name IN ('web-a', 'web-b');
INSERT INTO aws.lb_security_group (lb_arn, group_id)
  SELECT (SELECT lb_arn FROM aws.lb WHERE name = 'web'), group_id FROM aws.security_group WHERE group_name = 'web-lb';
INSERT INTO aws.lb_listener (lb_arn, port, protocol, default_target_group_arn)
  SELECT lb_arn, 80, 'HTTP', (SELECT target_group_arn FROM aws.lb_target_group WHERE name = 'web')
  FROM aws.lb WHERE name = 'web';
INSERT INTO aws.s3_bucket (bucket, versioning, policy)
  VALUES ('{BUCKET}', 'Enabled', '{{"Version": "2012-10-17", "Statement": [{{"Sid": "TlsOnly", "Effect": "Deny",
    "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::{BUCKET}/*",
    "Condition": {{"Bool": {{"aws:SecureTransport": "false"}}}}}}]}}');
INSERT INTO aws.route53_zone (name) VALUES ('web.example.test');
INSERT INTO aws.route53_record (hosted_zone_id, name, type, alias_lb_arn)
  SELECT hosted_zone_id, 'www.web.example.test', 'A', (SELECT lb_arn FROM aws.lb WHERE name = 'web')
  FROM aws.route53_zone WHERE name = 'web.example.test.';
"#
    )
}

/// The whole stack in one transaction (24 resources: more than
/// `infra.max_deletes`, hence the explicit allowance). The order of the
/// statements does not matter to the plan, which deletes children first.
const TEARDOWN: &str = "
BEGIN;
SET LOCAL infra.allow_mass_delete = on;
DELETE FROM aws.route53_record;
DELETE FROM aws.route53_zone;
DELETE FROM aws.s3_bucket;
DELETE FROM aws.lb_listener;
DELETE FROM aws.lb_target;
DELETE FROM aws.lb;
DELETE FROM aws.lb_target_group;
DELETE FROM aws.instance WHERE name IN ('web-a', 'web-b');
DELETE FROM aws.iam_instance_profile;
DELETE FROM aws.iam_role;
DELETE FROM aws.route_table_association WHERE route_table_id IN (SELECT route_table_id FROM aws.route_table WHERE name = 'web-public');
DELETE FROM aws.route WHERE route_table_id IN (SELECT route_table_id FROM aws.route_table WHERE name = 'web-public');
DELETE FROM aws.route_table WHERE name = 'web-public';
DELETE FROM aws.security_group_rule WHERE group_id IN (SELECT group_id FROM aws.security_group WHERE group_name IN ('web-lb', 'web-app'));
DELETE FROM aws.security_group WHERE group_name IN ('web-lb', 'web-app');
DELETE FROM aws.internet_gateway WHERE name = 'web';
DELETE FROM aws.subnet WHERE name IN ('web-a', 'web-b');
DELETE FROM aws.vpc WHERE name = 'web';
COMMIT;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_stack_deploys_in_one_transaction_and_tears_down_in_another() {
    let moto = Moto::start();
    let server = TestServer::start_on(&moto, &[]);
    let dir = common::temp_dir();
    let file = write_file(dir.path(), "deploy.sql", &deploy_sql());
    let out = server.psql(&["-v", "ON_ERROR_STOP=1", "-1", "-f", &file]);
    assert!(
        out.status.success(),
        "deploy failed: {}\n{}",
        stdout(&out),
        common::stderr(&out)
    );
    let c = server.connect().await;

    // The network and the instances.
    let ec2 = moto.ec2().await;
    let vpc: String = one(&c, "SELECT vpc_id FROM aws.vpc WHERE name = 'web'").await;
    assert!(vpc.starts_with("vpc-"), "{vpc}");
    let instances = ec2
        .describe_instances()
        .filters(
            infrasql_aws::aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let running: Vec<_> = instances
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
        .collect();
    assert_eq!(running.len(), 2, "two instances in the VPC");
    for i in &running {
        let profile = i.iam_instance_profile().and_then(|p| p.arn()).unwrap_or("");
        assert!(
            profile.ends_with("instance-profile/web-app"),
            "instance {:?} has profile {profile:?}",
            i.instance_id()
        );
    }

    // The role and its instance profile.
    let iam = moto.iam().await;
    let profile = iam
        .get_instance_profile()
        .instance_profile_name("web-app")
        .send()
        .await
        .unwrap();
    let roles: Vec<_> = profile
        .instance_profile()
        .map(|p| p.roles().iter().map(|r| r.role_name().to_owned()).collect())
        .unwrap_or_default();
    assert_eq!(roles, vec!["web-app".to_owned()]);

    // The load balancer, its listener, the target group and both targets.
    let elb = moto.elb().await;
    let lb_arn: String = one(&c, "SELECT lb_arn FROM aws.lb WHERE name = 'web'").await;
    let lbs = elb
        .describe_load_balancers()
        .load_balancer_arns(&lb_arn)
        .send()
        .await
        .unwrap();
    let lb = &lbs.load_balancers()[0];
    assert_eq!(
        lb.availability_zones().len(),
        2,
        "the ALB spans both subnets"
    );
    let dns_name = lb.dns_name().unwrap().to_owned();
    let tg_arn: String = one(
        &c,
        "SELECT target_group_arn FROM aws.lb_target_group WHERE name = 'web'",
    )
    .await;
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    let forward = listeners.listeners()[0].default_actions()[0]
        .target_group_arn()
        .unwrap_or("");
    assert_eq!(forward, tg_arn, "the listener forwards to the target group");
    let health = elb
        .describe_target_health()
        .target_group_arn(&tg_arn)
        .send()
        .await
        .unwrap();
    let mut targets: Vec<String> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|t| t.target().and_then(|t| t.id()).map(str::to_owned))
        .collect();
    targets.sort();
    let mut want: Vec<String> = running
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();
    want.sort();
    assert_eq!(targets, want, "both instances are targets");

    // The bucket: versioned, with its policy.
    let s3 = moto.s3().await;
    assert_eq!(moto.s3_versioning(BUCKET).as_deref(), Some("Enabled"));
    let policy = s3.get_bucket_policy().bucket(BUCKET).send().await.unwrap();
    assert!(
        policy.policy().unwrap_or("").contains("TlsOnly"),
        "{:?}",
        policy.policy()
    );

    // The zone and the alias record to the load balancer.
    let r53 = moto.route53().await;
    let zone: String = one(&c, "SELECT hosted_zone_id FROM aws.route53_zone").await;
    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    let www = sets
        .resource_record_sets()
        .iter()
        .find(|r| r.name() == "www.web.example.test.")
        .expect("the www record exists");
    let alias = www.alias_target().expect("an alias record");
    assert_eq!(
        alias.dns_name().trim_end_matches('.'),
        dns_name.trim_end_matches('.'),
        "the alias points at the load balancer"
    );

    // Nothing is drift right after the deploy.
    c.batch_execute("SELECT infra.sync()").await.unwrap();
    let drift: i64 = one(&c, "SELECT count(*) FROM infra.drift").await;
    assert_eq!(drift, 0, "no drift after deploying the stack");

    // Teardown in a second transaction; nothing is left.
    c.batch_execute(TEARDOWN).await.unwrap();
    assert!(moto.vpcs().await.is_empty(), "no VPC left");
    let left = ec2.describe_instances().send().await.unwrap();
    assert!(
        left.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .all(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) == Some("terminated")),
        "every instance terminated"
    );
    assert!(elb
        .describe_load_balancers()
        .send()
        .await
        .unwrap()
        .load_balancers()
        .is_empty());
    assert!(elb
        .describe_target_groups()
        .send()
        .await
        .unwrap()
        .target_groups()
        .is_empty());
    assert!(s3.list_buckets().send().await.unwrap().buckets().is_empty());
    assert!(iam.list_roles().send().await.unwrap().roles().is_empty());
    assert!(iam
        .list_instance_profiles()
        .send()
        .await
        .unwrap()
        .instance_profiles()
        .is_empty());
    assert!(r53
        .list_hosted_zones()
        .send()
        .await
        .unwrap()
        .hosted_zones()
        .is_empty());
}
