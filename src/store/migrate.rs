//! Applies `schema/*.sql` in order, once each, under an advisory lock so
//! that several infrasql nodes starting on one database do not race.

use tokio_postgres::Client;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Arbitrary constant: the advisory lock key for migrations.
const MIGRATION_LOCK: i64 = 0x1AF2_A5C1_0000_0001;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration {name} failed: {source}")]
    Failed {
        name: String,
        source: tokio_postgres::Error,
    },
    #[error("cannot apply migrations: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("schema file {0} changed after it was applied; add a new file instead")]
    Changed(String),
}

fn checksum(sql: &str) -> String {
    // FNV-1a: stable across builds and platforms, enough to spot an edit.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The schema files this binary carries, by name (`/readyz` checks the
/// database has them all).
pub fn names() -> Vec<&'static str> {
    MIGRATIONS.iter().map(|(name, _)| *name).collect()
}

/// Returns the names applied by this call.
pub async fn migrate(client: &mut Client) -> Result<Vec<String>, MigrateError> {
    run(client, None).await
}

/// Apply only the files whose names sort before `first_skipped`: the schema
/// an earlier version left behind (applied files never change), so upgrade
/// tests can start from it.
pub async fn migrate_before(
    client: &mut Client,
    first_skipped: &str,
) -> Result<Vec<String>, MigrateError> {
    run(client, Some(first_skipped)).await
}

async fn run(client: &mut Client, stop: Option<&str>) -> Result<Vec<String>, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply_all(client, stop).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

/// Where applied files are recorded. Not `schema_migrations`, its first
/// name: infra is on the default search_path (0520_catalog.sql), and
/// migration runners that look for their own `schema_migrations` anywhere
/// on the search_path (Rails does) would take infrasql's for theirs.
const LEDGER: &str = "schema_file";
/// The first name, which 0001_infra.sql grants on: a new database starts
/// with it and the ledger is renamed once every file is applied.
const FIRST_LEDGER: &str = "schema_migrations";

async fn apply_all(client: &mut Client, stop: Option<&str>) -> Result<Vec<String>, MigrateError> {
    client
        .batch_execute("CREATE SCHEMA IF NOT EXISTS infra")
        .await?;
    let renamed: bool = client
        .query_one("SELECT to_regclass('infra.' || $1) IS NOT NULL", &[&LEDGER])
        .await?
        .get(0);
    let ledger = if renamed {
        LEDGER
    } else {
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS infra.{FIRST_LEDGER} (
                     version    text PRIMARY KEY,
                     checksum   text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 );"
            ))
            .await?;
        FIRST_LEDGER
    };
    let mut applied = Vec::new();
    for (name, sql) in MIGRATIONS {
        if stop.is_some_and(|s| *name >= s) {
            break;
        }
        let sum = checksum(sql);
        let row = client
            .query_opt(
                &format!("SELECT checksum FROM infra.{ledger} WHERE version = $1"),
                &[name],
            )
            .await?;
        match row {
            Some(r) if r.get::<_, String>(0) == sum => continue,
            Some(_) => return Err(MigrateError::Changed(name.to_string())),
            None => {}
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .map_err(|source| MigrateError::Failed {
                name: name.to_string(),
                source,
            })?;
        tx.execute(
            &format!("INSERT INTO infra.{ledger} (version, checksum) VALUES ($1, $2)"),
            &[name, &sum],
        )
        .await?;
        tx.commit().await?;
        tracing::info!("applied schema {name}");
        applied.push(name.to_string());
    }
    // Only once every file is in: a partial run (an upgrade test's earlier
    // version) leaves the ledger as that version had it.
    if ledger == FIRST_LEDGER && stop.is_none() {
        client
            .batch_execute(&format!(
                "ALTER TABLE infra.{FIRST_LEDGER} RENAME TO {LEDGER};
                 ALTER TABLE infra.{LEDGER} RENAME CONSTRAINT {FIRST_LEDGER}_pkey TO {LEDGER}_pkey;"
            ))
            .await?;
    }
    Ok(applied)
}
