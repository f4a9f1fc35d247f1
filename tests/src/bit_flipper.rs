//! A serial middlebox that flips exactly one bit in every frame, in both
//! directions: it sits between a link end and a device, cuts each byte
//! stream into frames at `0x00`, and flips one seeded random bit of one
//! seeded random COBS data byte of each (never a code byte or the delimiter,
//! and never so that the byte becomes `0x00`), so every frame arrives with
//! the single error a receiver can correct.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::link::LinkEnd;

/// Frames the flipper damaged, per direction, updated live.
#[derive(Debug, Default)]
pub struct FlipLog {
    /// Device → line frames with one bit flipped.
    pub up: AtomicU64,
    /// Line → device frames with one bit flipped.
    pub down: AtomicU64,
}

/// Puts a flipper in front of `line` (the device's end of a link), seeded
/// with `seed`. Returns the end the device uses instead, and the log.
pub fn spawn(line: LinkEnd, seed: u64) -> (LinkEnd, Arc<FlipLog>) {
    let (device_end, flipper_end) = tokio::io::duplex(64 * 1024);
    let log = Arc::new(FlipLog::default());
    let (line_read, line_write) = tokio::io::split(line);
    let (device_read, device_write) = tokio::io::split(flipper_end);
    let (up_log, down_log) = (log.clone(), log.clone());
    tokio::spawn(async move {
        flip_frames(device_read, line_write, seed, move || {
            up_log.up.fetch_add(1, Ordering::SeqCst);
        })
        .await;
    });
    tokio::spawn(async move {
        flip_frames(line_read, device_write, seed ^ 0x5EED, move || {
            down_log.down.fetch_add(1, Ordering::SeqCst);
        })
        .await;
    });
    (device_end, log)
}

/// Copies `from` to `to` frame by frame, flipping one bit in each; calls
/// `flipped` for every damaged frame. Ends when either side closes.
async fn flip_frames(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    seed: u64,
    mut flipped: impl FnMut(),
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut frame = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &byte in &buf[..n] {
            frame.push(byte);
            if byte != 0 {
                continue;
            }
            if flip_one_bit(&mut frame, &mut rng) {
                flipped();
            }
            if to.write_all(&frame).await.is_err() {
                return;
            }
            frame.clear();
        }
    }
}

/// Flips one bit of one COBS data byte of `frame` (an encoded frame ending in
/// `0x00`) so that the byte stays non-zero; false when it has no data byte.
fn flip_one_bit(frame: &mut [u8], rng: &mut StdRng) -> bool {
    let data = data_positions(frame);
    if data.is_empty() {
        return false;
    }
    let at = data[rng.gen_range(0..data.len())];
    let mut bit = rng.gen_range(0..8);
    if frame[at] ^ (1 << bit) == 0 {
        bit = (bit + 1) % 8; // the byte had this one bit only: flip a clear one
    }
    frame[at] ^= 1 << bit;
    true
}

/// Where the COBS data bytes of an encoded frame are (not its code bytes,
/// not the delimiter).
fn data_positions(frame: &[u8]) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut at = 0;
    while at < frame.len() && frame[at] != 0 {
        let code = usize::from(frame[at]);
        positions.extend((at + 1..at + code).filter(|&p| p < frame.len()));
        at += code;
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::framing::{Feed, Framing, SerialAccumulator};

    #[test]
    fn every_flipped_frame_differs_in_one_data_bit_and_is_corrected() {
        let mut rng = StdRng::seed_from_u64(3);
        for len in [1usize, 5, 200, 600, 3000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 7) as u8).collect();
            let mut wire = vec![0u8; Framing::Serial.max_wire_len(len)];
            let n = Framing::Serial.encode(&payload, &mut wire).unwrap();
            wire.truncate(n);
            let mut damaged = wire.clone();
            assert!(flip_one_bit(&mut damaged, &mut rng));
            let differing: u32 = wire
                .iter()
                .zip(&damaged)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(differing, 1, "one bit of a {len}-byte payload's frame");
            let mut accumulator = SerialAccumulator::new(vec![0u8; n]);
            match accumulator.feed(&damaged) {
                Feed::Frame { payload: got, .. } => assert_eq!(got, &payload[..]),
                other => panic!("{other:?}"),
            }
            assert_eq!(accumulator.corrected_frames(), 1);
        }
    }
}
