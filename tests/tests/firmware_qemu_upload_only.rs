//! The upload-only firmware profile on QEMU's `lm3s6965evb` against a real
//! `host-server` (the scenario: `tests::qemu::life`; the board is
//! provisioned at run time first).
//!
//! The provisioning test shows what holds on the line: a board keeps its
//! identity across resets, refuses a new one that is not signed with its
//! current key, and takes one that is.
//!
//! Needs `qemu-system-arm` and the `thumbv7m-none-eabi` target; `.ci/run`
//! installs both. Without QEMU the test fails (it does not skip).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::termios::{tcflush, FlushArg};
use proto_core::framing::{Feed, Framing, SerialAccumulator};
use proto_core::provision::{request, ProvisionMessage, Refusal, MAX_PAYLOAD};
use tests::process::{Profile, ServerProcess};
use tests::qemu::{
    build_board_firmware, life, provision, require_qemu, FirmwareProfile, Machine, QemuBoard,
    UartCable,
};

/// How long any one step may take before the test gives up.
const STEP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_only_board_uploads_its_batch_and_never_subscribes_or_downloads() {
    life::upload_only_board_uploads_its_batch_and_never_subscribes_or_downloads(
        Machine::LM3S6965EVB,
    )
    .await;
}

/// What someone on the line gets from the board: opens the board's serial
/// port, waits for its next offer (the caller resets the board) and answers it
/// with a request for `device` signed with `signing_key`. Returns the board's
/// answer: `Ok(device)` when it took the identity, `Err(reason)` when it refused.
fn answer_next_offer(
    pty: &str,
    signing_key: &[u8],
    device: &str,
    reset: impl FnOnce(),
) -> Result<String, Refusal> {
    let mut port = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(pty)
        .expect("the board's pty opens");
    // Only what the board says after the reset counts.
    tcflush(&port, FlushArg::TCIFLUSH).expect("the pty's input flushes");
    reset();
    let deadline = Instant::now() + STEP;
    let mut frames = SerialAccumulator::new(vec![0u8; Framing::Serial.max_wire_len(MAX_PAYLOAD)]);
    let mut buf = [0u8; 256];
    loop {
        assert!(
            Instant::now() < deadline,
            "the board did not answer within {STEP:?}"
        );
        let read = match port.read(&mut buf) {
            Ok(read) => read,
            Err(error) if error.kind() == ErrorKind::WouldBlock => 0,
            Err(error) => panic!("reading the board's pty: {error}"),
        };
        if read == 0 {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let mut input = &buf[..read];
        loop {
            let payload = match frames.feed(input) {
                Feed::Consumed => break,
                Feed::Error { remaining, .. } => {
                    input = remaining;
                    continue;
                }
                Feed::Frame { payload, remaining } => {
                    input = remaining;
                    payload
                }
            };
            match ProvisionMessage::decode(payload) {
                Ok(ProvisionMessage::Offer { nonce, .. }) => {
                    let new_key = [0x5a; 32];
                    let ask = request(nonce, Some(signing_key), device, &new_key);
                    let mut payload = [0u8; MAX_PAYLOAD];
                    let payload = ask.encode(&mut payload).expect("a request fits");
                    let mut wire = vec![0u8; Framing::Serial.max_wire_len(payload.len())];
                    let len = Framing::Serial.encode(payload, &mut wire).expect("fits");
                    port.write_all(&wire[..len])
                        .expect("the pty takes the request");
                }
                Ok(ProvisionMessage::Accepted { device, .. }) => return Ok(device.to_string()),
                Ok(ProvisionMessage::Refused { reason }) => return Err(reason),
                // Requests (ours, echoed by no one) and protocol frames are not the board's answer.
                Ok(ProvisionMessage::Provision { .. }) | Err(_) => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_keeps_its_identity_across_resets_and_takes_a_new_one_only_signed_with_its_key() {
    if let Err(message) = require_qemu() {
        panic!("{message}");
    }
    let cable = UartCable::new().await.expect("pty and board socket");
    let pty = cable.pty_path();
    // No `--serial`: the provisioning tool and the test have the line.
    let server = tokio::task::block_in_place(|| ServerProcess::start(Profile::Debug, &[]));
    let elf = tokio::task::block_in_place(|| {
        build_board_firmware(Machine::LM3S6965EVB, FirmwareProfile::UploadOnly)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut board = QemuBoard::boot(&elf, cable.board_addr())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // A fresh board is provisioned.
    board
        .wait_for_line(&["no identity: waiting to be provisioned"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let printed = tokio::task::block_in_place(|| provision(&server, "board-one", &pty))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(printed["name"], "board-one", "{printed}");
    board
        .wait_for_line(&["provisioned as `board-one`"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Someone on the line without its key: refused, and the board keeps its
    // identity through the reset that opened the window.
    let mark = board.log_len();
    let forged = tokio::task::block_in_place(|| {
        answer_next_offer(&pty, &[0x11; 32], "thief", || {
            tokio::runtime::Handle::current()
                .block_on(board.reset())
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    assert_eq!(forged, Err(Refusal::NotAuthorized));
    board
        .wait_for_line_after(mark, &["identity `board-one` from the identity page"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_for_line_after(mark, &["connecting as `board-one`"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The server that holds its key re-provisions it, during the window after a reset.
    let mark = board.log_len();
    let mut tool = std::process::Command::new(server.bins.join("host-server"))
        .arg("--data")
        .arg(server.data.path())
        .args(["--json", "device", "add", "board-two", "--provision"])
        .arg(format!("serial://{pty}?baud=115200"))
        .args(["--wait", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("host-server runs");
    // The tool says it waits once it holds the port (and dropped what it held): then reset.
    let mut stderr = std::io::BufReader::new(tool.stderr.take().expect("piped"));
    let mut said = String::new();
    tokio::task::block_in_place(|| {
        while !said.contains("waiting up to") {
            let mut line = String::new();
            match std::io::BufRead::read_line(&mut stderr, &mut line) {
                Ok(0) | Err(_) => panic!("host-server ended before waiting for the board: {said}"),
                Ok(_) => said.push_str(&line),
            }
        }
    });
    board.reset().await.unwrap_or_else(|e| panic!("{e}"));
    let reprovision = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        (tool.wait_with_output(), said + &rest)
    });
    let (output, stderr) =
        tokio::task::block_in_place(|| reprovision.join()).expect("the tool ends");
    let output = output.expect("host-server ends");
    assert!(
        output.status.success(),
        "re-provisioning with the current key failed: {stderr}"
    );
    board
        .wait_for_line_after(mark, &["provisioned as `board-two`"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // And the new identity survives a reset.
    let mark = board.log_len();
    board.reset().await.unwrap_or_else(|e| panic!("{e}"));
    board
        .wait_for_line_after(mark, &["identity `board-two` from the identity page"], STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    board.power_off().await;
}
