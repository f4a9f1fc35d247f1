//! `host-cli` over a serial line: the server attaches one end of a simulated
//! UART (exposed as a pseudo-terminal) with `--serial`, the CLI opens the
//! other end with `--server serial://…`.

mod cli_common;

use std::fs;

use cli_common::{write_pattern, Server};
use tests::link::{LineModel, Link};
use tests::pty::PtyBridge;

const BAUD: u32 = 2_000_000;

#[test]
fn push_and_pull_over_a_pseudo_terminal_serial_line() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server_end, cli_end) = runtime.block_on(async {
        let link = Link::symmetric(LineModel::clean(BAUD));
        (
            PtyBridge::new(link.b).unwrap(),
            PtyBridge::new(link.a).unwrap(),
        )
    });
    let serial_arg = format!("{}:{BAUD}", server_end.path_str());
    let server = Server::start_with(&["board", "laptop"], &["--serial", &serial_arg]);
    let url = format!("serial://{}?baud={BAUD}", cli_end.path_str());
    let board = server.cli("board").via(&url);

    let dir = tempfile::tempdir().unwrap();
    write_pattern(&dir.path().join("logs/boot.log"), 40_000, 30);
    write_pattern(&dir.path().join("logs/app.log"), 3_000, 31);
    let pushed = board.json(&["push", dir.path().join("logs").to_str().unwrap()]);
    assert!(pushed
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["result"] == "uploaded"));

    // Everyone on TCP sees the board's files as uploaded, and the board on its serial link.
    let laptop = server.cli("laptop");
    let record = laptop.record("logs/boot.log").unwrap();
    assert_eq!(record["bits"], "11");
    assert_eq!(record["owner"], "board");
    let devices = laptop.json(&["devices"]);
    let board_info = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "board")
        .unwrap();
    assert_eq!(board_info["link"], "serial");

    // The laptop publishes a file; the board pulls it over the serial line.
    write_pattern(&dir.path().join("firmware.bin"), 25_000, 32);
    laptop.ok(&["push", dir.path().join("firmware.bin").to_str().unwrap()]);
    let dest = tempfile::tempdir().unwrap();
    let pulled = board.json(&[
        "pull",
        "--dest",
        dest.path().to_str().unwrap(),
        "firmware.bin",
    ]);
    assert_eq!(pulled[0]["result"], "fetched");
    assert_eq!(
        fs::read(dest.path().join("firmware.bin")).unwrap(),
        fs::read(dir.path().join("firmware.bin")).unwrap()
    );
    // A second session on the same line (a new Hello) works too.
    let ls = board.json(&["ls"]);
    assert_eq!(ls.as_array().unwrap().len(), 3);
    drop(server);
    drop((server_end, cli_end));
    runtime.shutdown_background();
}
