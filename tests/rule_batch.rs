//! The rules one COMMIT creates on one group share one Authorize call per
//! direction (issue #15), while each rule stays its own journaled step: its
//! own id, its own undo. Calls are counted by the fault proxy between
//! infrasql and moto; what AWS holds is read from moto directly.

mod common;

use common::{one, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::Filter;
use infrasql_fault_proxy::FaultProxy;

/// A VPC and group `g`, then `rules` (SQL rows of (is_egress, port, peer
/// columns)) on it, all in one transaction.
fn commit_sql(rules: &[&str]) -> String {
    let mut sql = String::from(
        "BEGIN;
INSERT INTO aws.vpc (name, cidr_block) VALUES ('v', '10.0.0.0/16');
INSERT INTO aws.security_group (group_name, description, vpc_id) SELECT 'g', 'batch', vpc_id FROM aws.vpc WHERE name = 'v';
",
    );
    for r in rules {
        sql.push_str(&format!(
            "INSERT INTO aws.security_group_rule (group_id, is_egress, ip_protocol, from_port, to_port, cidr_ipv4, referenced_group_id)
  SELECT group_id, {r} FROM aws.security_group WHERE group_name = 'g';
"
        ));
    }
    sql.push_str("COMMIT;");
    sql
}

/// Every non-default rule of group `id` in AWS: (rule id, egress, port).
async fn aws_rules(moto: &Moto, id: &str) -> Vec<(String, bool, i32)> {
    let out = moto
        .ec2()
        .await
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(id).build())
        .send()
        .await
        .unwrap();
    let mut rules: Vec<_> = out
        .security_group_rules()
        .iter()
        .map(|r| {
            (
                r.security_group_rule_id().unwrap().to_owned(),
                r.is_egress().unwrap(),
                r.from_port().unwrap(),
            )
        })
        .collect();
    rules.sort();
    rules
}

#[tokio::test]
async fn the_rules_of_one_group_are_one_authorize_per_direction_and_each_gets_its_id() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    let ingress = [22, 80, 443, 5432, 6379, 8080];
    let egress = [53, 123, 443];
    let mut rows = Vec::new();
    for p in ingress {
        rows.push(format!("false, 'tcp', {p}, {p}, '10.0.0.0/8', NULL"));
    }
    for p in egress {
        rows.push(format!("true, 'udp', {p}, {p}, '0.0.0.0/0', NULL"));
    }
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    c.batch_execute(&commit_sql(&rows)).await.unwrap();

    assert_eq!(proxy.calls("AuthorizeSecurityGroupIngress"), 1);
    assert_eq!(proxy.calls("AuthorizeSecurityGroupEgress"), 1);

    // Every row has its own real id, and it is AWS's rule of that shape.
    let group: String = one(&c, "SELECT group_id FROM aws.security_group").await;
    let in_aws = aws_rules(&moto, &group).await;
    assert_eq!(in_aws.len(), ingress.len() + egress.len(), "{in_aws:?}");
    let in_rows = c
        .query(
            "SELECT security_group_rule_id, is_egress, from_port FROM aws.security_group_rule ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let mut in_rows: Vec<(String, bool, i32)> = in_rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    in_rows.sort();
    assert_eq!(in_rows, in_aws);

    // Each rule is still its own journaled create.
    let steps: i64 = one(
        &c,
        "SELECT count(*) FROM infra.apply_action WHERE table_name = 'aws.security_group_rule' AND status = 'done'",
    )
    .await;
    assert_eq!(steps, (ingress.len() + egress.len()) as i64);
}

#[tokio::test]
async fn a_refused_batch_fails_naming_the_bad_rule_and_undoes_the_others() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    // The fourth rule names a group that does not exist: AWS refuses it.
    let bad = "false, 'tcp', 4, 4, NULL, 'sg-0123456789abcdef0'";
    let good = [
        "false, 'tcp', 1, 1, '10.0.0.0/8', NULL",
        "false, 'tcp', 2, 2, '10.0.0.0/8', NULL",
        "false, 'tcp', 3, 3, '10.0.0.0/8', NULL",
    ];
    let sql = commit_sql(&[good[0], good[1], bad, good[2]]);
    let err = c.batch_execute(&sql).await.unwrap_err();
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert!(
        db.message().contains("aws.security_group_rule")
            && db.message().contains("InvalidGroup.NotFound")
            && db.message().contains("sg-0123456789abcdef0"),
        "{}",
        db.message()
    );
    // The batch, then each rule alone for its own answer.
    assert_eq!(proxy.calls("AuthorizeSecurityGroupIngress"), 5);

    // Undone: no group, no rule left in AWS; no rows.
    let ec2 = moto.ec2().await;
    let groups = ec2.describe_security_groups().send().await.unwrap();
    assert!(
        groups
            .security_groups()
            .iter()
            .all(|g| g.group_name() == Some("default")),
        "{groups:?}"
    );
    assert!(moto.vpcs().await.is_empty());
    let rows: i64 = one(&c, "SELECT count(*) FROM aws.security_group_rule").await;
    assert_eq!(rows, 0);
}
