//! Build script: picks the board's memory map and linker scripts, bakes the
//! device identity into the image and generates the large sample file.
//!
//! Environment (read at build time, a change rebuilds):
//! * `STATESYNC_DEVICE_NAME`: the device name the server knows (default
//!   `qemu-board` or `pico-board`).
//! * `STATESYNC_DEVICE_KEY`: the device key as hex, as printed by
//!   `host-server device add NAME` (default: the public demo key below, for
//!   the QEMU demo only; anyone can read it from this file).

use std::env;
use std::fs;
use std::path::PathBuf;

/// The public demo key (`00 01 02 … 1f`): fine for a throw-away QEMU demo, never for a real board.
const DEMO_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Size of the generated `large.bin` sample: about 6 s on a 115200 baud line.
const LARGE_SAMPLE_LEN: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Board {
    Qemu,
    Pico,
}

impl Board {
    fn from_features() -> Board {
        let qemu = env::var_os("CARGO_FEATURE_BOARD_QEMU").is_some();
        let pico = env::var_os("CARGO_FEATURE_BOARD_PICO").is_some();
        match (qemu, pico) {
            (true, false) => Board::Qemu,
            (false, true) => Board::Pico,
            _ => fail(
                "choose exactly one board: `--features board-qemu` (thumbv7m-none-eabi) \
                 or `--features board-pico` (thumbv6m-none-eabi); see README.md",
            ),
        }
    }

    fn target(self) -> &'static str {
        match self {
            Board::Qemu => "thumbv7m-none-eabi",
            Board::Pico => "thumbv6m-none-eabi",
        }
    }

    fn memory_file(self) -> &'static str {
        match self {
            Board::Qemu => "memory/qemu.x",
            Board::Pico => "memory/pico.x",
        }
    }

    fn default_device_name(self) -> &'static str {
        match self {
            Board::Qemu => "qemu-board",
            Board::Pico => "pico-board",
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

fn main() {
    let board = Board::from_features();
    let target = env::var("TARGET").unwrap_or_default();
    if target != board.target() {
        fail(&format!(
            "this board builds for `--target {}`, not `{target}`; use the cargo aliases in .cargo/config.toml",
            board.target()
        ));
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    // Memory map: cortex-m-rt's link.x includes `memory.x` from the search path.
    let memory = fs::read(board.memory_file()).expect("memory map is part of the crate");
    fs::write(out.join("memory.x"), memory).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={}", board.memory_file());
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // Keep the relocations in the ELF (not in flash: the image is byte for
    // byte the same) so `size-by-crate.py` can tell who points at `.rodata`.
    println!("cargo:rustc-link-arg-bins=--emit-relocs");
    if board == Board::Pico {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }

    write_identity(board, &out);
    write_large_sample(&out);
    println!("cargo:rerun-if-changed=build.rs");
}

/// Writes `identity.rs`: the device name and key constants.
fn write_identity(board: Board, out: &std::path::Path) {
    println!("cargo:rerun-if-env-changed=STATESYNC_DEVICE_NAME");
    println!("cargo:rerun-if-env-changed=STATESYNC_DEVICE_KEY");
    let name = env::var("STATESYNC_DEVICE_NAME")
        .unwrap_or_else(|_| board.default_device_name().to_owned());
    let valid_name = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name != "."
        && name != "..";
    if !valid_name {
        fail("STATESYNC_DEVICE_NAME must be 1 to 32 characters of A-Z, a-z, 0-9, `-`, `_` or `.`");
    }
    let key_hex = match env::var("STATESYNC_DEVICE_KEY") {
        Ok(hex) => hex.trim().to_owned(),
        Err(_) => {
            if board == Board::Pico {
                println!(
                    "cargo:warning=STATESYNC_DEVICE_KEY is not set: using the public demo key; \
                     set it to the key `host-server device add {name}` printed"
                );
            }
            DEMO_KEY_HEX.to_owned()
        }
    };
    let key = parse_hex(&key_hex).unwrap_or_else(|| {
        fail("STATESYNC_DEVICE_KEY must be 32 to 128 hex digits (16 to 64 bytes), as printed by `host-server device add`")
    });

    let key_len = key.len();
    let uses_demo_key = key_hex.eq_ignore_ascii_case(DEMO_KEY_HEX);
    let code = format!(
        r#"/// The device name the server knows this board by.
pub const DEVICE_NAME: &str = "{name}";
/// The pre-shared device key (from `STATESYNC_DEVICE_KEY`).
pub const DEVICE_KEY: [u8; {key_len}] = {key:?};
/// True when the image carries the public demo key.
pub const USES_DEMO_KEY: bool = {uses_demo_key};
/// Where the host publishes files for this board.
pub const INBOX_PREFIX: &str = "inbox/{name}/";
/// `device_path!("a.txt")` is `"DEVICE/a.txt"`: the board's own files live in its folder.
macro_rules! device_path {{
    ($name:literal) => {{
        concat!("{name}/", $name)
    }};
}}
"#
    );
    fs::write(out.join("identity.rs"), code).expect("OUT_DIR is writable");
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !(32..=128).contains(&text.len()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Writes `large.bin`: deterministic pseudo-random bytes (xorshift32), so every
/// build of the firmware announces the same content hash.
fn write_large_sample(out: &std::path::Path) {
    let mut state: u32 = 0x5EED_1234;
    let mut bytes = Vec::with_capacity(LARGE_SAMPLE_LEN);
    while bytes.len() < LARGE_SAMPLE_LEN {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(LARGE_SAMPLE_LEN);
    fs::write(out.join("large.bin"), bytes).expect("OUT_DIR is writable");
}
