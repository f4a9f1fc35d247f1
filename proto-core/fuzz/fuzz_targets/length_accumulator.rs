//! Fuzz target `length_accumulator`: see `proto_core_fuzz::length_accumulator` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_core_fuzz::length_accumulator(data));
