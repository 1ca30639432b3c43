//! Policies as SQL (`infra.policy`, docs/policies.md) against a real server
//! and moto: a deny refuses the COMMIT before any AWS call, a warn is a
//! NOTICE, an old violation never blocks an unrelated change, and
//! `infra.policy_violation` shows every current violation.

mod common;

use common::{one, sqlstate, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::Filter;
use tokio_postgres::Client;

/// Every ```sql block of docs/policies.md, in order.
fn doc_examples() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/policies.md"))
        .expect("docs/policies.md");
    doc.split("```sql\n")
        .skip(1)
        .map(|b| b[..b.find("```").expect("the block's end")].to_owned())
        .collect()
}

/// A deny policy over VPCs: every VPC has an owner tag.
const VPC_OWNER: &str = "INSERT INTO infra.policy (name, severity, message, query) VALUES \
    ('vpc-owner', 'SEVERITY', 'every VPC needs an owner tag', \
     $$SELECT vpc_id AS resource_id, name FROM aws.vpc WHERE NOT tags ? 'owner';$$)";

fn vpc_owner(severity: &str) -> String {
    VPC_OWNER.replace("SEVERITY", severity)
}

async fn vpc_id(c: &Client, name: &str) -> String {
    one(
        c,
        &format!("SELECT vpc_id FROM aws.vpc WHERE name = '{name}'"),
    )
    .await
}

#[tokio::test]
async fn the_docs_examples_run_and_a_deny_policy_blocks_with_its_rows_shown() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let examples = doc_examples();
    assert_eq!(examples.len(), 6, "five policies and the view's query");
    for sql in &examples {
        c.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    let broken: i64 = one(
        &c,
        "SELECT count(*) FROM infra.policy_violation WHERE error IS NOT NULL",
    )
    .await;
    assert_eq!(broken, 0, "every example's query runs");

    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.0.0.0/16');
         INSERT INTO aws.security_group (name, group_name, description, vpc_id)
           SELECT 'web', 'web', 'web servers', vpc_id FROM aws.vpc WHERE name = 'main';
         COMMIT;",
    )
    .await
    .unwrap();
    let group: String = one(
        &c,
        "SELECT group_id FROM aws.security_group WHERE group_name = 'web'",
    )
    .await;

    // The transaction also deletes every policy: the committed ones judge it.
    let e = c
        .batch_execute(&format!(
            "BEGIN;
             DELETE FROM infra.policy;
             INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4, description)
               VALUES ('{group}', 'tcp', 443, 443, '0.0.0.0/0', 'https'),
                      ('{group}', 'tcp', 22, 22, '0.0.0.0/0', 'ssh');
             COMMIT;"
        ))
        .await
        .expect_err("the SSH rule is denied");
    assert_eq!(sqlstate(&e).as_deref(), Some("IX200"), "{e:?}");
    let db = e.as_db_error().unwrap();
    assert_eq!(
        db.message(),
        "policy \"no-ssh-from-anywhere\" denies this change: no inbound SSH (port 22) from 0.0.0.0/0 or ::/0"
    );
    let detail = db.detail().unwrap_or_default();
    assert!(detail.contains("\"from_port\": 22"), "{detail}");
    assert!(
        !detail.contains("\"from_port\": 443"),
        "only the offending row: {detail}"
    );

    // Nothing reached AWS, and the policies are still there.
    let rules = moto
        .ec2()
        .await
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(&group).build())
        .send()
        .await
        .unwrap();
    assert!(
        rules
            .security_group_rules()
            .iter()
            .all(|r| r.is_egress() == Some(true)),
        "{rules:?}"
    );
    let policies: i64 = one(&c, "SELECT count(*) FROM infra.policy").await;
    assert_eq!(policies, 5);

    // In a dry run the denial is a notice.
    let (d, mut notices) = s.connect_with_notices().await;
    d.batch_execute(&format!(
        "BEGIN;
         SET LOCAL infra.dry_run = on;
         INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4)
           VALUES ('{group}', 'tcp', 22, 22, '0.0.0.0/0');
         COMMIT;"
    ))
    .await
    .unwrap();
    let mut seen = Vec::new();
    while let Ok((_, n)) = notices.try_recv() {
        seen.push(n);
    }
    assert!(
        seen.iter().any(|n| n
            .starts_with("infrasql: dry run: policy \"no-ssh-from-anywhere\" denies this change")),
        "{seen:#?}"
    );
}

#[tokio::test]
async fn a_warn_policy_passes_with_a_notice() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let (c, mut notices) = s.connect_with_notices().await;
    c.batch_execute(&vpc_owner("warn")).await.unwrap();
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('untagged', '10.1.0.0/16')")
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Ok((_, n)) = notices.try_recv() {
        seen.push(n);
    }
    let warning = seen
        .iter()
        .find(|n| {
            n.starts_with("infrasql: policy \"vpc-owner\" warns: every VPC needs an owner tag")
        })
        .unwrap_or_else(|| panic!("{seen:#?}"));
    assert!(warning.contains("\"name\": \"untagged\""), "{warning}");
    let id = vpc_id(&c, "untagged").await;
    assert!(moto.vpcs().await.contains(&id), "{id} exists in AWS");
}

#[tokio::test]
async fn an_old_violation_does_not_block_an_unrelated_commit_and_shows_in_the_view() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('legacy', '10.2.0.0/16')")
        .await
        .unwrap();
    let legacy = vpc_id(&c, "legacy").await;
    c.batch_execute(&vpc_owner("deny")).await.unwrap();

    c.batch_execute(
        "INSERT INTO aws.vpc (name, cidr_block, tags) VALUES ('new', '10.3.0.0/16', '{\"owner\": \"ana\"}')",
    )
    .await
    .expect("an unrelated change commits");
    let new = vpc_id(&c, "new").await;
    assert!(moto.vpcs().await.contains(&new));

    let shown: Vec<(String, String, String)> = c
        .query(
            "SELECT policy, severity, resource_id FROM infra.policy_violation",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        shown,
        vec![("vpc-owner".to_owned(), "deny".to_owned(), legacy.clone())]
    );

    // Touching the old violation without fixing it is refused.
    let e = c
        .batch_execute("UPDATE aws.vpc SET tags = '{\"env\": \"prod\"}' WHERE name = 'legacy'")
        .await
        .expect_err("a change to the offending VPC is judged");
    assert_eq!(sqlstate(&e).as_deref(), Some("IX200"), "{e:?}");
    let detail = e
        .as_db_error()
        .unwrap()
        .detail()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains(&format!("{legacy}: ")), "{detail}");

    // Fixing it commits and empties the view.
    c.batch_execute("UPDATE aws.vpc SET tags = '{\"owner\": \"bo\"}' WHERE name = 'legacy'")
        .await
        .unwrap();
    let left: i64 = one(&c, "SELECT count(*) FROM infra.policy_violation").await;
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_policy_that_cannot_run_refuses_the_commit_and_shows_its_error() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "INSERT INTO infra.policy (name, message, query) VALUES ('no-id', 'forgot the id', 'SELECT 1 AS one')",
    )
    .await
    .unwrap();
    let before = moto.vpcs().await.len();
    let e = c
        .batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('x', '10.4.0.0/16')")
        .await
        .expect_err("fails closed");
    assert_eq!(sqlstate(&e).as_deref(), Some("IX201"), "{e:?}");
    let message = e.as_db_error().unwrap().message().to_owned();
    assert!(
        message.starts_with(
            "policy \"no-id\" could not be checked: column q.resource_id does not exist"
        ),
        "{message}"
    );
    assert_eq!(moto.vpcs().await.len(), before, "nothing was applied");
    let error: String = one(
        &c,
        "SELECT error FROM infra.policy_violation WHERE policy = 'no-id'",
    )
    .await;
    assert!(error.contains("resource_id"), "{error}");
}
