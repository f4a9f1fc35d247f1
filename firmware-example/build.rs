//! Build script: picks the board's memory map and linker scripts and
//! generates the large sample file. The image carries no identity: a board
//! gets its name and key at run time (provisioning, see README.md), so one
//! image serves every board of a kind.

use std::env;
use std::fs;
use std::path::PathBuf;

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

    write_large_sample(&out);
    println!("cargo:rerun-if-changed=build.rs");
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
