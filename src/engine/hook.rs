//! The boundary between the wire and the apply engine.
//!
//! The session calls [`CommitHook::before_commit`] when a transaction that may
//! have written is about to commit: before an explicit `COMMIT`/`END`/
//! `PREPARE TRANSACTION` is forwarded, and at the end of an implicit
//! transaction (an autocommit statement or a multi-statement query that
//! writes, which the session wraps in its own `BEGIN`/`COMMIT`).
//!
//! # Guarantees
//! - The hook runs on the client's own backend session, inside the client's
//!   transaction: it sees the transaction's uncommitted rows and its writes
//!   commit or roll back with them.
//! - If the hook returns `Err`, the client's COMMIT is answered with that
//!   error and the backend transaction is rolled back.
//! - Notices the hook sends reach the client before the COMMIT's answer.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::report::Report;

/// A session's cancel request, as the hook sees it: the wire raises it when
/// the client sends a CancelRequest (Ctrl-C in psql, JDBC's
/// `Statement.cancel()`), the apply under way stops. The backend cannot be
/// cancelled instead: it is idle in its transaction while infrasql waits
/// on AWS.
#[derive(Clone)]
pub struct CancelSignal(Arc<watch::Sender<bool>>);

impl Default for CancelSignal {
    fn default() -> Self {
        CancelSignal(Arc::new(watch::channel(false).0))
    }
}

impl std::fmt::Debug for CancelSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CancelSignal({})", self.is_raised())
    }
}

impl CancelSignal {
    pub fn raise(&self) {
        self.0.send_replace(true);
    }
    /// Forget an earlier request: a cancel sent while no COMMIT ran must
    /// not stop the next one.
    pub fn clear(&self) {
        self.0.send_replace(false);
    }
    pub fn is_raised(&self) -> bool {
        *self.0.borrow()
    }
    /// Resolves once the signal is raised.
    pub async fn raised(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail.
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// The NOTICE text `infra.capture()` raises for each change it records
/// (schema 1010). The wire takes it off the stream and runs the hook only
/// for transactions that raised it: a missed one cannot lose a change,
/// because an unsealed change is refused at COMMIT (IX100).
pub const CHANGE_MARKER: &str = "infrasql:change-captured";

/// One row of a hook query, as text.
pub type TextRow = Vec<Option<String>>;

/// What a hook may do on the session it was called for.
#[async_trait]
pub trait CommitContext: Send {
    /// Run one SQL statement inside the client's transaction and return its
    /// rows as text. (It runs as a private prepared statement, so the
    /// client's unnamed statement and portal survive it.)
    /// A database error is returned as the backend's report; the transaction
    /// is then aborted and the hook should fail.
    async fn query(&mut self, sql: &str) -> Result<Vec<TextRow>, HookError>;
    /// Send a NOTICE to the client now.
    async fn notice(&mut self, message: &str) -> Result<(), HookError>;
    /// True when the transaction was opened by infrasql around an autocommit
    /// statement rather than by the client's BEGIN.
    fn implicit(&self) -> bool;
    /// True when the transaction ends with PREPARE TRANSACTION, not COMMIT.
    fn two_phase(&self) -> bool {
        false
    }
    /// True when the client connected in plan-only mode: the hook must
    /// roll back every transaction, whatever the session's settings say.
    fn plan_only(&self) -> bool {
        false
    }
    /// The client's address as infrasql's listener saw the connection (the
    /// backend only sees infrasql); `None` where there is no such peer.
    fn client_addr(&self) -> Option<String> {
        None
    }
    /// The session's cancel request (never raised by default).
    fn cancel_signal(&self) -> CancelSignal {
        CancelSignal::default()
    }
}

/// Why a commit was refused; reaches the client as an ErrorResponse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.message)]
pub struct HookError(pub Report);

impl HookError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        HookError(Report::error(code, message))
    }
}

/// What to do with a transaction the hook let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the COMMIT.
    Commit,
    /// Roll back instead, without an error (a dry run).
    Rollback,
}

#[async_trait]
pub trait CommitHook: Send + Sync + 'static {
    async fn before_commit(&self, ctx: &mut dyn CommitContext) -> Result<Verdict, HookError>;

    /// Called inside an open transaction before a statement that reads
    /// `infra.plan` runs, so the preview can be filled in.
    async fn before_plan_read(&self, _ctx: &mut dyn CommitContext) -> Result<(), HookError> {
        Ok(())
    }

    /// Called before a statement that calls `infra.sync(table, region)`
    /// runs: sync now, so the statement reports a finished round.
    async fn before_sync_call(
        &self,
        _table: Option<String>,
        _region: Option<String>,
    ) -> Result<(), HookError> {
        Ok(())
    }
}
