//! Property tests of the message codec and both framings: every variant of both
//! message enums survives encode → decode and encode → frame → accumulator
//! (under random splits) → decode; malformed input is refused, never a panic.

mod schema;
mod strategies;

use core::fmt::Debug;

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use proto_core::framing::{Accumulator, Feed, Framing};
use proto_core::message::{ClientFrame, ClientMessage, CodecError, ServerFrame, ServerMessage};

use schema::variant_names;
use strategies::{
    client_frame, client_variants, server_frame, server_variants, variant_name_of, varint_len,
    varint_u16,
};

/// Cases per message variant; every variant gets a run of its own, so none is left to chance.
const CASES_PER_VARIANT: u32 = 48;

/// Room for any generated frame (names are short, payloads stay under 1100 bytes).
const BUFFER: usize = 4096;

/// A frame of either direction, so one set of checks serves both.
trait WireFrame: Debug + Clone + 'static {
    /// The frame's message enum.
    type Message: Debug + Clone + 'static;
    /// Pairs a request id and a message.
    fn new(id: u16, message: Self::Message) -> Self;
    /// The request id.
    fn id(&self) -> u16;
    /// Encodes into a fresh vector.
    fn to_bytes(&self) -> Vec<u8>;
    /// Encodes into `out`, returning the length used.
    fn encode_len_into(&self, out: &mut [u8]) -> Result<usize, CodecError>;
    /// Decodes `bytes`, and tells whether the result equals `self`.
    fn decodes_to_self(&self, bytes: &[u8]) -> Result<bool, CodecError>;
    /// Decodes `bytes` of this direction, keeping only success or failure.
    fn try_decode(bytes: &[u8]) -> Result<(), CodecError>;
}

impl WireFrame for ClientFrame<'static> {
    type Message = ClientMessage<'static>;
    fn new(id: u16, message: Self::Message) -> Self {
        ClientFrame { id, message }
    }
    fn id(&self) -> u16 {
        self.id
    }
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; BUFFER];
        let len = self
            .encode_len_into(&mut out)
            .expect("fits the test buffer");
        out.truncate(len);
        out
    }
    fn encode_len_into(&self, out: &mut [u8]) -> Result<usize, CodecError> {
        self.encode(out).map(|used| used.len())
    }
    fn decodes_to_self(&self, bytes: &[u8]) -> Result<bool, CodecError> {
        Ok(ClientFrame::decode(bytes)? == *self)
    }
    fn try_decode(bytes: &[u8]) -> Result<(), CodecError> {
        ClientFrame::decode(bytes).map(drop)
    }
}

impl WireFrame for ServerFrame<'static> {
    type Message = ServerMessage<'static>;
    fn new(id: u16, message: Self::Message) -> Self {
        ServerFrame { id, message }
    }
    fn id(&self) -> u16 {
        self.id
    }
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; BUFFER];
        let len = self
            .encode_len_into(&mut out)
            .expect("fits the test buffer");
        out.truncate(len);
        out
    }
    fn encode_len_into(&self, out: &mut [u8]) -> Result<usize, CodecError> {
        self.encode(out).map(|used| used.len())
    }
    fn decodes_to_self(&self, bytes: &[u8]) -> Result<bool, CodecError> {
        Ok(ServerFrame::decode(bytes)? == *self)
    }
    fn try_decode(bytes: &[u8]) -> Result<(), CodecError> {
        ServerFrame::decode(bytes).map(drop)
    }
}

/// What a per-variant check gets: the variant's tag, a frame of it, and random extras.
struct Case<F> {
    tag: usize,
    frame: F,
    other: F,
    splits: Vec<usize>,
    junk: Vec<u8>,
}

/// Runs `check` on [`CASES_PER_VARIANT`] frames of every variant, one variant after another.
/// `other` frames (any variant) are generated beside each, for the framing checks.
fn for_every_variant<F: WireFrame>(
    variants: Vec<BoxedStrategy<F::Message>>,
    any_frame: impl Strategy<Value = F> + Clone,
    check: impl Fn(Case<F>) -> Result<(), TestCaseError>,
) {
    for (tag, variant) in variants.into_iter().enumerate() {
        let mut runner = TestRunner::new(Config {
            cases: CASES_PER_VARIANT,
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = (
            varint_u16(),
            variant,
            any_frame.clone(),
            proptest::collection::vec(1usize..80, 1..8),
            proptest::collection::vec(any::<u8>(), 1..8),
        );
        let result = runner.run(&strategy, |(id, message, other, splits, junk)| {
            check(Case {
                tag,
                frame: F::new(id, message),
                other,
                splits,
                junk,
            })
        });
        if let Err(failure) = result {
            panic!("variant with wire tag {tag}: {failure}");
        }
    }
}

/// Encode → decode gives the frame back; the byte after the request id is the variant's tag.
fn codec_round_trip<F: WireFrame>(case: Case<F>) -> Result<(), TestCaseError> {
    let bytes = case.frame.to_bytes();
    let tag_at = varint_len(u64::from(case.frame.id()));
    prop_assert_eq!(
        bytes[tag_at] as usize,
        case.tag,
        "wire tag of {:?}",
        case.frame
    );
    prop_assert!(case.frame.decodes_to_self(&bytes)?, "decoded differently");
    Ok(())
}

/// Every strict prefix of an encoding is refused, so is the encoding with bytes appended,
/// and encoding into a buffer one byte short reports `BufferFull`.
fn malformed_is_refused<F: WireFrame>(case: Case<F>) -> Result<(), TestCaseError> {
    let bytes = case.frame.to_bytes();
    for len in 0..bytes.len() {
        prop_assert_eq!(
            F::try_decode(&bytes[..len]),
            Err(CodecError::Malformed),
            "prefix of {} bytes",
            len
        );
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&case.junk);
    prop_assert_eq!(
        F::try_decode(&longer),
        Err(CodecError::Malformed),
        "trailing bytes"
    );
    let mut short = vec![0u8; bytes.len() - 1];
    prop_assert_eq!(
        case.frame.encode_len_into(&mut short),
        Err(CodecError::BufferFull)
    );
    Ok(())
}

/// Feeds `wire` to a fresh accumulator in pieces of the given sizes (cycled);
/// returns the frames it yields and how many errors it reported.
fn reassemble(framing: Framing, wire: &[u8], splits: &[usize]) -> (Vec<Vec<u8>>, usize) {
    let mut accumulator = Accumulator::new(framing, vec![0u8; framing.max_wire_len(BUFFER)]);
    let (mut frames, mut errors) = (Vec::new(), 0);
    let mut rest = wire;
    for &size in splits.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (mut piece, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        loop {
            match accumulator.feed(piece) {
                Feed::Consumed => break,
                Feed::Frame { payload, remaining } => {
                    frames.push(payload.to_vec());
                    piece = remaining;
                }
                Feed::Error { remaining, .. } => {
                    errors += 1;
                    piece = remaining;
                }
            }
        }
    }
    (frames, errors)
}

/// The frame and another one, framed back to back and fed under random splits,
/// come out whole, in order, and decode to what was sent.
fn framed_round_trip<F: WireFrame>(framing: Framing, case: Case<F>) -> Result<(), TestCaseError> {
    let payloads = [case.frame.to_bytes(), case.other.to_bytes()];
    let mut wire = Vec::new();
    for payload in &payloads {
        let mut out = vec![0u8; framing.max_wire_len(payload.len())];
        let len = framing
            .encode(payload, &mut out)
            .expect("max_wire_len is enough");
        wire.extend_from_slice(&out[..len]);
    }
    let (frames, errors) = reassemble(framing, &wire, &case.splits);
    prop_assert_eq!(errors, 0);
    prop_assert_eq!(&frames[..], &payloads[..]);
    prop_assert!(case.frame.decodes_to_self(&frames[0])?);
    prop_assert!(case.other.decodes_to_self(&frames[1])?);
    Ok(())
}

#[test]
fn strategies_cover_every_variant_in_wire_tag_order() {
    fn check<F: WireFrame>(variants: Vec<BoxedStrategy<F::Message>>, names: &[&str]) {
        assert_eq!(variants.len(), names.len(), "one strategy per variant");
        let mut runner = TestRunner::deterministic();
        for (strategy, name) in variants.iter().zip(names) {
            let message = strategy.new_tree(&mut runner).expect("a value").current();
            assert_eq!(&variant_name_of(&message), name);
        }
    }
    check::<ClientFrame<'static>>(client_variants(), variant_names::<ClientMessage<'static>>());
    check::<ServerFrame<'static>>(server_variants(), variant_names::<ServerMessage<'static>>());
}

#[test]
fn every_client_message_round_trips_through_postcard() {
    for_every_variant::<ClientFrame<'static>>(client_variants(), client_frame(), codec_round_trip);
}

#[test]
fn every_server_message_round_trips_through_postcard() {
    for_every_variant::<ServerFrame<'static>>(server_variants(), server_frame(), codec_round_trip);
}

#[test]
fn every_client_message_survives_serial_framing_in_any_split() {
    for_every_variant::<ClientFrame<'static>>(client_variants(), client_frame(), |case| {
        framed_round_trip(Framing::Serial, case)
    });
}

#[test]
fn every_server_message_survives_serial_framing_in_any_split() {
    for_every_variant::<ServerFrame<'static>>(server_variants(), server_frame(), |case| {
        framed_round_trip(Framing::Serial, case)
    });
}

#[test]
fn every_client_message_survives_length_framing_in_any_split() {
    for_every_variant::<ClientFrame<'static>>(client_variants(), client_frame(), |case| {
        framed_round_trip(Framing::Length, case)
    });
}

#[test]
fn every_server_message_survives_length_framing_in_any_split() {
    for_every_variant::<ServerFrame<'static>>(server_variants(), server_frame(), |case| {
        framed_round_trip(Framing::Length, case)
    });
}

#[test]
fn truncated_or_padded_client_messages_are_refused() {
    for_every_variant::<ClientFrame<'static>>(
        client_variants(),
        client_frame(),
        malformed_is_refused,
    );
}

#[test]
fn truncated_or_padded_server_messages_are_refused() {
    for_every_variant::<ServerFrame<'static>>(
        server_variants(),
        server_frame(),
        malformed_is_refused,
    );
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ClientFrame::decode(&bytes);
        let _ = ServerFrame::decode(&bytes);
    }

    /// Random bodies behind a valid request id and a plausible tag reach deep into every variant's decoder.
    #[test]
    fn decoding_random_bodies_of_known_tags_never_panics(
        tag in 0u8..32,
        body in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut bytes = vec![0x01, tag];
        bytes.extend_from_slice(&body);
        // Whatever decodes re-encodes to something that decodes the same.
        let mut again = vec![0u8; BUFFER];
        if let Ok(frame) = ClientFrame::decode(&bytes) {
            let len = frame.encode(&mut again).map(|used| used.len());
            prop_assert_eq!(len.map(|len| ClientFrame::decode(&again[..len])), Ok(Ok(frame)));
        }
        if let Ok(frame) = ServerFrame::decode(&bytes) {
            let len = frame.encode(&mut again).map(|used| used.len());
            prop_assert_eq!(len.map(|len| ServerFrame::decode(&again[..len])), Ok(Ok(frame)));
        }
    }

    #[test]
    fn accumulators_never_panic_on_garbage(
        garbage in proptest::collection::vec(any::<u8>(), 0..1500),
        splits in proptest::collection::vec(1usize..100, 1..6),
    ) {
        for framing in [Framing::Serial, Framing::Length] {
            let (frames, _) = reassemble(framing, &garbage, &splits);
            for payload in frames {
                let _ = ClientFrame::decode(&payload);
                let _ = ServerFrame::decode(&payload);
            }
        }
    }
}
