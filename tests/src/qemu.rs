//! The example firmware under QEMU, for end-to-end tests: cross-build it, boot
//! it on the `lm3s6965evb` machine, read its semihosting log, and wire its UART
//! to a pseudo-terminal that `host-server --serial` (or `host-server device add
//! --provision`) can open.
//!
//! QEMU's UART is a TCP chardev that connects to a [`UartCable`]; the cable
//! pumps it to and from a [`PtyBridge`]. The pty outlives QEMU, so the test can
//! power the board off and boot it again while the server keeps the same
//! serial port open — like a board whose cable stays plugged.
//! [`UartCable::through_line`] puts the link simulator into the cable.
//!
//! The image carries no identity: a fresh board waits to be provisioned over
//! its UART, and keeps its identity in a RAM page that survives a system reset
//! ([`QemuBoard::reset`], QEMU's `system_reset`) but not QEMU exiting.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::link::{LineModel, LineStats, Link};
use crate::pty::PtyBridge;

/// The QEMU binary the firmware runs on.
pub const QEMU: &str = "qemu-system-arm";

/// The firmware crate (outside the workspace).
pub fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("firmware-example")
}

/// Fails with a message saying what to install when `qemu-system-arm` is missing.
pub fn require_qemu() -> Result<(), String> {
    match std::process::Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        _ => Err(format!(
            "`{QEMU}` is not installed or does not run; install it \
             (Debian: `apt-get install qemu-system-arm`, which .ci/run does) to run the firmware test"
        )),
    }
}

/// Which firmware profile to build (the firmware's `full` feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmwareProfile {
    /// The full client: uploads, subscribes, lists and downloads its inbox.
    Full,
    /// An upload-only board (`--no-default-features`): announces and uploads.
    UploadOnly,
}

/// Builds the full QEMU firmware and returns the ELF.
///
/// Uses the firmware's own `Cargo.lock` and target directory.
pub fn build_firmware() -> Result<PathBuf, String> {
    build_firmware_profile(FirmwareProfile::Full)
}

/// Builds the QEMU firmware of `profile` and returns the ELF. The upload-only
/// image has a target directory of its own (`target/upload-only`), so a full
/// build never overwrites it.
pub fn build_firmware_profile(profile: FirmwareProfile) -> Result<PathBuf, String> {
    let dir = firmware_dir();
    let target_dir = match profile {
        FirmwareProfile::Full => dir.join("target"),
        FirmwareProfile::UploadOnly => dir.join("target").join("upload-only"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.current_dir(&dir).args([
        "build",
        "--release",
        "--locked",
        "--features",
        "board-qemu",
        "--target",
        "thumbv7m-none-eabi",
    ]);
    if profile == FirmwareProfile::UploadOnly {
        command.arg("--no-default-features");
    }
    let output = command
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .map_err(|e| format!("cannot run cargo to build the firmware: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the QEMU firmware failed (is `rustup target add thumbv7m-none-eabi` done?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(target_dir.join("thumbv7m-none-eabi/release/statesync-firmware"))
}

/// A serial cable between the board's UART (QEMU's TCP chardev, which
/// connects to [`UartCable::board_addr`]) and a pseudo-terminal for the server.
///
/// While no board is connected, bytes from the server are dropped, as on an
/// unplugged line. A new QEMU connection takes over the line.
pub struct UartCable {
    pty: PtyBridge,
    board_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl UartCable {
    /// Opens the pty and starts listening for the board on `127.0.0.1:0`.
    pub async fn new() -> io::Result<UartCable> {
        let (server_side, board_side) = tokio::io::duplex(64 * 1024);
        let pty = PtyBridge::new(server_side)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let board_addr = listener.local_addr()?;
        let task = tokio::spawn(carry(listener, board_side));
        Ok(UartCable {
            pty,
            board_addr,
            task,
        })
    }

    /// Like [`UartCable::new`], with the link simulator in the line: bytes
    /// between the board and the server move as `model` says in both
    /// directions (QEMU's own UART is not throttled, so this is what gives
    /// the board a real line rate). Returns the link's counters, board → server
    /// first.
    pub async fn through_line(
        model: LineModel,
    ) -> io::Result<(UartCable, Arc<LineStats>, Arc<LineStats>)> {
        let link = Link::symmetric(model);
        let pty = PtyBridge::new(link.b)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let board_addr = listener.local_addr()?;
        let task = tokio::spawn(carry(listener, link.a));
        let cable = UartCable {
            pty,
            board_addr,
            task,
        };
        Ok((cable, link.a_to_b, link.b_to_a))
    }

    /// The pty path to give `host-server serve --serial PATH:BAUD`.
    pub fn pty_path(&self) -> String {
        self.pty.path_str()
    }

    /// Where QEMU's UART chardev must connect.
    pub fn board_addr(&self) -> SocketAddr {
        self.board_addr
    }
}

impl Drop for UartCable {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Pumps bytes between the server's side of the line and whichever board is connected.
async fn carry<S>(listener: TcpListener, server_side: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut from_server, mut to_server) = tokio::io::split(server_side);
    let mut dropped = [0u8; 4096];
    loop {
        // No board: drain what the server sends until one connects.
        let board = loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => break stream,
                    Err(_) => return,
                },
                read = from_server.read(&mut dropped) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return;
                    }
                }
            }
        };
        let _ = board.set_nodelay(true);
        let (mut from_board, mut to_board) = board.into_split();
        // Until the board goes away (QEMU killed): the pty side stays.
        tokio::select! {
            _ = tokio::io::copy(&mut from_board, &mut to_server) => {}
            _ = tokio::io::copy(&mut from_server, &mut to_board) => {}
        }
        let _ = to_board.shutdown().await;
    }
}

/// One boot of the firmware under QEMU.
pub struct QemuBoard {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// Holds QEMU's monitor socket (`monitor.sock`), for [`QemuBoard::reset`].
    monitor_dir: tempfile::TempDir,
}

impl QemuBoard {
    /// Boots `elf` with its UART connected to `uart` (a [`UartCable`]'s board address).
    pub async fn boot(elf: &Path, uart: SocketAddr) -> Result<QemuBoard, String> {
        require_qemu()?;
        let monitor_dir =
            tempfile::tempdir().map_err(|e| format!("no temp dir for QEMU's monitor: {e}"))?;
        let monitor = format!(
            "unix:{},server=on,wait=off",
            monitor_dir.path().join("monitor.sock").display()
        );
        let mut child = Command::new(QEMU)
            .args([
                "-cpu",
                "cortex-m3",
                "-machine",
                "lm3s6965evb",
                "-display",
                "none",
                "-monitor",
                &monitor,
                "-semihosting-config",
                "enable=on,target=native",
                "-serial",
                &format!("tcp:{uart},nodelay=on"),
                "-kernel",
            ])
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(collect_lines(stdout, "board", Arc::clone(&log)));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect_lines(stderr, "qemu", Arc::clone(&log)));
        }
        Ok(QemuBoard {
            child,
            log,
            monitor_dir,
        })
    }

    /// Resets the board (QEMU's `system_reset`, as a reset button would): the
    /// firmware starts again from its reset vector; RAM outside the image's
    /// sections (the identity page) keeps what it held.
    pub async fn reset(&self) -> Result<(), String> {
        let path = self.monitor_dir.path().join("monitor.sock");
        let mut monitor = tokio::net::UnixStream::connect(&path)
            .await
            .map_err(|e| format!("cannot reach QEMU's monitor at {}: {e}", path.display()))?;
        monitor
            .write_all(b"system_reset\n")
            .await
            .map_err(|e| format!("QEMU's monitor did not take system_reset: {e}"))?;
        // The monitor echoes the command, runs it, then prompts again.
        let ran = |seen: &[u8]| {
            let text = String::from_utf8_lossy(seen);
            text.rsplit_once("system_reset")
                .is_some_and(|(_, after)| after.contains("(qemu)"))
        };
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !ran(&seen) {
            match tokio::time::timeout(Duration::from_secs(10), monitor.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => return Err("QEMU's monitor did not confirm system_reset".into()),
            }
        }
        Ok(())
    }

    /// Every line the board (semihosting) and QEMU (stderr) printed so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// Waits until a log line contains every one of `needles`; returns that line.
    pub async fn wait_for_line(
        &mut self,
        needles: &[&str],
        timeout: Duration,
    ) -> Result<String, String> {
        self.wait_for_line_after(0, needles, timeout).await
    }

    /// How many lines the log holds now (a mark for [`QemuBoard::wait_for_line_after`]).
    pub fn log_len(&self) -> usize {
        self.log.lock().map(|log| log.len()).unwrap_or(0)
    }

    /// Like [`QemuBoard::wait_for_line`], looking only at lines after the first `skip`.
    pub async fn wait_for_line_after(
        &mut self,
        skip: usize,
        needles: &[&str],
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .log()
                .into_iter()
                .skip(skip)
                .find(|line| needles.iter().all(|needle| line.contains(needle)))
            {
                return Ok(line);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "QEMU exited ({status}) before the board printed {needles:?}; its log:\n{}",
                    self.log().join("\n")
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the board did not print {needles:?} within {timeout:?}; its log:\n{}",
                    self.log().join("\n")
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Powers the board off (kills QEMU) and waits until it is gone.
    pub async fn power_off(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn collect_lines<R>(stream: R, source: &'static str, log: Arc<Mutex<Vec<String>>>)
where
    R: AsyncRead + Unpin,
{
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = format!("[{source}] {line}");
        eprintln!("{line}");
        if let Ok(mut log) = log.lock() {
            log.push(line);
        }
    }
}

/// Provisions the board on `pty` as `device` with `host-server device add
/// --provision` on `server`'s data directory (which must not be serving that
/// port) and returns what it printed as JSON. Fails when the tool fails, or
/// when its output carries a key: a key is never printed.
pub fn provision(
    server: &crate::process::ServerProcess,
    device: &str,
    pty: &str,
) -> Result<serde_json::Value, String> {
    let output = server.provision_device(device, pty);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("provisioning `{device}` failed: {stderr}"));
    }
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "device add --provision printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    if printed.get("key").is_some() || stderr.contains("key=") {
        return Err(format!(
            "device add --provision showed a key: {printed} {stderr}"
        ));
    }
    Ok(printed)
}
