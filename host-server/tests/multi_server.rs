//! The two-server suite (`multi_server_suite/`) on one PostgreSQL database and
//! one shared data directory, and the store's own cross-server tests.
//!
//! Built only with `--features host-server/postgres-tests`; needs
//! `HOST_SERVER_TEST_DATABASE` (see `common::TEST_DATABASE_ENV`).

mod common;
mod multi_server_suite;

use std::sync::Arc;
use std::time::Instant;

use common::*;

/// The backend the suite runs on in this crate.
pub const BACKEND: Backend = Backend::Postgres;

#[test]
fn servers_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database = Some(Arc::new(TestDatabase::create()));
    let servers: Vec<Server> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| Server::start_in_on(&data, database.clone(), &[])))
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let url = database.as_ref().unwrap().url.clone();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let versions: Vec<i64> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4], "each migration applied once");
    drop(servers);

    client
        .execute("INSERT INTO schema_migrations (version) VALUES (999)", &[])
        .unwrap();
    let (ok, _, stderr) = run_cli(&["--database", &url, "device", "list"], &data);
    assert!(!ok);
    assert!(
        stderr.contains("schema version 999 is newer"),
        "a newer schema is refused with what to do: {stderr}"
    );
}

#[test]
fn a_sqlite_server_is_refused_on_a_data_directory_held_by_postgresql_servers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database = Some(Arc::new(TestDatabase::create()));
    let _on_postgres = Server::start_in_on(&data, database, &[]);
    let (ok, _, stderr) = run_cli(&["serve", "--listen", "127.0.0.1:0"], &data);
    assert!(!ok, "a SQLite server started beside PostgreSQL servers");
    assert!(
        stderr.contains("is in use by another host-server; stop it or pass another --data"),
        "{stderr}"
    );
}

#[test]
fn one_admin_token_is_accepted_by_every_server_on_the_database_without_a_shared_directory() {
    let dir = tempfile::tempdir().unwrap();
    let database = Some(Arc::new(TestDatabase::create()));
    let url = database.as_ref().unwrap().url.clone();
    let dashboard = ["--http", "127.0.0.1:0"];
    let a = Server::start_in_on(&dir.path().join("a"), database.clone(), &dashboard);
    let b = Server::start_in_on(&dir.path().join("b"), database, &dashboard);

    let elsewhere = dir.path().join("admin");
    let (ok, token, stderr) = run_cli(&["--database", &url, "admin", "token"], &elsewhere);
    assert!(ok, "{stderr}");
    let token = token.trim();
    for server in [&a, &b] {
        let http = server.printed("dashboard on http://");
        assert_eq!(
            status_with_token(&http, token),
            200,
            "the token works on {http}"
        );
        assert_eq!(status_with_token(&http, &"0".repeat(64)), 401);
    }
    let (ok, newer, _) = run_cli(&["--database", &url, "admin", "token"], &elsewhere);
    assert!(ok);
    for server in [&a, &b] {
        let http = server.printed("dashboard on http://");
        assert_eq!(status_with_token(&http, newer.trim()), 200);
        assert_eq!(
            status_with_token(&http, token),
            401,
            "the old token stopped working"
        );
    }
}

/// The HTTP status of `GET /api/records` on the dashboard at `addr` with `token`.
fn status_with_token(addr: &str, token: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET /api/records HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

#[test]
fn the_shared_blob_lock_holds_other_servers_off_until_it_is_released() {
    use host_server::store::{PostgresStore, Store};
    let database = TestDatabase::create();
    let lease = std::time::Duration::from_secs(TEST_LEASE_SECS);
    let a = PostgresStore::open(&database.url, lease).unwrap();
    let b = PostgresStore::open(&database.url, lease).unwrap();
    let (a, b) = (a.shared().unwrap(), b.shared().unwrap());
    assert!(a.lock_blobs().unwrap());
    let held = std::time::Duration::from_millis(300);
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let started = Instant::now();
            (b.lock_blobs().unwrap(), started.elapsed())
        });
        std::thread::sleep(held);
        a.unlock_blobs().unwrap();
        let (taken, waited) = waiting.join().unwrap();
        assert!(taken, "B takes the lock once A released it");
        assert!(waited >= held / 2, "B waited for A ({waited:?})");
    });
    b.unlock_blobs().unwrap();
    assert!(a.lock_blobs().unwrap());
}
