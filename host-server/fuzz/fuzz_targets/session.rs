//! Fuzz target `session`: see `host_server_fuzz::session` for the input layout and the checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| host_server_fuzz::session(data));
