//! ACM certificates through a real client (issue #13): request, tags in
//! place, a new domain replaces, delete, drift and import. What AWS holds
//! is read from moto directly.

mod common;

use common::{one, Moto, TestServer};
use infrasql_aws_acm::aws_sdk_acm::types::Tag;
use infrasql_aws_acm::aws_sdk_acm::Client as Acm;

async fn tags(acm: &Acm, arn: &str) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = acm
        .list_tags_for_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().unwrap_or("").to_owned()))
        .filter(|(k, _)| !k.starts_with("infrasql:"))
        .collect();
    t.sort();
    t
}

async fn arns(acm: &Acm) -> Vec<String> {
    acm.list_certificates()
        .send()
        .await
        .unwrap()
        .certificate_summary_list()
        .iter()
        .filter_map(|s| s.certificate_arn().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_certificate_is_requested_tagged_in_place_replaced_and_deleted() {
    let moto = Moto::start();
    let s = TestServer::start_at(&moto.url, &[]);
    let c = s.connect().await;
    let acm = moto.acm().await;

    c.batch_execute(
        "INSERT INTO aws.acm_certificate (domain_name, subject_alternative_names, tags)
         VALUES ('example.com', '[\"www.example.com\"]', '{\"team\": \"web\"}')",
    )
    .await
    .unwrap();
    let arn: String = one(&c, "SELECT certificate_arn FROM aws.acm_certificate").await;
    assert!(arn.starts_with("arn:aws:acm:"), "{arn}");
    let d = acm
        .describe_certificate()
        .certificate_arn(&arn)
        .send()
        .await
        .unwrap();
    let d = d.certificate().unwrap();
    assert_eq!(d.domain_name(), Some("example.com"));
    assert!(d
        .subject_alternative_names()
        .iter()
        .any(|n| n == "www.example.com"));
    assert_eq!(
        one::<String>(&c, "SELECT key_algorithm FROM aws.acm_certificate").await,
        "RSA_2048"
    );
    assert_eq!(
        tags(&acm, &arn).await,
        vec![("team".to_owned(), "web".to_owned())]
    );
    assert_eq!(
        one::<String>(&c, "SELECT status FROM aws.acm_certificate").await,
        "PENDING_VALIDATION"
    );
    // The records that would validate it are in the row.
    assert!(
        one::<i64>(
            &c,
            "SELECT jsonb_array_length(domain_validation_records)::bigint FROM aws.acm_certificate"
        )
        .await
            >= 1
    );

    c.batch_execute(
        "UPDATE aws.acm_certificate SET tags = '{\"team\": \"ops\", \"env\": \"prod\"}'",
    )
    .await
    .unwrap();
    assert_eq!(
        tags(&acm, &arn).await,
        vec![
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "ops".to_owned())
        ]
    );

    c.batch_execute("UPDATE aws.acm_certificate SET domain_name = 'example.org', subject_alternative_names = '[]'")
        .await
        .unwrap();
    let new_arn: String = one(&c, "SELECT certificate_arn FROM aws.acm_certificate").await;
    assert_ne!(new_arn, arn);
    assert_eq!(
        arns(&acm).await,
        vec![new_arn.clone()],
        "the old one is gone"
    );

    c.batch_execute("DELETE FROM aws.acm_certificate")
        .await
        .unwrap();
    assert!(arns(&acm).await.is_empty());
}

#[tokio::test]
async fn out_of_band_tags_are_drift_and_an_out_of_band_certificate_is_imported() {
    let moto = Moto::start();
    let s = TestServer::start_at(&moto.url, &[]);
    let c = s.connect().await;
    let acm = moto.acm().await;
    c.batch_execute("INSERT INTO aws.acm_certificate (domain_name) VALUES ('example.com')")
        .await
        .unwrap();
    let arn: String = one(&c, "SELECT certificate_arn FROM aws.acm_certificate").await;
    acm.add_tags_to_certificate()
        .certificate_arn(&arn)
        .tags(
            Tag::builder()
                .key("owner")
                .value("someone")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let stranger = acm
        .request_certificate()
        .domain_name("stranger.net")
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_owned();

    c.batch_execute("SELECT infra.sync()").await.unwrap();
    assert_eq!(
        one::<i64>(
            &c,
            &format!(
                "SELECT count(*) FROM infra.drift WHERE table_name = 'aws.acm_certificate' \
                 AND resource_id = '{arn}' AND field = 'tags'"
            )
        )
        .await,
        1
    );
    assert_eq!(
        one::<String>(
            &c,
            &format!(
                "SELECT domain_name FROM aws.acm_certificate WHERE certificate_arn = '{stranger}'"
            )
        )
        .await,
        "stranger.net"
    );
}
