//! Every resource row has a key that never changes (`id`), so ORMs keep
//! track of it across the COMMIT that swaps the provisional AWS id for the
//! real one; and a database made by the previous version upgrades in place.

mod common;

use common::{one, sqlstate, Moto, TestServer};
use tokio_postgres::Client;

/// A VPC and its subnet inserted in one transaction: the same rows, found
/// by `id`, carry AWS's ids after the COMMIT.
#[tokio::test]
async fn a_rows_id_survives_the_commit_and_finds_the_real_aws_ids() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;

    c.batch_execute("BEGIN").await.unwrap();
    let vpc = c
        .query_one(
            "INSERT INTO aws.vpc (name, cidr_block) VALUES ('keys', '10.40.0.0/16') RETURNING id, vpc_id",
            &[],
        )
        .await
        .unwrap();
    let (vpc_key, provisional): (i64, String) = (vpc.get(0), vpc.get(1));
    assert!(provisional.starts_with("pending-vpc-"), "{provisional}");
    let subnet_key: i64 = c
        .query_one(
            "INSERT INTO aws.subnet (name, vpc_id, cidr_block) \
             SELECT 'keys-a', vpc_id, '10.40.1.0/24' FROM aws.vpc WHERE id = $1 RETURNING id",
            &[&vpc_key],
        )
        .await
        .unwrap()
        .get(0);
    c.batch_execute("COMMIT").await.unwrap();

    // An ORM's refresh: select by primary key.
    let vpc_id: String = c
        .query_one("SELECT vpc_id FROM aws.vpc WHERE id = $1", &[&vpc_key])
        .await
        .unwrap()
        .get(0);
    assert!(vpc_id.starts_with("vpc-"), "{vpc_id}");
    let ec2 = moto.ec2().await;
    let found = ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.unwrap();
    assert_eq!(found.vpcs().len(), 1, "the row names the VPC AWS has");
    let subnet = c
        .query_one(
            "SELECT subnet_id, vpc_id FROM aws.subnet WHERE id = $1",
            &[&subnet_key],
        )
        .await
        .unwrap();
    assert!(subnet.get::<_, String>(0).starts_with("subnet-"));
    assert_eq!(subnet.get::<_, String>(1), vpc_id, "the reference followed");

    // A sync round rewrites rows; it never touches their keys.
    let _: serde_json::Value = one(&c, "SELECT infra.sync()").await;
    let after: i64 = c
        .query_one("SELECT id FROM aws.vpc WHERE vpc_id = $1", &[&vpc_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, vpc_key);
    let imported: i64 = one(&c, "SELECT count(*) FROM aws.vpc WHERE is_default").await;
    assert_eq!(
        imported, 1,
        "the default VPC was imported with a key of its own"
    );
}

/// pgJDBC's generated keys are `INSERT ... RETURNING *` in autocommit: the
/// key it returns finds the row again once AWS has named it.
#[tokio::test]
async fn returning_star_in_autocommit_gives_a_key_that_finds_the_applied_row() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    let row = c
        .query_one(
            "INSERT INTO aws.vpc (name, cidr_block) VALUES ('jdbc', '10.41.0.0/16') RETURNING *",
            &[],
        )
        .await
        .unwrap();
    let key: i64 = row.get("id");
    let vpc_id: String = c
        .query_one("SELECT vpc_id FROM aws.vpc WHERE id = $1", &[&key])
        .await
        .unwrap()
        .get(0);
    assert!(vpc_id.starts_with("vpc-"), "{vpc_id}");
}

/// The key is the database's: not written on insert, never changed.
#[tokio::test]
async fn the_key_is_not_the_users_to_write() {
    let moto = Moto::start();
    let s = TestServer::start_on(&moto, &[]);
    let c = s.connect().await;
    c.batch_execute("INSERT INTO aws.vpc (name, cidr_block) VALUES ('k', '10.42.0.0/16')")
        .await
        .unwrap();
    for sql in [
        "INSERT INTO aws.vpc (id, cidr_block) VALUES (999, '10.43.0.0/16')",
        "UPDATE aws.vpc SET id = 999 WHERE name = 'k'",
        "UPDATE aws.vpc SET id = DEFAULT WHERE name = 'k'",
    ] {
        let e = c.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("428C9"), "{sql}: {e}");
    }
    // The description says what the key is.
    let kind: String = one(
        &c,
        "SELECT kind FROM infra.resource_column WHERE table_name = 'aws.vpc' AND column_name = 'id'",
    )
    .await;
    assert_eq!(kind, "row_key");
}

/// Rows of the previous version's shape, children and all, as sync or a
/// commit left them.
async fn old_rows(db: &Client, vpc_id: &str) {
    db.batch_execute(&format!(
        "INSERT INTO aws.vpc (vpc_id, name, cidr_block, state) VALUES ('{vpc_id}', 'old', '10.50.0.0/16', 'available');
         INSERT INTO aws.vpc (name, cidr_block) VALUES ('pending', '10.51.0.0/16');
         INSERT INTO aws.subnet (subnet_id, name, vpc_id, cidr_block) VALUES ('subnet-0old', 'old-a', '{vpc_id}', '10.50.1.0/24');
         INSERT INTO aws.subnet (name, vpc_id, cidr_block) SELECT 'pending-a', vpc_id, '10.51.1.0/24' FROM aws.vpc WHERE name = 'pending';
         INSERT INTO aws.security_group (group_id, group_name, vpc_id) VALUES ('sg-0old', 'old', '{vpc_id}');
         INSERT INTO aws.security_group (group_id, group_name, vpc_id) VALUES ('sg-0old2', 'old2', '{vpc_id}');
         INSERT INTO aws.instance (instance_id, image_id, subnet_id, security_group_id, security_group_ids)
           VALUES ('i-0old', 'ami-760aaa0f', 'subnet-0old', 'sg-0old', '[\"sg-0old\", \"sg-0old2\", \"sg-0notarow\"]');
         INSERT INTO aws.route_table (route_table_id, vpc_id) VALUES ('rtb-0old', '{vpc_id}');
         INSERT INTO aws.route_table_association (route_table_association_id, route_table_id, subnet_id) VALUES ('rtbassoc-0old', 'rtb-0old', 'subnet-0old');"
    ))
    .await
    .unwrap();
}

/// Every foreign key of the aws schema: table and name, and definition.
/// Names come out qualified whatever the search_path (the upgrade changes
/// the database's default).
async fn texts(db: &Client, sql: &str) -> Vec<String> {
    db.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn foreign_keys(db: &Client) -> Vec<(String, String)> {
    db.batch_execute("SET search_path = pg_catalog")
        .await
        .unwrap();
    db.query(
        "SELECT conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE contype = 'f' AND connamespace = 'aws'::regnamespace ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// A database the previous version made (every schema file before 0500,
/// applied files never change) is upgraded by starting the new binary on
/// it with --database-url: no row lost, foreign keys still follow the AWS
/// ids, and commits work on the upgraded rows.
#[tokio::test]
async fn a_database_of_the_previous_version_upgrades_in_place() {
    let moto = Moto::start();
    let host = TestServer::start_on(&moto, &[]);
    let engine = host.connect_engine().await;
    engine.batch_execute("CREATE DATABASE old").await.unwrap();
    let engine_pw = std::fs::read_to_string(host.data.join("engine.password")).unwrap();
    let old_url = format!(
        "host={} port=5432 user=infrasql_engine password={} dbname=old",
        host.data.join("pgdata").display(),
        engine_pw.trim()
    );
    let mut old = common::connect(&old_url).await.unwrap();
    let applied = infrasql::store::migrate::migrate_before(&mut old, "0500")
        .await
        .unwrap();
    assert!(applied.iter().any(|n| n.starts_with("0170")), "{applied:?}");
    // The VPC is real, as if a sync had imported it before the upgrade.
    let ec2 = moto.ec2().await;
    let vpc_id = ec2
        .create_vpc()
        .cidr_block("10.50.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_owned();
    old_rows(&old, &vpc_id).await;
    // An instance a sync saw stopped: it asks to stay stopped after the
    // upgrade (0550), so the next sync is not drift on desired_state.
    old.batch_execute(
        "INSERT INTO aws.instance (instance_id, image_id, state) VALUES ('i-0stopped', 'ami-760aaa0f', 'stopped')",
    )
    .await
    .unwrap();
    // History from before 0720: a sync revert, then called `sync`.
    old.batch_execute(
        "INSERT INTO infra.apply (apply_id, status, username, source, actions, finished_at) \
         VALUES ('apply-00000000000000aa', 'succeeded', 'infrasql sync', 'sync', 1, now()); \
         INSERT INTO infra.apply_action (apply_id, step, action, table_name, resource_id, region, status, finished_at) \
         VALUES ('apply-00000000000000aa', 1, 'update', 'aws.vpc', 'vpc-0old', 'us-east-1', 'done', now())",
    )
    .await
    .unwrap();
    old.batch_execute(
        "INSERT INTO infra.sync_status (region, table_name, last_started, last_finished, last_error) \
         VALUES ('eu-old-1', 'aws.vpc', now(), now(), 'AuthFailure: old')",
    )
    .await
    .unwrap();
    let count = "SELECT (SELECT count(*) FROM aws.vpc) + (SELECT count(*) FROM aws.subnet) \
                 + (SELECT count(*) FROM aws.security_group) + (SELECT count(*) FROM aws.instance) \
                 + (SELECT count(*) FROM aws.route_table) + (SELECT count(*) FROM aws.route_table_association)";
    let before: i64 = one(&old, count).await;
    let fks = foreign_keys(&old).await;
    assert!(fks.len() >= 11, "{fks:#?}");

    let tmp = common::temp_dir();
    let upgraded = TestServer::start_in(
        &tmp.path().join("node"),
        &[
            "--aws-endpoint-url",
            &moto.url,
            "--sync-interval",
            "0",
            "--database-url",
            &old_url,
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(one::<i64>(&old, count).await, before, "no row lost");
    // A column added since (0845) is there, NULL on the old rows.
    let profile: Option<String> = one(
        &old,
        "SELECT iam_instance_profile FROM aws.instance WHERE instance_id = 'i-0stopped'",
    )
    .await;
    assert_eq!(profile, None);
    let desired: String = one(
        &old,
        "SELECT string_agg(instance_id || ' ' || desired_state, ', ' ORDER BY instance_id) FROM aws.instance",
    )
    .await;
    assert_eq!(desired, "i-0old running, i-0stopped stopped");
    // 0580: every table with a write-only column, managed before it or
    // after, keeps its secrets out of its rows (1040: and only those tables
    // call keep_secret).
    let with_secrets = texts(
        &old,
        "SELECT DISTINCT table_name FROM infra.resource_column WHERE kind = 'write_only' ORDER BY 1",
    )
    .await;
    assert!(
        with_secrets.iter().any(|t| t == "aws.instance"),
        "{with_secrets:?}"
    );
    let kept = texts(
        &old,
        "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'infrasql_keep_secret' ORDER BY 1",
    )
    .await;
    assert_eq!(kept, with_secrets);
    // 1040: the upgraded tables' triggers skip the engine's own writes,
    // those made by files before it and after it alike.
    let unskipped = texts(
        &old,
        "SELECT tgrelid::regclass::text || ' ' || tgname FROM pg_trigger \
         WHERE tgqual IS NULL AND (tgname IN ('infrasql_guard', 'infrasql_capture', 'infrasql_commit_path', 'infrasql_local_tags') \
            OR tgfoid = 'infra.stack_guard()'::regprocedure)",
    )
    .await;
    assert!(unskipped.is_empty(), "{unskipped:?}");
    // The sync status survives, with the backoff's columns (no failures
    // counted before the upgrade, nothing scheduled).
    let status: String = one(
        &old,
        "SELECT last_error || ' ' || failures || ' ' || coalesce(next_attempt_at::text, 'none') || ' ' || coalesce(last_error_class, 'none') \
         FROM infra.sync_status WHERE region = 'eu-old-1' AND table_name = 'aws.vpc'",
    )
    .await;
    assert_eq!(status, "AuthFailure: old 0 none none");
    // The history survives, with the new names and columns (0720).
    let history: String = one(
        &old,
        "SELECT a.source || ' ' || coalesce(a.creates::text, 'unknown') || ' ' \
                || cardinality(x.request_ids) || ' ' || (x.duration IS NOT NULL) \
         FROM infra.apply a JOIN infra.apply_action x USING (apply_id) \
         WHERE apply_id = 'apply-00000000000000aa'",
    )
    .await;
    assert_eq!(history, "sync-revert unknown 0 true");
    let ledger: Option<String> =
        one(&old, "SELECT to_regclass('infra.schema_migrations')::text").await;
    assert_eq!(ledger, None, "the ledger was renamed to infra.schema_file");
    let files: i64 = one(&old, "SELECT count(*) FROM infra.schema_file").await;
    assert!(files as usize > applied.len());
    let keyless: i64 = one(
        &old,
        "SELECT (SELECT count(*) FROM aws.vpc WHERE id IS NULL) + (SELECT count(*) FROM aws.subnet WHERE id IS NULL)",
    )
    .await;
    assert_eq!(keyless, 0);
    // Every resource table's primary key is id; every foreign key still
    // references an AWS id column, ON UPDATE CASCADE.
    let wrong_pk: Vec<String> = old
        .query(
            "SELECT c.conrelid::regclass::text FROM pg_constraint c \
             WHERE c.contype = 'p' AND c.connamespace = 'aws'::regnamespace \
               AND c.conkey IS DISTINCT FROM ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = c.conrelid AND attname = 'id')]",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(wrong_pk.is_empty(), "{wrong_pk:?}");
    let after = foreign_keys(&old).await;
    for fk in &fks {
        // 0560 moved the instance's group column to aws.instance_security_group.
        if fk.0 == "aws.instance.instance_security_group_id_fkey" {
            assert!(!after.contains(fk), "{fk:?} went with its column");
            continue;
        }
        assert!(after.contains(fk), "{fk:?} is back, unchanged: {after:#?}");
    }
    // Both groups the instance had are rows of the join table now (a group
    // that was not a row cannot be: the foreign key).
    let groups: Vec<String> = old
        .query(
            "SELECT group_id FROM aws.instance_security_group WHERE instance_id = 'i-0old' ORDER BY group_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(groups, vec!["sg-0old", "sg-0old2"]);
    for (name, def) in &after {
        assert!(def.contains("ON UPDATE CASCADE"), "{name}: {def}");
        assert!(!def.contains("(id)"), "{name} follows the AWS id: {def}");
    }

    // A pending VPC's id becoming real still carries its children along.
    old.batch_execute("UPDATE aws.vpc SET vpc_id = 'vpc-0later' WHERE name = 'pending'")
        .await
        .unwrap();
    let followed: String = one(
        &old,
        "SELECT vpc_id FROM aws.subnet WHERE name = 'pending-a'",
    )
    .await;
    assert_eq!(followed, "vpc-0later");

    // Through the upgraded server: the catalogue, and a commit under an
    // upgraded row.
    let user = format!(
        "host=127.0.0.1 port={} user={} password={} dbname=old",
        upgraded.port,
        common::USER,
        host.password()
    );
    let c = common::connect(&user).await.unwrap();
    let path: String = one(&c, "SHOW search_path").await;
    assert_eq!(path, "\"$user\", public, aws, infra");
    let key: i64 = c
        .query_one(
            "INSERT INTO aws.subnet (name, vpc_id, cidr_block) VALUES ('new', $1, '10.50.2.0/24') RETURNING id",
            &[&vpc_id],
        )
        .await
        .unwrap()
        .get(0);
    let subnet_id: String = c
        .query_one("SELECT subnet_id FROM aws.subnet WHERE id = $1", &[&key])
        .await
        .unwrap()
        .get(0);
    assert!(subnet_id.starts_with("subnet-"), "{subnet_id}");
    let old_key: i64 = one(&c, "SELECT id FROM aws.vpc WHERE name = 'old'").await;
    assert!(old_key > 0);

    // 0980: PUBLIC's grants became the database's own roles (named after
    // it, beside the host's `infrasql_infra_*` on the same cluster), and
    // the login role that used the database through PUBLIC is an admin.
    let public_grants: i64 = one(
        &old,
        // Objects made later keep the defaults (infra tables readable by
        // PUBLIC, functions runnable): only the schemas' USAGE lets a role
        // reach them, and PUBLIC lost it.
        "SELECT (SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a \
                  WHERE n.nspname IN ('aws', 'infra') AND a.grantee = 0) \
              + (SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a \
                  WHERE a.grantee = 0 AND c.relnamespace IN ('aws'::regnamespace, 'infra'::regnamespace) \
                    AND (c.relnamespace = 'aws'::regnamespace OR a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE')))",
    )
    .await;
    assert_eq!(public_grants, 0);
    let admin: bool = one(
        &old,
        &format!(
            "SELECT pg_has_role('{}', 'old_infra_admin', 'MEMBER')",
            common::USER
        ),
    )
    .await;
    assert!(admin);
    let groups: i64 = one(
        &old,
        "SELECT count(*) FROM pg_roles WHERE rolname IN              ('old_infra_reader', 'old_infra_operator', 'old_infra_admin',               'infrasql_infra_reader', 'infrasql_infra_operator', 'infrasql_infra_admin')",
    )
    .await;
    assert_eq!(groups, 6);
}
