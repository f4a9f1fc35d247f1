//! The hand-written decoder behind `ServerFrame::decode` agrees with serde's
//! derived `Deserialize` (postcard) on every variant, and on the same bytes
//! damaged: cut short, with a byte changed, with bytes appended, and with a
//! random body behind a valid tag. Agreeing means the same frame, or both refuse.

#[allow(dead_code)] // roundtrip.rs uses the rest
mod strategies;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use proto_core::message::ServerFrame;

use strategies::server_variants;

/// What serde's derived decoder makes of `bytes` (trailing bytes refused, as `decode` does).
fn serde_decode(bytes: &[u8]) -> Option<ServerFrame<'_>> {
    match postcard::take_from_bytes::<ServerFrame<'_>>(bytes) {
        Ok((frame, [])) => Some(frame),
        _ => None,
    }
}

fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        ServerFrame::decode(bytes).ok(),
        serde_decode(bytes),
        "bytes {:02x?}",
        bytes
    );
    Ok(())
}

fn encode(frame: &ServerFrame<'_>) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    let len = frame.encode(&mut out).expect("fits").len();
    out.truncate(len);
    out
}

#[test]
fn both_decoders_agree_on_every_variant_whole_cut_changed_and_padded() {
    for (tag, variant) in server_variants().into_iter().enumerate() {
        let mut runner = TestRunner::new(Config {
            cases: 48,
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = (
            any::<u16>(),
            variant,
            any::<prop::sample::Index>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 1..4),
        );
        let result = runner.run(&strategy, |(id, message, at, byte, junk)| {
            let bytes = encode(&ServerFrame { id, message });
            prop_assert!(ServerFrame::decode(&bytes).is_ok(), "whole frame decodes");
            agree(&bytes)?;
            for len in 0..bytes.len() {
                agree(&bytes[..len])?;
            }
            let mut changed = bytes.clone();
            changed[at.index(bytes.len())] = byte;
            agree(&changed)?;
            let mut padded = bytes;
            padded.extend_from_slice(&junk);
            agree(&padded)
        });
        if let Err(failure) = result {
            panic!("variant with wire tag {tag}: {failure}");
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 4000, ..Config::default() })]

    #[test]
    fn both_decoders_agree_on_random_bodies_behind_a_known_tag(
        id in proptest::collection::vec(any::<u8>(), 1..4),
        tag in 0u8..28,
        body in proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(0u8), Just(1u8), Just(0x80u8), Just(0xffu8)],
            0..120,
        ),
    ) {
        let mut bytes = id;
        bytes.push(tag);
        bytes.extend_from_slice(&body);
        agree(&bytes)?;
    }

    #[test]
    fn both_decoders_agree_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        agree(&bytes)?;
    }
}
