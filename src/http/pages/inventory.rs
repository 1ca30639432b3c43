//! The inventory: the resource tables of the description
//! (`infra.resource_column`) with their row counts, and one table's rows
//! with a search over every shown value. Only those tables can be named:
//! the path is checked against the list before it reaches SQL.

use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::Value;

use crate::http::auth::Caller;
use crate::http::db::{quote_ident, AsRole};
use crate::http::html::{esc, link, page, table, url_part, PageError, PageResult};
use crate::http::AppState;

/// Rows one page shows at most.
const MAX_ROWS: i64 = 500;

#[derive(Debug, Deserialize)]
pub struct Search {
    q: Option<String>,
}

async fn resource_tables(tx: &AsRole<'_>) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(tx
        .query(
            "SELECT DISTINCT table_name FROM infra.resource_column ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// `aws.vpc` → `"aws"."vpc"`.
fn qualified(table: &str) -> String {
    match table.split_once('.') {
        Some((schema, name)) => format!("{}.{}", quote_ident(schema), quote_ident(name)),
        None => quote_ident(table),
    }
}

pub async fn tables(caller: Caller, State(s): State<AppState>) -> PageResult {
    let tx = AsRole::begin(&s, &caller).await?;
    let mut cells = Vec::new();
    for t in resource_tables(&tx).await? {
        let n: i64 = tx
            .client()
            .query_one(&format!("SELECT count(*) FROM {}", qualified(&t)), &[])
            .await?
            .get(0);
        cells.push(vec![
            link(&format!("/inventory/{}", url_part(&t)), &t),
            n.to_string(),
        ]);
    }
    tx.finish().await;
    Ok(page(
        "Inventory",
        &table("tables", &["table", "rows"], &cells),
    ))
}

pub async fn rows(
    caller: Caller,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(search): Query<Search>,
) -> PageResult {
    let q = search.q.unwrap_or_default();
    let tx = AsRole::begin(&s, &caller).await?;
    if !resource_tables(&tx).await?.contains(&name) {
        return Err(PageError::NotFound(format!("{name} is no resource table.")));
    }
    let (schema, bare) = name.split_once('.').unwrap_or(("aws", name.as_str()));
    // The columns the role may read, less write-only ones (always NULL in
    // a row, but not worth a column that only says so).
    let columns: Vec<String> = tx
        .query(
            "SELECT c.column_name::text FROM information_schema.columns c \
             WHERE c.table_schema::text = $1::text AND c.table_name::text = $2::text \
               AND NOT EXISTS (SELECT 1 FROM infra.resource_column r \
                                WHERE r.table_name = $3::text AND r.column_name = c.column_name::text \
                                  AND r.kind = 'write_only') \
             ORDER BY c.ordinal_position",
            &[&schema, &bare, &name],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let found = tx
        .query(
            &format!(
                "SELECT to_jsonb(t) FROM {} t \
                 WHERE $1::text = '' OR strpos(lower(to_jsonb(t)::text), lower($1::text)) > 0 \
                 ORDER BY t.id LIMIT {MAX_ROWS}",
                qualified(&name)
            ),
            &[&q],
        )
        .await?;
    tx.finish().await;
    let cells: Vec<Vec<String>> = found
        .iter()
        .map(|r| {
            let row: Value = r.get(0);
            columns.iter().map(|c| cell(row.get(c))).collect()
        })
        .collect();
    let headers: Vec<&str> = columns.iter().map(String::as_str).collect();
    let body = format!(
        "<form method=\"get\"><input name=\"q\" value=\"{}\" placeholder=\"search every column\" autofocus> \
         <button type=\"submit\">Search</button></form><p id=\"count\">Rows: {}{}</p>{}",
        esc(&q),
        found.len(),
        if found.len() as i64 == MAX_ROWS { " (the first 500)" } else { "" },
        table("rows", &headers, &cells)
    );
    Ok(page(&name, &body))
}

/// A value as text: strings bare, NULL a dash, anything else its JSON.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<span class=\"muted\">–</span>".into(),
        Some(Value::String(s)) => esc(s),
        Some(other) => format!("<code>{}</code>", esc(&other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_values_escaped() {
        assert_eq!(qualified("aws.vpc"), "\"aws\".\"vpc\"");
        assert_eq!(cell(Some(&Value::String("<x>".into()))), "&lt;x&gt;");
        assert_eq!(
            cell(Some(&serde_json::json!({"Name": "<b>"}))),
            "<code>{&quot;Name&quot;:&quot;&lt;b&gt;&quot;}</code>"
        );
        assert!(cell(None).contains("muted"));
    }
}
