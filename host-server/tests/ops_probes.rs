//! The ops listener against the real binary: probes answer, a missing blob
//! store makes the server not ready, and /metrics follows a transfer.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{content, eventually, Backend, Server, WAIT};
use proto_core::ServerMessage;

/// `GET path` on `addr`: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of the series `series` (name with labels, exactly) in a scrape.
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{scrape}"))
}

fn probes_answer_and_readiness_follows_the_blob_store(backend: Backend) {
    let server = Server::start_on(backend, &["--ops-listen", "127.0.0.1:0"]);
    let ops = server.printed("ops on http://");
    assert_eq!(get(&ops, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(&ops, "/readyz"), (200, "ready\n".to_string()));

    let blobs = server.data.join("blobs");
    let moved = server.data.join("blobs-away");
    std::fs::rename(&blobs, &moved).unwrap();
    let (status, body) = get(&ops, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("blob store"), "{body}");
    assert_eq!(get(&ops, "/healthz").0, 200, "the process is still up");
    std::fs::rename(&moved, &blobs).unwrap();
    assert_eq!(get(&ops, "/readyz").0, 200);
}

fn metrics_follow_a_transfer_and_a_notification(backend: Backend) {
    let server = Server::start_on(backend, &["--ops-listen", "127.0.0.1:0"]);
    let ops = server.printed("ops on http://");
    let (uploader_key, waiter_key) = (server.add_device("cam"), server.add_device("tv"));
    let mut uploader = server.connect("cam", &uploader_key);
    let mut waiter = server.connect("tv", &waiter_key);
    let bytes = content(300_000, 7);

    let (open_id, opened) = uploader.open_upload("clip.bin", &bytes).unwrap();
    let (upload, offset, window) = opened.unwrap();
    let half = bytes.len() as u64 / 2;
    uploader.send_chunks(open_id, upload, &bytes, offset, half, window);
    uploader.wait_durable(open_id, upload, half);
    assert!(
        waiter.download("clip.bin", true).is_err(),
        "the file is not finished"
    );

    let during = get(&ops, "/metrics");
    assert_eq!(during.0, 200);
    let scrape = during.1;
    assert_eq!(value(&scrape, "statesync_sessions{link=\"tcp\"}"), 2.0);
    assert_eq!(value(&scrape, "statesync_sessions{link=\"serial\"}"), 0.0);
    assert_eq!(value(&scrape, "statesync_uploads_in_progress"), 1.0);
    assert!(value(&scrape, "statesync_upload_bytes_total") >= half as f64);
    assert_eq!(
        value(&scrape, "statesync_records{state=\"uploading\"}"),
        1.0
    );
    assert_eq!(value(&scrape, "statesync_records{state=\"uploaded\"}"), 0.0);
    assert!(value(&scrape, "statesync_store_latency_seconds_count") > 0.0);

    uploader.send_chunks(open_id, upload, &bytes, half, bytes.len() as u64, window);
    uploader.wait_result(open_id, upload);
    waiter.wait(|frame| match frame.message {
        ServerMessage::DownloadAvailable { .. } => Some(()),
        _ => None,
    });
    assert_eq!(waiter.download("clip.bin", false).unwrap(), bytes);

    let scrape = eventually("the upload counted as finished", || {
        let scrape = get(&ops, "/metrics").1;
        (value(&scrape, "statesync_uploads_in_progress") == 0.0).then_some(scrape)
    });
    assert_eq!(value(&scrape, "statesync_records{state=\"uploaded\"}"), 1.0);
    assert_eq!(
        value(&scrape, "statesync_upload_bytes_total"),
        bytes.len() as f64
    );
    assert!(value(&scrape, "statesync_download_bytes_total") >= bytes.len() as f64);
    assert_eq!(
        value(&scrape, "statesync_notification_latency_seconds_count"),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "statesync_notification_latency_seconds_bucket{le=\"+Inf\"}"
        ),
        1.0
    );
}

#[test]
fn probes_answer_and_readiness_follows_the_blob_store_sqlite() {
    probes_answer_and_readiness_follows_the_blob_store(Backend::Sqlite);
}

#[test]
fn metrics_follow_a_transfer_and_a_notification_sqlite() {
    metrics_follow_a_transfer_and_a_notification(Backend::Sqlite);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn probes_answer_and_readiness_follows_the_blob_store_postgres() {
    probes_answer_and_readiness_follows_the_blob_store(Backend::Postgres);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn metrics_follow_a_transfer_and_a_notification_postgres() {
    metrics_follow_a_transfer_and_a_notification(Backend::Postgres);
}
