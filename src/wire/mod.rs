//! The PostgreSQL wire side: clients in front, the backend PostgreSQL behind.
//!
//! - `frontend`: accept, TLS, startup, authentication relay, cancel.
//! - `backend`: where the backend is and how to reach it.
//! - `session`: the message pump and its interception points.
//! - `classify`: what a statement means for transaction handling.
//! - `protocol`: framing and the messages infrasql writes itself.
pub mod backend;
pub mod cancel;
pub mod classify;
pub mod frontend;
pub mod intercept;
pub mod protocol;
pub mod session;
pub mod stream;
