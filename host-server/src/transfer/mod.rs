//! Transfers of one session: uploads (bytes in, made durable by a writer
//! thread) and downloads (blob bytes out under a window).

pub mod download;
pub mod upload;
pub mod writer;
