//! infrasql's client subcommands: they reach a running infrasql over the
//! wire like any PostgreSQL client (`connect`), so they need no access to
//! its data directory and work against a remote server.
//!
//! - `connect`: `--url`, else the `PG*` variables and `~/.pgpass`.
//! - `plan`: run SQL files in a plan-only session, read `infra.plan`.
//! - `render`: the plan as a table, Markdown or JSON.
//! - `revert`: the SQL `infra.revert()` writes for an apply, planned like
//!   `plan` or applied with `--yes`.

pub mod connect;
pub mod plan;
pub mod render;
pub mod revert;
