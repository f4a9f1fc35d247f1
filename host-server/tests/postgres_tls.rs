//! TLS to PostgreSQL: `sslmode` and `sslrootcert` in `--database`, against a
//! server whose user `HOST_SERVER_TEST_DATABASE_TLS` may only log in over TLS
//! (so a session that works proves the link is encrypted).
//!
//! Needs, besides `HOST_SERVER_TEST_DATABASE`: `HOST_SERVER_TEST_DATABASE_TLS`
//! (`postgres://USER:PASSWORD@127.0.0.1:PORT/DB` of a user that `pg_hba.conf`
//! allows only on `hostssl`), `HOST_SERVER_TEST_DATABASE_CA` (the PEM of the CA
//! that signed the server's certificate, which names 127.0.0.1 and not
//! `localhost`) and `HOST_SERVER_TEST_DATABASE_OTHER_CA` (a CA that signed
//! nothing of it). `.ci/run` sets them up. Built only with
//! `--features host-server/postgres-tests`; fails (never skips) without them.

mod common;

use std::sync::Arc;

use common::*;
use proto_core::{ListFilter, UploadState};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: .ci/run shows how to set up PostgreSQL with TLS")
    })
}

/// The TLS-only user's URL with `params` in place of any it had.
fn tls_user_url(params: &str) -> String {
    let url = env("HOST_SERVER_TEST_DATABASE_TLS");
    let base = url.split_once('?').map_or(url.as_str(), |(base, _)| base);
    format!("{base}?{params}")
}

/// Runs `host-server device add` on the database at `url`: (success, stderr).
fn add_device_at(url: &str) -> (bool, String) {
    let data = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run_cli(
        &["--database", url, "device", "add", "board-1"],
        data.path(),
    );
    (ok, stderr)
}

/// A fresh database owned by the TLS-only user, and its URL with `params`.
fn database_with(params: &str) -> (TestDatabase, String) {
    let database = TestDatabase::create_for_user(&tls_user_url(params));
    let url = database.url.clone();
    (database, url)
}

#[test]
fn servers_on_sslmode_require_share_changes_and_the_same_user_without_tls_is_refused() {
    let database = Arc::new(TestDatabase::create_for_user(&tls_user_url(
        "sslmode=require",
    )));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let a = Server::start_in_on(&data, Some(Arc::clone(&database)), &[]);
    let b = Server::start_in_on(&data, Some(Arc::clone(&database)), &[]);
    let (k1, k2) = (a.add_device("board-1"), b.add_device("laptop"));
    let mut watcher = b.connect("laptop", &k2);
    watcher.subscribe(ListFilter::All, 0);
    let mut board = a.connect("board-1", &k1);
    let bytes = content(100_000, 3);
    assert_eq!(board.upload("log.bin", &bytes).state, UploadState::Uploaded);
    // B hears of A's change through its LISTEN connection, also over TLS.
    let seen = watcher.wait_change("log.bin", |r| r.state == UploadState::Uploaded);
    assert_eq!(seen.received, bytes.len() as u64);

    let plain = database.url.replace("sslmode=require", "sslmode=disable");
    let (ok, stderr) = add_device_at(&plain);
    assert!(!ok, "a link without TLS must be refused for this user");
    assert!(stderr.contains("no encryption"), "{stderr}");
}

#[test]
fn verify_full_takes_the_certificate_that_its_ca_signed() {
    let ca = env("HOST_SERVER_TEST_DATABASE_CA");
    let (_database, url) = database_with(&format!("sslmode=verify-full&sslrootcert={ca}"));
    let (ok, stderr) = add_device_at(&url);
    assert!(ok, "{stderr}");
}

#[test]
fn verify_full_refuses_a_certificate_from_another_ca_and_says_so() {
    let other = env("HOST_SERVER_TEST_DATABASE_OTHER_CA");
    let (_database, url) = database_with(&format!("sslmode=verify-full&sslrootcert={other}"));
    let (ok, stderr) = add_device_at(&url);
    assert!(!ok, "a certificate no trusted CA signed must be refused");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
}

#[test]
fn verify_full_refuses_a_host_the_certificate_does_not_name_and_verify_ca_takes_it() {
    let ca = env("HOST_SERVER_TEST_DATABASE_CA");
    let (_database, url) = database_with(&format!("sslmode=verify-full&sslrootcert={ca}"));
    let by_name = url.replace("@127.0.0.1:", "@localhost:");
    assert_ne!(by_name, url, "the URL names 127.0.0.1");
    let (ok, stderr) = add_device_at(&by_name);
    assert!(!ok, "verify-full checks the host name");
    assert!(
        stderr.contains("not valid for name \"localhost\""),
        "{stderr}"
    );

    let chain_only = by_name.replace("sslmode=verify-full", "sslmode=verify-ca");
    let (ok, stderr) = add_device_at(&chain_only);
    assert!(ok, "verify-ca checks the chain only: {stderr}");
}

#[test]
fn verify_full_without_a_root_certificate_is_refused_before_connecting() {
    let (_database, url) = database_with("sslmode=verify-full");
    let (ok, stderr) = add_device_at(&url);
    assert!(!ok);
    assert!(stderr.contains("sslrootcert=PATH"), "{stderr}");
}
