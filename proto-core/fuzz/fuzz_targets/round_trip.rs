//! Fuzz target `round_trip`: see `proto_core_fuzz::round_trip` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_core_fuzz::round_trip(data));
