//! A steady sync round writes only what changed (issue #15): rows equal to
//! AWS keep their tuple (xmin) and synced_at, while the round's confirmed
//! time (`infra.sync_status.confirmed_at`, `infra.resource_confirmed`)
//! moves; a failed round does not move it.

mod common;

use std::collections::BTreeMap;

use common::{one, Moto, TestServer};
use infrasql_aws::aws_sdk_ec2::types::Tag;
use infrasql_fault_proxy::{Effect, Fault, FaultProxy};
use tokio_postgres::Client;

async fn sync(c: &Client) -> serde_json::Value {
    one(c, "select infra.sync()").await
}

/// Every resource row, by (table, row key) → (xmin, synced_at), as text.
async fn versions(c: &Client) -> BTreeMap<(String, i64), (String, Option<String>)> {
    let tables: Vec<String> = c
        .query("select table_name from infra.resource_type order by 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        for r in c
            .query(
                &format!("select id, xmin::text, synced_at::text from {t}"),
                &[],
            )
            .await
            .unwrap()
        {
            out.insert((t.clone(), r.get(0)), (r.get(1), r.get(2)));
        }
    }
    out
}

/// Each (table, region)'s confirmed time, as text.
async fn confirmed(c: &Client) -> BTreeMap<(String, String), Option<String>> {
    c.query(
        "select table_name, region, confirmed_at::text from infra.sync_status",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| ((r.get(0), r.get(1)), r.get(2)))
    .collect()
}

/// Rows whose view time is not their pair's round time.
async fn off_round(c: &Client) -> Vec<String> {
    c.query(
        "select r.table_name || ' ' || r.resource_id || ': ' || coalesce(r.confirmed_at::text, 'null') \
           || ' vs ' || coalesce(s.confirmed_at::text, 'null') \
         from infra.resource_confirmed r left join infra.sync_status s using (table_name, region) \
         where r.confirmed_at is distinct from s.confirmed_at",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn vpcs_in_moto(moto: &Moto, n: usize) -> Vec<String> {
    let ec2 = moto.ec2().await;
    let mut ids = Vec::new();
    for i in 0..n {
        let v = ec2
            .create_vpc()
            .cidr_block(format!("10.{}.0.0/16", 60 + i))
            .send()
            .await
            .unwrap();
        ids.push(v.vpc().unwrap().vpc_id().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn a_steady_round_writes_no_row_and_confirms_every_row() {
    let moto = Moto::start();
    vpcs_in_moto(&moto, 3).await;
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    sync(&c).await; // the import
    let before = versions(&c).await;
    assert!(before.len() >= 10, "{before:?}");
    let round1 = confirmed(&c).await;
    assert!(round1.values().all(Option::is_some), "{round1:?}");

    let summary = sync(&c).await;
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    let after = versions(&c).await;
    let written: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k:?}: {v:?} -> {:?}", after.get(k)))
        .collect();
    assert!(written.is_empty(), "a steady round wrote: {written:#?}");
    assert_eq!(before.len(), after.len());

    // Every pair's round time moved, and every row reports it.
    let round2 = confirmed(&c).await;
    assert_eq!(round1.len(), round2.len());
    for (pair, t) in &round2 {
        assert!(t > &round1[pair], "{pair:?}: {:?} -> {t:?}", round1[pair]);
    }
    assert_eq!(off_round(&c).await, Vec::<String>::new());
    let viewed: i64 = one(&c, "select count(*) from infra.resource_confirmed").await;
    assert_eq!(viewed as usize, after.len());
    assert_eq!(
        one::<i64>(&c, "select count(*) from infra.drift").await,
        0,
        "nothing drifted"
    );
}

#[tokio::test]
async fn a_resource_changed_in_aws_is_written_and_the_others_are_not() {
    let moto = Moto::start();
    let ids = vpcs_in_moto(&moto, 3).await;
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    // The import, then rounds that keep every row: from the third on, a
    // row kept before is not read again unless it or its resource changed
    // (`sync::known`), which is what this change must get through.
    for _ in 0..3 {
        sync(&c).await;
    }
    let before = versions(&c).await;
    moto.ec2()
        .await
        .create_tags()
        .resources(&ids[1])
        .tags(Tag::builder().key("owner").value("console").build())
        .send()
        .await
        .unwrap();

    sync(&c).await;
    let after = versions(&c).await;
    let changed: i64 = one(
        &c,
        &format!("select id from aws.vpc where vpc_id = '{}'", ids[1]),
    )
    .await;
    let written: Vec<&(String, i64)> = before
        .keys()
        .filter(|k| after.get(*k) != before.get(*k))
        .collect();
    assert_eq!(written, vec![&("aws.vpc".to_owned(), changed)]);
    // Written by this round: its synced_at is the round's time, as its
    // confirmed time is.
    let (synced, round): (String, String) = {
        let r = c
            .query_one(
                &format!(
                    "select v.synced_at::text, s.confirmed_at::text from aws.vpc v \
                     join infra.sync_status s on s.table_name = 'aws.vpc' and s.region = v.region \
                     where v.vpc_id = '{}'",
                    ids[1]
                ),
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(synced, round);
    assert_eq!(off_round(&c).await, Vec::<String>::new());
    let tags: serde_json::Value = one(
        &c,
        &format!("select tags from aws.vpc where vpc_id = '{}'", ids[1]),
    )
    .await;
    assert_eq!(tags, serde_json::json!({"owner": "console"}));

    // Kept from here on; a second change to it is seen as the first was.
    sync(&c).await;
    moto.ec2()
        .await
        .create_tags()
        .resources(&ids[1])
        .tags(Tag::builder().key("team").value("db").build())
        .send()
        .await
        .unwrap();
    sync(&c).await;
    let tags: serde_json::Value = one(
        &c,
        &format!("select tags from aws.vpc where vpc_id = '{}'", ids[1]),
    )
    .await;
    assert_eq!(tags, serde_json::json!({"owner": "console", "team": "db"}));
}

#[tokio::test]
async fn a_failed_round_leaves_the_confirmed_time_where_it_was() {
    let moto = Moto::start();
    vpcs_in_moto(&moto, 2).await;
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    sync(&c).await;
    let round1 = confirmed(&c).await;
    let vpc_pair = ("aws.vpc".to_owned(), "us-east-1".to_owned());
    let view =
        "select string_agg(resource_id || '=' || confirmed_at::text, ',' order by resource_id) \
                from infra.resource_confirmed where table_name = 'aws.vpc'";
    let vpcs_before: String = one(&c, view).await;

    proxy.arm(Fault::on("DescribeVpcs").with(Effect::Status500));
    let summary = sync(&c).await;
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary}");
    assert_eq!(errors[0]["table"], "aws.vpc");
    let round2 = confirmed(&c).await;
    assert_eq!(round2[&vpc_pair], round1[&vpc_pair], "the failed pair");
    assert_eq!(one::<String>(&c, view).await, vpcs_before);
    // The pairs that succeeded moved on.
    let subnets = ("aws.subnet".to_owned(), "us-east-1".to_owned());
    assert!(round2[&subnets] > round1[&subnets]);

    proxy.clear();
    let summary = sync(&c).await;
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    assert!(confirmed(&c).await[&vpc_pair] > round1[&vpc_pair]);
    assert_eq!(off_round(&c).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_row_an_open_transaction_holds_is_not_written_and_keeps_its_confirmed_time() {
    let moto = Moto::start();
    let ids = vpcs_in_moto(&moto, 3).await;
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    sync(&c).await;
    let at = |id: &str| {
        format!(
            "select confirmed_at::text from infra.resource_confirmed where resource_id = '{id}'"
        )
    };
    let tags = |id: &str| format!("select tags::text from aws.vpc where vpc_id = '{id}'");
    let held_before: String = one(&c, &at(&ids[0])).await;
    let tags_before: String = one(&c, &tags(&ids[0])).await;
    // A user edits two rows and has not committed; one of them changes in
    // AWS meanwhile (drift the default policy adopts).
    let user = s.connect().await;
    user.batch_execute(&format!(
        "BEGIN; UPDATE aws.vpc SET name = 'editing' WHERE vpc_id IN ('{}', '{}')",
        ids[0], ids[1]
    ))
    .await
    .unwrap();
    moto.ec2()
        .await
        .create_tags()
        .resources(&ids[0])
        .tags(Tag::builder().key("owner").value("console").build())
        .send()
        .await
        .unwrap();

    // The round neither waits for the user nor writes the row it holds.
    sync(&c).await;
    assert_eq!(one::<String>(&c, &at(&ids[0])).await, held_before, "held");
    assert_eq!(one::<String>(&c, &tags(&ids[0])).await, tags_before);
    // A held row equal to AWS is compared as committed (never written).
    for free in &ids[1..] {
        let t: String = one(&c, &at(free)).await;
        assert!(t > held_before, "{free}: {t} vs {held_before}");
    }
    assert_eq!(
        one::<i64>(&c, "select count(*) from infra.sync_unconfirmed").await,
        1
    );
    // Still held a round later: still the time it had.
    sync(&c).await;
    assert_eq!(one::<String>(&c, &at(&ids[0])).await, held_before);

    user.batch_execute("ROLLBACK").await.unwrap();
    sync(&c).await;
    assert_eq!(
        one::<String>(&c, &tags(&ids[0])).await,
        r#"{"owner": "console"}"#
    );
    assert_eq!(off_round(&c).await, Vec::<String>::new());
    assert_eq!(
        one::<i64>(&c, "select count(*) from infra.sync_unconfirmed").await,
        0
    );
}
