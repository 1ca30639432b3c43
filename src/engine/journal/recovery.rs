//! The journal as recovery reads and settles it.

use std::time::Duration;

use infrasql_provider::Props;
use serde_json::Value;
use tokio_postgres::Client;

use super::{ApplyId, ApplyStatus, Journal};

/// An apply whose outcome is not final and whose next try is due.
pub struct Unsettled {
    pub id: ApplyId,
    pub status: ApplyStatus,
    /// `pg_xact_status` of its transaction: `committed`, `aborted`, `in progress`.
    pub xact: String,
    pub attempts: i32,
}

/// Unsettled applies whose next try is due, oldest first.
pub async fn unsettled(db: &Client) -> Result<Vec<Unsettled>, tokio_postgres::Error> {
    let rows = db
        .query(
            "SELECT apply_id, status, coalesce(pg_xact_status(xid)::text, 'aborted'), attempts \
             FROM infra.apply \
             WHERE status IN ('running', 'applied', 'undoing', 'attention') \
               AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
             ORDER BY started_at",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let status: String = r.get(1);
            Some(Unsettled {
                id: ApplyId(r.get(0)),
                status: ApplyStatus::parse(&status)?,
                xact: r.get(2),
                attempts: r.get(3),
            })
        })
        .collect())
}

/// A step as the journal recorded it, for convergence.
pub struct Recorded {
    pub step: i32,
    /// `create`, `update`, `delete`, `replace-create`, `replace-delete`.
    pub action: String,
    pub table: String,
    pub id: Option<String>,
    pub region: String,
    pub status: String,
    pub after: Props,
}

impl Journal<'_> {
    /// The steps that may have changed the cloud, newest first.
    pub async fn unsettled_steps(&self) -> Result<Vec<Recorded>, tokio_postgres::Error> {
        let rows = self
            .db
            .query(
                "SELECT step, action, table_name, resource_id, region, status, after \
                 FROM infra.apply_action WHERE apply_id = $1 \
                   AND status IN ('started', 'done', 'failed', 'undo_failed') \
                 ORDER BY step DESC",
                &[&self.id.as_str()],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Recorded {
                step: r.get(0),
                action: r.get(1),
                table: r.get(2),
                id: r.get(3),
                region: r.get(4),
                status: r.get(5),
                after: match r.get::<_, Option<Value>>(6) {
                    Some(Value::Object(m)) => m,
                    _ => Props::new(),
                },
            })
            .collect())
    }

    /// A step's new status after convergence.
    pub async fn set_step_status(
        &self,
        step: i32,
        status: &str,
    ) -> Result<(), tokio_postgres::Error> {
        self.db
            .execute(
                "UPDATE infra.apply_action SET status = $3, finished_at = now() WHERE apply_id = $1 AND step = $2",
                &[&self.id.as_str(), &step, &status],
            )
            .await
            .map(drop)
    }

    /// Every create of the apply in (table, region) is undone: what it
    /// created was found by its tag and deleted.
    pub async fn creates_undone(
        &self,
        table: &str,
        region: &str,
    ) -> Result<(), tokio_postgres::Error> {
        self.db
            .execute(
                "UPDATE infra.apply_action SET status = 'undone', finished_at = now() \
                 WHERE apply_id = $1 AND table_name = $2 AND region = $3 \
                   AND action IN ('create', 'replace-create') AND status <> 'undone'",
                &[&self.id.as_str(), &table, &region],
            )
            .await
            .map(drop)
    }

    /// The transaction committed after the apply: the apply succeeded.
    pub async fn committed(&self) -> Result<(), tokio_postgres::Error> {
        self.db
            .execute(
                "UPDATE infra.apply SET status = 'succeeded', finished_at = coalesce(finished_at, now()) WHERE apply_id = $1",
                &[&self.id.as_str()],
            )
            .await
            .map(drop)
    }

    /// The cloud equals the committed rows: the apply ends as `status`. A
    /// refused COMMIT (`failed`) keeps the error it reported, and gets the
    /// note after it.
    pub async fn settled(
        &self,
        status: ApplyStatus,
        note: &str,
    ) -> Result<(), tokio_postgres::Error> {
        self.db
            .execute(
                "UPDATE infra.apply SET status = $2, finished_at = now(), next_attempt_at = NULL, \
                        error = CASE WHEN $2 = 'failed' THEN coalesce(error || '; ', '') || $3 ELSE $3 END \
                 WHERE apply_id = $1",
                &[&self.id.as_str(), &status.as_str(), &note],
            )
            .await
            .map(drop)
    }

    /// Not settled yet: try again after `wait`.
    pub async fn retry_later(
        &self,
        status: ApplyStatus,
        tries: i32,
        wait: Duration,
        why: &str,
    ) -> Result<(), tokio_postgres::Error> {
        self.db
            .execute(
                "UPDATE infra.apply SET status = $2, attempts = $3, \
                        next_attempt_at = now() + make_interval(secs => $4), error = $5 \
                 WHERE apply_id = $1",
                &[
                    &self.id.as_str(),
                    &status.as_str(),
                    &tries,
                    &wait.as_secs_f64(),
                    &why,
                ],
            )
            .await
            .map(drop)
    }
}
