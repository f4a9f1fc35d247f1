//! Fuzz target `frame_open`: see `proto_core_fuzz::frame_open` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_core_fuzz::frame_open(data));
