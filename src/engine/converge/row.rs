//! The committed row a convergence step acts on: locked for the step, with
//! its sets read as arrays.

use infrasql_provider::{Props, Resource};
use serde_json::Value;
use tokio_postgres::Client;

use super::{ident, obj, Converged};

/// The committed row, locked for the duration of a convergence step.
pub(super) enum Locked {
    Row(Props),
    /// No row: a later commit deleted it.
    Gone,
    /// An open transaction holds it: its COMMIT decides first; the step is
    /// left pending and retried.
    Busy,
}

/// How long convergence waits for a row another transaction holds.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `BEGIN` and lock the committed row (waiting at most [`LOCK_WAIT`]). On `Row`, the
/// caller ends the transaction; on `Gone` and `Busy` it is already over.
pub(super) async fn lock_row(
    db: &Client,
    schema: &infrasql_provider::ResourceSchema,
    id: &str,
    out: &mut Converged,
) -> Result<Locked, tokio_postgres::Error> {
    let table = schema.qualified();
    // A short wait, not NOWAIT: the sync loop holds each row for moments
    // every round, and a pass that always met it would never finish.
    db.batch_execute(&format!(
        "BEGIN; SET LOCAL lock_timeout = '{}ms'",
        LOCK_WAIT.as_millis()
    ))
    .await?;
    let row = db
        .query_opt(
            &format!(
                "SELECT to_jsonb(t) FROM {table} t WHERE {} = $1 FOR UPDATE",
                ident(schema.id_column())
            ),
            &[&id],
        )
        .await;
    match row {
        Ok(Some(r)) => Ok(Locked::Row(obj(Some(r.get(0))))),
        Ok(None) => {
            db.batch_execute("ROLLBACK").await?;
            Ok(Locked::Gone)
        }
        Err(e) => {
            db.batch_execute("ROLLBACK").await?;
            if e.code() != Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                return Err(e);
            }
            out.busy
                .push(format!("{table} {id} is locked by an open transaction"));
            Ok(Locked::Busy)
        }
    }
}

/// The row with its sets (join tables) as arrays, as the commit path hands
/// them over, so a set the apply changed is put back too. The owner's row
/// is locked, and a change to a set locks it first: the set is stable.
pub(super) async fn with_sets(
    db: &Client,
    resource: &dyn Resource,
    id: &str,
    mut row: Props,
) -> Result<Props, tokio_postgres::Error> {
    let schema = resource.schema();
    for (c, set) in schema.member_sets() {
        let members: Value = db
            .query_one(
                &format!(
                    "SELECT coalesce(jsonb_agg({m} ORDER BY {m}), '[]'::jsonb) FROM {}.{} WHERE {} = $1",
                    ident(schema.schema),
                    ident(set.table),
                    ident(set.owner),
                    m = ident(set.member),
                ),
                &[&id],
            )
            .await?
            .get(0);
        row.insert(c.name.to_owned(), members);
    }
    Ok(row)
}
