//! A test rig: a real `host-server` on `127.0.0.1:0` with simulated serial
//! lines attached to it (each a [`Link`] whose far end is a pseudo-terminal
//! the server serves with `--serial`), and simulated devices on those lines
//! or on TCP.
//!
//! The server runs in real time, so serial tests keep files small (8–32 KiB
//! take 1–3 s at 115,200 baud).

use std::sync::Arc;

use crate::device::{Device, DeviceOptions, MemStore, ServerAddr, Transport};
use crate::link::{Cable, LineModel, LineStats, Link, LinkEnd};
use crate::process::{Profile, ServerProcess};
use crate::pty::PtyBridge;

/// One serial line between a device slot and the server.
pub struct SerialLine {
    /// The cable, to pull and plug.
    pub cable: Cable,
    /// Counters of the direction device → server.
    pub up: Arc<LineStats>,
    /// Counters of the direction server → device.
    pub down: Arc<LineStats>,
    /// The device's end, until a device takes it.
    end: Option<LinkEnd>,
    /// Keeps the pseudo-terminal the server reads.
    _port: PtyBridge,
}

/// A running server with its serial lines.
pub struct Rig {
    /// The server process (kill, restart, data directory).
    pub server: ServerProcess,
    /// Its TCP address, shared with every TCP device.
    pub addr: ServerAddr,
    /// The serial lines, in the order of their models.
    pub lines: Vec<SerialLine>,
}

impl Rig {
    /// Starts a server with one serial line per model (the device → server
    /// direction follows the model, the other direction the same model with
    /// another seed) and `serve_args` added to `serve`.
    ///
    /// Must be called inside a multi-threaded tokio runtime (it blocks while
    /// the server starts).
    pub fn start(lines: &[LineModel], serve_args: &[&str]) -> Rig {
        let mut serial = Vec::new();
        let mut args: Vec<String> = serve_args.iter().map(|&a| a.to_owned()).collect();
        for model in lines {
            let link = Link::symmetric(model.clone());
            let port = PtyBridge::new(link.b).expect("a pseudo-terminal for the serial line");
            args.push("--serial".into());
            args.push(format!("{}:{}", port.path_str(), model.baud));
            serial.push(SerialLine {
                cable: link.cable,
                up: link.a_to_b,
                down: link.b_to_a,
                end: Some(link.a),
                _port: port,
            });
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = tokio::task::block_in_place(|| ServerProcess::start(Profile::Debug, &args));
        let addr = ServerAddr::new(&server.addr);
        Rig {
            server,
            addr,
            lines: serial,
        }
    }

    /// Registers device `name` and returns its key.
    pub fn register(&self, name: &str) -> Vec<u8> {
        let key = tokio::task::block_in_place(|| self.server.add_device(name));
        hex::decode(key).expect("device add prints a hex key")
    }

    /// Registers `name` and starts it on serial line `line` (not connected yet).
    pub fn serial_device(
        &mut self,
        line: usize,
        name: &str,
        store: MemStore,
        options: DeviceOptions,
    ) -> Device {
        self.serial_device_through(line, name, store, options, |end| end)
    }

    /// Like [`Rig::serial_device`], with a middlebox between the device and
    /// its line: `through` takes the line's end and gives the device's (e.g.
    /// [`crate::frame_filter::spawn`], [`crate::bit_flipper::spawn`]).
    pub fn serial_device_through(
        &mut self,
        line: usize,
        name: &str,
        store: MemStore,
        options: DeviceOptions,
        through: impl FnOnce(LinkEnd) -> LinkEnd,
    ) -> Device {
        let key = self.register(name);
        let end = self.lines[line]
            .end
            .take()
            .expect("one device per serial line");
        Device::spawn(name, &key, Transport::serial(through(end)), store, options)
    }

    /// Registers `name` and starts it on TCP (not connected yet).
    pub fn tcp_device(&self, name: &str, store: MemStore, options: DeviceOptions) -> Device {
        let key = self.register(name);
        Device::spawn(name, &key, Transport::tcp(&self.addr), store, options)
    }

    /// A connected TCP device named `name` with no files, to look at the server's state.
    pub async fn observer(&self, name: &str) -> Device {
        let mut observer = self.tcp_device(name, MemStore::new(), DeviceOptions::default());
        observer.connect().await.expect("the observer connects");
        observer
    }

    /// Kills the server with SIGKILL and starts it again on the same data;
    /// TCP devices find the new address through [`Rig::addr`].
    pub fn crash_and_restart(&mut self) {
        tokio::task::block_in_place(|| self.server.restart());
        self.addr.set(&self.server.addr);
    }
}

/// `len` bytes of content that differ for every `seed` (and contain zeros, as real files do).
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i % 61 == 0 {
                0
            } else {
                (state >> 24) as u8
            }
        })
        .collect()
}
