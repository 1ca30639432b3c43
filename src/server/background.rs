//! The loops that run beside the sessions for as long as the server does:
//! settling unfinished applies, and pruning old history. Each ends when
//! the server's shutdown watch turns true.

use std::sync::Arc;

use tokio::sync::watch;

use crate::engine::apply::Resources;
use crate::engine::journal::retention;
use crate::engine::recover;
use crate::store::engine_db::EngineDb;

/// How often unfinished applies are looked at.
const RECOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// How often history older than `--history-retention` is deleted.
const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Settle applies whose COMMIT outcome is now known, or whose process died.
pub(super) async fn recovery_loop(
    db: Arc<EngineDb>,
    resources: Resources,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RECOVERY_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        // A session of its own: convergence locks rows in transactions.
        match db.session().await {
            Ok(s) => match recover::recover_once(&s, &resources).await {
                Ok(_) => s.done(),
                Err(e) => tracing::warn!("recovery pass failed: {e}"),
            },
            Err(e) => tracing::warn!("recovery cannot reach the database: {e}"),
        }
    }
}

/// Delete settled history older than `keep`: at start, then hourly.
pub(super) async fn retention_loop(
    db: Arc<EngineDb>,
    keep: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match db.shared().await {
            Ok(c) => match retention::prune(&c, keep).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("history retention: deleted {n} settled applies"),
                Err(e) => tracing::warn!("history retention failed: {e}"),
            },
            Err(e) => tracing::warn!("history retention cannot reach the database: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
    }
}
