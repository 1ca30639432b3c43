//! The apply history (`infra.apply`) and one apply: its actions
//! (`infra.apply_action`), its graph and its revert plan (`infra.revert`).
//! The journal keeps no step's `depends_on`, so the graph's edges are
//! found again from the references the rows carry (`steps`).

use axum::extract::{Path, State};
use serde_json::Value;

use super::steps::{self, JournalStep};
use crate::client::graph;
use crate::http::auth::Caller;
use crate::http::db::AsRole;
use crate::http::html::{esc, link, opt, page, table, url_part, PageError, PageResult};
use crate::http::{svg, AppState};

pub async fn applies(caller: Caller, State(s): State<AppState>) -> PageResult {
    let tx = AsRole::begin(&s, &caller).await?;
    let rows = tx
        .query(
            "SELECT apply_id, started_at::text, finished_at::text, status, username, source, actions, error \
             FROM infra.apply ORDER BY started_at DESC, apply_id LIMIT 200",
            &[],
        )
        .await?;
    tx.finish().await;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let id: String = r.get(0);
            vec![
                link(&format!("/applies/{}", url_part(&id)), &id),
                esc(&r.get::<_, String>(1)),
                opt(r.get::<_, Option<String>>(2).as_deref()),
                esc(&r.get::<_, String>(3)),
                esc(&r.get::<_, String>(4)),
                esc(&r.get::<_, String>(5)),
                r.get::<_, i32>(6).to_string(),
                opt(r.get::<_, Option<String>>(7).as_deref()),
            ]
        })
        .collect();
    let headers = [
        "apply", "started", "finished", "status", "by", "source", "actions", "error",
    ];
    Ok(page(
        "Applies",
        &format!(
            "<p>The 200 newest.</p>{}",
            table("applies", &headers, &cells)
        ),
    ))
}

pub async fn apply(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> PageResult {
    let tx = AsRole::begin(&s, &caller).await?;
    let Some(head) = tx
        .client()
        .query_opt(
            "SELECT status, started_at::text, finished_at::text, username, source, error \
             FROM infra.apply WHERE apply_id = $1",
            &[&id],
        )
        .await?
    else {
        return Err(PageError::NotFound(format!("No apply {id}.")));
    };
    let actions = tx
        .query(
            "SELECT step, action, table_name, resource_id, region, status, error, coalesce(after, before) \
             FROM infra.apply_action WHERE apply_id = $1 ORDER BY step",
            &[&id],
        )
        .await?;
    let references: Vec<(String, String, String)> = tx
        .query(
            "SELECT table_name, column_name, references_table FROM infra.resource_column \
             WHERE references_table IS NOT NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    // Last: a refusal (a failed apply, a later apply on the same
    // resources) aborts the transaction, and its message is the answer.
    let revert = match tx
        .client()
        .query_one("SELECT infra.revert($1)", &[&id])
        .await
    {
        Ok(r) => Ok(r.get::<_, String>(0)),
        Err(e) => match e.as_db_error() {
            Some(d) => Err(d.message().to_owned()),
            None => return Err(e.into()),
        },
    };
    tx.finish().await;

    let journal: Vec<JournalStep> = actions
        .iter()
        .map(|r| JournalStep {
            step: r.get::<_, i32>(0) as i64,
            action: r.get(1),
            table: r.get(2),
            resource_id: r.get::<_, Option<String>>(3).unwrap_or_default(),
            region: r.get(4),
            row: r.get::<_, Option<Value>>(7),
        })
        .collect();
    let cells: Vec<Vec<String>> = actions
        .iter()
        .map(|r| {
            vec![
                r.get::<_, i32>(0).to_string(),
                esc(&r.get::<_, String>(1)),
                esc(&r.get::<_, String>(2)),
                opt(r.get::<_, Option<String>>(3).as_deref()),
                esc(&r.get::<_, String>(4)),
                esc(&r.get::<_, String>(5)),
                opt(r.get::<_, Option<String>>(6).as_deref()),
            ]
        })
        .collect();
    let plan = steps::plan_rows(&journal, &references);
    let g = graph::from_plan(&plan);
    let summary = format!(
        "<table id=\"apply\"><tr><th>status</th><td>{}</td></tr><tr><th>started</th><td>{}</td></tr>\
         <tr><th>finished</th><td>{}</td></tr><tr><th>by</th><td>{}</td></tr>\
         <tr><th>source</th><td>{}</td></tr><tr><th>error</th><td>{}</td></tr></table>",
        esc(&head.get::<_, String>(0)),
        esc(&head.get::<_, String>(1)),
        opt(head.get::<_, Option<String>>(2).as_deref()),
        esc(&head.get::<_, String>(3)),
        esc(&head.get::<_, String>(4)),
        opt(head.get::<_, Option<String>>(5).as_deref()),
    );
    let revert = match revert {
        Ok(sql) => format!(
            "<p>Run it with <code>infrasql revert {}</code> (plan first, then <code>--yes</code>).</p>\
             <pre id=\"revert-sql\">{}</pre>",
            esc(&id),
            esc(&sql)
        ),
        Err(why) => format!("<p id=\"revert-refused\">No revert: {}</p>", esc(&why)),
    };
    let body = format!(
        "{summary}<h2 id=\"actions\">Actions</h2>{}<h2>Graph</h2>{}\
         <details><summary>Mermaid</summary><pre id=\"mermaid\">{}</pre></details>\
         <h2 id=\"revert\">Revert plan</h2>{revert}",
        table(
            "actions-table",
            &["step", "action", "table", "resource", "region", "status", "error"],
            &cells
        ),
        svg::render(&g),
        esc(&graph::mermaid(&g, &[])),
    );
    Ok(page(&format!("Apply {id}"), &body))
}
