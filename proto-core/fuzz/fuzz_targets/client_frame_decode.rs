//! Fuzz target `client_frame_decode`: see `proto_core_fuzz::client_frame_decode` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_core_fuzz::client_frame_decode(data));
