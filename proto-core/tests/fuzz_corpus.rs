//! Replays the committed fuzz corpus with `cargo test`, so what fuzzing found keeps being tested
//! without nightly or libFuzzer.
//!
//! Every file of `proto-core/fuzz/corpus/<target>/` and of `proto-core/fuzz/artifacts-regressions/`
//! (inputs that once crashed, if any) goes through every harness: the very code the fuzz targets
//! run (the `proto-core-fuzz` crate in `fuzz/`, a dev-dependency), with the same checks. A panic
//! fails the test and names the file and the harness.

use proto_core_fuzz as harness;

use harness::corpus::files_in;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn replay(file: &Path, harnesses: &[(&str, harness::Harness)]) {
    let data = std::fs::read(file).expect("a readable corpus file");
    for (name, harness) in harnesses {
        let outcome = std::panic::catch_unwind(|| harness(&data));
        assert!(
            outcome.is_ok(),
            "harness `{name}` panicked on {}",
            file.display()
        );
    }
}

#[test]
fn every_target_has_a_committed_corpus() {
    for (target, _) in harness::HARNESSES {
        let files = files_in(&fuzz_dir().join("corpus").join(target));
        assert!(
            !files.is_empty(),
            "proto-core/fuzz/corpus/{target}/ is empty"
        );
    }
}

#[test]
fn every_corpus_file_and_regression_passes_every_harness() {
    // A file found for one target is still fair input for all the others.
    let mut files = files_in(&fuzz_dir().join("artifacts-regressions"));
    for (target, _) in harness::HARNESSES {
        files.extend(files_in(&fuzz_dir().join("corpus").join(target)));
    }
    assert!(!files.is_empty());
    for file in &files {
        replay(file, &harness::HARNESSES);
    }
}

#[test]
fn a_name_with_a_multibyte_character_across_byte_three_is_judged_not_panicked_on() {
    // Found by the `name_validate` target: `is_reserved` sliced the stem at byte 3 to look
    // for `COM1`/`LPT1`, which panics inside a multi-byte character. A peer's file name
    // could crash the server.
    for name in ["x`\u{43e}/:", "ab\u{e9}", "CO\u{e9}", "a/x`\u{43e}.txt"] {
        let _ = proto_core::name::validate(name);
        let _ = proto_core::name::validate_label(name, proto_core::name::MAX_DEVICE_NAME_LEN);
    }
    assert_eq!(proto_core::name::validate("ab\u{e9}"), Ok(()));
}
