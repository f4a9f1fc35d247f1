//! The fuzz harnesses: one function per cargo-fuzz target, each taking the raw input.
//!
//! The targets in `fuzz_targets/` only call these, and `proto-core/tests/fuzz_corpus.rs`
//! (a dev-dependency on this crate without its `libfuzzer` feature) replays the committed
//! corpus through the very same checks with `cargo test`. Each harness panics only when
//! proto-core breaks a promise; input that does not fit a harness's layout is skipped.

pub mod corpus;

use proto_core::framing::{Feed, Framing, LengthAccumulator, SerialAccumulator};
use proto_core::message::{ClientFrame, ServerFrame};
use proto_core::name::{validate, validate_label, MAX_DEVICE_NAME_LEN, MAX_NAME_LEN};
use proto_core::provision::{check_request, request, ProvisionMessage, MAGIC, MAX_PAYLOAD};

/// A harness: takes one fuzz input, panics if proto-core broke a promise.
pub type Harness = fn(&[u8]);

/// Every harness by the name of its fuzz target (and corpus directory).
pub const HARNESSES: [(&str, Harness); 8] = [
    ("serial_accumulator", serial_accumulator),
    ("length_accumulator", length_accumulator),
    ("client_frame_decode", client_frame_decode),
    ("server_frame_decode", server_frame_decode),
    ("name_validate", name_validate),
    ("round_trip", round_trip),
    ("frame_open", frame_open),
    ("provision_decode", provision_decode),
];

/// Feeds a stream to the serial (COBS + CRC-32) accumulator in pieces.
///
/// Input: byte 0 picks the buffer size (×8), byte 1 the piece size; the rest is the stream.
/// Checks: every call that yields makes progress; every payload fits the buffer, decodes
/// without panic, and re-frames to a wire frame that a fresh accumulator turns back into it.
pub fn serial_accumulator(data: &[u8]) {
    let [size, split, stream @ ..] = data else {
        return;
    };
    let capacity = usize::from(*size) * 8;
    let mut accumulator = SerialAccumulator::new(vec![0u8; capacity]);
    let mut payloads = Vec::new();
    for piece in stream.chunks(usize::from(*split) + 1) {
        let mut input = piece;
        loop {
            match accumulator.feed(input) {
                Feed::Consumed => break,
                Feed::Frame { payload, remaining } => {
                    assert!(payload.len() <= capacity, "payload larger than the buffer");
                    assert!(remaining.len() < input.len(), "a frame without progress");
                    payloads.push(payload.to_vec());
                    input = remaining;
                }
                Feed::Error { remaining, .. } => {
                    assert!(remaining.len() < input.len(), "an error without progress");
                    input = remaining;
                }
            }
        }
    }
    for payload in payloads {
        let _ = ClientFrame::decode(&payload);
        let _ = ServerFrame::decode(&payload);
        let mut wire = vec![0u8; Framing::Serial.max_wire_len(payload.len())];
        let len = Framing::Serial
            .encode(&payload, &mut wire)
            .expect("max_wire_len is enough");
        let mut fresh = SerialAccumulator::new(vec![0u8; len]);
        match fresh.feed(&wire[..len]) {
            Feed::Frame {
                payload: again,
                remaining,
            } => {
                assert_eq!(again, &payload[..]);
                assert!(remaining.is_empty());
            }
            other => panic!("a re-framed payload did not come back: {other:?}"),
        }
    }
}

/// Feeds a stream to the length-prefixed (TCP) accumulator in pieces.
///
/// Input: byte 0 picks the buffer size (×8), byte 1 the piece size; the rest is the stream.
/// Checks: every call that yields makes progress; every payload fits the buffer and
/// decodes without panic.
pub fn length_accumulator(data: &[u8]) {
    let [size, split, stream @ ..] = data else {
        return;
    };
    let capacity = usize::from(*size) * 8;
    let mut accumulator = LengthAccumulator::new(vec![0u8; capacity]);
    for piece in stream.chunks(usize::from(*split) + 1) {
        let mut input = piece;
        loop {
            match accumulator.feed(input) {
                Feed::Consumed => break,
                Feed::Frame { payload, remaining } => {
                    assert!(payload.len() <= capacity, "payload larger than the buffer");
                    assert!(remaining.len() < input.len(), "a frame without progress");
                    let _ = ClientFrame::decode(payload);
                    let _ = ServerFrame::decode(payload);
                    input = remaining;
                }
                Feed::Error { remaining, .. } => {
                    assert!(remaining.len() < input.len(), "an error without progress");
                    input = remaining;
                }
            }
        }
    }
}

/// Decodes the input as a client frame (what a server receives).
pub fn client_frame_decode(data: &[u8]) {
    let _ = ClientFrame::decode(data);
}

/// Decodes the input as a server frame (what a device receives).
pub fn server_frame_decode(data: &[u8]) {
    let _ = ServerFrame::decode(data);
}

/// A provisioning payload as a board or a host receives it. Layout: byte 0 picks the board's
/// state (even: no identity; odd: the current key is `[byte 1; 32]`), bytes 2..18 are the
/// board's nonce, the rest is the payload.
///
/// Checks: no panic; the hand-written decoder takes exactly what serde's derived decoder
/// (postcard) takes, and makes the same message of it; what decodes re-encodes to bytes that decode to the same message (the
/// decoder takes padded varints the encoder never writes); a request the board
/// accepts carries its nonce and, when it has a key, is exactly the request the holder of that
/// key would have made (so nobody else can make one).
pub fn provision_decode(data: &[u8]) {
    let (Some(&state), Some(&key_byte), Some(nonce), Some(payload)) =
        (data.first(), data.get(1), data.get(2..18), data.get(18..))
    else {
        return;
    };
    let decoded = ProvisionMessage::decode(payload);
    let by_serde = match payload.strip_prefix(&MAGIC).map(postcard::take_from_bytes) {
        Some(Ok((message, []))) => Some(message),
        _ => None,
    };
    assert_eq!(
        decoded.ok(),
        by_serde,
        "the hand-written decoder and serde's disagree"
    );
    let Ok(message) = decoded else {
        return;
    };
    let mut out = [0u8; 2 * MAX_PAYLOAD];
    let encoded = message.encode(&mut out).expect("a decoded message encodes");
    assert_eq!(
        ProvisionMessage::decode(encoded),
        Ok(message),
        "decode, encode, decode is not stable"
    );
    let nonce: [u8; 16] = nonce.try_into().expect("16 bytes");
    let current = [key_byte; 32];
    let current_key = (state % 2 == 1).then_some(&current[..]);
    if let Some(Ok((device, key))) = check_request(&message, &nonce, current_key) {
        let ProvisionMessage::Provision { nonce: asked, .. } = message else {
            panic!("only a Provision is a request");
        };
        assert_eq!(asked, nonce, "a request for another nonce was accepted");
        if current_key.is_some() {
            assert_eq!(
                message,
                request(nonce, current_key, device, &key),
                "an accepted request differs from the one the key holder makes"
            );
        }
    }
}

fn harmless_characters(name: &str) -> bool {
    !name.chars().any(|c| c.is_control() || c == '\\')
}

/// Validates UTF-8 input as a file name and as a device label.
///
/// Checks: whatever is accepted cannot escape the folder it is stored in: relative (no
/// leading `/`, no drive letter), no `.`, `..` or empty segment, no NUL, control character
/// or backslash, within the length limit.
pub fn name_validate(data: &[u8]) {
    let Ok(name) = core::str::from_utf8(data) else {
        return;
    };
    if validate(name).is_ok() {
        assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN, "{name:?}");
        assert!(!name.starts_with('/'), "absolute: {name:?}");
        let b = name.as_bytes();
        assert!(
            !(b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'),
            "drive: {name:?}"
        );
        assert!(harmless_characters(name), "bad character: {name:?}");
        assert!(
            name.split('/')
                .all(|segment| !matches!(segment, "" | "." | "..")),
            "escaping segment: {name:?}"
        );
    }
    if validate_label(name, MAX_DEVICE_NAME_LEN).is_ok() {
        assert!(
            !name.is_empty() && name.len() <= MAX_DEVICE_NAME_LEN,
            "{name:?}"
        );
        assert!(!name.contains('/') && harmless_characters(name), "{name:?}");
        assert!(name != "." && name != "..", "{name:?}");
    }
}

macro_rules! round_trip_as {
    ($frame:ty, $bytes:expr) => {{
        let bytes: &[u8] = $bytes;
        if let Ok(first) = <$frame>::decode(bytes) {
            // The encoder writes the shortest varints, so re-encoding is never longer.
            let mut out = vec![0u8; bytes.len()];
            let encoded = first
                .encode(&mut out)
                .expect("re-encoding is never longer than the input")
                .to_vec();
            let second = <$frame>::decode(&encoded).expect("an encoding decodes");
            assert_eq!(first, second);
            let mut again = vec![0u8; encoded.len()];
            assert_eq!(
                second.encode(&mut again).expect("same length"),
                &encoded[..]
            );
        }
    }};
}

/// Decode → encode → decode → encode.
///
/// Input: the low bit of byte 0 picks the direction (0: client frame, 1: server frame);
/// the rest is the payload. Checks: whatever decodes re-encodes into no more bytes than
/// it came in, decodes to an equal frame, and encodes again to the same bytes.
pub fn round_trip(data: &[u8]) {
    let [direction, payload @ ..] = data else {
        return;
    };
    if direction & 1 == 0 {
        round_trip_as!(ClientFrame, payload);
    } else {
        round_trip_as!(ServerFrame, payload);
    }
}

/// Opens frames with the authentication of frames after `Welcome` (`framing::mac`).
///
/// Input: byte 0 is how many frames the sender sealed before (lost on the line), byte 1 a
/// position to damage; the rest is both a frame to open as it is and a payload to seal.
/// Checks: opening never panics; a frame that opens is exactly what the sender would have
/// sealed at that sequence number (no forgery); a sealed payload opens after any number of
/// lost frames below 256, exactly once (a replay fails), and fails with any byte changed.
pub fn frame_open(data: &[u8]) {
    use proto_core::framing::mac::{Direction, Opener, Sealer, SessionKey, TRAILER_LEN};
    let [lost, damage, rest @ ..] = data else {
        return;
    };
    let key = || {
        SessionKey::derive(
            b"fuzz-key",
            &[1; 16],
            &[2; 16],
            "fz-1",
            Direction::ClientToServer,
        )
    };
    let seal = |sealer: &mut Sealer, payload: &[u8]| {
        let mut frame = payload.to_vec();
        frame.resize(payload.len() + TRAILER_LEN, 0);
        let len = sealer
            .seal(&mut frame, payload.len())
            .expect("the trailer fits");
        frame.truncate(len);
        frame
    };

    let mut opener = Opener::new(key());
    if let Ok(payload) = opener.open(rest) {
        let seq = opener.expected() - 1;
        let mut sealer = Sealer::new(key());
        for _ in 0..seq {
            seal(&mut sealer, b"");
        }
        assert_eq!(seal(&mut sealer, payload), rest, "a forged frame opened");
    }

    let mut sealer = Sealer::new(key());
    for _ in 0..*lost {
        seal(&mut sealer, b"lost");
    }
    let frame = seal(&mut sealer, rest);
    let mut damaged = frame.clone();
    let at = usize::from(*damage) % damaged.len();
    damaged[at] ^= 0x01;
    let mut opener = Opener::new(key());
    assert!(opener.open(&damaged).is_err(), "a damaged frame opened");
    assert_eq!(
        opener.open(&frame).ok(),
        Some(rest),
        "a sealed frame did not open"
    );
    assert!(opener.open(&frame).is_err(), "a replayed frame opened");
}
