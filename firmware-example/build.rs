//! Build script: picks the board's memory map and linker scripts (from its
//! folder, `src/board/NAME/`, named by the feature `board-NAME`). The image
//! carries no identity: a board gets its name and key at run time
//! (provisioning, see README.md), so one image serves every board of a kind.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// The board chosen by its feature, `board-NAME`, and what its
/// `src/board/NAME/board.toml` says about it.
struct Board {
    /// The folder name under `src/board/`.
    name: String,
    /// The target the board builds for.
    target: String,
    /// Linker scripts passed with `-T`, in order.
    linker_scripts: Vec<String>,
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

    println!("cargo:rerun-if-changed=build.rs");
}
