//! Probes for Kubernetes and compose: no token, and a body that tells
//! nothing beyond the answer (no versions, no error text).

use std::time::Duration;

use axum::extract::State;
use hyper::StatusCode;

use super::AppState;
use crate::store::migrate;

/// A probe that waits longer than this is answered "not ready".
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The process is alive and serving HTTP.
pub async fn healthz() -> (StatusCode, &'static str) {
    (StatusCode::OK, "ok\n")
}

/// The backend answers and every schema file of this binary is applied.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(PROBE_TIMEOUT, ready(&state)).await {
        Ok(Ok(true)) => (StatusCode::OK, "ready\n"),
        Ok(Ok(false)) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        Ok(Err(e)) => {
            tracing::debug!("readyz: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

async fn ready(state: &AppState) -> Result<bool, tokio_postgres::Error> {
    let names = migrate::names();
    let db = state.db.shared().await?;
    let applied: i64 = db
        .query_one(
            "SELECT count(*) FROM infra.schema_file WHERE version = ANY($1)",
            &[&names],
        )
        .await?
        .get(0);
    Ok(applied == names.len() as i64)
}
