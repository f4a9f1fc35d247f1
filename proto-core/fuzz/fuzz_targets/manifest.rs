//! Fuzz target `manifest`: see `manifest` in `proto-core/fuzz/src/server.rs` for the input layout and the checks.
#![no_main]

#[path = "../src/server.rs"]
#[allow(dead_code)] // each target uses one harness of the file
mod server;

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::manifest(data));
