//! The behaviour suite (`behaviour_suite/`) on the default backend, SQLite.

mod behaviour_suite;
mod common;

/// The backend the suite runs on in this crate.
pub const BACKEND: common::Backend = common::Backend::Sqlite;
