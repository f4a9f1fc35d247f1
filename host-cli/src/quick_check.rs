//! The quick check: a local index of (path, size, mtime, inode) → SHA-256,
//! so a file that did not change since it was last hashed is never read again
//! (rsync's quick check, Syncthing's index).
//!
//! The index is a small SQLite file under the user's state directory
//! (`$XDG_STATE_HOME/statesync/`, else `~/.local/state/statesync/`, else the
//! cache directory), one per server and device, because what one device
//! pushed to one server says nothing about another.
//!
//! Like git's index, an entry written while its file's mtime was less than
//! [`RACY_WINDOW`] old is "racy": the file may change again within the same
//! mtime tick without its size or mtime changing, so such an entry is hashed
//! once more on its next use, and trusted from then on.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto_core::ContentHash;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{CliError, CliResult};
use crate::local;

/// A file whose mtime is this close to the moment it was hashed may change
/// again unseen; its entry is checked once more before it is trusted.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What a quick check did: how many files it found unchanged and how many it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QuickCheckCounts {
    /// Files whose hash came from the index, unread.
    pub unchanged: u64,
    /// Files read and hashed (new, changed, or racy).
    pub hashed: u64,
    /// Bytes read to hash them.
    pub hashed_bytes: u64,
    /// Files not in the index and not read: their hash is computed while they
    /// are sent (see [`QuickCheck::deferring`]).
    pub deferred: u64,
}

/// The index, or (when it cannot be opened) plain hashing of every file.
pub struct QuickCheck {
    /// Where the index lives; it is opened (and created) at the first file.
    location: Option<PathBuf>,
    db: Option<Connection>,
    counts: QuickCheckCounts,
    /// Files the index does not know are not read: [`QuickCheck::hash`] gives
    /// [`ContentHash::ZERO`] for them ("not known yet").
    defer: bool,
    /// Directories as given → canonical: a tree of 10,000 files in 100
    /// folders resolves 100 paths, not 10,000 ([`QuickCheck::key`]).
    canonical_dirs: HashMap<PathBuf, PathBuf>,
}

/// The identity of a file's content as the file system reports it.
struct Stamp {
    size: u64,
    mtime_ns: i64,
    inode: u64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or(0);
        Stamp {
            size: meta.len(),
            mtime_ns,
            inode: inode(meta),
        }
    }
}

#[cfg(unix)]
fn inode(meta: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_meta: &Metadata) -> u64 {
    0
}

impl QuickCheck {
    /// The index for `server` and `device`, opened (or created) when the first
    /// file is checked. When it cannot be opened, says why once on stderr and
    /// hashes every file instead.
    pub fn open(server: &str, device: &str) -> QuickCheck {
        QuickCheck {
            location: index_path(server, device),
            db: None,
            counts: QuickCheckCounts::default(),
            defer: false,
            canonical_dirs: HashMap::new(),
        }
    }

    /// No index: every file is read and hashed.
    pub fn without_index() -> QuickCheck {
        QuickCheck {
            location: None,
            db: None,
            counts: QuickCheckCounts::default(),
            defer: false,
            canonical_dirs: HashMap::new(),
        }
    }

    /// The same check, except that a file the index does not know is not read
    /// now: its hash is [`ContentHash::ZERO`] ("not known yet"), for `push`,
    /// which hashes such a file while it sends it (one read) and then records
    /// the hash with [`QuickCheck::learn`].
    pub fn deferring(mut self) -> QuickCheck {
        self.defer = true;
        self
    }

    fn open_now(&mut self) {
        let Some(path) = self.location.take() else {
            return;
        };
        match open_db(&path) {
            Ok(db) => self.db = Some(db),
            Err(e) => eprintln!(
                "warning: cannot use the quick-check index `{}` ({e}); every file will be read",
                path.display()
            ),
        }
    }

    /// What this check did so far.
    pub fn counts(&self) -> QuickCheckCounts {
        self.counts
    }

    /// The SHA-256 of the file at `path`: from the index when its size, mtime
    /// and inode are as recorded, else read and recorded (or, when
    /// [`QuickCheck::deferring`], [`ContentHash::ZERO`] without reading it).
    pub fn hash(&mut self, path: &Path) -> CliResult<ContentHash> {
        self.hash_reading(path, !self.defer)
    }

    /// Like [`QuickCheck::hash`], but reads a file the index does not know even
    /// when deferring (its hash is needed before it is sent).
    pub fn hash_now(&mut self, path: &Path) -> CliResult<ContentHash> {
        self.hash_reading(path, true)
    }

    /// Records `hash` for the file at `path`, of `size` bytes, as it is now (its
    /// hash was computed while it was sent, and the server verified it). A file
    /// whose size changed meanwhile is left out; one changed within its mtime
    /// tick is caught by the racy check, as for any entry.
    pub fn learn(&mut self, path: &Path, size: u64, hash: &ContentHash) {
        self.open_now();
        let Ok(meta) = fs::metadata(path) else { return };
        if meta.len() != size {
            return;
        }
        let key = self.key(path);
        self.record(&key, &Stamp::of(&meta), hash);
    }

    /// The index's key for `path`: its directory's canonical path (resolved
    /// once per directory) joined with its file name.
    fn key(&mut self, path: &Path) -> String {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
            return canonical.to_string_lossy().into_owned();
        };
        let canonical = self
            .canonical_dirs
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                let resolvable = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                fs::canonicalize(resolvable).unwrap_or_else(|_| dir.to_path_buf())
            });
        canonical.join(name).to_string_lossy().into_owned()
    }

    fn hash_reading(&mut self, path: &Path, read: bool) -> CliResult<ContentHash> {
        self.open_now();
        let meta = fs::metadata(path).map_err(|e| CliError::io("cannot read", path, e))?;
        let stamp = Stamp::of(&meta);
        let key = self.key(path);
        if let Some(hash) = self.lookup(&key, &stamp) {
            self.counts.unchanged += 1;
            return Ok(hash);
        }
        if !read && stamp.size > 0 {
            self.counts.deferred += 1;
            return Ok(ContentHash::ZERO);
        }
        let hash = local::hash_file(path)?;
        self.counts.hashed += 1;
        self.counts.hashed_bytes += stamp.size;
        self.record(&key, &stamp, &hash);
        Ok(hash)
    }

    fn lookup(&self, key: &str, stamp: &Stamp) -> Option<ContentHash> {
        let db = self.db.as_ref()?;
        let row: Option<(Vec<u8>, bool)> = db
            .prepare_cached(
                "SELECT hash, racy FROM files WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3 AND inode = ?4",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(
                        params![key, stamp.size as i64, stamp.mtime_ns, stamp.inode as i64],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
            })
            .ok()
            .flatten();
        match row {
            Some((hash, false)) => <[u8; 32]>::try_from(hash.as_slice()).ok().map(ContentHash),
            _ => None,
        }
    }

    fn record(&self, key: &str, stamp: &Stamp, hash: &ContentHash) {
        let Some(db) = &self.db else { return };
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or(i64::MAX);
        let racy_ns = i64::try_from(RACY_WINDOW.as_nanos()).unwrap_or(i64::MAX);
        let racy = stamp.mtime_ns > now_ns.saturating_sub(racy_ns);
        // A failed write only costs a re-read next time.
        let _ = db
            .prepare_cached(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns, inode, hash, racy) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    key,
                    stamp.size as i64,
                    stamp.mtime_ns,
                    stamp.inode as i64,
                    &hash.0[..],
                    racy
                ])
            });
    }

    /// Writes what this check learnt to disk.
    pub fn save(&mut self) {
        if let Some(db) = &self.db {
            let _ = db.execute_batch("COMMIT; BEGIN");
        }
    }
}

impl Drop for QuickCheck {
    fn drop(&mut self) {
        self.save();
    }
}

/// `<state dir>/statesync/index-<hash of server and device>.sqlite`.
fn index_path(server: &str, device: &str) -> Option<PathBuf> {
    state_file("index", &format!("{server}\n{device}"), "sqlite")
}

/// `<state dir>/statesync/<kind>-<hash of key>.<extension>` (the cache
/// directory without a state directory), or `None` without either.
pub fn state_file(kind: &str, key: &str, extension: &str) -> Option<PathBuf> {
    let base = dirs::state_dir().or_else(dirs::cache_dir)?;
    let digest = proto_core::auth::ContentHasher::digest(key.as_bytes());
    let name = format!("{kind}-{}.{extension}", hex::encode(&digest.0[..8]));
    Some(base.join("statesync").join(name))
}

fn open_db(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        let _ = fs::create_dir_all(dir);
    }
    let db = Connection::open(path)?;
    db.busy_timeout(Duration::from_secs(5))?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS files (
             path TEXT PRIMARY KEY,
             size INTEGER NOT NULL,
             mtime_ns INTEGER NOT NULL,
             inode INTEGER NOT NULL,
             hash BLOB NOT NULL,
             racy INTEGER NOT NULL
         );
         BEGIN;",
    )?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn index_in(dir: &Path) -> QuickCheck {
        QuickCheck {
            location: None,
            db: Some(open_db(&dir.join("index.sqlite")).unwrap()),
            counts: QuickCheckCounts::default(),
            defer: false,
            canonical_dirs: HashMap::new(),
        }
    }

    fn age(path: &Path, by: Duration) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn an_unchanged_file_is_hashed_once_and_then_taken_from_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        fs::write(&file, b"hello").unwrap();
        age(&file, Duration::from_secs(60));
        let expected = proto_core::auth::ContentHasher::digest(b"hello");

        let mut first = index_in(dir.path());
        assert_eq!(first.hash(&file).unwrap(), expected);
        assert_eq!(first.counts().hashed, 1);
        drop(first);

        let mut second = index_in(dir.path());
        assert_eq!(second.hash(&file).unwrap(), expected);
        assert_eq!(second.counts().hashed, 0);
        assert_eq!(second.counts().unchanged, 1);
    }

    #[test]
    fn a_file_reached_through_another_spelling_of_its_folder_is_found_in_the_index() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let file = dir.path().join("a.bin");
        fs::write(&file, b"hello").unwrap();
        age(&file, Duration::from_secs(60));
        let mut check = index_in(dir.path());
        let hash = check.hash(&file).unwrap();
        let other = dir.path().join("sub").join("..").join("a.bin");
        assert_eq!(check.hash(&other).unwrap(), hash);
        assert_eq!((check.counts().hashed, check.counts().unchanged), (1, 1));
    }

    #[test]
    fn a_deferring_check_reads_no_unknown_file_and_then_knows_the_hash_it_learns() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        fs::write(&file, b"hello").unwrap();
        age(&file, Duration::from_secs(60));
        let expected = proto_core::auth::ContentHasher::digest(b"hello");

        let mut first = index_in(dir.path()).deferring();
        assert_eq!(first.hash(&file).unwrap(), ContentHash::ZERO);
        assert_eq!((first.counts().hashed, first.counts().deferred), (0, 1));
        first.learn(&file, 5, &expected);
        drop(first);

        let mut second = index_in(dir.path()).deferring();
        assert_eq!(second.hash(&file).unwrap(), expected);
        assert_eq!(second.counts().unchanged, 1);
    }

    #[test]
    fn a_file_whose_size_or_mtime_changed_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        fs::write(&file, b"hello").unwrap();
        age(&file, Duration::from_secs(60));
        let mut index = index_in(dir.path());
        index.hash(&file).unwrap();

        fs::write(&file, b"hello, world").unwrap();
        age(&file, Duration::from_secs(30));
        assert_eq!(
            index.hash(&file).unwrap(),
            proto_core::auth::ContentHasher::digest(b"hello, world")
        );
        // Same size, other content, other mtime.
        fs::write(&file, b"HELLO, WORLD").unwrap();
        age(&file, Duration::from_secs(20));
        assert_eq!(
            index.hash(&file).unwrap(),
            proto_core::auth::ContentHasher::digest(b"HELLO, WORLD")
        );
        assert_eq!(index.counts().hashed, 3);
        assert_eq!(index.counts().unchanged, 0);
    }

    #[test]
    fn a_file_hashed_right_after_it_was_written_is_checked_once_more() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fresh.bin");
        fs::write(&file, b"new").unwrap();
        let mut index = index_in(dir.path());
        index.hash(&file).unwrap();
        index.hash(&file).unwrap();
        assert_eq!(index.counts().hashed, 2, "a racy entry is not trusted");
    }
}
