//! The client sessions' own runtime, which has no timer.
//!
//! A tokio runtime with timers enabled consults its timer wheel and reads
//! the clock every time it parks and wakes. A proxied query parks and wakes
//! the session's thread twice, so with the engine's many timers (the sync
//! loop, the AWS SDK's retries, the HTTP server) that was about a seventh
//! of the proxy's instructions per query, and more of its cache lines
//! (callgrind; bench/README.md, sessions 14–16). The sessions therefore run
//! on a runtime of their own with only the I/O driver, and everything else
//! stays on the engine's runtime:
//! - the few timers a session needs (the startup deadline, the accept
//!   back-off, the shutdown grace, the drain after a refused message) are
//!   [`Deadline`]s: a sleep spawned on the engine's runtime;
//! - the commit hook runs with the engine's runtime as its context
//!   ([`on_engine`]), so the AWS SDK's and tokio-postgres' timers and tasks
//!   land there, while the session's own sockets stay on the session runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::frontend::Frontend;
use crate::engine::hook::{CommitContext, CommitHook, HookError, Verdict};

/// Build the sessions' runtime: I/O only, current-thread with one worker
/// (the default on two cores: a proxied message wakes no second thread).
pub fn build(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("infrasql-session")
            .enable_io()
            .build()
    }
}

/// Run the listener and its sessions on `rt` (built by [`build`]), on a
/// thread of the calling runtime's blocking pool; the handle ends when the
/// frontend's `serve` does.
pub fn serve(
    rt: tokio::runtime::Runtime,
    frontend: Arc<Frontend>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
    grace: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    // The listener moves to the sessions' I/O driver: accepted sockets
    // register with the runtime whose task reads them.
    let listener = listener.into_std();
    tokio::task::spawn_blocking(move || {
        rt.block_on(async move {
            match listener.and_then(TcpListener::from_std) {
                Ok(l) => frontend.serve(l, shutdown, grace).await,
                Err(e) => tracing::error!("cannot move the listener to the sessions' runtime: {e}"),
            }
        });
    })
}

/// The engine's runtime, as the sessions reach it: where their timers run
/// and where the commit hook's work belongs.
#[derive(Clone, Debug)]
pub struct EngineRuntime(Handle);

impl EngineRuntime {
    /// The runtime of the calling task.
    pub fn current() -> Self {
        EngineRuntime(Handle::current())
    }

    /// Completes after `d`, or at once when the engine's runtime has shut
    /// down (nothing is left to wait for then). Dropping it cancels it.
    pub fn sleep(&self, d: Duration) -> Deadline {
        // Made inside the task: a sleep binds to the runtime it is made on.
        Deadline(self.0.spawn(async move { tokio::time::sleep(d).await }))
    }

    /// `f`'s output, or `None` when `d` passed first.
    pub async fn timeout<F: Future>(&self, d: Duration, f: F) -> Option<F::Output> {
        let deadline = self.sleep(d);
        tokio::select! {
            biased;
            out = f => Some(out),
            () = deadline => None,
        }
    }

    /// Poll `f` with the engine's runtime as the current one: the timers it
    /// creates, the tasks it spawns and the sockets it opens are the
    /// engine's, while the sockets it was given keep their own runtime.
    fn enter<F: Future + Unpin>(&self, f: F) -> Entered<F> {
        Entered {
            handle: self.0.clone(),
            fut: f,
        }
    }
}

/// A sleep on the engine's runtime (see [`EngineRuntime::sleep`]).
pub struct Deadline(JoinHandle<()>);

impl Future for Deadline {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // An error means the engine's runtime shut down: the deadline is
        // as good as passed.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Entered<F> {
    handle: Handle,
    fut: F,
}

impl<F: Future + Unpin> Future for Entered<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _context = self.handle.enter();
        Pin::new(&mut self.fut).poll(cx)
    }
}

/// `hook`, run with the engine's runtime as its context (see the module's
/// documentation). The session's task still polls it, so the hook reaches
/// the session (`CommitContext`) as before.
pub fn on_engine(hook: Arc<dyn CommitHook>, engine: EngineRuntime) -> Arc<dyn CommitHook> {
    Arc::new(OnEngine { hook, engine })
}

struct OnEngine {
    hook: Arc<dyn CommitHook>,
    engine: EngineRuntime,
}

#[async_trait]
impl CommitHook for OnEngine {
    async fn before_commit(&self, ctx: &mut dyn CommitContext) -> Result<Verdict, HookError> {
        self.engine.enter(self.hook.before_commit(ctx)).await
    }

    async fn before_plan_read(&self, ctx: &mut dyn CommitContext) -> Result<(), HookError> {
        self.engine.enter(self.hook.before_plan_read(ctx)).await
    }

    async fn before_sync_call(
        &self,
        table: Option<String>,
        region: Option<String>,
    ) -> Result<(), HookError> {
        self.engine
            .enter(self.hook.before_sync_call(table, region))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime like the sessions': timers there would panic.
    fn sessions() -> tokio::runtime::Runtime {
        build(1).unwrap()
    }

    #[tokio::test]
    async fn a_deadline_passes_on_the_engine_runtime_and_a_timeout_returns_none() {
        let engine = EngineRuntime::current();
        let out = tokio::task::spawn_blocking(move || {
            sessions().block_on(async move {
                let slow = engine
                    .timeout(Duration::from_millis(20), std::future::pending::<()>())
                    .await;
                let fast = engine.timeout(Duration::from_secs(60), async { 7 }).await;
                (slow, fast)
            })
        })
        .await
        .unwrap();
        assert_eq!(out, (None, Some(7)));
    }

    /// What the hook creates (a timer here) belongs to the engine's
    /// runtime, even though a timer-less runtime polls it.
    #[tokio::test]
    async fn a_hook_may_use_timers_and_spawn_from_a_session() {
        struct Sleeps;
        #[async_trait]
        impl CommitHook for Sleeps {
            async fn before_commit(
                &self,
                _ctx: &mut dyn CommitContext,
            ) -> Result<Verdict, HookError> {
                Ok(Verdict::Commit)
            }
            async fn before_sync_call(
                &self,
                _table: Option<String>,
                _region: Option<String>,
            ) -> Result<(), HookError> {
                tokio::time::sleep(Duration::from_millis(5)).await;
                tokio::spawn(async { tokio::time::sleep(Duration::from_millis(1)).await })
                    .await
                    .unwrap();
                Ok(())
            }
        }
        let hook = on_engine(Arc::new(Sleeps), EngineRuntime::current());
        let r = tokio::task::spawn_blocking(move || {
            sessions().block_on(async move { hook.before_sync_call(None, None).await })
        })
        .await
        .unwrap();
        assert!(r.is_ok());
    }

    #[test]
    fn a_deadline_whose_engine_runtime_is_gone_has_passed() {
        let engine_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let engine = EngineRuntime(engine_rt.handle().clone());
        drop(engine_rt);
        let out = sessions()
            .block_on(engine.timeout(Duration::from_secs(60), std::future::pending::<()>()));
        assert_eq!(out, None);
    }
}
