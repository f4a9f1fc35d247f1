//! Fuzz target `server_frame_decode`: see `proto_core_fuzz::server_frame_decode` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_core_fuzz::server_frame_decode(data));
