//! The SHA-256 of a file uploaded without a known hash, computed from the bytes
//! as the client reads them to send, so a new file is read once (protocol 6
//! gives the hash at `UploadClose`).
//!
//! The client reads a file in order; only a resumed upload starts beyond the
//! hashed prefix (the bytes in between are read for the hash alone) and only
//! re-sends go below it (they are not hashed again).

use std::fs::File;
use std::io;

use proto_core::auth::ContentHasher;
use proto_core::ContentHash;

use crate::positional::read_exact_at;

/// Bytes read at once to catch up over a prefix that was not sent.
const CATCH_UP_PIECE: usize = 1 << 20;

/// A hash over the first `upto` bytes of one file.
#[derive(Clone, Default)]
pub struct RunningHash {
    hasher: ContentHasher,
    upto: u64,
}

impl RunningHash {
    /// Takes `bytes`, read at `offset` of `file` to be sent.
    pub fn on_read(&mut self, file: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.catch_up(file, offset)?;
        let end = offset + bytes.len() as u64;
        if end > self.upto {
            let fresh = usize::try_from(self.upto - offset).unwrap_or(usize::MAX);
            self.hasher.update(bytes.get(fresh..).unwrap_or_default());
            self.upto = end;
        }
        Ok(())
    }

    /// The hash of the whole file (`size` bytes), reading what was not read yet.
    pub fn finish(&mut self, file: &File, size: u64) -> io::Result<ContentHash> {
        self.catch_up(file, size)?;
        Ok(self.hasher.clone().finish())
    }

    /// Hashes the bytes from the hashed prefix's end up to `offset`.
    fn catch_up(&mut self, file: &File, offset: u64) -> io::Result<()> {
        let mut buffer = Vec::new();
        while self.upto < offset {
            let len = usize::try_from(offset - self.upto)
                .map_or(CATCH_UP_PIECE, |n| n.min(CATCH_UP_PIECE));
            buffer.resize(len, 0);
            read_exact_at(file, &mut buffer, self.upto)?;
            self.hasher.update(&buffer);
            self.upto += len as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_in_order_with_a_resume_gap_and_re_sends_hash_the_file_once_over() {
        let content: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&content).unwrap();
        let mut running = RunningHash::default();
        // Resumed at 1000: the prefix is read for the hash alone.
        running.on_read(&file, 1000, &content[1000..2000]).unwrap();
        // A re-send below the prefix and one overlapping its end.
        running.on_read(&file, 1500, &content[1500..1700]).unwrap();
        running.on_read(&file, 1900, &content[1900..3000]).unwrap();
        // The last bytes were never read: finishing reads them.
        let hash = running.finish(&file, content.len() as u64).unwrap();
        assert_eq!(hash, ContentHasher::digest(&content));
    }
}
