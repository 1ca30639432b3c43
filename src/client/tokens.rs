//! `infrasql token create --reader|--admin`, `token list` and `token
//! revoke ID`, run by an admin on a running infrasql. The token is made
//! here and printed once; the server gets only its SHA-256
//! (`infra.http_token_create`, schema/1020_http_token.sql).

use anyhow::anyhow;

use super::connect;
use super::sql::server_error;
use crate::http::token;

/// What a token's requests may read: the reader's or the admin's grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Kind {
    /// Reads as the reader group: inventory, drift, history, stacks.
    #[arg(long)]
    pub reader: bool,
    /// Reads as the admin group (also what only admins may read).
    #[arg(long)]
    pub admin: bool,
}

impl Kind {
    fn as_str(&self) -> &'static str {
        if self.admin {
            "admin"
        } else {
            "reader"
        }
    }
}

/// The new token's id and the token, which is shown once and kept nowhere.
pub async fn create(url: Option<&str>, kind: Kind) -> anyhow::Result<(i64, String)> {
    let client = connect::connect(&connect::config(url, "")?).await?;
    let secret = token::generate();
    let id: i64 = client
        .query_one(
            "SELECT infra.http_token_create($1, $2)",
            &[&kind.as_str(), &token::hash(&secret)],
        )
        .await
        .map_err(|e| anyhow!("cannot create a token: {}", server_error(&e)))?
        .get(0);
    Ok((id, secret))
}

/// One line per token: id, kind, made when and by whom, last used.
pub async fn list(url: Option<&str>) -> anyhow::Result<String> {
    let client = connect::connect(&connect::config(url, "")?).await?;
    let rows = client
        .query(
            "SELECT id, kind, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), created_by, \
                    coalesce(to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'never') \
             FROM infra.http_token ORDER BY id",
            &[],
        )
        .await
        .map_err(|e| anyhow!("cannot list tokens: {}", server_error(&e)))?;
    let mut out = String::from("id\tkind\tcreated\tcreated_by\tlast_used\n");
    for r in rows {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            r.get::<_, i64>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2),
            r.get::<_, String>(3),
            r.get::<_, String>(4)
        ));
    }
    Ok(out)
}

pub async fn revoke(url: Option<&str>, id: i64) -> anyhow::Result<String> {
    let client = connect::connect(&connect::config(url, "")?).await?;
    client
        .execute("SELECT infra.http_token_revoke($1)", &[&id])
        .await
        .map_err(|e| anyhow!("cannot revoke token {id}: {}", server_error(&e)))?;
    Ok(format!("revoked HTTP token {id}"))
}
