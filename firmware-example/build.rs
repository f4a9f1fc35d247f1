//! Build script: picks the board's memory map and linker scripts (from its
//! folder, `src/board/NAME/`, named by the feature `board-NAME`) and bakes
//! the device identity into the image.
//!
//! Environment (read at build time, a change rebuilds):
//! * `STATESYNC_DEVICE_NAME`: the device name the server knows (default
//!   the board's `default-device-name` in its `board.toml`).
//! * `STATESYNC_DEVICE_KEY`: the device key as hex, as printed by
//!   `host-server device add NAME` (default: the public demo key below, for
//!   the QEMU demo only; anyone can read it from this file).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// The public demo key (`00 01 02 … 1f`): fine for a throw-away QEMU demo, never for a real board.
const DEMO_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The board chosen by its feature, `board-NAME`, and what its
/// `src/board/NAME/board.toml` says about it.
struct Board {
    /// The folder name under `src/board/`.
    name: String,
    /// The target the board builds for.
    target: String,
    /// The device name when `STATESYNC_DEVICE_NAME` is not set.
    default_device_name: String,
    /// Linker scripts passed with `-T`, in order.
    linker_scripts: Vec<String>,
    /// True for the QEMU boards (`demo-key = "allowed"`): building them with
    /// the public demo key is normal, so it does not warn.
    allows_demo_key: bool,
}

impl Board {
    fn from_features() -> Board {
        let chosen: Vec<String> = env::vars()
            .filter_map(|(key, _)| {
                let name = key.strip_prefix("CARGO_FEATURE_BOARD_")?;
                Some(name.to_ascii_lowercase())
            })
            .collect();
        let [name] = chosen.as_slice() else {
            fail(
                "choose exactly one board with `--features board-NAME`, NAME one of the folders \
                 under src/board/ (see README.md; `./build.sh` builds them all)",
            );
        };
        let folder = Path::new("src/board").join(name);
        let settings_path = folder.join("board.toml");
        println!("cargo:rerun-if-changed={}", settings_path.display());
        let settings = fs::read_to_string(&settings_path)
            .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", settings_path.display())));
        let optional = |key: &str| {
            settings
                .lines()
                .filter_map(|line| line.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        };
        let setting = |key: &str| {
            optional(key)
                .unwrap_or_else(|| fail(&format!("{} has no `{key}`", settings_path.display())))
        };
        let linker_scripts: Vec<String> = setting("linker-scripts")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Board {
            name: name.clone(),
            target: setting("target"),
            default_device_name: setting("default-device-name"),
            allows_demo_key: optional("demo-key").as_deref() == Some("allowed"),
            linker_scripts,
        }
    }

    fn memory_file(&self) -> PathBuf {
        Path::new("src/board").join(&self.name).join("memory.x")
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

fn main() {
    let board = Board::from_features();
    let target = env::var("TARGET").unwrap_or_default();
    if target != board.target {
        fail(&format!(
            "board `{}` builds for `--target {}`, not `{target}`; use the cargo aliases in .cargo/config.toml",
            board.name, board.target
        ));
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    // Memory map: the runtime's link.x includes `memory.x` from the search
    // path (cortex-m-rt), or the board names it among its scripts (riscv-rt).
    let memory = fs::read(board.memory_file()).expect("memory map is part of the crate");
    fs::write(out.join("memory.x"), memory).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={}", board.memory_file().display());
    println!("cargo:rustc-link-arg-bins=--nmagic");
    for script in &board.linker_scripts {
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }
    // Keep the relocations in the ELF (not in flash: the image is byte for
    // byte the same) so `size-by-crate.py` can tell who points at `.rodata`.
    println!("cargo:rustc-link-arg-bins=--emit-relocs");

    write_identity(&board, &out);
    println!("cargo:rerun-if-changed=build.rs");
}

/// Writes `identity.rs`: the device name and key constants.
fn write_identity(board: &Board, out: &Path) {
    println!("cargo:rerun-if-env-changed=STATESYNC_DEVICE_NAME");
    println!("cargo:rerun-if-env-changed=STATESYNC_DEVICE_KEY");
    let name =
        env::var("STATESYNC_DEVICE_NAME").unwrap_or_else(|_| board.default_device_name.clone());
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
            if !board.allows_demo_key {
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
