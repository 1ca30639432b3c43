//! Sets of references as join tables: an instance's security groups are
//! rows of aws.instance_security_group (issue #10). What AWS holds is read
//! from moto directly; the calls infrasql made are read from the fault
//! proxy in front of moto.

mod common;

use std::time::{Duration, Instant};

use common::{one, sqlstate, Moto, TestServer};
use infrasql_fault_proxy::FaultProxy;
use tokio_postgres::Client;

/// A VPC, its subnet, groups g1..g4 and an instance `web` in groups g1..g3,
/// all in one transaction.
const STACK: &str = "
BEGIN;
INSERT INTO aws.vpc (name, cidr_block) VALUES ('app', '10.60.0.0/16');
INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'app-a', vpc_id, '10.60.1.0/24' FROM aws.vpc;
INSERT INTO aws.security_group (group_name, description, vpc_id)
  SELECT g, g, vpc_id FROM aws.vpc, unnest(ARRAY['g1', 'g2', 'g3', 'g4']) AS g;
INSERT INTO aws.instance (name, image_id, subnet_id) SELECT 'web', 'ami-760aaa0f', subnet_id FROM aws.subnet;
INSERT INTO aws.instance_security_group (instance_id, group_id)
  SELECT i.instance_id, g.group_id FROM aws.instance i, aws.security_group g
  WHERE g.group_name IN ('g1', 'g2', 'g3');
COMMIT;";

async fn group_id(c: &Client, name: &str) -> String {
    one(
        c,
        &format!("SELECT group_id FROM aws.security_group WHERE group_name = '{name}'"),
    )
    .await
}

async fn instance_id(c: &Client) -> String {
    one(c, "SELECT instance_id FROM aws.instance WHERE name = 'web'").await
}

/// The groups attached in AWS, sorted.
async fn attached(moto: &Moto, instance: &str) -> Vec<String> {
    let out = moto
        .ec2()
        .await
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| i.security_groups())
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// The join rows of the instance, sorted.
async fn rows(c: &Client, instance: &str) -> Vec<String> {
    c.query(
        "SELECT group_id FROM aws.instance_security_group WHERE instance_id = $1 ORDER BY group_id",
        &[&instance],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn three_groups_in_one_transaction_are_one_launch_carrying_all_three_and_never_the_default() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();

    let instance = instance_id(&c).await;
    assert!(instance.starts_with("i-"), "{instance}");
    let mut three = Vec::new();
    for g in ["g1", "g2", "g3"] {
        three.push(group_id(&c, g).await);
    }
    let three = sorted(three);
    assert_eq!(
        rows(&c, &instance).await,
        three,
        "the rows follow the real ids"
    );

    assert_eq!(proxy.calls("RunInstances"), 1, "one launch");
    let launch = proxy
        .log()
        .into_iter()
        .find(|call| call.action == "RunInstances")
        .unwrap();
    let mut named: Vec<String> = launch
        .body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.starts_with("SecurityGroupId."))
        .map(|(_, v)| v.to_owned())
        .collect();
    named.sort();
    assert_eq!(
        named, three,
        "the launch names the three groups and no other"
    );
    assert_eq!(
        proxy.calls("ModifyInstanceAttribute"),
        0,
        "never launched with the default group first"
    );
    assert_eq!(attached(&moto, &instance).await, three);
}

#[tokio::test]
async fn a_group_is_added_and_another_removed_in_place() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();
    let instance = instance_id(&c).await;
    let (g1, g2, g3, g4) = (
        group_id(&c, "g1").await,
        group_id(&c, "g2").await,
        group_id(&c, "g3").await,
        group_id(&c, "g4").await,
    );

    c.batch_execute(&format!(
        "BEGIN;
         INSERT INTO aws.instance_security_group (instance_id, group_id) VALUES ('{instance}', '{g4}');
         DELETE FROM aws.instance_security_group WHERE instance_id = '{instance}' AND group_id = '{g1}';
         COMMIT;"
    ))
    .await
    .unwrap();

    let want = sorted(vec![g2, g3, g4]);
    assert_eq!(attached(&moto, &instance).await, want);
    assert_eq!(rows(&c, &instance).await, want);
    assert_eq!(
        instance_id(&c).await,
        instance,
        "changed in place, not replaced"
    );
    assert_eq!(proxy.calls("RunInstances"), 1);
    assert_eq!(proxy.calls("TerminateInstances"), 0);
    assert_eq!(
        proxy.calls("ModifyInstanceAttribute"),
        1,
        "one call with the whole set"
    );

    // A join row written past infrasql is refused at commit, as for any
    // resource table: AWS would never hear of it.
    let direct = s.connect_direct().await;
    let e = direct
        .batch_execute(&format!(
            "DELETE FROM aws.instance_security_group WHERE instance_id = '{instance}'"
        ))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("IX100"), "{e:?}");
    assert_eq!(rows(&c, &instance).await, want);

    // Deleting the instance takes its rows along: a delete, no update.
    c.batch_execute("DELETE FROM aws.instance WHERE name = 'web'")
        .await
        .unwrap();
    assert_eq!(proxy.calls("ModifyInstanceAttribute"), 1);
    assert_eq!(proxy.calls("TerminateInstances"), 1);
    assert_eq!(
        one::<i64>(&c, "SELECT count(*) FROM aws.instance_security_group").await,
        0
    );
}

#[tokio::test]
async fn a_group_attached_in_the_console_shows_as_an_appeared_membership() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();
    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    let instance = instance_id(&c).await;
    let g4 = group_id(&c, "g4").await;
    let mut groups = attached(&moto, &instance).await;
    groups.push(g4.clone());
    moto.ec2()
        .await
        .modify_instance_attribute()
        .instance_id(&instance)
        .set_groups(Some(groups.clone()))
        .send()
        .await
        .unwrap();

    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    assert_eq!(rows(&c, &instance).await, sorted(groups));
    let drift = c
        .query(
            "SELECT resource_id, kind FROM infra.drift WHERE table_name = 'aws.instance_security_group'",
            &[],
        )
        .await
        .unwrap();
    let drift: Vec<(String, String)> = drift.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        drift,
        vec![(format!("{instance}/{g4}"), "appeared".to_string())]
    );
    assert_eq!(
        one::<i64>(
            &c,
            "SELECT count(*) FROM infra.drift WHERE table_name = 'aws.instance'"
        )
        .await,
        0,
        "the instance itself did not drift"
    );
    // Stable: nothing more on the next round.
    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    assert_eq!(one::<i64>(&c, "SELECT count(*) FROM infra.drift").await, 1);
}

#[tokio::test]
async fn two_transactions_adding_groups_to_one_instance_both_take_effect() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c1 = s.connect().await;
    c1.batch_execute(STACK).await.unwrap();
    let instance = instance_id(&c1).await;
    let g4 = group_id(&c1, "g4").await;
    c1.batch_execute(
        "INSERT INTO aws.security_group (group_name, description, vpc_id) SELECT 'g5', 'g5', vpc_id FROM aws.vpc",
    )
    .await
    .unwrap();
    let g5 = group_id(&c1, "g5").await;
    let before = attached(&moto, &instance).await;

    c1.batch_execute(&format!(
        "BEGIN; INSERT INTO aws.instance_security_group (instance_id, group_id) VALUES ('{instance}', '{g4}');"
    ))
    .await
    .unwrap();
    let c2 = s.connect().await;
    c2.batch_execute("BEGIN").await.unwrap();
    let second = {
        let sql = format!(
            "INSERT INTO aws.instance_security_group (instance_id, group_id) VALUES ('{instance}', '{g5}')"
        );
        tokio::spawn(async move {
            c2.batch_execute(&sql).await.unwrap();
            c2
        })
    };
    // T2 waits for T1's lock on the instance row.
    let watch = s.connect().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = one(
            &watch,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE 'INSERT INTO aws.instance_security_group%'",
        )
        .await;
        if waiting == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the second INSERT never waited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !second.is_finished(),
        "the second INSERT waits for the first transaction"
    );
    c1.batch_execute("COMMIT").await.unwrap();
    let c2 = second.await.unwrap();
    c2.batch_execute("COMMIT").await.unwrap();

    let mut want = before;
    want.extend([g4, g5]);
    let want = sorted(want);
    assert_eq!(
        attached(&moto, &instance).await,
        want,
        "neither change is lost"
    );
    assert_eq!(rows(&c1, &instance).await, want);
}

#[tokio::test]
async fn under_revert_a_group_attached_in_the_console_is_detached_again() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute(STACK).await.unwrap();
    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    c.batch_execute(
        "INSERT INTO infra.drift_policy (table_name, policy) VALUES ('aws.instance', 'revert')",
    )
    .await
    .unwrap();
    let instance = instance_id(&c).await;
    let three = attached(&moto, &instance).await;
    let mut four = three.clone();
    four.push(group_id(&c, "g4").await);
    moto.ec2()
        .await
        .modify_instance_attribute()
        .instance_id(&instance)
        .set_groups(Some(four))
        .send()
        .await
        .unwrap();

    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    assert_eq!(
        attached(&moto, &instance).await,
        three,
        "the set is put back"
    );
    assert_eq!(rows(&c, &instance).await, three);
    let resolution: String = one(
        &c,
        "SELECT resolution FROM infra.drift WHERE table_name = 'aws.instance_security_group'",
    )
    .await;
    assert_eq!(resolution, "reverted");
}
