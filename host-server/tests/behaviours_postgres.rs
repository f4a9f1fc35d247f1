//! The behaviour suite (`behaviour_suite/`) on PostgreSQL: every test on a
//! fresh database made with the server that `HOST_SERVER_TEST_DATABASE` names.
//!
//! Built only with `--features host-server/postgres-tests`; a test fails (never
//! skips) when the variable is missing or the server cannot be reached.

mod behaviour_suite;
mod common;

/// The backend the suite runs on in this crate.
pub const BACKEND: common::Backend = common::Backend::Postgres;
