//! Fuzz target `serial_accumulator`: see `proto_core_fuzz::serial_accumulator` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_core_fuzz::serial_accumulator(data));
