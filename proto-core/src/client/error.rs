//! What can go wrong on the client side, each with a message a person can act on.

use super::store::StoreError;
use crate::error::ErrorCode;
use crate::framing::FrameError;
use crate::name::NameError;
use crate::text::text;

/// A client operation failed, or the session ended.
///
/// Returned by request methods and carried by [`super::Event::Closed`],
/// [`super::Event::TransferFailed`] and [`super::Event::FrameDropped`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClientError {
    /// The session is not authenticated yet (or no longer).
    NotConnected,
    /// The send queue has no room for this request.
    QueueFull,
    /// An upload, download or manifest of the same kind is already running.
    Busy,
    /// The receive or send buffer cannot hold a minimum-size frame.
    BufferTooSmall,
    /// A file, device or batch name is not acceptable.
    BadName(NameError),
    /// A request does not fit one frame, or a manifest holds too many files.
    TooLarge,
    /// The server speaks another protocol version.
    VersionMismatch,
    /// The server's largest frame is below the protocol minimum.
    FrameTooSmall,
    /// The server's proof (MAC in `Welcome`) is wrong.
    ServerNotAuthentic,
    /// The server refused the handshake.
    Rejected(ErrorCode),
    /// Nothing arrived from the server for too long.
    Timeout,
    /// The server ended the session (`Goodbye`).
    ServerClosed,
    /// The client ended the session (`Bye`) or the driver reported the link lost.
    LinkClosed,
    /// The server sent something that breaks the protocol (e.g. an offset past the end).
    Protocol,
    /// A damaged frame was dropped (it will be re-sent).
    Frame(FrameError),
    /// A frame arrived intact but does not decode as a message.
    Malformed,
    /// The file store failed.
    Store(StoreError),
    /// The downloaded bytes do not hash to the announced hash.
    HashMismatch,
}

impl ClientError {
    /// What happened and what to do, in one sentence.
    pub const fn message(self) -> &'static str {
        match self {
            ClientError::NotConnected => text!("not connected", "not connected; call connect and wait for Event::Connected"),
            ClientError::QueueFull => text!("send queue full", "send queue full; write out what poll_transmit returns, then try again"),
            ClientError::Busy => text!("transfer already running", "a transfer of this kind is already running; wait for it or cancel it"),
            ClientError::BufferTooSmall => text!("buffers too small", "buffers too small; give rx and tx at least Framing::max_wire_len(512) bytes each"),
            ClientError::BadName(e) => e.message(),
            ClientError::TooLarge => text!("request too large", "request too large for one frame; shorten the name or split the manifest"),
            ClientError::VersionMismatch => text!("version mismatch", "the server speaks another protocol version; update the client or the server"),
            ClientError::FrameTooSmall => text!("server frames too small", "the server's frames are below the 512-byte minimum; fix its configuration"),
            ClientError::ServerNotAuthentic => text!("server not authentic", "the server could not prove it knows the device key; check the key or the server address"),
            ClientError::Rejected(code) => code.message(),
            ClientError::Timeout => text!("server timeout", "no answer from the server for too long; reconnect (transfers resume)"),
            ClientError::ServerClosed => text!("server closed the session", "the server ended the session; reconnect later (transfers resume)"),
            ClientError::LinkClosed => text!("session closed", "the session was closed; connect again to continue"),
            ClientError::Protocol => text!("protocol violation", "the server broke the protocol; the transfer was stopped (check server and client versions)"),
            ClientError::Frame(e) => e.message(),
            ClientError::Malformed => text!("malformed frame", "a frame did not decode as a message; check that both sides speak the same version"),
            ClientError::Store(e) => e.message(),
            ClientError::HashMismatch => text!("download hash mismatch", "downloaded bytes do not match the announced hash; the download is reported failed, try again"),
        }
    }
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ClientError {}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        ClientError::Store(e)
    }
}

impl From<NameError> for ClientError {
    fn from(e: NameError) -> Self {
        ClientError::BadName(e)
    }
}
