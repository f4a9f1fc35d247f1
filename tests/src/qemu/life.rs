//! What every QEMU board's end-to-end test checks, for any [`Machine`]: the
//! board syncing with a real `host-server` over its UART, checked with
//! `host-cli`. Each board's test file in `tests/tests/` calls these.
//!
//! The board's UART is a QEMU TCP chardev carried to a pseudo-terminal
//! ([`UartCable`]) that the server opens with `--serial`. The image carries
//! no identity: every scenario starts with the fresh board waiting on its
//! line until `host-server device add --provision` gives it its name and key
//! (the server is off the line meanwhile), and a reset (QEMU's
//! `system_reset`) keeps that identity in the board's identity page.

use std::path::Path;
use std::time::{Duration, Instant};

use proto_core::auth::ContentHasher;
use serde_json::Value;

use super::{build_board_firmware, provision, FirmwareProfile, Machine, QemuBoard, UartCable};
use crate::process::{Profile, ServerProcess};

const LAPTOP: &str = "laptop";
const HELLO_CONTENT: &[u8] = b"Hello from a statesync example board.\n";
/// Size of the board's generated large sample.
const LARGE_SIZE: u64 = 65_536;
/// How long any one step may take before the test gives up.
const STEP: Duration = Duration::from_secs(60);

/// The device name a machine's board registers as: `BOARD-board`.
pub fn device_name(machine: Machine) -> String {
    format!("{}-board", machine.board)
}

/// A server with the board's pty attached, the laptop's CLI, and the board's
/// firmware (one image for every board of its kind): what every scenario
/// starts from.
pub struct Rig {
    /// The board's machine.
    pub machine: Machine,
    /// The board's device name.
    pub device: String,
    /// The cable between the board's UART and the server's pty.
    pub cable: UartCable,
    /// The server, with `--serial` on the cable's pty.
    pub server: ServerProcess,
    /// The laptop's device key.
    pub laptop_key: String,
    /// The firmware image, without identity.
    pub elf: std::path::PathBuf,
}

impl Rig {
    /// Starts the server on a fresh cable, registers the laptop, and builds
    /// the board's firmware of `profile`. The server is stopped until
    /// [`Rig::boot_and_provision`] has given the board its identity.
    pub async fn start(machine: Machine, profile: FirmwareProfile) -> Rig {
        if let Err(message) = machine.require_qemu() {
            panic!("{message}");
        }
        let cable = UartCable::new().await.expect("pty and board socket");
        let serial = format!("{}:115200", cable.pty_path());
        let mut server = tokio::task::block_in_place(|| {
            ServerProcess::start(Profile::Debug, &["--serial", &serial])
        });
        // Until the board has its identity, the line is the provisioning tool's.
        tokio::task::block_in_place(|| server.kill_hard());
        let device = device_name(machine);
        let laptop_key = server.add_device(LAPTOP);
        let elf = tokio::task::block_in_place(|| build_board_firmware(machine, profile))
            .unwrap_or_else(|e| panic!("{e}"));
        Rig {
            machine,
            device,
            cable,
            server,
            laptop_key,
            elf,
        }
    }

    /// Boots the fresh board, which waits to be provisioned; gives it its
    /// identity with `host-server device add --provision` on the cable's pty,
    /// then starts the server on that pty again.
    pub async fn boot_and_provision(&mut self) -> QemuBoard {
        let mut board = QemuBoard::boot_on(self.machine, &self.elf, self.cable.board_addr())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        board
            .wait_for_line(&["no identity: waiting to be provisioned"], STEP)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::task::block_in_place(|| {
            provision(&self.server, &self.device, &self.cable.pty_path())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        tokio::task::block_in_place(|| self.server.restart());
        board
            .wait_for_line(&[&format!("provisioned as `{}`", self.device)], STEP)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        board
    }

    /// `DEVICE/NAME`: one of the board's own files.
    fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.device)
    }

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
            .filter(|status| status["device"] == self.device.as_str())
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

/// A board's life, the full client: its batch appears, it is reset in
/// the middle of the large upload and resumes after the reset, the server
/// crashes and restarts under it and it resumes again, the host pulls its
/// files with the announced hashes, and files published for it are
/// downloaded after the server's notification and verified on the board.
/// Fails (does not skip) without the machine's QEMU.
pub async fn resumes_after_reboot_and_server_crash_and_fetches_published_files(machine: Machine) {
    board_life(machine, FirmwareProfile::Full).await;
}

/// The same life with the firmware on proto-core's async driver
/// (`AsyncDriver` over `embedded-io-async`, feature `async-driver`).
pub async fn async_driver_board_resumes_after_reboot_and_server_crash_and_fetches_published_files(
    machine: Machine,
) {
    board_life(machine, FirmwareProfile::AsyncDriver).await;
}

/// A board's life with the full client of `profile`.
async fn board_life(machine: Machine, profile: FirmwareProfile) {
    let started = Instant::now();
    let mut rig = Rig::start(machine, profile).await;
    eprintln!("firmware built after {:?}", started.elapsed());
    let device = rig.device.clone();
    let large = rig.file("logs/large.bin");
    let connected = format!("connected as `{device}`");

    // Boot 1: the fresh board is provisioned, authenticates and announces its batch.
    let mut board = rig.boot_and_provision().await;
    let driver = match profile {
        FirmwareProfile::AsyncDriver => "through the async driver",
        FirmwareProfile::Full | FirmwareProfile::UploadOnly => "through the blocking driver",
    };
    board
        .wait_for_line(&["connecting as", driver], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_for_line(&[connected.as_str()], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_for_line(&["batch", "3 files expected"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let batches = rig.board_batches();
    assert!(
        batches.iter().any(|batch| batch["expected"] == 3),
        "status shows no batch of 3 expected files for the board: {batches:?}"
    );

    // Reset the board in the middle of the large upload.
    board
        .wait_for_line(&["uploading", large.as_str()], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before_reset = eventually("part of the large file to be durable on the server", || {
        let record = rig.record(&large)?;
        let received = record["received"].as_u64()?;
        (received > 0 && received < LARGE_SIZE).then_some((received, record["id"].as_u64()?))
    })
    .await;
    let (received_before, large_id) = before_reset;
    let reset_mark = board.log_len();
    board.reset().await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("board reset with {received_before} of {LARGE_SIZE} bytes on the server");
    let record = rig.record(&large).expect("the large file's record");
    assert_ne!(record["bits"], "11", "the upload finished before the reset");

    // After the reset: the board still has its identity, and the upload
    // resumes where the server stands, it does not restart.
    board
        .wait_for_line_after(
            reset_mark,
            &[&format!("identity `{device}` from the identity page")],
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
            let received = rig.record(&large)?["received"].as_u64()?;
            (received > resumed_at && received < LARGE_SIZE).then_some(received)
        },
    )
    .await;
    let mark = board.log_len();
    tokio::task::block_in_place(|| rig.server.restart());
    eprintln!("server restarted with {crash_at} of {LARGE_SIZE} bytes stored");
    board
        .wait_for_line_after(mark, &[connected.as_str()], STEP)
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
    let batches = rig.board_batches();
    assert!(
        batches
            .iter()
            .any(|batch| batch["expected"] == 3 && batch["uploaded"] == 3),
        "status shows no complete batch (3 expected, 3 uploaded): {batches:?}"
    );
    let pulled = tempfile::tempdir().expect("temp dir");
    let dest = pulled.path().to_str().expect("utf-8 temp path");
    rig.cli_json(&["pull", &device, "--dest", dest]);
    for name in [
        rig.file("hello.txt"),
        rig.file("config/settings.json"),
        large.clone(),
    ] {
        let bytes = std::fs::read(Path::new(dest).join(&name))
            .unwrap_or_else(|e| panic!("pulled {name} is missing: {e}"));
        assert_eq!(
            hash_hex(&bytes),
            announced_hash(&board, &name),
            "{name} pulled with another hash than the board announced"
        );
    }
    let hello = std::fs::read(Path::new(dest).join(rig.file("hello.txt"))).expect("hello.txt");
    assert_eq!(hello, HELLO_CONTENT);

    // Publish two files for the board, slowly: it asks while they are still
    // uploading, waits for the notification, then downloads and verifies them.
    let outbox = tempfile::tempdir().expect("temp dir");
    let inbox = outbox.path().join(format!("inbox/{device}"));
    std::fs::create_dir_all(&inbox).expect("inbox dir");
    let note = b"a note from the laptop\n".to_vec();
    let blob: Vec<u8> = (0..12_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(inbox.join("note.txt"), &note).expect("note");
    std::fs::write(inbox.join("blob.bin"), &blob).expect("blob");
    let mut push = rig
        .cli(&["push", "inbox", "--limit-rate", "3K"])
        .current_dir(outbox.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("host-cli push starts");
    board
        .wait_for_line(&["waiting for the server's notification"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Which file waited depends on how far the push had got when the board
    // asked (the board may see one already complete): the notified one must
    // be downloaded after its notification.
    let notified = board
        .wait_for_line(&[format!("notified: inbox/{device}/").as_str()], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let notified_name = notified
        .split("notified: ")
        .nth(1)
        .and_then(|rest| rest.split(" is uploaded now").next())
        .expect("the notification names the file")
        .to_owned();
    let notified_at = board
        .log()
        .iter()
        .position(|line| *line == notified)
        .expect("the notification is in the log");
    board
        .wait_for_line_after(
            notified_at,
            &[format!("downloaded {notified_name} (").as_str()],
            STEP,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let blob_line = board
        .wait_for_line(
            &[format!("downloaded inbox/{device}/blob.bin").as_str()],
            STEP,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        blob_line.contains(&format!("sha256 {} verified", hash_hex(&blob))),
        "blob.bin not verified with its hash: {blob_line}"
    );
    let note_line = board
        .wait_for_line(
            &[format!("downloaded inbox/{device}/note.txt").as_str()],
            STEP,
        )
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
    eprintln!(
        "{} firmware test took {:?}",
        machine.board,
        started.elapsed()
    );
}

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

/// The upload-only profile (`--no-default-features`: proto-core without
/// `download`, `lists` and `subscribe`): the board announces its batch and
/// uploads every sample, the host pulls them with the hashes the board
/// announced, and the board never subscribes, lists or downloads.
pub async fn upload_only_board_uploads_its_batch_and_never_subscribes_or_downloads(
    machine: Machine,
) {
    let mut rig = Rig::start(machine, FirmwareProfile::UploadOnly).await;
    let mut board = rig.boot_and_provision().await;
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
    rig.cli_json(&["pull", &rig.device, "--dest", dest]);
    let files = announced(&board);
    assert_eq!(files.len(), 3, "the board announced {files:?}");
    for (name, hash) in &files {
        let bytes = std::fs::read(pulled.path().join(name))
            .unwrap_or_else(|e| panic!("pulled {name} is missing: {e}"));
        assert_eq!(
            &hash_hex(&bytes),
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
