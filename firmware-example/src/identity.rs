//! The device's identity, baked in at build time by `build.rs` from
//! `STATESYNC_DEVICE_NAME` and `STATESYNC_DEVICE_KEY`: its name, key, the
//! folder its own files live in and the inbox the host publishes to.
#![macro_use]

include!(concat!(env!("OUT_DIR"), "/identity.rs"));
