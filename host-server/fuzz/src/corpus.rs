//! Reading the committed corpus, for the `cargo test` suite that replays it
//! (`host-server/tests/hardening_fuzz_corpus.rs`). The fuzz targets themselves never need it.

use std::path::{Path, PathBuf};

/// The files directly in `dir`, sorted; none if it does not exist.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable directory").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}
