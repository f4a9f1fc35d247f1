//! The files this board holds in flash and uploads: a few small ones and one
//! large enough (64 KiB) to take several seconds at 115200 baud.
//!
//! Names start with the device name, so several boards can share a server
//! without their files colliding.

/// One built-in file.
pub struct SampleFile {
    /// The record name: `DEVICE/…`.
    pub name: &'static str,
    /// The content, in flash.
    pub content: &'static [u8],
}

/// Every built-in file, in manifest order.
pub const FILES: [SampleFile; 3] = [
    SampleFile {
        name: device_path!("hello.txt"),
        content: b"Hello from a statesync example board.\n",
    },
    SampleFile {
        name: device_path!("config/settings.json"),
        content:
            br#"{"sample_rate_hz": 50, "channels": ["temperature", "humidity"], "upload": "on-boot"}
"#,
    },
    SampleFile {
        name: device_path!("logs/large.bin"),
        content: include_bytes!(concat!(env!("OUT_DIR"), "/large.bin")),
    },
];
