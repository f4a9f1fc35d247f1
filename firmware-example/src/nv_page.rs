//! One page of non-volatile memory that the board keeps across resets: where
//! the device's identity (its name and key, written by provisioning) lives.
//!
//! Every board implements [`NvPage`] for its own store and hands it out as
//! `Board::identity_page` (type `board::IdentityPage`): a flash page written
//! through the flash controller on hardware; under QEMU, when the machine does
//! not emulate flash writes, a RAM page outside every loaded section, which a
//! system reset leaves alone (see the board's module for what it uses).
//!
//! The page holds raw bytes: the record's format, and its checksum that makes
//! an erased or torn page read as "nothing here", belong to the caller.

/// Why a page could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvError {
    /// More bytes than the page holds, or a length that is not a multiple of
    /// [`NvPage::WRITE_UNIT`]: a bug in the caller, nothing was written.
    BadLength,
    /// What reads back differs from what was written: the page may be torn.
    VerifyFailed,
}

impl NvError {
    /// What happened and what to do, for a log line.
    pub fn message(self) -> &'static str {
        match self {
            NvError::BadLength => "the record does not fit the page (a firmware bug)",
            NvError::VerifyFailed => {
                "the page reads back different from what was written; try again"
            }
        }
    }
}

/// One page of non-volatile memory: read it, or erase it and write it anew.
pub trait NvPage {
    /// The page's size in bytes.
    const LEN: usize;
    /// Writes are made of units of this many bytes (4 on the Cortex-M flash
    /// controllers); a record's length must be a multiple of it.
    const WRITE_UNIT: usize;

    /// Copies the first `into.len()` bytes of the page into `into` (at most
    /// [`NvPage::LEN`]; the rest of `into` is left alone). An erased page reads
    /// as the store's erased value (`0xFF` on flash, anything in RAM).
    fn read(&self, into: &mut [u8]);

    /// Erases the page, writes `bytes` at its start and reads them back.
    /// A reset in the middle may leave the page torn: the record's checksum
    /// must catch that.
    fn erase_and_write(&mut self, bytes: &[u8]) -> Result<(), NvError>;
}
