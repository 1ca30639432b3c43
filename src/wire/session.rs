//! The message pump of one client session, and its interception points.
//!
//! Two tasks share a session:
//! - the *driver* reads client messages, forwards them to the backend and
//!   decides where infrasql must step in (COMMIT, implicit transactions);
//! - the *relay* reads backend messages and forwards them to the client.
//!
//! Every Query or Sync the driver sends produces exactly one ReadyForQuery,
//! so the driver pushes a [`Route`] per such message and the relay pops one
//! per ReadyForQuery. The route says whether the backend's answer goes to the
//! client, or to the driver (infrasql's own statements), or to the client
//! except for the closing ReadyForQuery, which the driver replaces once it
//! has run the commit hook. Rows are never decoded on the way through.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use async_trait::async_trait;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Mutex, Notify};

use super::classify::{
    chains, classify, is_copy_from, split_statements, StmtKind, CHAIN_OUTSIDE_BLOCK,
};
use super::intercept::{mentions_plan, refuse_bad_setting, rewrite_settings, sync_call};
use super::protocol::{
    encode_private_parse, encode_private_query, encode_query, encode_ready, encode_sync, frame_len,
    next_frame, parse_data_row, read_cstr, rewrite_parse, Frame, Report, TxStatus,
    MAX_CLIENT_MESSAGE,
};
use super::stream::{BoxRead, BoxWrite};
use crate::engine::hook::{CommitContext, CommitHook, HookError, TextRow, Verdict};

mod extended;
mod own;
mod relay;
mod simple;

use extended::{BatchItem, Prepared};
use relay::relay;

/// Backend messages may be as large as PostgreSQL makes them.
const MAX_BACKEND_MESSAGE: usize = i32::MAX as usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Everything goes to the client.
    Client,
    /// Results go to the client; the ReadyForQuery goes to the driver.
    ClientButReady,
    /// Everything goes to the driver (infrasql's own statements).
    Driver,
}

#[derive(Debug)]
enum Event {
    Message(Frame),
    Ready { status: TxStatus, error: bool },
}

struct Shared {
    routes: StdMutex<VecDeque<Route>>,
    /// Notified whenever a route is popped or the backend goes away.
    drained: Notify,
    /// Notified only when the backend goes away: an idle driver waits on
    /// this, not on `drained`, so answers do not wake it for nothing.
    gone: Notify,
    /// Backend's status byte from the last ReadyForQuery.
    status: AtomicU8,
    backend_gone: AtomicBool,
    /// Writing to the client failed: it went away.
    client_gone: AtomicBool,
    client_out: Mutex<BoxWrite>,
}

impl Shared {
    fn idle(&self) -> bool {
        self.routes.lock().expect("routes lock poisoned").is_empty()
    }
    fn status(&self) -> TxStatus {
        TxStatus::from_byte(self.status.load(Ordering::Acquire)).unwrap_or(TxStatus::Idle)
    }
    /// Send to the client. A client that went away does not stop what it
    /// asked for: as in PostgreSQL, a COMMIT it sent is carried out (and an
    /// apply under way finishes and commits); its answers are dropped, and
    /// the driver ends the session at its next read of the client.
    async fn write_client(&self, bytes: &[u8]) -> std::io::Result<()> {
        if self.client_gone.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut w = self.client_out.lock().await;
        let r = async {
            w.write_all(bytes).await?;
            w.flush().await
        }
        .await;
        if let Err(e) = r {
            tracing::debug!("client went away ({e}); finishing what it asked for");
            self.client_gone.store(true, Ordering::Release);
        }
        Ok(())
    }
}

/// Why a session ended; only for logging.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error("client closed the connection")]
    ClientClosed,
    #[error("backend connection lost")]
    BackendGone,
    #[error("server shutting down")]
    Shutdown,
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a session needs once the startup phase is over.
pub struct SessionParts {
    pub client_in: BoxRead,
    /// Bytes already read from the client past the startup phase.
    pub client_buf: BytesMut,
    pub client_out: BoxWrite,
    pub backend_in: BoxRead,
    pub backend_buf: BytesMut,
    pub backend_out: BoxWrite,
    pub status: TxStatus,
    pub hook: Arc<dyn CommitHook>,
    pub shutdown: watch::Receiver<bool>,
}

/// Run the session until either side goes away.
pub async fn run(parts: SessionParts) -> Result<(), SessionEnd> {
    let status_byte = match parts.status {
        TxStatus::Idle => b'I',
        TxStatus::InBlock => b'T',
        TxStatus::Failed => b'E',
    };
    let shared = Arc::new(Shared {
        routes: StdMutex::new(VecDeque::new()),
        drained: Notify::new(),
        gone: Notify::new(),
        status: AtomicU8::new(status_byte),
        backend_gone: AtomicBool::new(false),
        client_gone: AtomicBool::new(false),
        client_out: Mutex::new(parts.client_out),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let relay = tokio::spawn(relay(
        parts.backend_in,
        parts.backend_buf,
        shared.clone(),
        tx,
    ));
    let mut driver = Driver {
        client_in: parts.client_in,
        cbuf: parts.client_buf,
        stash: VecDeque::new(),
        backend_out: parts.backend_out,
        out: BytesMut::with_capacity(8192),
        shared: shared.clone(),
        events: rx,
        statements: HashMap::new(),
        portals: HashMap::new(),
        plan_statements: Default::default(),
        batch_reads_plan: false,
        batch: Vec::new(),
        batch_forwarded: false,
        forwarded_in_block: None,
        wrapper: false,
        client_eof: false,
        copy_open: false,
        hook: parts.hook,
        shutdown: parts.shutdown,
    };
    let result = driver.run().await;
    if !matches!(result, Err(SessionEnd::BackendGone)) {
        // Terminate lets the backend end the session at once instead of
        // waiting to notice the closed socket; an open transaction rolls back.
        let _ = driver.backend_out.write_all(&[b'X', 0, 0, 0, 4]).await;
        let _ = driver.backend_out.flush().await;
    }
    if matches!(result, Err(SessionEnd::Shutdown)) {
        let mut out = BytesMut::new();
        Report::fatal(
            "57P01",
            "terminating connection because infrasql is shutting down",
        )
        .encode_error(&mut out);
        let _ = shared.write_client(&out).await;
    }
    relay.abort();
    let _ = shared.client_out.lock().await.shutdown().await;
    result
}

struct Driver {
    client_in: BoxRead,
    cbuf: BytesMut,
    /// Client messages read while infrasql was busy, in arrival order.
    stash: VecDeque<Frame>,
    backend_out: BoxWrite,
    /// Bytes to forward to the backend, written before any wait.
    out: BytesMut,
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<Event>,
    statements: HashMap<Vec<u8>, Prepared>,
    portals: HashMap<Vec<u8>, Prepared>,
    /// Prepared statements that read `infra.plan`.
    plan_statements: std::collections::HashSet<Vec<u8>>,
    /// The current extended batch binds one of them.
    batch_reads_plan: bool,
    /// Extended-protocol messages since the last Sync or Flush.
    batch: Vec<BatchItem>,
    /// Whether part of the current extended batch went out at a Flush.
    batch_forwarded: bool,
    /// Whether those parts left a block open (`Some(true)` after a BEGIN,
    /// `Some(false)` after a COMMIT or ROLLBACK, `None` if they did not
    /// touch it): no ReadyForQuery has said so yet.
    forwarded_in_block: Option<bool>,
    /// infrasql opened a transaction around an implicit one.
    wrapper: bool,
    /// The client closed its side; what it sent before is still carried out.
    client_eof: bool,
    /// An extended COPY FROM went out and no CopyDone or CopyFail since.
    copy_open: bool,
    hook: Arc<dyn CommitHook>,
    shutdown: watch::Receiver<bool>,
}

impl Driver {
    async fn run(&mut self) -> Result<(), SessionEnd> {
        loop {
            let Some(frame) = self.stash.pop_front() else {
                self.flush().await?;
                self.read_client_idle().await?;
                continue;
            };
            self.handle(frame).await?;
        }
    }

    /// Wait for more client bytes while nothing else needs the driver.
    async fn read_client_idle(&mut self) -> Result<(), SessionEnd> {
        if self.client_eof {
            return Err(SessionEnd::ClientClosed);
        }
        loop {
            if *self.shutdown.borrow() {
                return Err(SessionEnd::Shutdown);
            }
            let gone = self.shared.gone.notified();
            if self.shared.backend_gone.load(Ordering::Acquire) {
                return Err(SessionEnd::BackendGone);
            }
            tokio::select! {
                r = self.client_in.read_buf(&mut self.cbuf) => {
                    if r? == 0 {
                        return Err(SessionEnd::ClientClosed);
                    }
                    return self.parse_client(false).await;
                }
                _ = gone => {}
                r = self.shutdown.changed() => {
                    if r.is_err() {
                        return Err(SessionEnd::Shutdown);
                    }
                }
            }
        }
    }

    /// Move complete client frames into the stash. While infrasql is busy
    /// (`busy`), COPY data goes to the backend at once: a COPY the driver is
    /// waiting on cannot finish without it.
    async fn parse_client(&mut self, busy: bool) -> Result<(), SessionEnd> {
        loop {
            match next_frame(&mut self.cbuf, MAX_CLIENT_MESSAGE) {
                Ok(Some(f)) => {
                    if busy && self.stash.is_empty() && matches!(f.tag, b'd' | b'c' | b'f') {
                        if f.tag != b'd' {
                            self.copy_open = false;
                        }
                        self.out.extend_from_slice(&f.bytes);
                    } else {
                        self.stash.push_back(f);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.client_error(Report::fatal("08P01", format!("invalid message: {e}")))
                        .await?;
                    return Err(SessionEnd::Protocol(e.to_string()));
                }
            }
        }
        if busy {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SessionEnd> {
        if !self.out.is_empty() {
            let r = async {
                self.backend_out.write_all(&self.out).await?;
                self.backend_out.flush().await
            }
            .await;
            self.out.clear();
            if r.is_err() {
                return Err(SessionEnd::BackendGone);
            }
        }
        Ok(())
    }

    fn push_route(&self, r: Route) {
        self.shared
            .routes
            .lock()
            .expect("routes lock poisoned")
            .push_back(r);
    }

    async fn client_error(&self, r: Report) -> Result<(), SessionEnd> {
        let mut b = BytesMut::new();
        r.encode_error(&mut b);
        self.shared.write_client(&b).await?;
        Ok(())
    }

    async fn client_ready(&self, status: TxStatus) -> Result<(), SessionEnd> {
        let mut b = BytesMut::new();
        encode_ready(status, &mut b);
        self.shared.write_client(&b).await?;
        Ok(())
    }

    async fn handle(&mut self, f: Frame) -> Result<(), SessionEnd> {
        match f.tag {
            b'Q' => self.simple_query(f).await,
            b'P' => {
                let mut body = f.body();
                let name = read_cstr(&mut body).unwrap_or("").as_bytes().to_vec();
                let text = read_cstr(&mut body);
                let kind = text.map(classify).unwrap_or(StmtKind::Write);
                // A bad `SET infra.x`: the error comes at Execute, as
                // PostgreSQL's own would.
                let refusal = text.and_then(refuse_bad_setting);
                let prepared = Prepared {
                    kind,
                    text: text.filter(|_| kind.ends_with_hook()).map(Arc::from),
                    copy_in: text.is_some_and(is_copy_from),
                };
                if let Some((table, region)) = text.and_then(sync_call) {
                    // Sync before the statement is even prepared: its
                    // execution then reports a finished round.
                    self.flush().await?;
                    self.wait_idle().await?;
                    if let Err(e) = self.hook.before_sync_call(table, region).await {
                        tracing::warn!("infra.sync() failed: {}", e.0);
                    }
                }
                if text.is_some_and(mentions_plan) {
                    self.plan_statements.insert(name.clone());
                } else {
                    self.plan_statements.remove(&name);
                }
                self.statements.insert(name, prepared);
                let f = match refusal {
                    Some(sql) => rewrite_parse(&f, &sql).unwrap_or(f),
                    None => f,
                };
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                    prepares: Some(kind),
                });
                Ok(())
            }
            b'B' => {
                let mut body = f.body();
                let portal = read_cstr(&mut body).unwrap_or("").as_bytes().to_vec();
                let stmt = read_cstr(&mut body).unwrap_or("");
                let prepared = self
                    .statements
                    .get(stmt.as_bytes())
                    .cloned()
                    .unwrap_or_else(Prepared::unknown);
                if self.plan_statements.contains(stmt.as_bytes()) {
                    self.batch_reads_plan = true;
                }
                let kind = prepared.kind;
                self.portals.insert(portal, prepared);
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                    prepares: Some(kind),
                });
                Ok(())
            }
            b'E' => {
                let mut body = f.body();
                let portal = read_cstr(&mut body).unwrap_or("");
                let prepared = self
                    .portals
                    .get(portal.as_bytes())
                    .cloned()
                    .unwrap_or_else(Prepared::unknown);
                self.batch.push(BatchItem {
                    frame: f,
                    execute: Some(prepared),
                    prepares: None,
                });
                Ok(())
            }
            b'D' | b'C' => {
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                    prepares: None,
                });
                Ok(())
            }
            b'H' => {
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                    prepares: None,
                });
                self.extended_batch(false).await
            }
            b'S' => {
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                    prepares: None,
                });
                self.extended_batch(true).await
            }
            // COPY data, FunctionCall, password messages: forwarded as they
            // are. FunctionCall ends with a ReadyForQuery like a Query.
            b'd' | b'c' | b'f' | b'p' => {
                if matches!(f.tag, b'c' | b'f') {
                    self.copy_open = false;
                }
                self.out.extend_from_slice(&f.bytes);
                Ok(())
            }
            b'F' => {
                self.push_route(Route::Client);
                self.out.extend_from_slice(&f.bytes);
                Ok(())
            }
            b'X' => Err(SessionEnd::ClientClosed),
            other => {
                let msg = format!("invalid frontend message type {}", other as char);
                self.client_error(Report::fatal("08P01", msg.clone()))
                    .await?;
                Err(SessionEnd::Protocol(msg))
            }
        }
    }
}
