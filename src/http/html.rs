//! HTML pieces, all text escaped: every value shown comes from the
//! database or the request, and AWS names and tags are anyone's to set.

use std::fmt::Write as _;

use axum::response::{Html, IntoResponse, Response};
use hyper::StatusCode;

/// Text for an element's content or a quoted attribute.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment or query value in a link (RFC 3986 unreserved kept).
pub fn url_part(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
nav{background:#263238;padding:.6em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}\
main{padding:1em}table{border-collapse:collapse;font-size:.9em}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#eceff1}pre{background:#f5f5f5;padding:.6em;overflow:auto}\
td.json{font-family:monospace;white-space:pre-wrap;max-width:40em}.muted{color:#777}";

/// A whole page: the navigation, a heading and `body` (already HTML).
pub fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t} · infrasql</title><style>{STYLE}</style></head><body>\
         <nav><a href=\"/\">infrasql</a><a href=\"/inventory\">Inventory</a>\
         <a href=\"/drift\">Drift</a><a href=\"/applies\">Applies</a>\
         <a href=\"/stacks\">Stacks</a></nav><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    ))
}

/// A table of already-escaped cells; `id` names it for scripts and tests.
pub fn table(id: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "<p class=\"muted\">None.</p>".into();
    }
    let mut out = format!("<table id=\"{}\"><thead><tr>", esc(id));
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A link whose target and text are escaped here.
pub fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", esc(href), esc(text))
}

/// An optional value: escaped, or a grey dash.
pub fn opt(v: Option<&str>) -> String {
    v.map(esc)
        .unwrap_or_else(|| "<span class=\"muted\">–</span>".into())
}

/// Why a page could not be shown; the body stays short.
#[derive(Debug)]
pub enum PageError {
    NotFound(String),
    Db(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for PageError {
    fn from(e: tokio_postgres::Error) -> Self {
        PageError::Db(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                page("Not found", &format!("<p>{}</p>", esc(&what))),
            )
                .into_response(),
            PageError::Db(e) => {
                // The token's role lacks a grant (42501): the database said no.
                let denied = e.as_db_error().is_some_and(|d| d.code().code() == "42501");
                if denied {
                    (
                        StatusCode::FORBIDDEN,
                        "this token's role may not read this page\n",
                    )
                        .into_response()
                } else {
                    tracing::warn!("http page failed: {e}");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the page failed; see infrasql's log\n",
                    )
                        .into_response()
                }
            }
        }
    }
}

pub type PageResult = Result<Html<String>, PageError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(url_part("aws.vpc"), "aws.vpc");
        assert_eq!(url_part("a b/?&"), "a%20b%2F%3F%26");
        assert_eq!(
            link("/x?q=\"", "<b>"),
            "<a href=\"/x?q=&quot;\">&lt;b&gt;</a>"
        );
    }
}
