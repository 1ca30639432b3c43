//! The engine: what happens at COMMIT (plan, apply) and in the background (sync).
//!
//! - `hook`: the boundary the wire calls at COMMIT.
//! - `commit`: the production hook: changes → plan → apply → write-back.
//! - `plan`: net changes → ordered plan (pure).
//! - `apply`: plan → provider calls, journaled, undone on failure.
//! - `recover`, `converge`: settle applies whose COMMIT or process was lost.
//! - `registry`: resource descriptions → the database and the docs.
//! - `errors`: failure class → SQLSTATE (every SQLSTATE infrasql writes).
//! - `report`: an error or notice for the user, as PostgreSQL's fields.
//! - `settings`: `infra.*` session settings, parsed strictly.
//! - `stop`: what stops an apply (cancel request, `infra.cancel_apply`, timeout).
pub mod apply;
pub mod commit;
pub mod converge;
pub mod errors;
pub mod hook;
pub mod journal;
pub mod plan;
pub mod recover;
pub mod registry;
pub mod report;
pub mod settings;
pub mod stop;
pub mod sync;
