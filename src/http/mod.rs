//! The HTTP listener (`serve --http ADDR`, off by default): `/healthz` and
//! `/readyz` for probes, and behind a bearer token (`infrasql token
//! create`) the read-only web view. axum routes; hyper's HTTP/1 server
//! drives each connection, behind the wire's TLS acceptor when the server
//! has a certificate.
//!
//! Data flows http → store (and the pure plan graph of `client::graph`),
//! never through the wire: a page's queries run on an engine connection
//! under `SET LOCAL ROLE` to the token's group role (`db`), so PostgreSQL's
//! grants and row-level security decide what it shows.

pub mod auth;
mod db;
mod health;
mod html;
mod pages;
mod svg;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::store::engine_db::EngineDb;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pages whose queries run at once; more wait. Each holds an engine
/// connection, which the sync loop and the applies need too.
const CONCURRENT_PAGES: usize = 8;

/// What every handler reaches: the engine's connections.
#[derive(Clone)]
pub struct AppState {
    pub db: Arc<EngineDb>,
    pages: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(db: Arc<EngineDb>) -> AppState {
        AppState {
            db,
            pages: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_PAGES)),
        }
    }

    /// Wait for a page's turn to hold an engine connection.
    pub async fn turn(&self) -> tokio::sync::SemaphorePermit<'_> {
        // The semaphore is never closed, so acquiring cannot fail.
        self.pages.acquire().await.expect("never closed")
    }
}

/// Every route. Only `/healthz`, `/readyz` and `/login` (a form that keeps
/// the token in a cookie) take no token: every other handler (and the
/// fallback) extracts an [`auth::Caller`], which refuses a request without
/// a valid one before the handler runs.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics))
        .merge(pages::routes())
        .fallback(pages::not_found)
        .layer(axum::middleware::map_response(guard_headers))
        .with_state(state)
}

/// On every answer: pages run no script but their own inline one (login)
/// and load nothing from anywhere, are never framed or cached, and send no
/// referrer (a URL may hold a search).
async fn guard_headers(mut r: axum::response::Response) -> axum::response::Response {
    use hyper::header::{self, HeaderValue};
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Prometheus text, behind the same token as the pages.
async fn metrics(_caller: auth::Caller) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(hyper::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::encode(),
    )
        .into_response()
}

/// Bind `addr` (before anything else starts, so a taken port refuses to
/// start) and return the address and the listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Accept until `shutdown` turns true, then let requests in flight finish
/// (up to a few seconds).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(state);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    conns.spawn(connection(stream, tls.clone(), app.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("http accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        conns.abort_all();
    }
}

async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => drive(TokioIo::new(s), app, shutdown).await,
                Ok(Err(e)) => tracing::debug!("http TLS handshake failed: {e}"),
                Err(_) => tracing::debug!("http TLS handshake timed out"),
            }
        }
        None => drive(TokioIo::new(stream), app, shutdown).await,
    }
}

/// One HTTP/1.1 connection (keep-alive), closed gracefully at shutdown.
async fn drive<I>(io: TokioIo<I>, app: Router, mut shutdown: watch::Receiver<bool>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        use tower_service::Service;
        app.clone().call(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("http connection: {e}");
            }
            return;
        }
        _ = shutdown.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
