//! The files this board holds in flash and uploads: a few small ones and one
//! large enough (64 KiB) to take several seconds at 115200 baud.
//!
//! Their record names start with the device name (`DEVICE/hello.txt`, made
//! at boot by the store from the provisioned name), so several boards can
//! share a server without their files colliding.

/// One built-in file.
pub struct SampleFile {
    /// The name inside the device's folder: the record name is `DEVICE/` and this.
    pub name: &'static str,
    /// The content, in flash.
    pub content: &'static [u8],
}

/// Every built-in file, in manifest order.
pub const FILES: [SampleFile; 3] = [
    SampleFile {
        name: "hello.txt",
        content: b"Hello from a statesync example board.\n",
    },
    SampleFile {
        name: "config/settings.json",
        content:
            br#"{"sample_rate_hz": 50, "channels": ["temperature", "humidity"], "upload": "on-boot"}
"#,
    },
    SampleFile {
        name: "logs/large.bin",
        content: include_bytes!(concat!(env!("OUT_DIR"), "/large.bin")),
    },
];

/// Longest [`SampleFile::name`], checked below.
pub const LONGEST_NAME: usize = 24;

const _: () = {
    let mut index = 0;
    while index < FILES.len() {
        assert!(FILES[index].name.len() <= LONGEST_NAME);
        index += 1;
    }
};
