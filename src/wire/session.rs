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

use super::classify::{classify, infra_setting, split_statements, StmtKind};
use super::protocol::{
    encode_private_query, encode_query, encode_ready, encode_sync, frame_len, next_frame,
    parse_data_row, read_cstr, rewrite_parse, Frame, Report, TxStatus, MAX_CLIENT_MESSAGE,
};
use super::stream::{BoxRead, BoxWrite};
use crate::engine::commit::literal;
use crate::engine::hook::{CommitContext, CommitHook, HookError, TextRow, Verdict};
use crate::engine::settings;

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
    client_out: Mutex<BoxWrite>,
}

impl Shared {
    fn idle(&self) -> bool {
        self.routes.lock().expect("routes lock poisoned").is_empty()
    }
    fn status(&self) -> TxStatus {
        TxStatus::from_byte(self.status.load(Ordering::Acquire)).unwrap_or(TxStatus::Idle)
    }
    async fn write_client(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut w = self.client_out.lock().await;
        w.write_all(bytes).await?;
        w.flush().await
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

/// Backend → client. Never decodes rows; walks frame headers only.
async fn relay(
    mut backend: BoxRead,
    mut buf: BytesMut,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut error_seen = false;
    let mut fatal: Option<Report> = None;
    loop {
        loop {
            let n = match frame_len(&buf, MAX_BACKEND_MESSAGE) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("backend sent a malformed message: {e}");
                    fatal = Some(Report::fatal(
                        "08P01",
                        format!("backend protocol error: {e}"),
                    ));
                    break;
                }
            };
            let tag = buf[0];
            let route = shared
                .routes
                .lock()
                .expect("routes lock poisoned")
                .front()
                .copied()
                .unwrap_or(Route::Client);
            match tag {
                b'Z' => {
                    let status_byte = buf[5];
                    let status = TxStatus::from_byte(status_byte).unwrap_or(TxStatus::Idle);
                    shared.status.store(status_byte, Ordering::Release);
                    let frame = buf.split_to(n).freeze();
                    if route == Route::Client {
                        out.extend_from_slice(&frame);
                    } else {
                        // The driver acts on this; everything before it must
                        // already be at the client.
                        if flush_out(&shared, &mut out).await.is_err() {
                            return gone(&shared, None).await;
                        }
                        let _ = events.send(Event::Ready {
                            status,
                            error: error_seen,
                        });
                    }
                    error_seen = false;
                    shared
                        .routes
                        .lock()
                        .expect("routes lock poisoned")
                        .pop_front();
                    shared.drained.notify_waiters();
                }
                // Asynchronous messages always belong to the client.
                b'A' | b'S' => out.extend_from_slice(&buf.split_to(n)),
                _ => {
                    if tag == b'E' {
                        error_seen = true;
                        if buf.len() >= n && is_fatal(&buf[5..n]) {
                            // The backend closes after a FATAL; the relay
                            // reports this error instead of a generic one.
                            fatal = Some(Report::parse(&buf[5..n]));
                        }
                    }
                    if route == Route::Driver {
                        let frame = buf.split_to(n).freeze();
                        let _ = events.send(Event::Message(Frame { tag, bytes: frame }));
                    } else {
                        out.extend_from_slice(&buf.split_to(n));
                    }
                }
            }
        }
        if flush_out(&shared, &mut out).await.is_err() {
            return gone(&shared, None).await;
        }
        match backend.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                // A FATAL already relayed needs no second error.
                let report = if fatal.is_some() {
                    None
                } else {
                    Some(
                        Report::fatal("08006", "connection to the backend PostgreSQL was lost")
                            .with_hint(
                            "Reconnect; infrasql restarts its embedded PostgreSQL when it dies.",
                        ),
                    )
                };
                return gone(&shared, report).await;
            }
            Ok(_) => {}
        }
    }
}

/// `infra.sync('aws.vpc', 'us-east-1')` → the literal arguments, if the
/// statement calls it. Non-literal arguments mean "everything".
fn sync_call(sql: &str) -> Option<(Option<String>, Option<String>)> {
    const NEEDLE: &[u8] = b"infra.sync(";
    let b = sql.as_bytes();
    let at = b
        .windows(NEEDLE.len())
        .position(|w| w.eq_ignore_ascii_case(NEEDLE))?;
    let rest = &sql[at + NEEDLE.len()..];
    let args = &rest[..rest.find(')').unwrap_or(rest.len())];
    let mut it = args.split(',').map(|a| {
        let a = a.trim();
        (a.len() >= 2 && a.starts_with('\'') && a.ends_with('\''))
            .then(|| a[1..a.len() - 1].to_owned())
    });
    Some((it.next().flatten(), it.next().flatten()))
}

/// Cheap check on the hot path: only statements naming the view pay for a plan.
fn mentions_plan(sql: &str) -> bool {
    const NEEDLE: &[u8] = b"infra.plan";
    sql.as_bytes()
        .windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
}

/// Whether forwarded messages leave a transaction block open: the last
/// BEGIN or transaction end among them decides; `None` if there is none.
fn block_after(items: &[BatchItem], before: Option<bool>) -> Option<bool> {
    items.iter().fold(before, |state, i| match i.kind() {
        Some(StmtKind::Begin) => Some(true),
        Some(StmtKind::Commit | StmtKind::PrepareTransaction | StmtKind::Rollback) => Some(false),
        _ => state,
    })
}

/// A query whose `SET infra.x = <bad value>` statements are replaced by a
/// call that raises the error in the backend, so the transaction fails just
/// as it would for a bad value of PostgreSQL's own settings. `None` when
/// nothing needs replacing (the hot path: no `infra.` in the text).
fn rewrite_settings(sql: &str) -> Option<String> {
    const NEEDLE: &[u8] = b"infra.";
    if !sql
        .as_bytes()
        .windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
    {
        return None;
    }
    let stmts = split_statements(sql);
    let replaced: Vec<Option<String>> = stmts.iter().map(|s| refuse_bad_setting(s)).collect();
    if replaced.iter().all(Option::is_none) {
        return None;
    }
    let parts: Vec<&str> = stmts
        .iter()
        .zip(&replaced)
        .map(|(s, r)| r.as_deref().unwrap_or(s))
        .collect();
    Some(parts.join(";"))
}

/// For one statement setting an `infra.*` parameter to a value infrasql
/// does not accept: the SQL that raises the error instead.
fn refuse_bad_setting(stmt: &str) -> Option<String> {
    let (name, value) = infra_setting(stmt)?;
    let outcome = match &value {
        None if settings::kind_of(&name).is_some() => Ok(()),
        None => settings::check(&name, ""),
        Some(v) => settings::check(&name, v),
    };
    let message = outcome.err()?;
    let known: Vec<&str> = settings::SETTINGS.iter().map(|(n, _)| *n).collect();
    let hint = match settings::kind_of(&name) {
        Some(_) => format!("{name} takes on or off (or another PostgreSQL boolean spelling)."),
        None => format!("infrasql's settings are {}.", known.join(", ")),
    };
    Some(format!(
        "SELECT infra.refuse_setting({}, {}, {})",
        literal(settings::sqlstate(&name)),
        literal(&message),
        literal(&hint)
    ))
}

fn is_fatal(body: &[u8]) -> bool {
    matches!(Report::parse(body).severity, "FATAL" | "PANIC")
}

async fn flush_out(shared: &Shared, out: &mut BytesMut) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let r = shared.write_client(out).await;
    out.clear();
    r
}

async fn gone(shared: &Shared, report: Option<Report>) {
    if let Some(r) = report {
        let mut out = BytesMut::new();
        r.encode_error(&mut out);
        let _ = shared.write_client(&out).await;
    }
    shared.backend_gone.store(true, Ordering::Release);
    shared.drained.notify_waiters();
    shared.gone.notify_waiters();
    let _ = shared.client_out.lock().await.shutdown().await;
}

/// What infrasql knows of a prepared statement or portal.
#[derive(Debug, Clone)]
struct Prepared {
    kind: StmtKind,
    /// The text of a statement that ends a transaction (COMMIT, END,
    /// PREPARE TRANSACTION): infrasql runs it itself after the hook, because
    /// the hook's own statements destroy the client's unnamed portal.
    text: Option<Arc<str>>,
}

impl Prepared {
    /// Anything prepared before infrasql could see it (never, in a proxied
    /// session) is treated as a write: always safe.
    fn unknown() -> Prepared {
        Prepared {
            kind: StmtKind::Write,
            text: None,
        }
    }
}

/// One item of an extended-protocol batch: the frame, and for Execute what
/// its portal runs.
struct BatchItem {
    frame: Frame,
    execute: Option<Prepared>,
}

impl BatchItem {
    fn kind(&self) -> Option<StmtKind> {
        self.execute.as_ref().map(|p| p.kind)
    }
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
                self.portals.insert(portal, prepared);
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
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
                });
                Ok(())
            }
            b'D' | b'C' => {
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                });
                Ok(())
            }
            b'H' => {
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                });
                self.extended_batch(false).await
            }
            b'S' => {
                self.batch.push(BatchItem {
                    frame: f,
                    execute: None,
                });
                self.extended_batch(true).await
            }
            // COPY data, FunctionCall, password messages: forwarded as they
            // are. FunctionCall ends with a ReadyForQuery like a Query.
            b'd' | b'c' | b'f' | b'p' => {
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

    // ----- simple protocol -------------------------------------------------

    async fn simple_query(&mut self, f: Frame) -> Result<(), SessionEnd> {
        let mut body = f.body();
        let Some(sql) = read_cstr(&mut body) else {
            // Not valid UTF-8 or unterminated: PostgreSQL will say so.
            return self.forward_query(f);
        };
        if let Some(sql) = rewrite_settings(sql) {
            let mut q = BytesMut::new();
            encode_query(&sql, &mut q);
            let f = Frame {
                tag: b'Q',
                bytes: q.freeze(),
            };
            return Box::pin(self.simple_query(f)).await;
        }
        if let Some((table, region)) = sync_call(sql) {
            self.flush().await?;
            self.wait_idle().await?;
            if let Err(e) = self.hook.before_sync_call(table, region).await {
                self.client_error(e.0).await?;
                return self.client_ready(self.shared.status()).await;
            }
        }
        if mentions_plan(sql) && !self.refresh_plan().await? {
            return self.client_ready(self.shared.status()).await;
        }
        let stmts = split_statements(sql);
        let kinds: Vec<StmtKind> = stmts.iter().map(|s| classify(s)).collect();
        let needs_care = kinds.iter().any(|k| {
            matches!(
                k,
                StmtKind::Write | StmtKind::Commit | StmtKind::PrepareTransaction
            )
        }) || (kinds.len() > 1 && kinds.iter().any(|k| k.is_tx_control()));
        if !needs_care {
            return self.forward_query(f);
        }
        self.flush().await?;
        self.wait_idle().await?;
        let status = self.shared.status();
        if kinds.len() == 1 {
            match (kinds[0], status) {
                // A write inside a block the client opened: nothing to do yet.
                (StmtKind::Write, TxStatus::InBlock | TxStatus::Failed) => {
                    return self.forward_query(f)
                }
                // COMMIT of a failed block is a rollback; COMMIT outside a
                // block is a warning. Neither applies anything.
                (k, TxStatus::Idle | TxStatus::Failed) if k.ends_with_hook() => {
                    return self.forward_query(f)
                }
                _ => {}
            }
        }
        let owned: Vec<(String, StmtKind)> = stmts
            .iter()
            .zip(kinds)
            .filter(|(_, k)| *k != StmtKind::Empty)
            .map(|(s, k)| (s.to_string(), k))
            .collect();
        self.run_script(owned).await
    }

    fn forward_query(&mut self, f: Frame) -> Result<(), SessionEnd> {
        self.push_route(Route::Client);
        self.out.extend_from_slice(&f.bytes);
        Ok(())
    }

    /// Run statements one at a time, as PostgreSQL would run them in one
    /// Query message, with infrasql's hook before each commit point.
    async fn run_script(&mut self, stmts: Vec<(String, StmtKind)>) -> Result<(), SessionEnd> {
        let mut status = self.shared.status();
        for (sql, kind) in stmts {
            if kind == StmtKind::Write && status == TxStatus::Idle {
                self.driver_exec("BEGIN").await?;
                self.wrapper = true;
                status = TxStatus::InBlock;
            }
            if kind == StmtKind::Begin && self.wrapper {
                // BEGIN inside an implicit block makes it an explicit one.
                self.wrapper = false;
            }
            let mut sql = sql;
            if kind.ends_with_hook() && status == TxStatus::InBlock {
                let implicit = self.wrapper;
                let two_phase = kind == StmtKind::PrepareTransaction;
                match self.commit_hook_implicit(implicit, two_phase).await? {
                    Ok(Verdict::Commit) => {}
                    // A dry run: the client's COMMIT becomes a ROLLBACK.
                    Ok(Verdict::Rollback) => sql = "ROLLBACK".into(),
                    Err(report) => {
                        self.abort_after_refusal(report).await?;
                        return self.client_ready(TxStatus::Idle).await;
                    }
                }
                self.wrapper = false;
            }
            let mut q = BytesMut::new();
            encode_query(&sql, &mut q);
            self.push_route(Route::ClientButReady);
            self.out.extend_from_slice(&q);
            self.flush().await?;
            let (st, error) = self.wait_ready_forwarding_copy().await?;
            status = st;
            if error {
                if self.wrapper {
                    self.driver_exec("ROLLBACK").await?;
                    self.wrapper = false;
                    status = TxStatus::Idle;
                }
                return self.client_ready(status).await;
            }
        }
        if self.wrapper {
            status = self.finish_wrapper().await?;
        }
        self.client_ready(status).await
    }

    /// Commit infrasql's own wrapper transaction through the hook.
    async fn finish_wrapper(&mut self) -> Result<TxStatus, SessionEnd> {
        self.wrapper = false;
        match self.commit_hook_implicit(true, false).await? {
            Ok(Verdict::Rollback) => self.driver_exec("ROLLBACK").await,
            Ok(Verdict::Commit) => {
                let (status, errs) = self.driver_exec_report("COMMIT").await?;
                if let Some(r) = errs {
                    self.client_error(r).await?;
                }
                Ok(status)
            }
            Err(report) => {
                self.abort_after_refusal(report).await?;
                Ok(TxStatus::Idle)
            }
        }
    }

    /// Refused commit: tell the client, roll the backend back.
    async fn abort_after_refusal(&mut self, report: Report) -> Result<(), SessionEnd> {
        self.client_error(report).await?;
        self.driver_exec("ROLLBACK").await?;
        self.wrapper = false;
        Ok(())
    }

    // ----- extended protocol -----------------------------------------------

    async fn extended_batch(&mut self, sync: bool) -> Result<(), SessionEnd> {
        if std::mem::take(&mut self.batch_reads_plan) && !self.refresh_plan().await? {
            // PostgreSQL skips to the Sync after an error; so do we.
            self.batch.clear();
            self.batch_forwarded = false;
            let status = self.shared.status();
            return if sync {
                self.client_ready(status).await
            } else {
                self.skip_to_sync(std::iter::empty(), false, status).await
            };
        }
        let items = std::mem::take(&mut self.batch);
        let first_segment = !self.batch_forwarded;
        self.batch_forwarded = !sync;
        let carried = if first_segment {
            None
        } else {
            self.forwarded_in_block.take()
        };
        let needs_care = self.wrapper
            || items.iter().any(|i| {
                matches!(
                    i.kind(),
                    Some(StmtKind::Write | StmtKind::Commit | StmtKind::PrepareTransaction)
                )
            });
        if !needs_care {
            if !sync {
                self.forwarded_in_block = block_after(&items, carried);
            }
            return self.forward_batch(items, sync);
        }
        self.flush().await?;
        self.wait_idle().await?;
        let start = self.shared.status();
        if start == TxStatus::Failed {
            return self.forward_batch(items, sync);
        }
        // An implicit transaction (Idle at the batch's first segment) that
        // writes before any BEGIN gets infrasql's wrapper.
        if start == TxStatus::Idle && first_segment && !self.wrapper {
            let first_write = items.iter().position(|i| i.kind() == Some(StmtKind::Write));
            let first_begin = items.iter().position(|i| i.kind() == Some(StmtKind::Begin));
            if let Some(w) = first_write {
                if first_begin.is_none_or(|b| w < b) {
                    self.driver_exec("BEGIN").await?;
                    self.wrapper = true;
                }
            }
        }
        let mut in_block = carried.unwrap_or(start == TxStatus::InBlock) || self.wrapper;
        let mut items = items.into_iter();
        let mut pending: Vec<BatchItem> = Vec::new();
        while let Some(item) = items.next() {
            match item.kind() {
                Some(StmtKind::Begin) => in_block = true,
                Some(k) if k.ends_with_hook() && in_block => {
                    // Learn whether everything before it succeeded. Inside a
                    // block, a Sync neither commits nor drops portals.
                    for p in pending.drain(..) {
                        self.out.extend_from_slice(&p.frame.bytes);
                    }
                    encode_sync(&mut self.out);
                    self.push_route(Route::ClientButReady);
                    self.flush().await?;
                    let (status, error) = self.wait_ready_forwarding_copy().await?;
                    if error || status != TxStatus::InBlock {
                        // The backend skipped the rest up to the client's
                        // Sync; our Sync ended that, so skip it here.
                        return self.skip_to_sync(items, sync, status).await;
                    }
                    let implicit = self.wrapper;
                    let two_phase = k == StmtKind::PrepareTransaction;
                    let sql = match self.commit_hook_implicit(implicit, two_phase).await? {
                        Ok(Verdict::Commit) => item
                            .execute
                            .and_then(|p| p.text)
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "COMMIT".to_owned()),
                        // A dry run: the COMMIT becomes a ROLLBACK.
                        Ok(Verdict::Rollback) => "ROLLBACK".to_owned(),
                        Err(report) => {
                            self.abort_after_refusal(report).await?;
                            return self.skip_to_sync(items, sync, TxStatus::Idle).await;
                        }
                    };
                    self.wrapper = false;
                    // infrasql runs the statement itself and answers the
                    // Execute: the client's portal would not do after a dry
                    // run, and this way every protocol form ends the same.
                    let (status, err) = self.end_transaction(&sql).await?;
                    if let Some(report) = err {
                        self.client_error(report).await?;
                        return self.skip_to_sync(items, sync, status).await;
                    }
                    // COMMIT AND CHAIN opens the next block at once.
                    in_block = status == TxStatus::InBlock;
                    continue;
                }
                _ => {}
            }
            pending.push(item);
        }
        if sync && self.wrapper {
            // Replace the client's Sync: run the hook, commit, then answer.
            let sync_frame = pending.pop();
            debug_assert!(sync_frame.as_ref().is_some_and(|f| f.frame.tag == b'S'));
            for p in pending {
                self.out.extend_from_slice(&p.frame.bytes);
            }
            encode_sync(&mut self.out);
            self.push_route(Route::ClientButReady);
            self.flush().await?;
            let (status, error) = self.wait_ready_forwarding_copy().await?;
            let status = if error || status != TxStatus::InBlock {
                self.driver_exec("ROLLBACK").await?;
                self.wrapper = false;
                TxStatus::Idle
            } else {
                self.finish_wrapper().await?
            };
            return self.client_ready(status).await;
        }
        if !sync {
            self.forwarded_in_block = Some(in_block);
        }
        self.forward_batch(pending, sync)
    }

    fn forward_batch(&mut self, items: Vec<BatchItem>, sync: bool) -> Result<(), SessionEnd> {
        for i in &items {
            self.out.extend_from_slice(&i.frame.bytes);
        }
        if sync {
            self.push_route(Route::Client);
        }
        Ok(())
    }

    /// After an error or a refused commit mid-batch: drop the client's
    /// remaining messages up to its Sync, as PostgreSQL would, and answer
    /// that Sync with `status`.
    async fn skip_to_sync(
        &mut self,
        rest: impl Iterator<Item = BatchItem>,
        sync: bool,
        status: TxStatus,
    ) -> Result<(), SessionEnd> {
        drop(rest.collect::<Vec<_>>());
        let status = if self.wrapper {
            // The implicit transaction failed as a whole.
            self.driver_exec("ROLLBACK").await?;
            self.wrapper = false;
            TxStatus::Idle
        } else if status == TxStatus::InBlock {
            TxStatus::Failed
        } else {
            status
        };
        if sync {
            return self.client_ready(status).await;
        }
        // The Sync is still to come: discard until it arrives.
        loop {
            let f = match self.stash.pop_front() {
                Some(f) => f,
                None => {
                    self.read_client_idle().await?;
                    continue;
                }
            };
            if f.tag == b'S' {
                self.batch_forwarded = false;
                return self.client_ready(status).await;
            }
        }
    }

    // ----- waiting on the backend --------------------------------------------

    /// Wait until every forwarded Query/Sync has been answered.
    async fn wait_idle(&mut self) -> Result<(), SessionEnd> {
        loop {
            let notified = self.shared.drained.notified();
            if self.shared.backend_gone.load(Ordering::Acquire) {
                return Err(SessionEnd::BackendGone);
            }
            if self.shared.idle() {
                return Ok(());
            }
            tokio::select! {
                _ = notified => {}
                r = self.client_in.read_buf(&mut self.cbuf) => {
                    if r? == 0 { return Err(SessionEnd::ClientClosed); }
                    self.parse_client(true).await?;
                }
            }
        }
    }

    /// Wait for the ReadyForQuery routed to the driver, passing client COPY
    /// data through meanwhile. Messages routed to the driver are dropped.
    async fn wait_ready_forwarding_copy(&mut self) -> Result<(TxStatus, bool), SessionEnd> {
        loop {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Ready { status, error }) => return Ok((status, error)),
                    Some(Event::Message(_)) => {}
                    None => return Err(SessionEnd::BackendGone),
                },
                r = self.client_in.read_buf(&mut self.cbuf) => {
                    if r? == 0 { return Err(SessionEnd::ClientClosed); }
                    self.parse_client(true).await?;
                }
            }
        }
    }

    /// Run infrasql's own statement; its results never reach the client.
    async fn driver_exec(&mut self, sql: &str) -> Result<TxStatus, SessionEnd> {
        let (status, err) = self.driver_exec_report(sql).await?;
        if let Some(r) = err {
            tracing::warn!("infrasql's own `{sql}` failed: {r}");
        }
        Ok(status)
    }

    async fn driver_exec_report(
        &mut self,
        sql: &str,
    ) -> Result<(TxStatus, Option<Report>), SessionEnd> {
        let (rows, status, err) = self.driver_query(sql).await?;
        drop(rows);
        Ok((status, err))
    }

    /// Run the client's transaction-ending statement on its behalf: notices
    /// and the CommandComplete go to the client, the error is returned.
    async fn end_transaction(
        &mut self,
        sql: &str,
    ) -> Result<(TxStatus, Option<Report>), SessionEnd> {
        encode_private_query(sql, &mut self.out);
        self.push_route(Route::Driver);
        self.flush().await?;
        let mut err = None;
        loop {
            match self.events.recv().await {
                Some(Event::Message(f)) => match f.tag {
                    b'C' | b'N' => self.shared.write_client(&f.bytes).await?,
                    b'E' => err = Some(Report::parse(f.body())),
                    _ => {}
                },
                Some(Event::Ready { status, .. }) => return Ok((status, err)),
                None => return Err(SessionEnd::BackendGone),
            }
        }
    }

    async fn driver_query(
        &mut self,
        sql: &str,
    ) -> Result<(Vec<TextRow>, TxStatus, Option<Report>), SessionEnd> {
        encode_private_query(sql, &mut self.out);
        self.push_route(Route::Driver);
        self.flush().await?;
        let mut rows = Vec::new();
        let mut err = None;
        loop {
            match self.events.recv().await {
                Some(Event::Message(f)) => match f.tag {
                    b'T' => rows.clear(),
                    b'D' => rows.push(parse_data_row(f.body())),
                    b'E' => err = Some(Report::parse(f.body())),
                    _ => {}
                },
                Some(Event::Ready { status, .. }) => return Ok((rows, status, err)),
                None => return Err(SessionEnd::BackendGone),
            }
        }
    }

    /// Run the hook. The outer result is the session's health; the inner one
    /// is the hook's verdict.
    async fn commit_hook_implicit(
        &mut self,
        implicit: bool,
        two_phase: bool,
    ) -> Result<Result<Verdict, Report>, SessionEnd> {
        let hook = self.hook.clone();
        let mut ctx = HookCtx {
            driver: self,
            implicit,
            two_phase,
            broken: None,
        };
        let verdict = hook.before_commit(&mut ctx).await;
        if let Some(end) = ctx.broken.take() {
            return Err(end);
        }
        Ok(verdict.map_err(|e| e.0))
    }

    /// Before a statement reading `infra.plan` runs inside a transaction,
    /// let the hook fill in the preview. Returns false when the hook failed
    /// and the client already has the error.
    async fn refresh_plan(&mut self) -> Result<bool, SessionEnd> {
        self.flush().await?;
        self.wait_idle().await?;
        if self.shared.status() != TxStatus::InBlock {
            return Ok(true);
        }
        let hook = self.hook.clone();
        let mut ctx = HookCtx {
            driver: self,
            implicit: false,
            two_phase: false,
            broken: None,
        };
        let r = hook.before_plan_read(&mut ctx).await;
        if let Some(end) = ctx.broken.take() {
            return Err(end);
        }
        match r {
            Ok(()) => Ok(true),
            Err(e) => {
                self.client_error(e.0).await?;
                Ok(false)
            }
        }
    }
}

struct HookCtx<'a> {
    driver: &'a mut Driver,
    implicit: bool,
    two_phase: bool,
    /// Set when the session itself broke while the hook ran.
    broken: Option<SessionEnd>,
}

#[async_trait]
impl CommitContext for HookCtx<'_> {
    async fn query(&mut self, sql: &str) -> Result<Vec<TextRow>, HookError> {
        match self.driver.driver_query(sql).await {
            Ok((rows, _, None)) => Ok(rows),
            Ok((_, _, Some(report))) => Err(HookError(report)),
            Err(end) => {
                self.broken = Some(end);
                Err(HookError::new(
                    "08006",
                    "connection to the backend PostgreSQL was lost",
                ))
            }
        }
    }

    async fn notice(&mut self, message: &str) -> Result<(), HookError> {
        let mut b = BytesMut::new();
        Report::notice(message).encode_notice(&mut b);
        if let Err(e) = self.driver.shared.write_client(&b).await {
            self.broken = Some(SessionEnd::Io(e));
            return Err(HookError::new("08006", "client connection lost"));
        }
        Ok(())
    }

    fn implicit(&self) -> bool {
        self.implicit
    }

    fn two_phase(&self) -> bool {
        self.two_phase
    }
}
