//! The dashboard's admin token: made by `host-server admin token`, shown once,
//! kept only as its SHA-256 in the data directory.
//!
//! The token is 32 random bytes, so a plain SHA-256 is as good as a slow
//! password hash here: nothing smaller than the token space can be searched.
//! The file is read on every check, so a new token takes effect (and the old
//! one stops working) without restarting the server.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use proto_core::auth::ContentHasher;
use proto_core::ContentHash;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// Name of the file, in the data directory, that holds the token's digest.
pub const TOKEN_FILE: &str = "admin-token.sha256";

/// Random bytes in a token (printed as hex).
const TOKEN_BYTES: usize = 32;

/// What the file starts with, before the digest in hex.
const PREFIX: &str = "sha256:";

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or writing the file failed.
    #[error("admin token file {path}: {source}; check the data directory's permissions")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The file holds something else than a digest.
    #[error("admin token file {0} is damaged; run `host-server admin token` to make a new token")]
    Damaged(PathBuf),
}

/// The token digest file of one data directory.
#[derive(Clone, Debug)]
pub struct AdminTokenFile {
    path: PathBuf,
}

impl AdminTokenFile {
    /// The token file of data directory `data`.
    pub fn in_data_dir(data: &Path) -> AdminTokenFile {
        AdminTokenFile {
            path: data.join(TOKEN_FILE),
        }
    }

    /// Where the digest lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes a new token, stores its digest (replacing any earlier token, whose
    /// logins end), and returns the token: the only time it exists in clear.
    pub fn create(&self) -> Result<String, TokenError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        self.write_digest(&digest(&token))?;
        Ok(token)
    }

    /// The digest of the current token; `None` when no token was made yet.
    pub fn current(&self) -> Result<Option<ContentHash>, TokenError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io_error(source)),
        };
        text.trim()
            .strip_prefix(PREFIX)
            .and_then(ContentHash::from_hex)
            .map(Some)
            .ok_or_else(|| TokenError::Damaged(self.path.clone()))
    }

    /// True when `token` is the current token (compared in constant time).
    pub fn accepts(&self, token: &str) -> Result<bool, TokenError> {
        Ok(self
            .current()?
            .is_some_and(|current| same_digest(&current, &digest(token))))
    }

    /// Writes the digest atomically (temp file + rename), readable only by its owner.
    fn write_digest(&self, digest: &ContentHash) -> Result<(), TokenError> {
        use std::os::unix::fs::OpenOptionsExt;
        let temp = self.path.with_extension("new");
        let write = || -> io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            writeln!(file, "{PREFIX}{digest}")?;
            file.sync_all()?;
            fs::rename(&temp, &self.path)
        };
        write().map_err(|source| self.io_error(source))
    }

    fn io_error(&self, source: io::Error) -> TokenError {
        TokenError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// The SHA-256 of a token as typed (surrounding white space ignored).
pub fn digest(token: &str) -> ContentHash {
    ContentHasher::digest(token.trim().as_bytes())
}

/// Compares two digests without an early exit, so timing says nothing about
/// how much of a guess was right.
pub fn same_digest(a: &ContentHash, b: &ContentHash) -> bool {
    a.0[..].ct_eq(&b.0[..]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_kept_only_as_a_digest_and_a_new_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = AdminTokenFile::in_data_dir(dir.path());
        assert_eq!(file.current().unwrap(), None);
        assert!(!file.accepts("anything").unwrap());

        let first = file.create().unwrap();
        assert_eq!(first.len(), 2 * TOKEN_BYTES);
        let stored = fs::read_to_string(file.path()).unwrap();
        assert!(!stored.contains(&first), "the token itself is never stored");
        assert!(file.accepts(&first).unwrap());
        assert!(file.accepts(&format!(" {first}\n")).unwrap());
        assert!(!file.accepts(&first[1..]).unwrap());

        let second = file.create().unwrap();
        assert!(file.accepts(&second).unwrap());
        assert!(
            !file.accepts(&first).unwrap(),
            "the old token stops working"
        );
        let mode = fs::metadata(file.path()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn a_damaged_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = AdminTokenFile::in_data_dir(dir.path());
        fs::write(file.path(), "not a digest").unwrap();
        assert!(matches!(file.current(), Err(TokenError::Damaged(_))));
    }
}
