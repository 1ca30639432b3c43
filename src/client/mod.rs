//! infrasql's client subcommands: they reach a running infrasql over the
//! wire like any PostgreSQL client (`connect`), so they need no access to
//! its data directory and work against a remote server.
//!
//! - `connect`: `--url`, else the `PG*` variables and `~/.pgpass`.
//! - `tls`: libpq's `sslmode` meanings on rustls.
//! - `sql`: which files, their statements, a failure's file and line.
//! - `plan`: run SQL files in a plan-only session, read `infra.plan`.
//! - `render`: the plan as a table, Markdown or JSON, or its graph.
//! - `graph`: the plan's steps as a graph (nodes by action, the apply's
//!   order as edges), drawn as DOT or Mermaid.
//! - `verdict`: the policies' verdicts on the plan (`infra.plan_policy`).
//! - `revert`: the SQL `infra.revert()` writes for an apply, planned like
//!   `plan` or applied with `--yes`.
//! - `apply`, `progress`: migration files, one transaction each, recorded
//!   in `infra.migration_file`; the engine's progress NOTICEs shown.
//! - `stack`: `--stack`: files as a stack's whole declaration; psql variables.
//! - `stack_admin`: `infrasql stack delete` and `stack confirm`.
//! - `status`: version, sync state, open drift, last applies.
//! - `tokens`: `infrasql token create|list|revoke` (the HTTP listener's
//!   bearer tokens; only their SHA-256 reaches the server).

pub mod apply;
pub mod connect;
pub mod graph;
pub mod plan;
pub mod progress;
pub mod render;
pub mod revert;
pub mod roles;
pub mod sql;
pub mod stack;
pub mod stack_admin;
pub mod status;
pub mod tls;
pub mod tokens;
pub mod verdict;
