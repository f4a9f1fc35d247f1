//! The CLI over a link that drops: `push`, `pull` and `sync` reconnect on
//! their own through a proxy that cuts the TCP connection mid-transfer, resume
//! at the offset the other side holds, and send again at most one window.

mod cli_common;

use std::fs;
use std::time::Duration;

use cli_common::{write_pattern, Server};
use tests::cut_proxy::{CutProxy, Direction};

const MIB: u64 = 1 << 20;
/// The server's upload window on TCP and the CLI's download window: the most
/// a cut link can have in flight.
const WINDOW: u64 = 8 * MIB;
/// The proxy's pace per direction, so a cut lands mid-transfer.
const RATE: u64 = 16 * MIB;

#[test]
fn push_finishes_by_itself_over_a_cut_link_resending_at_most_one_window() {
    let server = Server::start(&["laptop"]);
    let proxy = CutProxy::start(&server.addr, RATE);
    let dir = tempfile::tempdir().unwrap();
    let size = 32 * MIB;
    let file = dir.path().join("big.bin");
    write_pattern(&file, size as usize, 40);
    proxy.cut_after(Direction::ToServer, 12 * MIB, Duration::from_secs(1));

    let laptop = server.cli("laptop").via(&proxy.url());
    let reports = laptop.json(&["push", file.to_str().unwrap()]);
    let report = &reports[0];

    assert_eq!(proxy.cuts(), 1, "the link was cut once");
    assert_eq!(report["result"], "uploaded", "{report}");
    assert_eq!(report["reconnects"], 1, "{report}");
    let resent = report["resent_bytes"].as_u64().unwrap();
    assert!(
        resent <= WINDOW,
        "re-sent {resent} bytes, more than one window ({WINDOW}): {report}"
    );
    let forwarded = proxy.forwarded(Direction::ToServer);
    assert!(
        forwarded <= size + WINDOW + MIB,
        "{forwarded} bytes went to the server for a {size}-byte file"
    );
    let record = server.cli("laptop").record("big.bin").unwrap();
    assert_eq!(record["bits"], "11");
}

#[test]
fn pull_finishes_by_itself_over_a_cut_link_resuming_after_the_bytes_on_disk() {
    let server = Server::start(&["laptop", "tv"]);
    let dir = tempfile::tempdir().unwrap();
    let size = 32 * MIB;
    let file = dir.path().join("film.bin");
    write_pattern(&file, size as usize, 41);
    server.cli("laptop").ok(&["push", file.to_str().unwrap()]);

    let proxy = CutProxy::start(&server.addr, RATE);
    proxy.cut_after(Direction::ToClient, 12 * MIB, Duration::from_secs(1));
    let dest = tempfile::tempdir().unwrap();
    let tv = server.cli("tv").via(&proxy.url());
    let reports = tv.json(&["pull", "--dest", dest.path().to_str().unwrap()]);

    assert_eq!(proxy.cuts(), 1, "the link was cut once");
    assert_eq!(reports[0]["result"], "fetched", "{reports}");
    assert_eq!(
        fs::read(dest.path().join("film.bin")).unwrap(),
        fs::read(&file).unwrap()
    );
    let forwarded = proxy.forwarded(Direction::ToClient);
    assert!(
        forwarded <= size + WINDOW + MIB,
        "{forwarded} bytes came from the server for a {size}-byte file: more than one window again"
    );

    // Every device sees how the download went: broken off by the cut, then done.
    let laptop = server.cli("laptop");
    let downloads = laptop.json(&["downloads", "--for", "tv"]);
    let download = &downloads[0];
    assert_eq!(download["name"], "film.bin", "{downloads}");
    assert_eq!(download["state"], "done", "{download}");
    assert_eq!(download["acknowledged"], size, "{download}");
    let history = laptop.json(&["history"]);
    let broke_off = history
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["kind"] == "downloaded" && h["device"] == "tv" && h["detail"] != "done")
        .unwrap_or_else(|| panic!("no line for the broken-off download in {history}"));
    let detail = broke_off["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("failed: connection lost after ")
            && detail.ends_with(&format!(" of {size} bytes")),
        "{detail}"
    );
    let status = laptop.ok(&["status"]);
    assert!(status.contains("downloads: 1 done"), "{status}");
}

#[test]
fn a_link_that_stays_down_ends_the_command_with_exit_3_after_its_retries() {
    let server = Server::start(&["laptop"]);
    let proxy = CutProxy::start(&server.addr, RATE);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    write_pattern(&file, (16 * MIB) as usize, 42);
    proxy.cut_after(Direction::ToServer, 4 * MIB, Duration::from_secs(3600));

    let laptop = server.cli("laptop").via(&proxy.url());
    let out = laptop.run(&["push", "--retries", "2", file.to_str().unwrap()]);

    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reconnecting in") && stderr.contains("after 2 reconnection attempts"),
        "{stderr}"
    );
}
