//! The example firmware, cross-built and booted under QEMU (`lm3s6965evb`),
//! syncing with a real `host-server` over its UART, checked with `host-cli`.
//!
//! The board's UART is a QEMU TCP chardev carried to a pseudo-terminal
//! (`tests::qemu::UartCable`) that the server opens with `--serial`; the pty
//! outlives QEMU, so powering the board off and on looks to the server like a
//! board that reset while its cable stayed plugged in.
//!
//! The one test walks through a board's life: the fresh board (the image
//! carries no identity) waits on its line until `host-server device add
//! --provision` gives it its name and key, its batch appears, it is reset in
//! the middle of the large upload and resumes with the identity it kept, the
//! server crashes and restarts under it and it resumes again, the host pulls
//! its files with the announced hashes, and files published for it are
//! downloaded after the server's notification and verified on the board.
//!
//! Needs `qemu-system-arm` and the `thumbv7m-none-eabi` target; `.ci/run`
//! installs both. Without QEMU the test fails (it does not skip).

use std::path::Path;
use std::time::{Duration, Instant};

use proto_core::auth::ContentHasher;
use serde_json::Value;
use tests::process::{Profile, ServerProcess};
use tests::qemu::{build_firmware, provision, require_qemu, QemuBoard, UartCable};

const BOARD: &str = "qemu-board";
const LAPTOP: &str = "laptop";
const LARGE: &str = "qemu-board/logs/large.bin";
const HELLO_CONTENT: &[u8] = b"Hello from a statesync example board.\n";
/// How long any one step may take before the test gives up.
const STEP: Duration = Duration::from_secs(60);

/// The host side: the server with the board's pty attached, and the laptop's CLI.
struct Host {
    server: ServerProcess,
    laptop_key: String,
}

impl Host {
    /// `host-cli ARGS` as the laptop, not yet started.
    fn cli(&self, args: &[&str]) -> std::process::Command {
        self.server
            .cli_command(&self.server.url(), LAPTOP, &self.laptop_key, args)
    }

    /// Runs `host-cli --json ARGS` as the laptop and parses its output.
    fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output =
            tokio::task::block_in_place(|| self.cli(&all).output()).expect("host-cli runs");
        assert!(
            output.status.success(),
            "host-cli {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "host-cli {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// The record named `name`, as `host-cli ls --json` shows it.
    fn record(&self, name: &str) -> Option<Value> {
        let records = self.cli_json(&["ls"]);
        records
            .as_array()?
            .iter()
            .find(|record| record["name"] == name)
            .cloned()
    }

    /// The board's batches, as `host-cli status --json` shows them.
    fn board_batches(&self) -> Vec<Value> {
        let statuses = self.cli_json(&["status"]);
        statuses
            .as_array()
            .into_iter()
            .flatten()
            .filter(|status| status["device"] == BOARD)
            .flat_map(|status| status["batches"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

/// `sha256 HEX` of `name` as the board announced it in its boot log.
fn announced_hash(board: &QemuBoard, name: &str) -> String {
    let prefix = format!("holds {name} (");
    board
        .log()
        .iter()
        .find_map(|line| {
            let rest = &line[line.find(&prefix)?..];
            Some(rest.rsplit(' ').next()?.to_owned())
        })
        .unwrap_or_else(|| panic!("the board did not announce {name}"))
}

/// The number after `marker` in `line` (e.g. `"resumes at byte "`).
fn number_after(line: &str, marker: &str) -> u64 {
    let rest = &line[line.find(marker).expect("marker in line") + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a number follows")
}

fn hash_hex(bytes: &[u8]) -> String {
    ContentHasher::digest(bytes).to_string()
}

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what` after [`STEP`].
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_board_resumes_after_reboot_and_server_crash_and_fetches_published_files() {
    let started = Instant::now();
    if let Err(message) = require_qemu() {
        panic!("{message}");
    }

    // Host side: a pty for the board's UART, the server on it, the laptop.
    let cable = UartCable::new().await.expect("pty and board socket");
    let serial = format!("{}:115200", cable.pty_path());
    let mut server = tokio::task::block_in_place(|| {
        ServerProcess::start(Profile::Debug, &["--serial", &serial])
    });
    // Until the board has its identity, the line is the provisioning tool's.
    tokio::task::block_in_place(|| server.kill_hard());
    let laptop_key = server.add_device(LAPTOP);
    let elf = tokio::task::block_in_place(build_firmware).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("firmware built after {:?}", started.elapsed());

    // Boot 1: the fresh board has no identity and says so; provisioning gives it one.
    let mut board = QemuBoard::boot(&elf, cable.board_addr())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_for_line(&["no identity: waiting to be provisioned"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::task::block_in_place(|| provision(&server, BOARD, &cable.pty_path()))
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::task::block_in_place(|| server.restart());
    let mut host = Host { server, laptop_key };
    board
        .wait_for_line(&["provisioned as `qemu-board`"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_for_line(&["connected as `qemu-board`"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_for_line(&["batch", "3 files expected"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let batches = host.board_batches();
    assert!(
        batches.iter().any(|batch| batch["expected"] == 3),
        "status shows no batch of 3 expected files for the board: {batches:?}"
    );

    // Reset the board in the middle of the large upload.
    board
        .wait_for_line(&["uploading", LARGE], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before_reset = eventually("part of the large file to be durable on the server", || {
        let record = host.record(LARGE)?;
        let received = record["received"].as_u64()?;
        (received > 0 && received < 65_536).then_some((received, record["id"].as_u64()?))
    })
    .await;
    let (received_before, large_id) = before_reset;
    let reset_mark = board.log_len();
    board.reset().await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("board reset with {received_before} of 65536 bytes on the server");
    let record = host.record(LARGE).expect("the large file's record");
    assert_ne!(record["bits"], "11", "the upload finished before the reset");

    // After the reset: the board still has its identity, and the upload
    // resumes where the server stands, it does not restart.
    board
        .wait_for_line_after(
            reset_mark,
            &["identity `qemu-board` from the identity page"],
            STEP,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let resumed = board
        .wait_for_line_after(
            reset_mark,
            &[&format!("upload of record {large_id} resumes at byte")],
            STEP,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let resumed_at = number_after(&resumed, "resumes at byte ");
    assert!(
        resumed_at >= received_before,
        "the upload resumed at {resumed_at}, below the {received_before} bytes the server held"
    );

    // The server crashes (SIGKILL) and comes back on the same serial port
    // while the board uploads: the board says Hello again and resumes again.
    let crash_at = eventually(
        "more of the large file to be durable after the resume",
        || {
            let received = host.record(LARGE)?["received"].as_u64()?;
            (received > resumed_at && received < 65_536).then_some(received)
        },
    )
    .await;
    let mark = board.log_len();
    tokio::task::block_in_place(|| host.server.restart());
    eprintln!("server restarted with {crash_at} of 65536 bytes stored");
    board
        .wait_for_line_after(mark, &["connected as `qemu-board`"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let resumed_again = board
        .wait_for_line_after(
            mark,
            &[&format!("upload of record {large_id} resumes at byte")],
            STEP,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let resumed_again_at = number_after(&resumed_again, "resumes at byte ");
    assert!(
        resumed_again_at >= crash_at,
        "after the server restart the upload resumed at {resumed_again_at}, below the {crash_at} bytes stored"
    );
    board
        .wait_for_line(&["all 3 files uploaded"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !board
            .log()
            .iter()
            .skip(reset_mark)
            .any(|line| line.contains(&format!("upload of record {large_id} starts"))),
        "the large upload started over after the reset or the server restart"
    );

    // The host sees the batch complete and pulls every file with its announced hash.
    let batches = host.board_batches();
    assert!(
        batches
            .iter()
            .any(|batch| batch["expected"] == 3 && batch["uploaded"] == 3),
        "status shows no complete batch (3 expected, 3 uploaded): {batches:?}"
    );
    let pulled = tempfile::tempdir().expect("temp dir");
    let dest = pulled.path().to_str().expect("utf-8 temp path");
    host.cli_json(&["pull", BOARD, "--dest", dest]);
    for name in [
        "qemu-board/hello.txt",
        "qemu-board/config/settings.json",
        LARGE,
    ] {
        let bytes = std::fs::read(Path::new(dest).join(name))
            .unwrap_or_else(|e| panic!("pulled {name} is missing: {e}"));
        assert_eq!(
            hash_hex(&bytes),
            announced_hash(&board, name),
            "{name} pulled with another hash than the board announced"
        );
    }
    let hello = std::fs::read(Path::new(dest).join("qemu-board/hello.txt")).expect("hello.txt");
    assert_eq!(hello, HELLO_CONTENT);

    // Publish two files for the board, slowly: it asks while they are still
    // uploading, waits for the notification, then downloads and verifies them.
    let outbox = tempfile::tempdir().expect("temp dir");
    let inbox = outbox.path().join("inbox/qemu-board");
    std::fs::create_dir_all(&inbox).expect("inbox dir");
    let note = b"a note from the laptop\n".to_vec();
    let blob: Vec<u8> = (0..12_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(inbox.join("note.txt"), &note).expect("note");
    std::fs::write(inbox.join("blob.bin"), &blob).expect("blob");
    let mut push = host
        .cli(&["push", "inbox", "--limit-rate", "3K"])
        .current_dir(outbox.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("host-cli push starts");
    board
        .wait_for_line(&["waiting for the server's notification"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_for_line(
            &["notified: inbox/qemu-board/blob.bin is uploaded now"],
            STEP,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let blob_line = board
        .wait_for_line(&["downloaded inbox/qemu-board/blob.bin"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        blob_line.contains(&format!("sha256 {} verified", hash_hex(&blob))),
        "blob.bin not verified with its hash: {blob_line}"
    );
    let note_line = board
        .wait_for_line(&["downloaded inbox/qemu-board/note.txt"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        note_line.contains(&format!("sha256 {} verified", hash_hex(&note)))
            && note_line.contains("kept in RAM")
            && note_line.contains("a note from the laptop"),
        "note.txt not kept and verified: {note_line}"
    );
    let status = tokio::task::block_in_place(|| push.wait()).expect("host-cli push ends");
    assert!(status.success(), "host-cli push failed: {status}");
    assert!(
        board.log().iter().all(|line| !line.contains("FAILED")),
        "the board reported a failure:\n{}",
        board.log().join("\n")
    );

    board.power_off().await;
    eprintln!("firmware test took {:?}", started.elapsed());
}
