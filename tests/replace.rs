//! Replaces, decided before any AWS call: a parent still in use is not
//! replaced, a unique name is freed by deleting first, data is not
//! destroyed unasked. Checked in AWS (moto) directly, not only in rows.

mod common;

use common::{one, sqlstate, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::Filter;
use tokio_postgres::{AsyncMessage, Client};

const KEY_1: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPa5WUklk0QCbtMNcRPEdf757zXYBXBgRkMiiJGaCUw2";
const KEY_2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC3lH+cEOSZq0IPnhvFPLF+UzVk0T9UH68YvnF4xFvaQ00ctg8oK1TLVhEbHe9kNDSQ8UH7s1rxPJaqiFldCg/aeTu0V9PWscwUBZ+BGxJMp8DDG7qnh62pTOg/ZQQ/uqDyEHBk5Z/9LWRzq+EgjLAe6DwVm4OFGXG4XRNoKszMxh6D4BrJysx7inZKjhBV03x961G1s25YrzvU+i4zInSDVprgDv8i6r9ZmvZjC28pmLSTrVizN16uKJmAbHF7R9sslMvi3uO1FcGZCI5teccoYU3SXSBZmIH6ORvo8lb6J7JAlFOreyrJyXTpepgtisvV4oYuYjAQ46mB655ohWx5";

fn vpc_filter(id: &str) -> Filter {
    Filter::builder().name("vpc-id").values(id).build()
}

/// (VPC id, CIDR) of every non-default VPC in AWS.
async fn aws_vpcs(moto: &Moto) -> Vec<(String, String)> {
    let out = moto.ec2().await.describe_vpcs().send().await.unwrap();
    out.vpcs()
        .iter()
        .filter(|v| v.is_default() != Some(true))
        .map(|v| {
            (
                v.vpc_id().unwrap().to_owned(),
                v.cidr_block().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn connect_with_notices(
    s: &TestServer,
) -> (Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (client, mut conn) = tokio_postgres::connect(&s.conn_string(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = stream.next().await {
            if let AsyncMessage::Notice(n) = m {
                let _ = tx.send(n.message().to_owned());
            }
        }
    });
    (client, rx)
}

#[tokio::test]
async fn a_vpc_whose_subnets_stay_is_not_replaced_and_aws_is_left_alone() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.0.0.0/16');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'a', vpc_id, '10.0.1.0/24' FROM aws.vpc;
         COMMIT;",
    )
    .await
    .unwrap();
    let vpc_id: String = one(&c, "select vpc_id from aws.vpc").await;
    let subnet_id: String = one(&c, "select subnet_id from aws.subnet").await;
    let applies: i64 = one(&c, "select count(*) from infra.apply").await;

    let err = c
        .batch_execute("UPDATE aws.vpc SET cidr_block = '10.9.0.0/16'")
        .await
        .unwrap_err();
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(db.code().code(), "2BP01", "{}", db.message());
    assert!(
        db.message()
            .contains(&format!("cannot replace VPC \"main\" (aws.vpc {vpc_id})")),
        "{}",
        db.message()
    );
    let detail = db.detail().unwrap();
    assert!(
        detail.contains(&format!("aws.subnet \"a\" ({subnet_id})"))
            && detail.contains("A change of cidr_block replaces the VPC"),
        "{detail}"
    );
    assert!(db.hint().unwrap().contains("Delete those rows"), "{db:?}");

    // Refused at plan time: AWS is as it was, no apply was journaled, and
    // the row kept its value.
    assert_eq!(
        aws_vpcs(&moto).await,
        vec![(vpc_id.clone(), "10.0.0.0/16".to_owned())]
    );
    assert_eq!(
        one::<i64>(&c, "select count(*) from infra.apply").await,
        applies
    );
    assert_eq!(
        one::<String>(&c, "select cidr_block::text from aws.vpc").await,
        "10.0.0.0/16"
    );

    // What the hint says works: the subnet moves with the VPC when it is
    // deleted and inserted again in the same transaction.
    c.batch_execute(
        "BEGIN;
         UPDATE aws.vpc SET cidr_block = '10.9.0.0/16';
         DELETE FROM aws.subnet;
         INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'a', vpc_id, '10.9.1.0/24' FROM aws.vpc;
         COMMIT;",
    )
    .await
    .unwrap();
    let new_vpc: String = one(&c, "select vpc_id from aws.vpc").await;
    assert_ne!(new_vpc, vpc_id);
    assert_eq!(
        aws_vpcs(&moto).await,
        vec![(new_vpc.clone(), "10.9.0.0/16".to_owned())]
    );
    let subnets = moto
        .ec2()
        .await
        .describe_subnets()
        .filters(vpc_filter(&new_vpc))
        .send()
        .await
        .unwrap();
    assert_eq!(subnets.subnets().len(), 1);

    // Or the subnet is replaced with it: it stays in "its" VPC by the row
    // (so it deletes first), and its new range lies in the new VPC.
    c.batch_execute(
        "BEGIN;
         UPDATE aws.vpc SET cidr_block = '10.8.0.0/16';
         UPDATE aws.subnet SET cidr_block = '10.8.1.0/24';
         COMMIT;",
    )
    .await
    .unwrap();
    let third: String = one(&c, "select vpc_id from aws.vpc").await;
    assert_eq!(
        aws_vpcs(&moto).await,
        vec![(third.clone(), "10.8.0.0/16".to_owned())]
    );
    let subnets = moto
        .ec2()
        .await
        .describe_subnets()
        .filters(vpc_filter(&third))
        .send()
        .await
        .unwrap();
    let cidrs: Vec<_> = subnets
        .subnets()
        .iter()
        .map(|s| s.cidr_block().unwrap())
        .collect();
    assert_eq!(cidrs, vec!["10.8.1.0/24"]);
    assert_eq!(
        one::<String>(&c, "select vpc_id from aws.subnet").await,
        third
    );
}

#[tokio::test]
async fn a_replace_that_keeps_a_unique_name_deletes_first_and_the_plan_says_so() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let (c, mut notices) = connect_with_notices(&s).await;
    c.batch_execute(&format!(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.0.0.0/16');
         INSERT INTO aws.security_group (name, group_name, description, vpc_id)
           SELECT 'web', 'web', 'old words', vpc_id FROM aws.vpc;
         INSERT INTO aws.key_pair (key_name, public_key_material) VALUES ('deploy', '{KEY_1}');
         COMMIT;"
    ))
    .await
    .unwrap();
    let vpc_id: String = one(&c, "select vpc_id from aws.vpc").await;
    let group_id: String = one(&c, "select group_id from aws.security_group").await;
    let key_id: String = one(&c, "select key_pair_id from aws.key_pair").await;

    // The plan, as rows: the old group goes first, then the new one comes.
    c.batch_execute("BEGIN; UPDATE aws.security_group SET description = 'new words'")
        .await
        .unwrap();
    let plan: Vec<(String, Vec<i32>)> = c
        .query(
            "select action, depends_on from infra.plan order by step",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        plan,
        vec![
            ("replace (delete old first)".to_owned(), vec![]),
            ("replace (create new)".to_owned(), vec![1]),
        ]
    );
    while notices.try_recv().is_ok() {}
    c.batch_execute("COMMIT").await.unwrap();
    let mut lines = Vec::new();
    while let Ok(l) = notices.try_recv() {
        lines.push(l);
    }
    let started: Vec<&String> = lines.iter().filter(|l| l.contains("started")).collect();
    assert!(
        started.len() == 2
            && started[0].contains("- replace (delete old first) aws.security_group")
            && started[1].contains("+ replace (create new) aws.security_group"),
        "{lines:#?}"
    );

    let new_group: String = one(&c, "select group_id from aws.security_group").await;
    assert_ne!(new_group, group_id);
    let groups = moto
        .ec2()
        .await
        .describe_security_groups()
        .filters(vpc_filter(&vpc_id))
        .send()
        .await
        .unwrap();
    let web: Vec<_> = groups
        .security_groups()
        .iter()
        .filter(|g| g.group_name() == Some("web"))
        .map(|g| (g.group_id().unwrap(), g.description().unwrap()))
        .collect();
    assert_eq!(web, vec![(new_group.as_str(), "new words")]);

    // A key pair with a new key under the same name: deleted first too.
    c.batch_execute(&format!(
        "UPDATE aws.key_pair SET public_key_material = '{KEY_2}'"
    ))
    .await
    .unwrap();
    let new_key: String = one(&c, "select key_pair_id from aws.key_pair").await;
    assert_ne!(new_key, key_id);
    let keys = moto.ec2().await.describe_key_pairs().send().await.unwrap();
    let ids: Vec<_> = keys
        .key_pairs()
        .iter()
        .filter(|k| k.key_name() == Some("deploy"))
        .map(|k| k.key_pair_id().unwrap())
        .collect();
    assert_eq!(ids, vec![new_key.as_str()]);
}

#[tokio::test]
async fn a_failed_create_after_a_delete_first_puts_the_old_resource_back() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(&format!(
        "INSERT INTO aws.key_pair (key_name, public_key_material) VALUES ('deploy', '{KEY_1}')"
    ))
    .await
    .unwrap();
    let fingerprint: String = one(&c, "select key_fingerprint from aws.key_pair").await;

    // AWS refuses the new key's format, after the old key was deleted.
    let err = c
        .batch_execute("UPDATE aws.key_pair SET public_key_material = 'ssh-ed25519 AAAAnot-a-key'")
        .await
        .unwrap_err();
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(db.code().code(), "22023", "{}", db.message());
    let detail = db.detail().unwrap();
    assert!(
        detail.contains("created aws.key_pair") && detail.contains("again from its old values"),
        "{detail}"
    );

    // The key is back in AWS under its name, with its old key material.
    let keys = moto.ec2().await.describe_key_pairs().send().await.unwrap();
    let deploy: Vec<_> = keys
        .key_pairs()
        .iter()
        .filter(|k| k.key_name() == Some("deploy"))
        .map(|k| {
            (
                k.key_pair_id().unwrap().to_owned(),
                k.key_fingerprint().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(deploy.len(), 1);
    assert_eq!(deploy[0].1, fingerprint);
    // Under a new id, which sync adopts: the first round removes the row of
    // the old id (a row of the new one would repeat its key_name), the
    // second inserts the new one.
    c.batch_execute("SELECT infra.sync()").await.unwrap();
    c.batch_execute("SELECT infra.sync()").await.unwrap();
    let row: Vec<(String, String)> = c
        .query(
            "select key_pair_id, key_fingerprint from aws.key_pair where key_name = 'deploy'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(row, deploy);
}

/// (id, image) of every instance not terminated.
async fn live_instances(moto: &Moto) -> Vec<(String, String)> {
    let out = moto.ec2().await.describe_instances().send().await.unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
        .map(|i| {
            (
                i.instance_id().unwrap().to_owned(),
                i.image_id().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn replacing_an_instance_needs_the_setting_and_deleting_it_does_not() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.instance (name, image_id) VALUES ('web', 'ami-760aaa0f')")
        .await
        .unwrap();
    let id: String = one(&c, "select instance_id from aws.instance").await;

    let err = c
        .batch_execute("UPDATE aws.instance SET image_id = 'ami-785db401'")
        .await
        .unwrap_err();
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(db.code().code(), "55000", "{}", db.message());
    assert!(
        db.message().contains(&format!(
            "replacing instance \"web\" (aws.instance {id}) would destroy the data on its root volume"
        )),
        "{}",
        db.message()
    );
    assert!(
        db.hint().unwrap().contains("SET infra.allow_replace = on"),
        "{db:?}"
    );
    assert_eq!(
        live_instances(&moto).await,
        vec![(id.clone(), "ami-760aaa0f".to_owned())],
        "untouched"
    );

    // A value the setting cannot take is an error, never "off".
    let err = c
        .batch_execute(
            "BEGIN; SELECT set_config('infra.allow_replace', 'maybe', true);
             UPDATE aws.instance SET image_id = 'ami-785db401'; COMMIT;",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("22023"), "{err:?}");

    // Opting in replaces it.
    c.batch_execute(
        "BEGIN; SET LOCAL infra.allow_replace = on;
         UPDATE aws.instance SET image_id = 'ami-785db401'; COMMIT;",
    )
    .await
    .unwrap();
    let new_id: String = one(&c, "select instance_id from aws.instance").await;
    assert_ne!(new_id, id);
    assert_eq!(
        live_instances(&moto).await,
        vec![(new_id, "ami-785db401".to_owned())]
    );

    // A DELETE says what it means.
    c.batch_execute("DELETE FROM aws.instance").await.unwrap();
    assert!(live_instances(&moto).await.is_empty());
}

#[tokio::test]
async fn a_rule_port_change_is_made_in_place() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('main', '10.0.0.0/16');
         INSERT INTO aws.security_group (name, group_name, vpc_id) SELECT 'web', 'web', vpc_id FROM aws.vpc;
         INSERT INTO aws.security_group_rule (group_id, ip_protocol, from_port, to_port, cidr_ipv4)
           SELECT group_id, 'tcp', 80, 80, '0.0.0.0/0' FROM aws.security_group;
         COMMIT;",
    )
    .await
    .unwrap();
    let rule: String = one(
        &c,
        "select security_group_rule_id from aws.security_group_rule",
    )
    .await;
    c.batch_execute(
        "UPDATE aws.security_group_rule SET from_port = 8080, to_port = 8081, cidr_ipv4 = '10.0.0.0/8'",
    )
    .await
    .unwrap();
    assert_eq!(
        one::<String>(
            &c,
            "select security_group_rule_id from aws.security_group_rule"
        )
        .await,
        rule,
        "the same rule"
    );
    let out = moto
        .ec2()
        .await
        .describe_security_group_rules()
        .security_group_rule_ids(&rule)
        .send()
        .await
        .unwrap();
    let r = &out.security_group_rules()[0];
    assert_eq!((r.from_port(), r.to_port()), (Some(8080), Some(8081)));
    assert_eq!(r.cidr_ipv4(), Some("10.0.0.0/8"));
}
