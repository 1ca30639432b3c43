//! The PostgreSQL wire side: clients in front, the backend PostgreSQL behind.
//!
//! - `frontend`: accept, TLS, startup, authentication relay, cancel.
//! - `backend`: reaching the backend at its address (`store::BackendAddr`).
//! - `quiet_unix`: the backend's Unix socket, woken only when it has data.
//! - `session`: the message pump and its interception points.
//! - `classify`: what a statement means for transaction handling, and what
//!   infrasql must do before it runs (`infra.sync`, `infra.plan`, bad `SET infra.x`).
//! - `protocol`: framing and the messages infrasql writes itself.
//! - `runtime`: the sessions' own runtime (I/O only), and how they reach
//!   the engine's for timers and the commit hook.
pub mod backend;
pub mod cancel;
pub mod classify;
pub mod frontend;
pub mod protocol;
mod quiet_unix;
pub mod runtime;
pub mod session;
pub mod stream;
