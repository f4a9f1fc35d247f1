//! The hand-written codec behind `ProvisionMessage::encode` and `decode`
//! writes exactly the bytes serde's derived `Serialize` writes through
//! postcard (after the `SSPV` magic), refuses a buffer that is too small as
//! postcard does, and agrees with serde's derived `Deserialize` on every
//! variant and on the same bytes damaged: cut short, with a byte changed, with
//! bytes appended, and on random bodies. Agreeing means the same message, or
//! both refuse.

#[allow(dead_code)] // roundtrip.rs uses the rest
mod strategies;

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use proptest::test_runner::{Config, TestRunner};

use proto_core::message::CodecError;
use proto_core::provision::{ProvisionMessage, Refusal, MAGIC};

use strategies::{text, unit_enum};

/// One strategy per variant, in wire-tag order.
fn provision_variants() -> Vec<BoxedStrategy<ProvisionMessage<'static>>> {
    vec![
        (any::<[u8; 16]>(), proptest::option::of(text(40)))
            .prop_map(|(nonce, device)| ProvisionMessage::Offer { nonce, device })
            .boxed(),
        (
            any::<[u8; 16]>(),
            text(40),
            any::<[u8; 32]>(),
            proptest::option::of(any::<[u8; 32]>()),
        )
            .prop_map(|(nonce, device, key, proof)| ProvisionMessage::Provision {
                nonce,
                device,
                key,
                proof,
            })
            .boxed(),
        (text(40), any::<[u8; 32]>())
            .prop_map(|(device, proof)| ProvisionMessage::Accepted { device, proof })
            .boxed(),
        unit_enum::<Refusal>()
            .prop_map(|reason| ProvisionMessage::Refused { reason })
            .boxed(),
    ]
}

/// What serde's derived encoder writes after the magic.
fn serde_encode(message: &ProvisionMessage<'_>) -> Vec<u8> {
    let mut out = vec![0u8; 512];
    let body = postcard::to_slice(message, &mut out[MAGIC.len()..])
        .expect("fits")
        .len();
    out[..MAGIC.len()].copy_from_slice(&MAGIC);
    out.truncate(MAGIC.len() + body);
    out
}

/// What serde's derived decoder makes of a payload (magic first, no trailing bytes).
fn serde_decode(bytes: &[u8]) -> Option<ProvisionMessage<'_>> {
    match postcard::take_from_bytes(bytes.strip_prefix(&MAGIC)?) {
        Ok((message, [])) => Some(message),
        _ => None,
    }
}

fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        ProvisionMessage::decode(bytes).ok(),
        serde_decode(bytes),
        "bytes {:02x?}",
        bytes
    );
    Ok(())
}

#[test]
fn both_codecs_write_and_read_the_same_bytes_for_every_variant_whole_cut_changed_and_padded() {
    for (tag, variant) in provision_variants().into_iter().enumerate() {
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = (
            variant,
            any::<prop::sample::Index>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 1..4),
        );
        let result = runner.run(&strategy, |(message, at, byte, junk)| {
            let theirs = serde_encode(&message);
            let mut ours = vec![0u8; 512];
            prop_assert_eq!(
                message.encode(&mut ours).map(|used| used.to_vec()),
                Ok(theirs.clone())
            );
            for len in 0..theirs.len() {
                let mut short = vec![0u8; len];
                prop_assert_eq!(
                    message.encode(&mut short).map(|used| used.len()),
                    Err(CodecError::BufferFull),
                    "buffer of {} bytes",
                    len
                );
            }
            prop_assert_eq!(ProvisionMessage::decode(&theirs), Ok(message));
            for len in 0..theirs.len() {
                agree(&theirs[..len])?;
            }
            let mut changed = theirs.clone();
            changed[at.index(theirs.len())] = byte;
            agree(&changed)?;
            let mut padded = theirs;
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
    fn both_decoders_agree_on_random_bodies_behind_the_magic_and_a_known_tag(
        tag in 0u8..6,
        body in proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(0u8), Just(1u8), Just(0x80u8), Just(0xffu8)],
            0..120,
        ),
    ) {
        let mut bytes = MAGIC.to_vec();
        bytes.push(tag);
        bytes.extend_from_slice(&body);
        agree(&bytes)?;
    }

    #[test]
    fn both_decoders_agree_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        agree(&bytes)?;
    }
}
