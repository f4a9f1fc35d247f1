//! The files the daemon last saw in its tree (name → SHA-256), kept on disk so
//! that a file deleted while the daemon was stopped is deleted on the server at
//! the next start instead of being downloaded again.
//!
//! One file per server, device and directory, beside the quick-check index:
//! `<state dir>/statesync/known-<hash>.txt`, one `HASH NAME` line per file
//! (record names hold no control characters, so a line is a name). It is
//! replaced atomically (a temp file, then a rename); a missing or unreadable
//! file means "nothing known", which only makes the daemon cautious: with
//! nothing known, nothing is deleted on the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proto_core::ContentHash;

use crate::filter::Filter;

/// Where the known files of `dir` synced by `device` with `server` are kept,
/// or `None` without a state or cache directory.
pub(super) fn location(server: &str, device: &str, dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let key = format!("{server}\n{device}\n{}", dir.display());
    crate::quick_check::state_file("known", &key, "txt")
}

/// The files known from the last run, leaving out names `names` no longer
/// keeps (a name excluded now was not deleted, only left out).
pub(super) fn load(path: Option<&Path>, names: &Filter) -> BTreeMap<String, ContentHash> {
    let Some(text) = path.and_then(|path| std::fs::read_to_string(path).ok()) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter_map(|line| {
            let (hash, name) = line.split_once(' ')?;
            let hash = ContentHash::from_hex(hash)?;
            names.keeps(name).then(|| (name.to_string(), hash))
        })
        .collect()
}

/// Writes `files` to `path`, replacing what was there; a failure is said once
/// on stderr per run (the daemon works on; only its memory across restarts is lost).
pub(super) fn save(path: Option<&Path>, files: &BTreeMap<String, ContentHash>, warned: &mut bool) {
    let Some(path) = path else { return };
    let mut text = String::with_capacity(files.len() * 80);
    for (name, hash) in files {
        text.push_str(&format!("{hash} {name}\n"));
    }
    let temp = path.with_extension("txt.tmp");
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&temp, text))
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        if !std::mem::replace(warned, true) {
            eprintln!(
                "warning: cannot keep the list of synced files in `{}` ({e}); files deleted while the daemon is stopped will be downloaded again",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterArgs;

    fn hash(byte: u8) -> ContentHash {
        ContentHash([byte; 32])
    }

    #[test]
    fn what_is_saved_is_loaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.txt");
        let files = BTreeMap::from([
            ("a b.txt".to_string(), hash(1)),
            ("photos/cat.jpg".to_string(), hash(2)),
        ]);
        let mut warned = false;
        save(Some(&path), &files, &mut warned);
        assert!(!warned);
        let all = Filter::from_args(&FilterArgs::default());
        assert_eq!(load(Some(&path), &all), files);
    }

    #[test]
    fn names_the_filter_leaves_out_now_are_not_known() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.txt");
        let files = BTreeMap::from([
            ("keep.txt".to_string(), hash(1)),
            ("skip.log".to_string(), hash(2)),
        ]);
        save(Some(&path), &files, &mut false);
        let filter = Filter::from_args(&FilterArgs {
            exclude: vec!["*.log".into()],
            include: vec![],
        });
        let loaded = load(Some(&path), &filter);
        assert_eq!(loaded.keys().collect::<Vec<_>>(), ["keep.txt"]);
    }

    #[test]
    fn a_missing_or_damaged_file_knows_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known.txt");
        let all = Filter::from_args(&FilterArgs::default());
        assert!(load(Some(&path), &all).is_empty());
        std::fs::write(&path, "not a hash line\n").unwrap();
        assert!(load(Some(&path), &all).is_empty());
    }
}
