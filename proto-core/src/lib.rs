//! The statesync protocol core: wire messages, the upload-state record, framing
//! and the sans-IO client, for microcontrollers and hosts alike.
//!
//! `no_std` and allocation-free: every buffer is provided by the caller or sized
//! by a const generic. Enable `std` on hosts for `std::error::Error` impls and
//! `defmt` on targets for logging. A board that builds without the default
//! features also leaves out `error-texts` (errors say short phrases instead of
//! sentences) and `host-lists` (no decoders for the batch, history and
//! download-state lists only hosts ask for) and `length-framing` (the
//! length-prefixed TCP framing: such a board frames with COBS + CRC only);
//! the wire format is the same.
//! A board chooses what else its client does with `download`, `lists` and
//! `subscribe`: without one, the matching requests do not exist and the
//! matching server messages are dropped undecoded, so their code is not in
//! the image (an upload-only board enables none of the three).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

pub mod auth;
mod byte_array;
mod byte_slice;
pub mod client;
mod copy;
mod decode;
pub mod driver;
mod encode;
pub mod error;
pub mod framing;
pub mod message;
pub mod model;
pub mod name;
pub mod provision;
pub mod state;
mod text;

pub use error::ErrorCode;
pub use message::{ClientFrame, ClientMessage, ServerFrame, ServerMessage, PROTOCOL_VERSION};
pub use model::{ContentHash, FileKind, ListFilter, Record};
pub use state::{StateMap, UploadState};
