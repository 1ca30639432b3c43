//! Route53 zones and records through a real client (issue #13): INSERT is
//! a CREATE (never a takeover), UPDATE an UPSERT, an undo restores the exact
//! previous record set, and a commit's records go to AWS in one batch per
//! zone. What AWS holds is read from moto directly; the calls infrasql
//! made from the fault proxy in front of moto.

mod common;

use common::{one, Moto, TestServer};
use infrasql_aws_route53::aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use infrasql_aws_route53::aws_sdk_route53::Client as R53;
use infrasql_fault_proxy::FaultProxy;
use tokio_postgres::Client;

const ZONE: &str = "
BEGIN;
INSERT INTO aws.route53_zone (name, comment, tags) VALUES ('Example.COM', 'the site', '{\"team\": \"web\"}');
COMMIT;";

async fn zone_id(c: &Client) -> String {
    one(
        c,
        "SELECT hosted_zone_id FROM aws.route53_zone WHERE name = 'example.com.'",
    )
    .await
}

/// A record set in moto: (ttl, values), or None when there is none.
async fn in_aws(r53: &R53, zone: &str, name: &str, rtype: &str) -> Option<(i64, Vec<String>)> {
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .find(|r| {
            r.name().trim_end_matches('.') == name.trim_end_matches('.')
                && r.r#type().as_str() == rtype
        })
        .map(|r| {
            (
                r.ttl().unwrap_or_default(),
                r.resource_records()
                    .iter()
                    .map(|v| v.value().to_owned())
                    .collect(),
            )
        })
}

/// Make a record behind infrasql's back.
async fn upsert_out_of_band(r53: &R53, zone: &str, name: &str, ttl: i64, value: &str) {
    change_out_of_band(r53, zone, name, ttl, value, ChangeAction::Upsert).await
}

async fn change_out_of_band(
    r53: &R53,
    zone: &str,
    name: &str,
    ttl: i64,
    value: &str,
    action: ChangeAction,
) {
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .ttl(ttl)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap();
    r53.change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(action)
                        .resource_record_set(set)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

fn batches(proxy: &FaultProxy) -> usize {
    proxy
        .log()
        .iter()
        .filter(|c| c.action.starts_with("POST ") && c.action.contains("/rrset"))
        .count()
}

#[tokio::test]
async fn a_zone_and_ten_records_in_one_commit_are_one_batch_and_change_update_and_delete() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url);
    let s = TestServer::start_at(&proxy.url, &[]);
    let c = s.connect().await;
    let r53 = moto.route53().await;

    c.batch_execute(ZONE).await.unwrap();
    let zone = zone_id(&c).await;
    assert!(!zone.starts_with('/'), "{zone}");
    let got = r53.get_hosted_zone().id(&zone).send().await.unwrap();
    let z = got.hosted_zone().unwrap();
    assert_eq!(z.name(), "example.com.");
    assert_eq!(z.config().and_then(|c| c.comment()), Some("the site"));
    let tags = r53
        .list_tags_for_resource()
        .resource_type(infrasql_aws_route53::aws_sdk_route53::types::TagResourceType::Hostedzone)
        .resource_id(&zone)
        .send()
        .await
        .unwrap();
    let tags = tags.resource_tag_set().unwrap().tags();
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("team") && t.value() == Some("web")));
    assert!(tags.iter().any(|t| t.key() == Some("infrasql:apply-id")));

    proxy.reset_log();
    c.batch_execute(
        "BEGIN;
         INSERT INTO aws.route53_record (hosted_zone_id, name, type, ttl, records)
           SELECT hosted_zone_id, 'h' || i || '.example.com', 'A', 300, jsonb_build_array('10.0.0.' || i)
           FROM aws.route53_zone, generate_series(1, 10) AS i;
         COMMIT;",
    )
    .await
    .unwrap();
    assert_eq!(
        batches(&proxy),
        1,
        "ten records in one commit are one ChangeResourceRecordSets"
    );
    for i in 1..=10 {
        assert_eq!(
            in_aws(&r53, &zone, &format!("h{i}.example.com."), "A").await,
            Some((300, vec![format!("10.0.0.{i}")]))
        );
    }
    assert_eq!(
        one::<String>(
            &c,
            "SELECT record_id FROM aws.route53_record WHERE name = 'h1.example.com.'"
        )
        .await,
        format!("{zone}|h1.example.com.|A|")
    );

    // In place: ttl and values (an UPSERT), and the zone's comment.
    c.batch_execute(
        "UPDATE aws.route53_record SET ttl = 60, records = '[\"10.9.9.9\", \"10.9.9.8\"]' WHERE name = 'h1.example.com.';
         UPDATE aws.route53_zone SET comment = 'moved';",
    )
    .await
    .unwrap();
    assert_eq!(
        in_aws(&r53, &zone, "h1.example.com.", "A").await,
        Some((60, vec!["10.9.9.9".to_owned(), "10.9.9.8".to_owned()]))
    );
    let got = r53.get_hosted_zone().id(&zone).send().await.unwrap();
    assert_eq!(
        got.hosted_zone()
            .unwrap()
            .config()
            .and_then(|c| c.comment()),
        Some("moved")
    );

    // A new name replaces the record: the new one made, the old one gone.
    c.batch_execute(
        "UPDATE aws.route53_record SET name = 'renamed.example.com' WHERE name = 'h2.example.com.'",
    )
    .await
    .unwrap();
    assert_eq!(in_aws(&r53, &zone, "h2.example.com.", "A").await, None);
    assert_eq!(
        in_aws(&r53, &zone, "renamed.example.com.", "A").await,
        Some((300, vec!["10.0.0.2".to_owned()]))
    );

    // Everything deleted in one commit: records first, then the zone.
    c.batch_execute(
        "BEGIN; SET LOCAL infra.allow_mass_delete = on; \
         DELETE FROM aws.route53_record; DELETE FROM aws.route53_zone; COMMIT;",
    )
    .await
    .unwrap();
    let zones = r53.list_hosted_zones().send().await.unwrap();
    assert!(
        zones.hosted_zones().is_empty(),
        "{:?}",
        zones.hosted_zones()
    );
}

#[tokio::test]
async fn an_insert_never_takes_over_a_record_and_a_failed_commit_restores_the_exact_previous_set() {
    let moto = Moto::start();
    let s = TestServer::start_at(&moto.url, &[]);
    let c = s.connect().await;
    let r53 = moto.route53().await;
    c.batch_execute(ZONE).await.unwrap();
    c.batch_execute(
        "INSERT INTO aws.route53_zone (name) VALUES ('other.org');
         INSERT INTO aws.route53_record (hosted_zone_id, name, type, ttl, records)
           SELECT hosted_zone_id, 'www.example.com', 'A', 300, '[\"10.0.0.1\", \"10.0.0.2\"]'
           FROM aws.route53_zone WHERE name = 'example.com.';",
    )
    .await
    .unwrap();
    let zone = zone_id(&c).await;
    let other: String = one(
        &c,
        "SELECT hosted_zone_id FROM aws.route53_zone WHERE name = 'other.org.'",
    )
    .await;

    // Someone else's record: an INSERT of it is refused, naming it.
    // moto 5.2.1 refuses a CREATE of an existing record only when the
    // same CREATE (same values) made it; AWS refuses any. So the stranger's
    // record is made by the CREATE infrasql's INSERT will send.
    change_out_of_band(
        &r53,
        &other,
        "mail.other.org.",
        60,
        "10.1.1.1",
        ChangeAction::Create,
    )
    .await;
    let e = c
        .batch_execute(
            "INSERT INTO aws.route53_record (hosted_zone_id, name, type, ttl, records)
               SELECT hosted_zone_id, 'mail.other.org', 'A', 60, '[\"10.1.1.1\"]'
               FROM aws.route53_zone WHERE name = 'other.org.'",
        )
        .await
        .unwrap_err();
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    assert!(
        msg.contains("mail.other.org.") && msg.contains("already exists"),
        "{msg}"
    );
    assert_eq!(
        in_aws(&r53, &other, "mail.other.org.", "A").await,
        Some((60, vec!["10.1.1.1".to_owned()])),
        "the existing record is untouched"
    );

    // One commit: an update of www (its own batch, in its own zone) and the
    // refused insert in the other zone. The update is undone: AWS holds
    // exactly the previous values again.
    let e = c
        .batch_execute(
            "BEGIN;
             UPDATE aws.route53_record SET ttl = 30, records = '[\"10.7.7.7\"]' WHERE name = 'www.example.com.';
             INSERT INTO aws.route53_record (hosted_zone_id, name, type, ttl, records)
               SELECT hosted_zone_id, 'mail.other.org', 'A', 60, '[\"10.1.1.1\"]'
               FROM aws.route53_zone WHERE name = 'other.org.';
             COMMIT;",
        )
        .await
        .unwrap_err();
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    assert!(msg.contains("already exists"), "{msg}");
    assert_eq!(
        in_aws(&r53, &zone, "www.example.com.", "A").await,
        Some((300, vec!["10.0.0.1".to_owned(), "10.0.0.2".to_owned()]))
    );
    assert_eq!(
        one::<i64>(
            &c,
            "SELECT ttl FROM aws.route53_record WHERE name = 'www.example.com.'"
        )
        .await,
        300
    );

    // A zone holding a record made outside infrasql is not deleted.
    let e = c
        .batch_execute("DELETE FROM aws.route53_zone WHERE name = 'other.org.'")
        .await
        .unwrap_err();
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    assert!(
        msg.contains("other.org.") && msg.contains("still holds records"),
        "{msg}"
    );
}

#[tokio::test]
async fn out_of_band_changes_are_drift_and_out_of_band_records_are_imported() {
    let moto = Moto::start();
    let s = TestServer::start_at(&moto.url, &[]);
    let c = s.connect().await;
    let r53 = moto.route53().await;
    c.batch_execute(ZONE).await.unwrap();
    let zone = zone_id(&c).await;
    c.batch_execute(&format!(
        "INSERT INTO aws.route53_record (hosted_zone_id, name, type, ttl, records)
           VALUES ('{zone}', 'www.example.com', 'A', 300, '[\"10.0.0.1\"]')"
    ))
    .await
    .unwrap();

    upsert_out_of_band(&r53, &zone, "www.example.com.", 900, "10.0.0.1").await;
    upsert_out_of_band(&r53, &zone, "stranger.example.com.", 120, "192.0.2.9").await;
    c.batch_execute("SELECT infra.sync()").await.unwrap();

    let drift: i64 = one(
        &c,
        &format!(
            "SELECT count(*) FROM infra.drift WHERE table_name = 'aws.route53_record' \
             AND resource_id = '{zone}|www.example.com.|A|' AND field = 'ttl'"
        ),
    )
    .await;
    assert_eq!(drift, 1);
    assert_eq!(
        one::<String>(
            &c,
            "SELECT records::text FROM aws.route53_record WHERE name = 'stranger.example.com.'"
        )
        .await,
        "[\"192.0.2.9\"]"
    );
    // The zone's own SOA and NS are not rows.
    assert_eq!(
        one::<i64>(
            &c,
            "SELECT count(*) FROM aws.route53_record WHERE type IN ('SOA', 'NS')"
        )
        .await,
        0
    );
    // Nothing else drifted: the zone's row agrees with its listing.
    assert_eq!(
        one::<i64>(
            &c,
            "SELECT count(*) FROM infra.drift WHERE table_name = 'aws.route53_zone'"
        )
        .await,
        0
    );
}
