//! The device's identity, baked in at build time by `build.rs` from
//! `STATESYNC_DEVICE_NAME` and `STATESYNC_DEVICE_KEY`.

include!(concat!(env!("OUT_DIR"), "/identity.rs"));
