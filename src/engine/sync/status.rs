//! `infra.sync_status`: each (table, region)'s last round, its consecutive
//! failures, and when the background loop tries it next.
//!
//! A pair that keeps failing (denied, throttled, AWS unavailable, a broken
//! table) is retried at a growing interval, not every round: the loop's
//! interval doubled per consecutive failure, up to 32 times the interval or
//! [`MAX_DELAY`]. A success resets it. A user's `SELECT infra.sync(...)`
//! tries now regardless: a person asking for fresh rows wants them now.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::{Stats, SyncError};
use crate::store::engine_db::Statements;

/// The slowest retry pace (unless the interval itself is slower).
pub const MAX_DELAY: Duration = Duration::from_secs(600);

/// The wait after `failures` consecutive failed rounds: `interval` doubled
/// per failure, at most 32 × `interval` and at most [`MAX_DELAY`], never
/// less than one interval.
pub fn next_delay(interval: Duration, failures: i32) -> Duration {
    let doubled = interval.saturating_mul(1 << failures.clamp(0, 5));
    doubled.min(MAX_DELAY).max(interval)
}

/// Whether a pair whose next try is due at `next_attempt_at` may run at `now`.
pub fn is_due(next_attempt_at: Option<SystemTime>, now: SystemTime) -> bool {
    next_attempt_at.is_none_or(|t| t <= now)
}

/// The pair's state as the round starts.
pub(super) struct PairStatus {
    /// No successful round yet: what exists is imported, not drift.
    pub first: bool,
    /// Consecutive failed rounds before this one.
    pub failures: i32,
    /// The database's clock when the round began, before its listing.
    pub began: std::time::SystemTime,
}

/// Reads the pair's state and marks the round started: one statement (the
/// upsert leaves `resources_seen` and `failures` as they were, so the row it
/// returns holds the state before the round).
pub(super) async fn start(
    db: &tokio_postgres::Client,
    st: &Statements,
    table: &str,
    region: &str,
) -> Result<PairStatus, SyncError> {
    // `resources_seen` is written by successful rounds only, so a failed
    // round does not make the next one a first import (which would adopt
    // without drift and skip report/revert).
    let sql = "INSERT INTO infra.sync_status AS s (region, table_name, last_started) \
               VALUES ($1, $2, now()) \
               ON CONFLICT (region, table_name) DO UPDATE SET last_started = now() \
               RETURNING s.resources_seen IS NULL, coalesce(s.failures, 0), clock_timestamp()";
    let row = db
        .query_one(&st.get(db, sql).await?, &[&region, &table])
        .await?;
    Ok(PairStatus {
        first: row.get(0),
        failures: row.get(1),
        began: row.get(2),
    })
}

/// How a round ended, for the status row.
pub(super) struct Outcome<'a> {
    pub result: &'a Result<Stats, SyncError>,
    /// Time the round spent on its own work (not waiting for parents).
    pub duration: Duration,
    pub calls: i32,
    /// Failures before this round.
    pub failures: i32,
    /// The backoff's base: the loop's interval.
    pub interval: Duration,
}

/// Records the round and releases the pair's session lock `lock_key`, in
/// one statement; a failure counts and sets the next try, a success resets
/// both. The status is best effort (the round's own result is what is
/// reported); an error here means the lock may still be held, so the
/// caller closes the connection, which releases it.
pub(super) async fn finish(
    db: &tokio_postgres::Client,
    st: &Statements,
    table: &str,
    region: &str,
    o: Outcome<'_>,
    lock_key: &str,
) -> Result<(), SyncError> {
    let (seen, error, class, failures, delay) = match o.result {
        Ok(s) => (Some(s.seen as i32), None, None, 0, None),
        Err(e) => {
            let failures = o.failures.saturating_add(1);
            let delay = next_delay(o.interval, failures).as_secs_f64();
            (
                None,
                Some(e.to_string()),
                Some(e.class_name()),
                failures,
                Some(delay),
            )
        }
    };
    // A data-modifying WITH runs whether or not the SELECT reads it.
    let sql = "WITH s AS (UPDATE infra.sync_status SET last_finished = now(), duration_ms = $3, \
               resources_seen = coalesce($4, resources_seen), api_calls = $5, last_error = $6, \
               last_error_class = $7, failures = $8, \
               next_attempt_at = now() + make_interval(secs => $9::float8) \
               WHERE region = $1 AND table_name = $2) \
               SELECT pg_advisory_unlock(hashtext($10))";
    db.execute(
        &st.get(db, sql).await?,
        &[
            &region,
            &table,
            &(o.duration.as_millis() as i32),
            &seen,
            &o.calls,
            &error,
            &class,
            &failures,
            &delay,
            &lock_key,
        ],
    )
    .await?;
    Ok(())
}

/// Marks the pair's rows confirmed by this round, in the round's
/// transaction (a failed round rolls it back, so its confirmed time stays):
/// the rows it left alone (`unconfirmed`, AWS ids) keep the time they had
/// in `infra.sync_unconfirmed`, the others are confirmed now through
/// `sync_status.confirmed_at`. One statement for the pair (the status row
/// too), not one per row; in a steady state it writes the status row only.
pub(super) async fn confirm(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    table: &str,
    region: &str,
    id_column: &str,
    unconfirmed: &[String],
) -> Result<(), SyncError> {
    // One statement, so `alone` reads confirmed_at as it was before the
    // round moves it (a statement sees one snapshot): a row left alone for
    // the first time keeps what infra.resource_confirmed said of it until
    // now.
    let sql = format!(
        "WITH alone AS ( \
             SELECT t.id, greatest(t.synced_at, s.confirmed_at) AS at FROM {table} t \
             LEFT JOIN infra.sync_status s ON s.table_name = $1 AND s.region = $2 \
             WHERE t.region = $2 AND t.{} = ANY($3)), \
         gone AS ( \
             DELETE FROM infra.sync_unconfirmed u WHERE u.table_name = $1 AND u.region = $2 \
             AND u.row_id NOT IN (SELECT id FROM alone)), \
         confirmed AS ( \
             UPDATE infra.sync_status SET confirmed_at = now() \
             WHERE table_name = $1 AND region = $2) \
         INSERT INTO infra.sync_unconfirmed (table_name, row_id, region, confirmed_at) \
         SELECT $1, id, $2, at FROM alone ON CONFLICT (table_name, row_id) DO NOTHING",
        super::ident(id_column)
    );
    tx.execute(&st.get(tx, &sql).await?, &[&table, &region, &unconfirmed])
        .await?;
    Ok(())
}

/// The pairs whose next try is not due yet (the background loop skips them).
pub(super) async fn not_due(
    db: &tokio_postgres::Client,
) -> Result<HashSet<(String, String)>, SyncError> {
    let now: SystemTime = db.query_one("SELECT now()", &[]).await?.get(0);
    Ok(db
        .query(
            "SELECT table_name, region, next_attempt_at FROM infra.sync_status \
             WHERE next_attempt_at IS NOT NULL",
            &[],
        )
        .await?
        .iter()
        .filter(|r| !is_due(r.get(2), now))
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// The open drift records per table (tables with none are absent).
pub(super) async fn open_drift(
    db: &tokio_postgres::Client,
) -> Result<Vec<(String, i64)>, SyncError> {
    Ok(db
        .query(
            "SELECT table_name, count(*) FROM infra.drift WHERE resolution = 'open' GROUP BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_interval_doubles_per_failure_up_to_32_times_it() {
        let every = 30 * S;
        assert_eq!(next_delay(every, 1), 60 * S);
        assert_eq!(next_delay(every, 2), 120 * S);
        assert_eq!(next_delay(every, 4), 480 * S);
        let short = S;
        assert_eq!(next_delay(short, 3), 8 * S);
        assert_eq!(next_delay(short, 5), 32 * S);
        assert_eq!(next_delay(short, 6), 32 * S, "32 times the interval");
        assert_eq!(next_delay(short, i32::MAX), 32 * S);
    }

    #[test]
    fn the_delay_stops_at_ten_minutes_but_never_under_one_interval() {
        assert_eq!(next_delay(30 * S, 5), MAX_DELAY);
        assert_eq!(next_delay(30 * S, 50), MAX_DELAY);
        assert_eq!(next_delay(3600 * S, 3), 3600 * S);
        assert_eq!(next_delay(30 * S, 0), 30 * S);
        assert_eq!(next_delay(30 * S, -1), 30 * S);
    }

    #[test]
    fn a_pair_is_due_once_its_time_has_come_or_if_it_never_failed() {
        let now = SystemTime::UNIX_EPOCH + 1000 * S;
        assert!(is_due(None, now));
        assert!(is_due(Some(now - S), now));
        assert!(is_due(Some(now), now));
        assert!(!is_due(Some(now + S), now));
    }
}
