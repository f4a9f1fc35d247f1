//! A serial middlebox that drops chosen frames: it sits between a link end
//! and a device, cuts the server → device byte stream into frames at each
//! `0x00`, and loses exactly the frames a test picks (e.g. one `RecordItem`),
//! so a loss lands where the test wants it instead of where noise puts it.
//! The device → server direction passes untouched; its frames are kept so
//! the test can see what the device asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use proto_core::framing::{Feed, SerialAccumulator};
use proto_core::ServerFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::link::LinkEnd;

/// Largest frame the filter reassembles; longer ones pass unexamined.
const MAX_FRAME: usize = 64 * 1024;

/// What the filter did and saw, updated live.
#[derive(Debug, Default)]
pub struct FilterLog {
    /// Server frames dropped on purpose.
    pub dropped: AtomicU64,
    /// Messages of every whole device → server frame, in order (without the
    /// authentication trailer frames carry after `Welcome`).
    pub sent_by_device: Mutex<Vec<Vec<u8>>>,
}

/// Puts a filter in front of `line` (the device's end of a link). Every
/// server frame is offered to `drop` and lost if it says so. Returns the end
/// the device uses instead, and the filter's log.
pub fn spawn(
    line: LinkEnd,
    mut drop: impl FnMut(&ServerFrame<'_>) -> bool + Send + 'static,
) -> (LinkEnd, Arc<FilterLog>) {
    let (device_end, filter_end) = tokio::io::duplex(64 * 1024);
    let log = Arc::new(FilterLog::default());
    let (mut line_read, mut line_write) = tokio::io::split(line);
    let (mut device_read, mut device_write) = tokio::io::split(filter_end);
    let down_log = log.clone();
    tokio::spawn(async move {
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match line_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            for &byte in &buf[..n] {
                pending.push(byte);
                if byte != 0 && pending.len() < MAX_FRAME {
                    continue;
                }
                let frame = std::mem::take(&mut pending);
                let lose = payload_of(&frame)
                    .and_then(|payload| {
                        let decodes = |p: &[u8]| ServerFrame::decode(p).is_ok();
                        let message = message_of(&payload, decodes);
                        ServerFrame::decode(message).ok().map(|f| drop(&f))
                    })
                    .unwrap_or(false);
                if lose {
                    down_log.dropped.fetch_add(1, Ordering::SeqCst);
                } else if device_write.write_all(&frame).await.is_err() {
                    return;
                }
            }
        }
    });
    let up_log = log.clone();
    tokio::spawn(async move {
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match device_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if line_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
            for &byte in &buf[..n] {
                pending.push(byte);
                if byte == 0 || pending.len() >= MAX_FRAME {
                    let frame = std::mem::take(&mut pending);
                    if let Some(payload) = payload_of(&frame) {
                        let decodes = |p: &[u8]| proto_core::ClientFrame::decode(p).is_ok();
                        let message = message_of(&payload, decodes).to_vec();
                        if let Ok(mut sent) = up_log.sent_by_device.lock() {
                            sent.push(message);
                        }
                    }
                }
            }
        }
    });
    (device_end, log)
}

/// The payload of one whole serial frame (its bytes up to and including the
/// delimiter), if it is intact.
/// The message of a payload seen on the line: the payload itself before `Welcome`, the
/// payload without its authentication trailer after (an observer has no keys to check it).
pub fn message_of(payload: &[u8], decodes: impl Fn(&[u8]) -> bool) -> &[u8] {
    if decodes(payload) {
        return payload;
    }
    let trailer = proto_core::framing::mac::TRAILER_LEN;
    &payload[..payload.len().saturating_sub(trailer)]
}

fn payload_of(frame: &[u8]) -> Option<Vec<u8>> {
    let mut accumulator = SerialAccumulator::new(vec![0u8; MAX_FRAME + 16]);
    match accumulator.feed(frame) {
        Feed::Frame { payload, .. } => Some(payload.to_vec()),
        _ => None,
    }
}
