//! What is open now: drift and stacks.

use axum::extract::State;

use crate::http::auth::Caller;
use crate::http::db::AsRole;
use crate::http::html::{esc, link, opt, page, table, PageResult};
use crate::http::AppState;

pub async fn drift(caller: Caller, State(s): State<AppState>) -> PageResult {
    let tx = AsRole::begin(&s, &caller).await?;
    let rows = tx
        .query(
            "SELECT drift_id, detected_at::text, table_name, resource_id, region, kind, field, \
                    known_value::text, actual_value::text \
             FROM infra.drift WHERE resolution = 'open' ORDER BY detected_at DESC, drift_id DESC LIMIT 500",
            &[],
        )
        .await?;
    tx.finish().await;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let table_name: String = r.get(2);
            vec![
                r.get::<_, i64>(0).to_string(),
                esc(&r.get::<_, String>(1)),
                link(
                    &format!("/inventory/{}", crate::http::html::url_part(&table_name)),
                    &table_name,
                ),
                esc(&r.get::<_, String>(3)),
                esc(&r.get::<_, String>(4)),
                esc(&r.get::<_, String>(5)),
                opt(r.get::<_, Option<String>>(6).as_deref()),
                opt(r.get::<_, Option<String>>(7).as_deref()),
                opt(r.get::<_, Option<String>>(8).as_deref()),
            ]
        })
        .collect();
    let headers = [
        "#", "detected", "table", "resource", "region", "kind", "field", "known", "actual",
    ];
    Ok(page(
        "Open drift",
        &format!(
            "<p>{} open (the 500 newest shown). Resolve by committing, or see infra.drift_policy.</p>{}",
            rows.len(),
            table("drift", &headers, &cells)
        ),
    ))
}

pub async fn stacks(caller: Caller, State(s): State<AppState>) -> PageResult {
    let tx = AsRole::begin(&s, &caller).await?;
    let rows = tx
        .query(
            "SELECT name, source, revision, author, applied_at::text, status, error, resources, open_drift \
             FROM infra.stack ORDER BY name",
            &[],
        )
        .await?;
    tx.finish().await;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                esc(&r.get::<_, String>(0)),
                opt(r.get::<_, Option<String>>(1).as_deref()),
                opt(r.get::<_, Option<String>>(2).as_deref()),
                opt(r.get::<_, Option<String>>(3).as_deref()),
                opt(r.get::<_, Option<String>>(4).as_deref()),
                esc(&r.get::<_, String>(5)),
                opt(r.get::<_, Option<String>>(6).as_deref()),
                r.get::<_, Option<i64>>(7).unwrap_or(0).to_string(),
                r.get::<_, Option<i64>>(8).unwrap_or(0).to_string(),
            ]
        })
        .collect();
    let headers = [
        "stack",
        "source",
        "revision",
        "author",
        "applied",
        "status",
        "error",
        "resources",
        "open drift",
    ];
    Ok(page("Stacks", &table("stacks", &headers, &cells)))
}
