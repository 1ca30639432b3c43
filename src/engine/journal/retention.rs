//! History retention: settled applies older than `--history-retention`
//! are deleted (their actions go by `ON DELETE CASCADE`), so the journal
//! does not grow without bound.
//!
//! Only settled applies go (`succeeded`, `failed`, `recovered`): an
//! unsettled one is recovery's work list, whatever its age.

use std::time::Duration;

use tokio_postgres::Client;

use super::ApplyStatus;

/// The statuses after which an apply never changes again.
const SETTLED: [ApplyStatus; 3] = [
    ApplyStatus::Succeeded,
    ApplyStatus::Failed,
    ApplyStatus::Recovered,
];

/// Delete the settled applies that finished more than `keep` ago; returns
/// how many went.
pub async fn prune(db: &Client, keep: Duration) -> Result<u64, tokio_postgres::Error> {
    let settled: Vec<&str> = SETTLED.iter().map(|s| s.as_str()).collect();
    db.execute(
        "DELETE FROM infra.apply WHERE status = ANY($1) \
         AND finished_at < now() - $2::float8 * interval '1 second'",
        &[&settled, &keep.as_secs_f64()],
    )
    .await
}
