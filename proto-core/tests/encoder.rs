//! The hand-written encoder behind `ClientFrame::encode` writes exactly the
//! bytes serde's derived `Serialize` writes through postcard, for every
//! variant, and refuses a buffer that is too small as postcard does.

#[allow(dead_code)] // roundtrip.rs uses the rest
mod strategies;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use proto_core::message::{ClientFrame, CodecError};

use strategies::client_variants;

#[test]
fn both_encoders_write_the_same_bytes_for_every_variant_and_refuse_short_buffers() {
    for (tag, variant) in client_variants().into_iter().enumerate() {
        let mut runner = TestRunner::new(Config {
            cases: 48,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&(any::<u16>(), variant), |(id, message)| {
            let frame = ClientFrame { id, message };
            let mut theirs = vec![0u8; 4096];
            let theirs = postcard::to_slice(&frame, &mut theirs)
                .expect("fits")
                .to_vec();
            let mut ours = vec![0u8; 4096];
            prop_assert_eq!(
                frame.encode(&mut ours).map(|used| used.to_vec()),
                Ok(theirs.clone())
            );
            for len in 0..theirs.len() {
                let mut short = vec![0u8; len];
                prop_assert_eq!(
                    frame.encode(&mut short).map(|used| used.len()),
                    Err(CodecError::BufferFull),
                    "buffer of {} bytes",
                    len
                );
            }
            Ok(())
        });
        if let Err(failure) = result {
            panic!("variant with wire tag {tag}: {failure}");
        }
    }
}
