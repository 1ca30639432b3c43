//! A round's writes to the database, in its transaction and as the engine
//! role (so change capture never takes them for a user's intent): the rows,
//! then the drift records.

use infrasql_provider::{Props, ResourceSchema};
use tokio_postgres::Transaction;

use super::diff::{resolution, Columns, Diff, DriftRecord, RowWrite};
use super::{ident, SyncError};

/// Updates in two batches (every observed column; cloud-assigned ones
/// only), inserts in one, deletes one at a time. A batch is serialised
/// straight from the listed resources (`observed`, which the writes
/// index), with no copy of them in between, and sent in statements of
/// about [`CHUNK_BYTES`] of JSON each (issue #15, peak RSS).
///
/// `diff` sends only rows it found changed, by comparing JSON; an update
/// also checks, in the database's own types, that a written column
/// differs (a timestamp or an address spelt differently is equal there),
/// so a row equal to the listing never gets a new version or synced_at.
pub(super) async fn rows(
    tx: &Transaction<'_>,
    schema: &ResourceSchema,
    table: &str,
    diff: &Diff,
    observed: &[Props],
) -> Result<(), SyncError> {
    let idc = schema.id_column();
    let set = |cols: &[&str]| {
        cols.iter()
            .filter(|c| **c != idc)
            .map(|c| format!("{0} = r.{0}", ident(c)))
            .chain(std::iter::once("synced_at = now()".to_owned()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (scope, cols) in [
        (Columns::Observed, &diff.observed_cols),
        (Columns::CloudAssigned, &diff.cloud_cols),
    ] {
        let rows: Vec<&Props> = diff
            .writes
            .iter()
            .filter_map(|w| match w {
                RowWrite::Update { columns, at, .. } if *columns == scope => Some(&observed[*at]),
                _ => None,
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let written: Vec<&str> = cols.iter().copied().filter(|c| *c != idc).collect();
        let sql = format!(
            "UPDATE {table} AS t SET {} FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb) AS r \
             WHERE t.{1} = r.{1} AND (t.synced_at IS NULL OR {2})",
            set(cols),
            ident(idc),
            differs(&written),
        );
        in_chunks(tx, &sql, &rows).await?;
    }
    let inserts: Vec<&Props> = diff
        .writes
        .iter()
        .filter_map(|w| match w {
            RowWrite::Insert { at, .. } => Some(&observed[*at]),
            _ => None,
        })
        .collect();
    if !inserts.is_empty() {
        let cols: Vec<String> = diff.observed_cols.iter().map(|c| ident(c)).collect();
        let sql = format!(
            "INSERT INTO {table} ({0}, synced_at) SELECT {0}, now() FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb) r \
             ON CONFLICT DO NOTHING",
            cols.join(", "),
        );
        in_chunks(tx, &sql, &inserts).await?;
    }
    for w in &diff.writes {
        let RowWrite::Delete { id } = w else {
            continue;
        };
        // A parent whose children are still rows waits for a later round.
        tx.batch_execute("SAVEPOINT sync_delete").await?;
        let r = tx
            .execute(
                &format!("DELETE FROM {table} WHERE {} = $1", ident(idc)),
                &[id],
            )
            .await;
        let undo = if r.is_err() {
            "ROLLBACK TO SAVEPOINT sync_delete"
        } else {
            "RELEASE SAVEPOINT sync_delete"
        };
        tx.batch_execute(undo).await?;
    }
    Ok(())
}

/// The JSON text of one statement's rows, at most about this long: 40,000
/// rows in one statement made their text, the bind message and the
/// connection's write buffer (each as long as the text, the bind message
/// up to twice as it grows) 170 MB of a 545 MB peak (heaptrack, 100,000
/// resources). A chunk of 1 MiB is 1,000–2,000 rows: a statement per
/// chunk costs a round trip, small next to writing the rows.
const CHUNK_BYTES: usize = 1 << 20;

/// Runs `sql` (whose `$1` is a JSON array of rows, the text
/// `jsonb_populate_recordset` reads) for `rows`, a chunk at a time: the
/// rows are written independently of each other, in the round's one
/// transaction, so the chunks write what one statement would.
async fn in_chunks(tx: &Transaction<'_>, sql: &str, rows: &[&Props]) -> Result<(), SyncError> {
    let statement = tx.prepare(sql).await?;
    let mut text = String::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4);
    for (i, row) in rows.iter().enumerate() {
        text.push(if text.is_empty() { '[' } else { ',' });
        text.push_str(&serde_json::to_string(row).expect("a JSON map always serialises"));
        if text.len() >= CHUNK_BYTES || i + 1 == rows.len() {
            text.push(']');
            tx.execute(&statement, &[&text]).await?;
            text.clear();
        }
    }
    Ok(())
}

/// `(t.a, t.b) IS DISTINCT FROM (r.a, r.b)` over the written columns
/// (`false` for none: only a missing synced_at makes such a row a write).
fn differs(cols: &[&str]) -> String {
    match cols {
        [] => "false".to_owned(),
        [c] => format!("t.{0} IS DISTINCT FROM r.{0}", ident(c)),
        _ => {
            let of = |side: &str| {
                cols.iter()
                    .map(|c| format!("{side}.{}", ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("({}) IS DISTINCT FROM ({})", of("t"), of("r"))
        }
    }
}

/// Records the round's drift, resolved by policy and by whether the
/// round's reverts succeeded.
pub(super) async fn drift(
    tx: &Transaction<'_>,
    table: &str,
    region: &str,
    records: &[DriftRecord],
    revert_ok: bool,
) -> Result<(), SyncError> {
    for d in records {
        let resolution = resolution(d.policy, revert_ok);
        tx.execute(
            "INSERT INTO infra.drift (table_name, resource_id, region, kind, field, known_value, actual_value, resolution, resolved_at) \
             VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8, CASE WHEN $8 = 'open' THEN NULL ELSE now() END)",
            &[
                &table,
                &d.id,
                &region,
                &d.kind.as_str(),
                &d.field,
                &d.known.to_string(),
                &d.actual.to_string(),
                &resolution,
            ],
        )
        .await?;
    }
    Ok(())
}

/// A set's join rows: what the round adopted.
pub(super) async fn members(
    tx: &Transaction<'_>,
    join_table: &str,
    set: infrasql_provider::MemberSet,
    d: &super::members::Diff,
) -> Result<(), SyncError> {
    let cols = format!("{}, {}", ident(set.owner), ident(set.member));
    let split = |pairs: &[(String, String)]| -> (Vec<String>, Vec<String>) {
        pairs.iter().cloned().unzip()
    };
    if !d.inserts.is_empty() {
        let (o, m) = split(&d.inserts);
        tx.execute(
            &format!(
                "INSERT INTO {join_table} ({cols}) SELECT * FROM unnest($1::text[], $2::text[]) \
                 ON CONFLICT DO NOTHING"
            ),
            &[&o, &m],
        )
        .await?;
    }
    if !d.deletes.is_empty() {
        let (o, m) = split(&d.deletes);
        tx.execute(
            &format!(
                "DELETE FROM {join_table} WHERE ({cols}) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
            ),
            &[&o, &m],
        )
        .await?;
    }
    Ok(())
}
