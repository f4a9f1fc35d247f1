//! The example firmware under QEMU, for end-to-end tests: the boards QEMU
//! emulates ([`Machine`]), cross-building the firmware for one (once per test
//! process), booting it, resetting it ([`QemuBoard::reset`]), reading its
//! semihosting log, wiring its UART to a pseudo-terminal that `host-server
//! --serial` (or `host-server device add --provision`, [`provision`]) can
//! open ([`UartCable`]). [`life`] holds the scenarios every board's test runs.
//!
//! The image carries no identity: a fresh board waits to be provisioned over
//! its UART, and keeps its identity in its identity page, which survives a
//! reset but not QEMU exiting.

mod cable;
pub mod life;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub use cable::UartCable;

/// A board QEMU emulates and the firmware supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The firmware's board: its folder `src/board/BOARD/` and feature `board-BOARD`.
    pub board: &'static str,
    /// The Rust target the board builds for.
    pub target: &'static str,
    /// The QEMU binary.
    pub qemu: &'static str,
    /// QEMU's machine arguments (`-machine …`, `-cpu …`).
    pub machine_args: &'static [&'static str],
    /// The Debian package that has [`Machine::qemu`].
    pub package: &'static str,
}

impl Machine {
    /// QEMU `lm3s6965evb`: Cortex-M3, 256 KiB flash, 64 KiB RAM (the firmware's `qemu` board).
    pub const LM3S6965EVB: Machine = Machine {
        board: "qemu",
        target: "thumbv7m-none-eabi",
        qemu: "qemu-system-arm",
        machine_args: &["-cpu", "cortex-m3", "-machine", "lm3s6965evb"],
        package: "qemu-system-arm",
    };

    /// QEMU `lm3s811evb`: Cortex-M3, 64 KiB flash, 8 KiB RAM.
    pub const LM3S811EVB: Machine = Machine {
        board: "lm3s811",
        target: "thumbv7m-none-eabi",
        qemu: "qemu-system-arm",
        machine_args: &["-machine", "lm3s811evb"],
        package: "qemu-system-arm",
    };

    /// QEMU `microbit`: BBC micro:bit v1, nRF51822 (Cortex-M0), 256 KiB flash, 16 KiB RAM.
    pub const MICROBIT: Machine = Machine {
        board: "microbit",
        target: "thumbv6m-none-eabi",
        qemu: "qemu-system-arm",
        machine_args: &["-machine", "microbit"],
        package: "qemu-system-arm",
    };

    /// QEMU `sifive_e`: SiFive FE310 (RISC-V rv32imac), 16 KiB RAM.
    pub const SIFIVE_E: Machine = Machine {
        board: "sifive_e",
        target: "riscv32imac-unknown-none-elf",
        qemu: "qemu-system-riscv32",
        machine_args: &["-machine", "sifive_e"],
        package: "qemu-system-misc",
    };

    /// Fails with a message saying what to install when the board's QEMU is missing.
    pub fn require_qemu(&self) -> Result<(), String> {
        match std::process::Command::new(self.qemu)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => Ok(()),
            _ => Err(format!(
                "`{}` is not installed or does not run; install it (Debian: `apt-get install {}`, \
                 which .ci/run does) to run the firmware test",
                self.qemu, self.package
            )),
        }
    }
}

/// The firmware crate (outside the workspace).
pub fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("firmware-example")
}

/// Fails with a message saying what to install when `qemu-system-arm` is missing.
pub fn require_qemu() -> Result<(), String> {
    Machine::LM3S6965EVB.require_qemu()
}

/// Which firmware profile to build (the firmware's `full` feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FirmwareProfile {
    /// The full client: uploads, subscribes, lists and downloads its inbox.
    Full,
    /// An upload-only board (`--no-default-features`): announces and uploads.
    UploadOnly,
    /// The full client on proto-core's async driver (feature `async-driver`:
    /// `AsyncDriver` over `embedded-io-async`, under the firmware's executor).
    AsyncDriver,
}

/// Builds the full `lm3s6965evb` firmware and returns the ELF.
pub fn build_firmware() -> Result<PathBuf, String> {
    build_board_firmware(Machine::LM3S6965EVB, FirmwareProfile::Full)
}

/// Builds the firmware of `profile` for `machine` and returns the ELF. Built
/// once per test process for each board and profile.
///
/// Uses the firmware's own `Cargo.lock` and target directory, and the same
/// `RUSTFLAGS` as its `build.sh`, so the dependencies CI built there are
/// reused. Each
/// image is copied out to `target/images/e2e-BOARD[-PROFILE]`, so boards
/// that share a target never overwrite each other's image
/// (`-upload-only` and `-async` for the other profiles).
pub fn build_board_firmware(machine: Machine, profile: FirmwareProfile) -> Result<PathBuf, String> {
    type Built = HashMap<(&'static str, FirmwareProfile), PathBuf>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    let mut built = built
        .lock()
        .map_err(|_| "a firmware build panicked".to_owned())?;
    let key = (machine.board, profile);
    if let Some(elf) = built.get(&key) {
        return Ok(elf.clone());
    }
    let elf = cargo_build(machine, profile)?;
    built.insert(key, elf.clone());
    Ok(elf)
}

fn cargo_build(machine: Machine, profile: FirmwareProfile) -> Result<PathBuf, String> {
    let dir = firmware_dir();
    let repository = dir
        .parent()
        .and_then(|root| root.canonicalize().ok())
        .ok_or("the firmware directory has no parent")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    let features = match profile {
        FirmwareProfile::AsyncDriver => format!("board-{},async-driver", machine.board),
        FirmwareProfile::Full | FirmwareProfile::UploadOnly => format!("board-{}", machine.board),
    };
    command.current_dir(&dir).args([
        "build",
        "--release",
        "--locked",
        "--features",
        &features,
        "--target",
        machine.target,
    ]);
    if profile == FirmwareProfile::UploadOnly {
        command.arg("--no-default-features");
    }
    let output = command
        .env("CARGO_TARGET_DIR", dir.join("target"))
        // As build.sh sets it: the same flags reuse the same artefacts.
        .env(
            "RUSTFLAGS",
            format!(" --remap-path-prefix={}=/statesync", repository.display()),
        )
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .map_err(|e| format!("cannot run cargo to build the firmware: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the {} firmware failed (is `rustup target add {}` done?):\n{}",
            machine.board,
            machine.target,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let images = dir.join("target/images");
    std::fs::create_dir_all(&images).map_err(|e| format!("cannot create {images:?}: {e}"))?;
    let suffix = match profile {
        FirmwareProfile::Full => "",
        FirmwareProfile::UploadOnly => "-upload-only",
        FirmwareProfile::AsyncDriver => "-async",
    };
    let elf = images.join(format!("e2e-{}{suffix}", machine.board));
    let built = dir
        .join("target")
        .join(machine.target)
        .join("release/statesync-firmware");
    std::fs::copy(&built, &elf).map_err(|e| format!("cannot copy {built:?} to {elf:?}: {e}"))?;
    Ok(elf)
}

/// One boot of the firmware under QEMU.
pub struct QemuBoard {
    child: Child,
    log: Arc<BoardLog>,
    /// Holds QEMU's monitor socket (`monitor.sock`), for [`QemuBoard::reset`].
    monitor_dir: tempfile::TempDir,
}

impl QemuBoard {
    /// Boots `elf` on the `lm3s6965evb` with its UART connected to `uart` (a [`UartCable`]'s board address).
    pub async fn boot(elf: &Path, uart: SocketAddr) -> Result<QemuBoard, String> {
        QemuBoard::boot_on(Machine::LM3S6965EVB, elf, uart).await
    }

    /// Boots `elf` on `machine` with its UART connected to `uart` (a [`UartCable`]'s board address).
    pub async fn boot_on(
        machine: Machine,
        elf: &Path,
        uart: SocketAddr,
    ) -> Result<QemuBoard, String> {
        machine.require_qemu()?;
        let monitor_dir =
            tempfile::tempdir().map_err(|e| format!("no temp dir for QEMU's monitor: {e}"))?;
        let monitor = format!(
            "unix:{},server=on,wait=off",
            monitor_dir.path().join("monitor.sock").display()
        );
        let mut child = Command::new(machine.qemu)
            .args(machine.machine_args)
            .args([
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
            .map_err(|e| format!("cannot start {}: {e}", machine.qemu))?;
        let log = Arc::new(BoardLog::default());
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
    /// firmware starts again from its reset vector; the identity page keeps
    /// what it held.
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
        self.log
            .lines
            .lock()
            .map(|log| log.clone())
            .unwrap_or_default()
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
        self.log.lines.lock().map(|log| log.len()).unwrap_or(0)
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
            // Registered before the log is read, so a line added meanwhile wakes the wait.
            let grew = self.log.grew.notified();
            tokio::pin!(grew);
            grew.as_mut().enable();
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
            tokio::select! {
                _ = grew => {}
                _ = self.child.wait() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }

    /// Powers the board off (kills QEMU) and waits until it is gone.
    pub async fn power_off(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Every line the board and QEMU printed, and a wake-up for whoever waits for one.
#[derive(Default)]
struct BoardLog {
    lines: Mutex<Vec<String>>,
    grew: tokio::sync::Notify,
}

async fn collect_lines<R>(stream: R, source: &'static str, log: Arc<BoardLog>)
where
    R: AsyncRead + Unpin,
{
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = format!("[{source}] {line}");
        eprintln!("{line}");
        if let Ok(mut log) = log.lines.lock() {
            log.push(line);
        }
        log.grew.notify_waiters();
    }
    log.grew.notify_waiters();
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
