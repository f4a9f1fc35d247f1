//! Error codes carried on the wire, each with a message a person can act on.

use serde::{Deserialize, Serialize};

use crate::text::text;

/// Why the server (or client) refused a request.
///
/// Codes are stable on the wire: new codes are only ever appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorCode {
    /// The peer speaks another protocol version.
    VersionUnsupported,
    /// A request other than the handshake arrived before authentication.
    NotAuthenticated,
    /// The HMAC did not match, or the device is unknown.
    AuthFailed,
    /// A frame or message could not be decoded.
    BadMessage,
    /// A frame was larger than the negotiated maximum.
    FrameTooLarge,
    /// A file or device name is not acceptable.
    BadName,
    /// A manifest or upload announces more than the server allows.
    TooLarge,
    /// No record or device of that name.
    NotFound,
    /// The same name exists with another owner or another hash.
    Conflict,
    /// The uploaded bytes do not hash to the announced hash.
    HashMismatch,
    /// An offset or length lies outside the file.
    OffsetOutOfRange,
    /// A transfer handle that is not open on this session.
    UnknownTransfer,
    /// Too many sessions, transfers or requests at once; try again later.
    Busy,
    /// The device may not do this to a record it does not own.
    PermissionDenied,
    /// The server could not store the data (disk full, read-only, I/O error).
    Storage,
    /// The server is shutting down; reconnect later.
    ShuttingDown,
    /// Nothing arrived for too long.
    Timeout,
    /// A request was out of order (e.g. a manifest entry without a manifest).
    BadSequence,
}

impl ErrorCode {
    /// What happened and what to do, in one sentence.
    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::VersionUnsupported => text!("version unsupported", "protocol version not supported; update the client or the server so both match"),
            ErrorCode::NotAuthenticated => text!("not authenticated", "not authenticated; send Hello and Authenticate first"),
            ErrorCode::AuthFailed => text!("authentication failed", "authentication failed; check the device name and key (`host-server device add`)"),
            ErrorCode::BadMessage => text!("bad message", "message could not be decoded; check that client and server versions match"),
            ErrorCode::FrameTooLarge => text!("frame too large", "frame larger than negotiated; lower the frame size"),
            ErrorCode::BadName => text!("bad name", "bad name: use a relative `/`-separated path without `..`, control characters or empty parts"),
            ErrorCode::TooLarge => text!("too large", "too large for this server's limits; split the batch or raise the limit"),
            ErrorCode::NotFound => text!("not found", "no such record or device; list them to see what exists"),
            ErrorCode::Conflict => text!("conflict", "the name is already used with different content; rename or delete the other file first"),
            ErrorCode::HashMismatch => text!("hash mismatch", "uploaded bytes do not match the announced hash; upload the file again"),
            ErrorCode::OffsetOutOfRange => text!("offset out of range", "offset or length outside the file; reopen the transfer"),
            ErrorCode::UnknownTransfer => text!("unknown transfer", "no such transfer open on this session; open it again"),
            ErrorCode::Busy => text!("busy", "server busy; try again in a moment"),
            ErrorCode::PermissionDenied => text!("permission denied", "not allowed: only the owner device may do this"),
            ErrorCode::Storage => text!("storage failed", "server storage failed (disk full or read-only?); ask the operator"),
            ErrorCode::ShuttingDown => text!("shutting down", "server is shutting down; reconnect in a moment"),
            ErrorCode::Timeout => text!("timeout", "timed out waiting for the peer; reconnect and resume"),
            ErrorCode::BadSequence => text!("bad sequence", "request out of order; start the operation again"),
        }
    }
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ErrorCode {}
