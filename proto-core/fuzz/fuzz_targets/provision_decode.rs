//! Fuzz target `provision_decode`: see `proto_core_fuzz::provision_decode` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_core_fuzz::provision_decode(data));
