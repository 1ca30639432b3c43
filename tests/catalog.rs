//! What BI tools read from the catalogue: a COMMENT on every table and
//! column of aws and infra (the aws ones from the resource descriptions),
//! aws and infra on the default search_path, and infra.version().

mod common;

use common::{one, Moto, TestServer};
use tokio_postgres::Client;

/// Tables and columns of aws and infra without a comment, as a superuser
/// sees them (information_schema hides what the user may not read).
async fn uncommented(engine: &Client) -> Vec<String> {
    engine
        .query(
            "SELECT n.nspname || '.' || c.relname || coalesce('.' || a.attname, '') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE n.nspname IN ('aws', 'infra') AND c.relkind IN ('r', 'v', 'p') \
               AND (obj_description(c.oid, 'pg_class') IS NULL \
                    OR (a.attnum IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL)) \
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn every_table_and_column_has_a_comment_from_its_one_source() {
    let moto = Moto::start();
    let mut s = TestServer::start_on(&moto, &[]);
    let engine = s.connect_engine().await;
    let missing = uncommented(&engine).await;
    assert!(
        missing.is_empty(),
        "without a COMMENT (add one in the migration that adds it): {missing:#?}"
    );

    // What a BI tool's user sees: information_schema and col_description.
    let c = s.connect().await;
    let rows = c
        .query(
            "SELECT c.table_name::text, c.column_name::text, \
                    col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position::int), \
                    r.doc, r.kind \
             FROM information_schema.columns c \
             JOIN infra.resource_column r ON r.table_name = c.table_schema || '.' || c.table_name \
                                          AND r.column_name = c.column_name \
             WHERE c.table_schema = 'aws'",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() > 100, "{}", rows.len());
    for r in &rows {
        let (table, column, comment, doc, kind): (String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        assert!(
            comment.starts_with(&doc),
            "aws.{table}.{column}: {comment:?} is not its description {doc:?}"
        );
        if kind == "cloud" {
            assert!(comment.contains("read-only"), "{table}.{column}: {comment}");
        }
    }
    let clients = infrasql_aws::Clients::new(&infrasql_aws::AwsSettings {
        endpoint_url: Some(moto.url.clone()),
        static_credentials: Some(("testing".into(), "testing".into())),
        region: Some("us-east-1".into()),
        max_concurrency: None,
        limiter: Default::default(),
        timeouts: Default::default(),
    })
    .await;
    let resources = infrasql::engine::registry::index(infrasql::providers::aws(clients.into()));
    for (table, r) in &resources {
        let comment: String = c
            .query_one(
                "SELECT obj_description($1::text::regclass, 'pg_class')",
                &[table],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(comment, r.schema().doc, "{table}");
    }
    let key: String = one(
        &c,
        "SELECT col_description('aws.subnet'::regclass, \
           (SELECT attnum FROM pg_attribute WHERE attrelid = 'aws.subnet'::regclass AND attname = 'id')::int)",
    )
    .await;
    assert!(key.contains("never changes"), "{key}");
    let infra: String = one(
        &c,
        "SELECT obj_description('infra.drift'::regclass, 'pg_class')",
    )
    .await;
    assert!(
        infra.contains("drift") || infra.contains("Differences"),
        "{infra}"
    );

    // Comments are written at start-up: a changed one is put back.
    engine
        .batch_execute(
            "COMMENT ON COLUMN aws.vpc.cidr_block IS 'edited'; COMMENT ON TABLE aws.subnet IS NULL",
        )
        .await
        .unwrap();
    drop(engine);
    drop(c);
    let data = s.data.clone();
    s.stop();
    let s2 = TestServer::start_in(
        &data,
        &["--aws-endpoint-url", &moto.url, "--sync-interval", "0"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = s2.connect_engine().await;
    assert!(uncommented(&engine).await.is_empty());
    let cidr: String = one(
        &engine,
        "SELECT col_description('aws.vpc'::regclass, \
           (SELECT attnum FROM pg_attribute WHERE attrelid = 'aws.vpc'::regclass AND attname = 'cidr_block')::int)",
    )
    .await;
    assert_ne!(cidr, "edited");
    assert!(cidr.starts_with("Primary IPv4 CIDR block"), "{cidr}");
}

#[tokio::test]
async fn a_new_connection_finds_aws_and_infra_on_its_search_path() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let path: String = one(&c, "SHOW search_path").await;
    assert_eq!(path, "\"$user\", public, aws, infra");
    // Unqualified names resolve, the way a BI tool's table picker uses them.
    let vpcs: i64 = one(&c, "SELECT count(*) FROM vpc").await;
    assert_eq!(vpcs, 0);
    let drift: i64 = one(&c, "SELECT count(*) FROM drift").await;
    assert_eq!(drift, 0);
    // A migration runner looking for its own schema_migrations across the
    // search_path (Rails) does not find infrasql's ledger.
    let ledger: Option<String> = one(&c, "SELECT to_regclass('schema_migrations')::text").await;
    assert_eq!(ledger, None);
    let own: bool = one(
        &c,
        "SELECT to_regclass('schema_file') = 'infra.schema_file'::regclass",
    )
    .await;
    assert!(own);
    // pg_catalog still comes first: version() is PostgreSQL's.
    let pg: String = one(&c, "SELECT version()").await;
    assert!(pg.starts_with("PostgreSQL"), "{pg}");
}

#[tokio::test]
async fn infra_version_names_infrasql_and_server_version_stays_postgresqls() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let v: String = one(&c, "SELECT infra.version()").await;
    assert_eq!(v, format!("infrasql {}", env!("CARGO_PKG_VERSION")));
    let server: String = one(&c, "SHOW server_version").await;
    assert!(
        server.chars().next().is_some_and(|ch| ch.is_ascii_digit()),
        "drivers parse it as PostgreSQL's: {server}"
    );
    let num: String = one(&c, "SHOW server_version_num").await;
    assert!(num.parse::<u32>().is_ok_and(|n| n >= 100000), "{num}");
}
