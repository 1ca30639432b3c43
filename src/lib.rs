//! infrasql: a PostgreSQL-wire server where cloud resources are tables.
//!
//! Data flows one way: [`wire`] → [`engine`] → providers. [`store`] owns the
//! backend PostgreSQL. See docs/architecture.md.
pub mod cli;
pub mod client;
pub mod config;
pub mod engine;
pub mod gitops;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod playground;
pub mod providers;
pub mod server;
pub mod store;
pub mod wire;
