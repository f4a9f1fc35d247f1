//! The behaviour suite (`behaviour_suite/`) on PostgreSQL with blobs in an
//! S3-compatible object store (`serve --blobs s3://…`): every test on a fresh
//! database and a fresh prefix of the store `HOST_SERVER_TEST_S3` names.
//!
//! Built only with `--features host-server/postgres-tests`. Without the
//! variable the crate is skipped loudly, except in CI (`CI=true`), where it fails.

mod behaviour_suite;
mod common;

/// The backend the suite runs on in this crate.
pub const BACKEND: common::Backend = common::Backend::PostgresS3;
