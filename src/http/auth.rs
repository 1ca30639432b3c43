//! Who a request is: the token of its `Authorization: Bearer` header (or
//! of the cookie `/login` sets in a browser), looked up by its SHA-256 in
//! `infra.http_token`. Anonymous and unknown
//! (or revoked) tokens are both 401, with `WWW-Authenticate: Bearer`
//! (RFC 6750), and the body says no more than that.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use hyper::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use hyper::http::request::Parts;
use hyper::StatusCode;

use super::{token, AppState};

/// A request with a valid token: the group role its queries run as.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: i64,
    /// `<database>_infra_reader` or `_admin` (`infra.role_name`).
    pub role: String,
}

/// Why a request is refused before its handler runs.
#[derive(Debug)]
pub enum Refused {
    Anonymous,
    BadToken,
    /// The database did not answer: nobody can be checked.
    Unavailable,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, challenge, body) = match self {
            Refused::Anonymous => (
                StatusCode::UNAUTHORIZED,
                Some(r#"Bearer realm="infrasql""#),
                "a token is required: Authorization: Bearer <token> (infrasql token create); in a browser, sign in at /login\n",
            ),
            Refused::BadToken => (
                StatusCode::UNAUTHORIZED,
                Some(r#"Bearer realm="infrasql", error="invalid_token""#),
                "the token is unknown or revoked\n",
            ),
            Refused::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the database is not reachable\n",
            ),
        };
        let mut r = (status, body).into_response();
        if let Some(c) = challenge {
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static(c));
        }
        r
    }
}

/// The token's row, and `last_used_at` marked at most once a minute (a
/// page of many requests writes once): the one write any request makes.
const LOOKUP: &str = "WITH t AS (SELECT id, kind FROM infra.http_token WHERE token_hash = $1), \
     touched AS (UPDATE infra.http_token SET last_used_at = now() \
                  WHERE id IN (SELECT id FROM t) \
                    AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')) \
     SELECT id, infra.role_name(kind) FROM t";

impl FromRequestParts<AppState> for Caller {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refused> {
        // The header wins; a browser signed in at /login sends the cookie.
        let presented = match parts.headers.get(AUTHORIZATION) {
            Some(v) => {
                let header = v.to_str().map_err(|_| Refused::BadToken)?;
                token::from_header(header).ok_or(Refused::BadToken)?
            }
            None => parts
                .headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(token::from_cookie)
                .ok_or(Refused::Anonymous)?,
        };
        let db = state.db.shared().await.map_err(|e| {
            tracing::warn!("http: cannot check a token: {e}");
            Refused::Unavailable
        })?;
        let row = db
            .query_opt(LOOKUP, &[&token::hash(presented)])
            .await
            .map_err(|e| {
                tracing::warn!("http: cannot check a token: {e}");
                Refused::Unavailable
            })?
            .ok_or(Refused::BadToken)?;
        Ok(Caller {
            token_id: row.get(0),
            role: row.get(1),
        })
    }
}
