//! A request's queries: one read-only transaction on an engine session,
//! under `SET LOCAL ROLE` to the caller's group role. The database then
//! judges every query as it would that role's own (grants, row-level
//! security), and READ ONLY makes a page unable to write even through a
//! function it calls. The session goes back to the pool only after the
//! transaction ended cleanly; a request that failed half-way drops it,
//! which closes the connection (and ends the transaction with it).

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::auth::Caller;
use super::AppState;
use crate::store::engine_db::Session;

pub struct AsRole<'a> {
    session: Session<'a>,
    /// A turn among the pages that may hold a connection at once.
    _turn: tokio::sync::SemaphorePermit<'a>,
}

impl<'a> AsRole<'a> {
    pub async fn begin(
        state: &'a AppState,
        caller: &Caller,
    ) -> Result<AsRole<'a>, tokio_postgres::Error> {
        let turn = state.turn().await;
        let session = state.db.session().await?;
        session
            .batch_execute(&format!(
                "BEGIN TRANSACTION READ ONLY; SET LOCAL ROLE {}",
                quote_ident(&caller.role)
            ))
            .await?;
        Ok(AsRole {
            session,
            _turn: turn,
        })
    }

    pub fn client(&self) -> &Client {
        &self.session
    }

    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.session.query(sql, params).await
    }

    /// End the transaction (nothing was written) and hand the session back.
    pub async fn finish(self) {
        if self.session.batch_execute("ROLLBACK").await.is_ok() {
            self.session.done();
        }
    }
}

/// An identifier in double quotes, as PostgreSQL's `quote_ident` would
/// (always quoted: the role name comes from the database name).
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(super::quote_ident("a_infra_reader"), "\"a_infra_reader\"");
        assert_eq!(super::quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
