//! The web view: server-rendered, read-only pages. Each handler takes an
//! [`auth::Caller`] (no token, no page) and runs its queries as the
//! caller's role ([`db::AsRole`]).

mod history;
mod inventory;
mod state;
mod steps;

use axum::extract::State;
use axum::routing::get;
use axum::Router;

use super::auth::Caller;
use super::db::AsRole;
use super::html::{esc, link, page, PageError, PageResult};
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/inventory", get(inventory::tables))
        .route("/inventory/{table}", get(inventory::rows))
        .route("/drift", get(state::drift))
        .route("/stacks", get(state::stacks))
        .route("/applies", get(history::applies))
        .route("/applies/{id}", get(history::apply))
        .route("/login", get(login))
}

/// Where a browser, which cannot add an `Authorization` header, keeps the
/// token: a cookie set by this page's script (never sent to the server
/// but as the cookie itself; `SameSite=Strict`, `Secure` under HTTPS).
/// The page needs no token and shows nothing of the database.
async fn login() -> axum::response::Html<String> {
    page(
        "Sign in",
        "<form id=\"login\"><label>Token <input type=\"password\" id=\"token\" autocomplete=\"off\" required></label> \
         <button type=\"submit\">Sign in</button> <button type=\"button\" id=\"logout\">Sign out</button></form>\
         <p class=\"muted\">Make one with <code>infrasql token create --reader</code>.</p>\
         <script>\
         function keep(v, age) { document.cookie = 'infrasql_token=' + encodeURIComponent(v) + '; path=/; SameSite=Strict; max-age=' + age + (location.protocol === 'https:' ? '; Secure' : ''); }\
         document.getElementById('login').addEventListener('submit', function (e) { e.preventDefault(); keep(document.getElementById('token').value.trim(), 2592000); location.href = '/'; });\
         document.getElementById('logout').addEventListener('click', function () { keep('', 0); location.href = '/login'; });\
         </script>",
    )
}

async fn index(caller: Caller, State(s): State<AppState>) -> PageResult {
    let tx = AsRole::begin(&s, &caller).await?;
    let row = tx
        .client()
        .query_one(
            "SELECT (SELECT count(*) FROM infra.drift WHERE resolution = 'open'), \
                    (SELECT count(*) FROM infra.apply), \
                    (SELECT count(*) FROM infra.stack), current_user::text",
            &[],
        )
        .await?;
    tx.finish().await;
    let (drift, applies, stacks, role): (i64, i64, i64, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let items = [
        (
            "/inventory",
            "Inventory",
            "the resources per table, with search".to_owned(),
        ),
        ("/drift", "Drift", format!("{drift} open")),
        (
            "/applies",
            "Applies",
            format!("{applies} in the history, each with its actions and revert plan"),
        ),
        (
            "/stacks",
            "Stacks",
            format!("{stacks} stacks and their status"),
        ),
    ];
    let mut body = String::from("<ul id=\"sections\">");
    for (href, name, what) in items {
        body.push_str(&format!("<li>{}: {}</li>", link(href, name), esc(&what)));
    }
    body.push_str(&format!(
        "</ul><p class=\"muted\">Read-only. Your token reads as role {}.</p>",
        esc(&role)
    ));
    Ok(page("infrasql", &body))
}

/// Any other path: a token first, so strangers learn nothing of the routes.
pub async fn not_found(_caller: Caller) -> PageError {
    PageError::NotFound("There is no such page.".into())
}
