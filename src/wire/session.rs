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
//!
//! - `driver`: the driver's main loop; what a Parse prepares.
//! - `simple`, `extended`: the two protocols, their wrappers and commit points.
//! - `fast`: plain reads (whole prepared batches, or one Query) forwarded
//!   from the read buffer.
//! - `own`: infrasql's own statements on the session; the hook's context.
//! - `relay`: backend → client.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use async_trait::async_trait;
use bytes::BytesMut;
use futures_util::lock::Mutex;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Notify};

use super::classify::{
    chains, classify, is_copy_from, query_intercepts, split_statements, statement_intercepts,
    StmtKind, SyncCall, CHAIN_OUTSIDE_BLOCK,
};
use super::protocol::{
    encode_error, encode_notice, encode_private_parse, encode_private_query, encode_query,
    encode_ready, encode_sync, frame_len, next_frame, parse_data_row, parse_report, read_cstr,
    read_name, rewrite_parse, room_to_read, Frame, FrameError, TxStatus, MAX_CLIENT_MESSAGE,
};
use super::runtime::EngineRuntime;
use super::stream::{BoxRead, BoxWrite};
use crate::engine::errors;
use crate::engine::hook::{
    CancelSignal, CommitContext, CommitHook, HookError, TextRow, Verdict, CHANGE_MARKER,
};
use crate::engine::report::Report;

mod driver;
mod extended;
mod fast;
mod own;
mod relay;
mod simple;

use extended::{BatchItem, Prepared};
use relay::relay;

/// How far the driver reads a client ahead while infrasql is busy (a
/// COMMIT's apply): past this it stops reading, and the client's own socket
/// holds what it sends next, so a client that pipelines without end cannot
/// grow the server's memory.
const STASH_LIMIT: usize = 16 * 1024 * 1024;

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
    /// Woken when the backend goes away or the server shuts down: what an
    /// idle driver waits for besides its client. Not `drained`, so answers
    /// do not wake it for nothing; and an `AtomicWaker`, whose polling at
    /// every idle wait is one atomic exchange (a `Notify`'s takes its lock).
    stop: AtomicWaker,
    /// The server is shutting down (set by the session's watcher task).
    shutting_down: AtomicBool,
    /// Backend's status byte from the last ReadyForQuery.
    status: AtomicU8,
    backend_gone: AtomicBool,
    /// The open transaction changed a resource table: the backend raised
    /// [`CHANGE_MARKER`] since its last idle ReadyForQuery. Set and cleared
    /// by the relay, read by the driver once the backend is idle.
    changed: AtomicBool,
    /// Writing to the client failed: it went away.
    client_gone: AtomicBool,
    /// futures' mutex rather than tokio's: taken for every answer the relay
    /// forwards, and its uncontended lock and unlock are one atomic each
    /// (tokio's goes through its semaphore and that semaphore's lock).
    client_out: Mutex<BoxWrite>,
}

impl Shared {
    fn idle(&self) -> bool {
        self.routes.lock().expect("routes lock poisoned").is_empty()
    }
    /// The end of an idle session, once there is one (see `stop`). The
    /// flags are read again after registering, so a wake between the first
    /// read and the registration is not missed.
    fn poll_stop(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<SessionEnd> {
        let end = || {
            if self.backend_gone.load(Ordering::Acquire) {
                Some(SessionEnd::BackendGone)
            } else if self.shutting_down.load(Ordering::Acquire) {
                Some(SessionEnd::Shutdown)
            } else {
                None
            }
        };
        if let Some(e) = end() {
            return std::task::Poll::Ready(e);
        }
        self.stop.register(cx.waker());
        match end() {
            Some(e) => std::task::Poll::Ready(e),
            None => std::task::Poll::Pending,
        }
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
    /// Where the session's timers run (`wire::runtime`).
    pub engine: EngineRuntime,
    /// Raised by the client's cancel requests (`wire::cancel`).
    pub cancel: CancelSignal,
    pub shutdown: watch::Receiver<bool>,
    /// The client connected in plan-only mode (`frontend::mode`): every
    /// COMMIT is a dry run, for the whole session.
    pub plan_only: bool,
    /// The client's IP address, as the listener accepted it (for the apply
    /// history: the backend only sees infrasql).
    pub client_addr: Option<String>,
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
        stop: AtomicWaker::new(),
        shutting_down: AtomicBool::new(false),
        status: AtomicU8::new(status_byte),
        backend_gone: AtomicBool::new(false),
        changed: AtomicBool::new(false),
        client_gone: AtomicBool::new(false),
        client_out: Mutex::new(parts.client_out),
    });
    let watcher = tokio::spawn(watch_shutdown(shared.clone(), parts.shutdown));
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
        stashed: 0,
        backend_out: parts.backend_out,
        out: BytesMut::with_capacity(8192),
        shared: shared.clone(),
        events: rx,
        statements: NameMap::default(),
        portals: NameMap::default(),
        batch_reads_plan: false,
        batch: Vec::new(),
        batch_forwarded: false,
        forwarded_in_block: None,
        wrapper: false,
        client_eof: false,
        copy_open: false,
        hook: parts.hook,
        engine: parts.engine,
        cancel: parts.cancel,
        plan_only: parts.plan_only,
        client_addr: parts.client_addr,
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
        let bye = Report::fatal(
            errors::SHUTTING_DOWN,
            "terminating connection because infrasql is shutting down",
        );
        encode_error(&bye, &mut out);
        let _ = shared.write_client(&out).await;
    }
    relay.abort();
    watcher.abort();
    let _ = shared.client_out.lock().await.shutdown().await;
    result
}

/// Raise the session's `shutting_down` when the server shuts down (or
/// the listener's sender is gone, which only happens as it stops). A task
/// of its own, aborted with the session, so that an idle driver polls one
/// atomic waker rather than the watch's and a notify's waiter lists.
async fn watch_shutdown(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    shared.shutting_down.store(true, Ordering::Release);
    shared.stop.wake();
}

/// Statement or portal names to what they run. Looked up at every Bind and
/// Execute. The unnamed one, which most drivers bind and execute for every
/// query (the unnamed portal always, the unnamed statement often), has a
/// field of its own; named ones are hashed with foldhash (randomly seeded
/// per map) rather than SipHash, the names being the session's own client's.
#[derive(Default)]
struct NameMap {
    unnamed: Option<Prepared>,
    named: HashMap<Vec<u8>, Prepared, foldhash::fast::RandomState>,
}

impl NameMap {
    fn get(&self, name: &[u8]) -> Option<&Prepared> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    fn insert(&mut self, name: &[u8], prepared: Prepared) {
        if name.is_empty() {
            self.unnamed = Some(prepared);
        } else {
            self.named.insert(name.to_vec(), prepared);
        }
    }

    fn remove(&mut self, name: &[u8]) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }
}

struct Driver {
    client_in: BoxRead,
    cbuf: BytesMut,
    /// Client messages read while infrasql was busy, in arrival order.
    stash: VecDeque<Frame>,
    /// Bytes in `stash`: reading ahead stops at [`STASH_LIMIT`].
    stashed: usize,
    backend_out: BoxWrite,
    /// Bytes to forward to the backend, written before any wait.
    out: BytesMut,
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<Event>,
    statements: NameMap,
    portals: NameMap,
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
    engine: EngineRuntime,
    /// The client's cancel requests, for the hook's apply.
    cancel: CancelSignal,
    /// Set at startup and never cleared: the session cannot leave it.
    plan_only: bool,
    client_addr: Option<String>,
}
