//! Fuzz target `name_validate`: see `proto_core_fuzz::name_validate` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_core_fuzz::name_validate(data));
