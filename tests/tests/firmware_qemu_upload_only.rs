//! The upload-only firmware profile (`--no-default-features`: proto-core
//! without `download`, `lists` and `subscribe`) booted under QEMU against a
//! real `host-server`: the board announces its batch and uploads every sample,
//! the host pulls them with the hashes the board announced, and the board
//! never subscribes, lists or downloads.
//!
//! Needs `qemu-system-arm` and the `thumbv7m-none-eabi` target; `.ci/run`
//! installs both. Without QEMU the test fails (it does not skip).

use std::time::Duration;

use proto_core::auth::ContentHasher;
use tests::process::{Profile, ServerProcess};
use tests::qemu::{build_firmware_profile, require_qemu, FirmwareProfile, QemuBoard, UartCable};

const BOARD: &str = "qemu-board";
const LAPTOP: &str = "laptop";
/// How long any one step may take before the test gives up.
const STEP: Duration = Duration::from_secs(60);

/// `sha256 HEX` of every file the board announced in its boot log, by name.
fn announced(board: &QemuBoard) -> Vec<(String, String)> {
    board
        .log()
        .iter()
        .filter_map(|line| {
            let rest = &line[line.find("holds ")? + "holds ".len()..];
            let name = rest.split(' ').next()?.to_owned();
            Some((name, rest.rsplit(' ').next()?.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_only_board_uploads_its_batch_and_never_subscribes_or_downloads() {
    if let Err(message) = require_qemu() {
        panic!("{message}");
    }
    let cable = UartCable::new().await.expect("pty and board socket");
    let serial = format!("{}:115200", cable.pty_path());
    let server = tokio::task::block_in_place(|| {
        ServerProcess::start(Profile::Debug, &["--serial", &serial])
    });
    let board_key = server.add_device(BOARD);
    let laptop_key = server.add_device(LAPTOP);
    let elf = tokio::task::block_in_place(|| {
        build_firmware_profile(BOARD, &board_key, FirmwareProfile::UploadOnly)
    })
    .unwrap_or_else(|e| panic!("{e}"));

    let mut board = QemuBoard::boot(&elf, cable.board_addr())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_for_line(&["batch", "3 files expected"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_for_line(&["all 3 files uploaded"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The host pulls every file with the hash the board announced.
    let pulled = tempfile::tempdir().expect("temp dir");
    let dest = pulled.path().to_str().expect("utf-8 temp path");
    let output = tokio::task::block_in_place(|| {
        server
            .cli_command(
                &server.url(),
                LAPTOP,
                &laptop_key,
                &["--json", "pull", BOARD, "--dest", dest],
            )
            .output()
    })
    .expect("host-cli runs");
    assert!(
        output.status.success(),
        "host-cli pull failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let files = announced(&board);
    assert_eq!(files.len(), 3, "the board announced {files:?}");
    for (name, hash) in &files {
        let bytes = std::fs::read(pulled.path().join(name))
            .unwrap_or_else(|e| panic!("pulled {name} is missing: {e}"));
        assert_eq!(
            &ContentHasher::digest(&bytes).to_string(),
            hash,
            "{name} pulled with another hash than the board announced"
        );
    }

    // Nothing but announcing and uploading: no list, no subscription, no
    // inbox, and no server frame the board could not decode.
    let log = board.log();
    let sync_lines: Vec<&String> = log
        .iter()
        .filter(|line| {
            [
                "subscribed",
                "published for this board",
                "download",
                "frame dropped",
            ]
            .iter()
            .any(|word| line.contains(word))
        })
        .collect();
    assert!(
        sync_lines.is_empty(),
        "the upload-only board did more than upload: {sync_lines:?}"
    );
    board.power_off().await;
}
