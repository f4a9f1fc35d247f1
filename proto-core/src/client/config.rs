//! Settings of a client: identity, link and timers. Start from
//! [`Config::tcp`] or [`Config::serial`] and change what you need.

use crate::framing::Framing;

/// How a [`super::Client`] identifies itself and paces its link.
///
/// All times are in milliseconds of the driver's clock.
#[derive(Clone, Copy, Debug)]
pub struct Config<'k> {
    /// The device's name, as registered with `host-server device add`.
    pub device: &'k str,
    /// The device's pre-shared key.
    pub key: &'k [u8],
    /// Length prefix (TCP) or COBS + CRC (serial lines).
    pub framing: Framing,
    /// Largest frame payload to accept; also capped by the buffers given to the client.
    pub max_frame: u32,
    /// Bytes the server may send ahead of the client's acknowledgements in a download.
    pub download_window: u32,
    /// How long to wait for `Challenge` or `Welcome`.
    pub handshake_timeout_ms: u64,
    /// How many times a serial client sends `Hello` before it gives up (TCP: once).
    pub handshake_attempts: u8,
    /// Send a `Ping` after this long without sending or without receiving
    /// anything (the protocol asks for 30 s of silence).
    pub keepalive_ms: u64,
    /// Declare the link dead after this long without a frame from the server.
    pub dead_after_ms: u64,
    /// Retransmission timeout before the first round-trip sample.
    pub initial_rto_ms: u64,
    /// Lower bound of the retransmission timeout.
    pub min_rto_ms: u64,
    /// Upper bound of the retransmission timeout (after backing off).
    pub max_rto_ms: u64,
    /// Longest a download acknowledgement is held back to cover more bytes.
    pub ack_delay_ms: u64,
    /// Adapt the upload chunk size to the line's error rate (useful on serial
    /// lines): shrink it as frames are lost, grow it back on clean runs.
    pub adaptive_chunks: bool,
    /// Smallest upload chunk when adapting.
    pub min_chunk: u32,
}

impl<'k> Config<'k> {
    /// Defaults for TCP: length-prefixed 256 KiB frames, 8 MiB download window.
    pub fn tcp(device: &'k str, key: &'k [u8]) -> Config<'k> {
        Config {
            device,
            key,
            framing: Framing::Length,
            max_frame: 256 * 1024,
            download_window: 8 * 1024 * 1024,
            handshake_timeout_ms: 10_000,
            handshake_attempts: 1,
            keepalive_ms: 30_000,
            dead_after_ms: 75_000,
            initial_rto_ms: 3_000,
            min_rto_ms: 500,
            max_rto_ms: 30_000,
            ack_delay_ms: 10,
            adaptive_chunks: false,
            min_chunk: 128,
        }
    }

    /// Defaults for a serial line: COBS + CRC frames of at most 1 KiB, an 8 KiB
    /// download window, `Hello` retried, chunk size adapting to line errors.
    pub fn serial(device: &'k str, key: &'k [u8]) -> Config<'k> {
        Config {
            framing: Framing::Serial,
            max_frame: 1024,
            download_window: 8 * 1024,
            handshake_timeout_ms: 3_000,
            handshake_attempts: 5,
            initial_rto_ms: 2_000,
            min_rto_ms: 300,
            ack_delay_ms: 20,
            adaptive_chunks: true,
            ..Config::tcp(device, key)
        }
    }
}
