//! The engine: what happens at COMMIT (plan, apply) and in the background (sync).
pub mod hook;
