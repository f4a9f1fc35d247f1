//! Fuzz target `manifest`: see `manifest` in `proto-core/fuzz/src/server.rs` for the input layout and the checks.
#![no_main]

#[path = "../src/server.rs"]
mod server;

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::manifest(data));
