//! Local files: walking the paths given on the command line, naming them the
//! way the server does (relative, `/`-separated) and hashing their content.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use proto_core::auth::ContentHasher;
use proto_core::model::FileKind;
use proto_core::name::{self, NameError};
use proto_core::ContentHash;
use unicode_normalization::UnicodeNormalization;

use crate::error::{CliError, CliResult};
use crate::filter::Filter;
use crate::quick_check::QuickCheck;

/// Bytes read per call while hashing.
const HASH_BUFFER: usize = 1 << 20;

/// A local file (or empty directory) to announce and upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalFile {
    /// Name on the server: relative, `/`-separated.
    pub name: String,
    /// Where the file is on this machine.
    pub path: PathBuf,
    /// File or (empty) directory entry.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content; [`ContentHash::ZERO`] for a file with content
    /// whose hash is not known yet (push computes it while sending).
    pub hash: ContentHash,
}

impl LocalFile {
    /// True for a file with content whose hash is not known yet.
    pub fn hash_pending(&self) -> bool {
        self.kind == FileKind::File && self.size > 0 && self.hash == ContentHash::ZERO
    }
}

/// Collects the files under each of `paths`.
///
/// A file is named by its file name; a directory `d` contributes `d/…` for
/// everything beneath it, like `cp -r`. Empty directories become directory
/// entries so they sync too. Names are sorted and unique.
/// Names `filter` leaves out are neither read nor returned. Hashes come
/// from `check` for files that did not change since they were last hashed.
pub fn collect(
    paths: &[PathBuf],
    filter: &Filter,
    check: &mut QuickCheck,
) -> CliResult<Vec<LocalFile>> {
    let mut found = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| CliError::io("cannot read", path, e))?;
        let base = last_component(path)?;
        if meta.is_dir() {
            walk(path, &base, &mut found)?;
        } else if meta.is_file() {
            found.push((base, path.clone(), FileKind::File, meta.len()));
        } else {
            return Err(CliError::Usage(format!(
                "`{}` is neither a file nor a directory; give files or directories",
                path.display()
            )));
        }
    }
    finish(found, filter, check)
}

/// Collects everything beneath `dir` that `filter` keeps, named relative to
/// `dir` itself (for `sync`).
pub fn collect_tree(
    dir: &Path,
    filter: &Filter,
    check: &mut QuickCheck,
) -> CliResult<Vec<LocalFile>> {
    let mut found = Vec::new();
    let mut entries = read_dir_sorted(dir)?;
    for entry in entries.drain(..) {
        let name = file_name_text(&entry)?;
        visit(&entry, name, &mut found)?;
    }
    finish(found, filter, check)
}

type Found = (String, PathBuf, FileKind, u64);

fn finish(
    mut found: Vec<Found>,
    filter: &Filter,
    check: &mut QuickCheck,
) -> CliResult<Vec<LocalFile>> {
    found.retain(|(name, ..)| filter.keeps(name));
    found.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = found.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(CliError::Usage(format!(
            "two paths map to the same name `{}` (`{}` and `{}`); push them separately",
            pair[0].0,
            pair[0].1.display(),
            pair[1].1.display()
        )));
    }
    found
        .into_iter()
        .map(|(name, path, kind, size)| {
            name::validate(&name).map_err(|e| {
                CliError::Usage(format!(
                    "cannot name `{}` as `{name}` on the server: {e}",
                    path.display()
                ))
            })?;
            let hash = match kind {
                FileKind::File => check.hash(&path)?,
                // A directory entry has no content and carries no hash.
                FileKind::Directory => ContentHash::ZERO,
            };
            Ok(LocalFile {
                name,
                path,
                kind,
                size,
                hash,
            })
        })
        .collect()
}

fn walk(dir: &Path, prefix: &str, found: &mut Vec<Found>) -> CliResult<()> {
    let entries = read_dir_sorted(dir)?;
    if entries.is_empty() {
        found.push((prefix.to_owned(), dir.to_owned(), FileKind::Directory, 0));
    }
    for entry in entries {
        let name = format!("{prefix}/{}", file_name_text(&entry)?);
        visit(&entry, name, found)?;
    }
    Ok(())
}

fn visit(path: &Path, name: String, found: &mut Vec<Found>) -> CliResult<()> {
    let meta = fs::metadata(path).map_err(|e| CliError::io("cannot read", path, e))?;
    if meta.is_dir() {
        walk(path, &name, found)
    } else if meta.is_file() {
        found.push((name, path.to_owned(), FileKind::File, meta.len()));
        Ok(())
    } else {
        // Sockets, fifos and devices have no content to share.
        Ok(())
    }
}

fn read_dir_sorted(dir: &Path) -> CliResult<Vec<PathBuf>> {
    let mut entries = fs::read_dir(dir)
        .and_then(|rd| {
            rd.map(|e| e.map(|e| e.path()))
                .collect::<io::Result<Vec<_>>>()
        })
        .map_err(|e| CliError::io("cannot list", dir, e))?;
    entries.retain(|p| !is_partial_download(p));
    entries.sort();
    Ok(entries)
}

/// True for the temporary files `pull` writes before renaming them into place.
pub fn is_partial_download(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".statesync-") && n.ends_with(".part"))
}

/// A path's last part as a name for the server, in Unicode NFC (macOS may give
/// decomposed `e` + U+0301 for `é`; the server takes NFC only).
fn file_name_text(path: &Path) -> CliResult<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.nfc().collect())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "`{}` has a name that is not UTF-8; rename it",
                path.display()
            ))
        })
}

fn last_component(path: &Path) -> CliResult<String> {
    let absolute;
    let path = if path
        .components()
        .next_back()
        .is_some_and(|c| matches!(c, Component::Normal(_)))
    {
        path
    } else {
        absolute = fs::canonicalize(path).map_err(|e| CliError::io("cannot resolve", path, e))?;
        &absolute
    };
    file_name_text(path)
}

/// SHA-256 of a file's content, read in large blocks.
pub fn hash_file(path: &Path) -> CliResult<ContentHash> {
    let mut file = File::open(path).map_err(|e| CliError::io("cannot open", path, e))?;
    let mut hasher = ContentHasher::new();
    let mut buffer = vec![0u8; HASH_BUFFER];
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::io("cannot read", path, e)),
        };
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finish())
}

/// The local path of server name `name` under `dir`. A name from the server is
/// trusted no more than any peer's: it must pass proto-core's name rules, so it
/// can never reach outside `dir` (`..`, an absolute path, a drive letter, a backslash).
pub fn local_path(dir: &Path, name: &str) -> Result<PathBuf, NameError> {
    name::validate(name)?;
    Ok(name.split('/').fold(dir.to_owned(), |p, part| p.join(part)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_named_like_cp_r_and_empty_ones_are_kept() {
        let tmp = std::env::temp_dir().join(format!("host-cli-local-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(tmp.join("photos/empty")).unwrap();
        fs::create_dir_all(tmp.join("photos/2026")).unwrap();
        fs::write(tmp.join("photos/2026/cat.jpg"), b"meow").unwrap();
        fs::write(tmp.join("notes.txt"), b"abc").unwrap();
        fs::write(tmp.join("photos/.statesync-x.part"), b"partial").unwrap();

        let files = collect(
            &[tmp.join("photos"), tmp.join("notes.txt")],
            &Filter::default(),
            &mut QuickCheck::without_index(),
        )
        .unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["notes.txt", "photos/2026/cat.jpg", "photos/empty"]);
        assert_eq!(files[0].hash, ContentHasher::digest(b"abc"));
        assert_eq!(files[2].kind, FileKind::Directory);

        let tree = collect_tree(
            &tmp.join("photos"),
            &Filter::default(),
            &mut QuickCheck::without_index(),
        )
        .unwrap();
        let names: Vec<_> = tree.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["2026/cat.jpg", "empty"]);
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn decomposed_local_names_go_to_the_server_in_nfc() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cafe\u{301}.txt"), b"x").unwrap();
        let files = collect_tree(
            dir.path(),
            &Filter::default(),
            &mut QuickCheck::without_index(),
        )
        .unwrap();
        assert_eq!(files[0].name, "caf\u{e9}.txt");
        assert!(files[0].path.ends_with("cafe\u{301}.txt"));
    }

    #[test]
    fn a_name_from_the_server_that_climbs_out_has_no_local_path() {
        let dir = Path::new("dest");
        assert_eq!(
            local_path(dir, "a/b.txt").unwrap(),
            dir.join("a").join("b.txt")
        );
        for hostile in ["../x", "a/../../x", "/etc/x", "C:/x", "a\\..\\x"] {
            assert!(local_path(dir, hostile).is_err(), "{hostile}");
        }
    }
}
