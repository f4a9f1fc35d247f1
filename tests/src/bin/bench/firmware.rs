//! Firmware: flash and RAM of the QEMU and Pico images, and the goodput of
//! every QEMU board's upload over its UART. The boards pace their UARTs to
//! 115200 baud themselves; the line also runs through the link simulator at
//! the bench's baud rate ([`tests::qemu::UartCable::through_line`]) to a
//! release `host-server --serial`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ::tests::link::LineModel;
use ::tests::process::{Profile, ServerProcess};
use ::tests::qemu::{
    build_board_firmware, build_firmware, firmware_dir, provision, FirmwareProfile, Machine,
    QemuBoard, UartCable,
};

use crate::report::Row;

/// The device name the QEMU boards register as.
const BOARD: &str = "bench-board";
/// The boards whose upload goodput is measured.
const GOODPUT_BOARDS: [Machine; 4] = [
    Machine::LM3S6965EVB,
    Machine::LM3S811EVB,
    Machine::MICROBIT,
    Machine::SIFIVE_E,
];
/// The host device that asks the board to upload again between repetitions.
const LAPTOP: &str = "bench-laptop";
/// Uploads smaller than this are not timed (the board's small sample files).
const TIMED_AT_LEAST: u64 = 4096;
/// How long one boot may take to finish its upload.
const STEP: Duration = Duration::from_secs(180);

/// How the firmware figures are obtained, for the report.
pub fn method(baud: u32, reps: usize) -> String {
    format!(
        "- **firmware**: sizes of the release ELF files in `firmware-example/target` (QEMU: `thumbv7m-none-eabi`, Pico: `thumbv6m-none-eabi`), read with `llvm-size -A`: flash = `.vector_table` + `.boot2` + `.text` + `.rodata` + `.data`, RAM = `.data` + `.bss` + `.uninit` (the stack is not included; see `firmware-example/build.sh`); `.rodata` holds the board's 64 KiB sample file. Goodput: each QEMU board (`lm3s6965evb`, `lm3s811evb`, `microbit`, `sifive_e`; full client) boots with its UART carried through the link simulator (clean 8N1 line at {baud} baud, {} B/s, both directions) to a pseudo-terminal opened by a release `host-server --serial PTY:{baud}`; the time of the board's largest upload is from its log line `uploading NAME` to `uploaded NAME` (semihosting log, polled every 5 ms), so it includes the upload's open and the server's final hash check. Each board is provisioned once at its first boot (`host-server device add --provision`); repetition 1 is that boot; before each further one, another device asks for the file again (`host-cli retry`) and the board is reset (QEMU's `system_reset`). {reps} repetitions.",
        baud / 10
    )
}

/// Flash and RAM of one firmware image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageSize {
    /// Code: `.vector_table` + `.boot2` + `.text`.
    pub text: u64,
    /// Constants (includes the board's sample files).
    pub rodata: u64,
    /// Initialised data (in flash and copied to RAM).
    pub data: u64,
    /// Zeroed and uninitialised RAM: `.bss` + `.uninit`.
    pub bss: u64,
}

impl ImageSize {
    /// Bytes of flash the image takes.
    pub fn flash(&self) -> u64 {
        self.text + self.rodata + self.data
    }

    /// Bytes of RAM taken before the stack.
    pub fn ram(&self) -> u64 {
        self.data + self.bss
    }

    /// Reads the sections of `llvm-size -A` output (System V format: one
    /// `name size address` line per section).
    pub fn from_sysv(output: &str) -> Result<ImageSize, String> {
        let mut size = ImageSize::default();
        let mut seen = false;
        for line in output.lines() {
            let mut fields = line.split_whitespace();
            let (Some(name), Some(bytes)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(bytes) = bytes.parse::<u64>() else {
                continue;
            };
            match name {
                ".vector_table" | ".boot2" | ".text" => size.text += bytes,
                ".rodata" => size.rodata += bytes,
                ".data" => size.data += bytes,
                ".bss" | ".uninit" => size.bss += bytes,
                _ => continue,
            }
            seen = true;
        }
        if seen && size.text > 0 {
            Ok(size)
        } else {
            Err("no .text section in the size tool's output".into())
        }
    }
}

/// `llvm-size` from rustup's `llvm-tools`, else the one on the PATH.
fn size_tool() -> PathBuf {
    let rustc = |args: &[&str]| {
        Command::new("rustc")
            .args(args)
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
    };
    let host = rustc(&["-vV"]).and_then(|v| {
        v.lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
    });
    match (rustc(&["--print", "sysroot"]), host) {
        (Some(sysroot), Some(host)) => {
            let path = Path::new(sysroot.trim())
                .join("lib/rustlib")
                .join(host)
                .join("bin/llvm-size");
            if path.exists() {
                path
            } else {
                PathBuf::from("llvm-size")
            }
        }
        _ => PathBuf::from("llvm-size"),
    }
}

fn image_size(elf: &Path) -> Result<ImageSize, String> {
    let out = Command::new(size_tool())
        .arg("-A")
        .arg(elf)
        .output()
        .map_err(|e| format!("llvm-size: {e} (rustup component add llvm-tools)"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    ImageSize::from_sysv(&String::from_utf8_lossy(&out.stdout))
}

/// Builds the Pico image.
fn build_pico() -> Result<PathBuf, String> {
    let dir = firmware_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&dir)
        .args([
            "build",
            "--release",
            "--locked",
            "--features",
            "board-pico",
            "--target",
            "thumbv6m-none-eabi",
        ])
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .map_err(|e| format!("cannot run cargo to build the Pico firmware: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the Pico firmware failed (is `rustup target add thumbv6m-none-eabi` done?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir.join("target/thumbv6m-none-eabi/release/statesync-firmware"))
}

/// `uploading NAME (N bytes)` in a board log line: the name and size.
pub fn upload_started(line: &str) -> Option<(String, u64)> {
    let rest = &line[line.find("uploading ")? + "uploading ".len()..];
    let (name, size) = rest.rsplit_once(" (")?;
    let bytes = size.strip_suffix(" bytes)")?.parse().ok()?;
    Some((name.to_owned(), bytes))
}

/// Waits for a log line (after the first `skip`) that `pick` accepts; polls
/// every 5 ms and returns what `pick` made of it and when it was seen.
async fn watch_log<T>(
    board: &QemuBoard,
    skip: usize,
    what: &str,
    pick: impl Fn(&str) -> Option<T>,
) -> Result<(T, Instant), String> {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(found) = board.log().iter().skip(skip).find_map(|l| pick(l)) {
            return Ok((found, Instant::now()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the board did not log {what} within {STEP:?}; its log:\n{}",
                board.log().join("\n")
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Boots the board and provisions it as [`BOARD`] on `server`'s data
/// directory; `server` is stopped while the tool has the line and restarted after.
async fn boot_provisioned(
    machine: Machine,
    elf: &Path,
    cable: &UartCable,
    server: &mut ServerProcess,
) -> Result<QemuBoard, String> {
    let board = QemuBoard::boot_on(machine, elf, cable.board_addr()).await?;
    watch_log(&board, 0, "that it has no identity", |line| {
        line.contains("no identity: waiting to be provisioned")
            .then_some(())
    })
    .await?;
    tokio::task::block_in_place(|| {
        server.kill_hard();
        let provisioned = provision(server, BOARD, &cable.pty_path());
        server.restart();
        provisioned
    })?;
    Ok(board)
}

/// One boot (the log after `skip`): times the board's first large upload.
async fn timed_upload(board: &QemuBoard, skip: usize) -> Result<(String, u64, Duration), String> {
    let ((name, bytes), started) = watch_log(board, skip, "a large upload", |line| {
        upload_started(line).filter(|(_, bytes)| *bytes >= TIMED_AT_LEAST)
    })
    .await?;
    let done = format!("uploaded {name} (");
    let failed = format!("upload of {name} ended");
    let (ok, finished) = watch_log(board, skip, &done, |line| {
        if line.contains(&done) {
            Some(true)
        } else if line.contains(&failed) {
            Some(false)
        } else {
            None
        }
    })
    .await?;
    if !ok {
        return Err(format!("the board's upload of {name} failed"));
    }
    Ok((name, bytes, finished - started))
}

/// The firmware section's results: a size table and a goodput table.
pub async fn run(baud: u32, reps: usize) -> String {
    let mut out = String::from(
        "| image | flash | RAM (without stack) | .text | .rodata | .data | .bss |\n|---|---|---|---|---|---|---|\n",
    );
    let qemu = tokio::task::block_in_place(build_firmware);
    let pico = tokio::task::block_in_place(build_pico);
    for (image, elf) in [
        ("QEMU lm3s6965evb (thumbv7m)", &qemu),
        ("Raspberry Pi Pico (thumbv6m)", &pico),
    ] {
        match elf.as_deref().map_err(Clone::clone).and_then(image_size) {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "| {image} | {} B | {} B | {} | {} | {} | {} |",
                    s.flash(),
                    s.ram(),
                    s.text,
                    s.rodata,
                    s.data,
                    s.bss
                );
            }
            Err(e) => {
                eprintln!("firmware bench: {image}: {e}");
                let first = e.lines().next().unwrap_or_default();
                let _ = writeln!(out, "| {image} | failed: {first} | | | | | |");
            }
        }
    }
    let mut rows = Vec::new();
    for machine in GOODPUT_BOARDS {
        rows.push(board_goodput(machine, baud, reps).await);
    }
    out.push('\n');
    out.push_str(&crate::report::markdown(&rows));
    out
}

/// The goodput row of one board: `reps` boots, each timing its large upload.
async fn board_goodput(machine: Machine, baud: u32, reps: usize) -> Row {
    let mut row = upload_row(machine, baud, 0);
    let cable = UartCable::through_line(LineModel::clean(baud)).await;
    let serial = cable
        .as_ref()
        .map(|(cable, _, _)| format!("{}:{baud}", cable.pty_path()));
    let mut server = tokio::task::block_in_place(|| match &serial {
        Ok(serial) => ServerProcess::start(Profile::Release, &["--serial", serial]),
        Err(_) => ServerProcess::start(Profile::Release, &[]),
    });
    let laptop_key = server.add_device(LAPTOP);
    let elf = tokio::task::block_in_place(|| build_board_firmware(machine, FirmwareProfile::Full));
    let ready = match (&cable, &elf, machine.require_qemu()) {
        (Ok((cable, stats, _)), Ok(elf), Ok(())) => Some((cable, stats, elf)),
        (Err(e), ..) => {
            row.note = format!("failure: no pseudo-terminal: {e}");
            None
        }
        (_, Err(e), _) => {
            eprintln!("firmware bench: {e}");
            row.note = format!("failure: the {} firmware did not build", machine.board);
            None
        }
        (.., Err(e)) => {
            row.note = format!("failure: {e}");
            None
        }
    };
    match ready {
        Some((cable, stats, elf)) => {
            let before = stats.snapshot().offered;
            let mut timed_name: Option<String> = None;
            let board = boot_provisioned(machine, elf, cable, &mut server).await;
            let board = match board {
                Ok(board) => Some(board),
                Err(e) => {
                    eprintln!("firmware bench: {e}");
                    row.failures = reps;
                    row.note = format!("failure: {}", e.lines().next().unwrap_or_default());
                    None
                }
            };
            for rep in 0..reps {
                let Some(board) = &board else { break };
                eprintln!("firmware bench: repetition {} of {reps}", rep + 1);
                let mark = board.log_len();
                if let Some(name) = &timed_name {
                    // Ask for the file again; the board hears it when it connects.
                    let retry = tokio::task::block_in_place(|| {
                        server.cli(&server.url(), LAPTOP, &laptop_key, &["retry", name])
                    });
                    if !retry.status.success() {
                        row.failures += 1;
                        row.note = format!(
                            "failure: host-cli retry: {}",
                            String::from_utf8_lossy(&retry.stderr).trim()
                        );
                        continue;
                    }
                    if let Err(e) = board.reset().await {
                        row.failures += 1;
                        row.note = format!("failure: {e}");
                        continue;
                    }
                }
                match timed_upload(board, mark).await {
                    Ok((name, bytes, elapsed)) => {
                        row.bytes = bytes;
                        row.times.push(elapsed);
                        timed_name = Some(name);
                    }
                    Err(e) => {
                        eprintln!("firmware bench: {e}");
                        row.failures += 1;
                        if row.note.is_empty() {
                            row.note = format!("failure: {}", e.lines().next().unwrap_or_default());
                        }
                    }
                }
            }
            if let Some(board) = board {
                board.power_off().await;
            }
            if row.note.is_empty() {
                let offered = stats.snapshot().offered - before;
                let _ = write!(
                    row.note,
                    "{} bytes on the line board → server over all boots (every frame, handshakes and small files included)",
                    offered
                );
            }
        }
        None => row.failures = reps,
    }
    row
}

fn upload_row(machine: Machine, baud: u32, bytes: u64) -> Row {
    Row {
        bench: format!("firmware uart {baud}"),
        tool: format!("QEMU {} board upload", machine.board),
        condition: "clean".into(),
        bytes,
        times: Vec::new(),
        failures: 0,
        line_rate: Some(LineModel::clean(baud).bytes_per_second()),
        note: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_SIZES: &str = "target/thumbv7m-none-eabi/release/statesync-firmware  :
section               size        addr
.vector_table         1024           0
.text                40960        1024
.rodata              70000       41984
.data                   48   536870912
.gnu.sgstubs             0      112000
.bss                 12000   536870960
.uninit               1024   536882960
.defmt                   9           0
.debug_abbrev         4000           0
Total               129065
";

    #[test]
    fn flash_and_ram_add_up_the_sections_that_occupy_them() {
        let size = ImageSize::from_sysv(QEMU_SIZES).unwrap();
        assert_eq!(size.text, 1024 + 40960);
        assert_eq!(size.rodata, 70000);
        assert_eq!(size.data, 48);
        assert_eq!(size.bss, 12000 + 1024);
        assert_eq!(size.flash(), 1024 + 40960 + 70000 + 48);
        assert_eq!(size.ram(), 48 + 12000 + 1024);
    }

    #[test]
    fn the_pico_boot2_counts_as_code() {
        let size = ImageSize::from_sysv(".boot2 256 268435456\n.text 1000 268435712\n").unwrap();
        assert_eq!(size.text, 1256);
    }

    #[test]
    fn output_without_code_is_an_error() {
        assert!(ImageSize::from_sysv("llvm-size: error: no such file").is_err());
        assert!(ImageSize::from_sysv("").is_err());
    }

    #[test]
    fn upload_lines_give_name_and_size() {
        assert_eq!(
            upload_started("[board] INFO uploading qemu-board/logs/large.bin (65536 bytes)"),
            Some(("qemu-board/logs/large.bin".into(), 65536))
        );
        assert_eq!(
            upload_started("uploading a (b).txt (12 bytes)"),
            Some(("a (b).txt".into(), 12))
        );
        assert_eq!(upload_started("uploaded x (3 bytes): 11"), None);
        assert_eq!(upload_started("uploading x"), None);
    }
}
