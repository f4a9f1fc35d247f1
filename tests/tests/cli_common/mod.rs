//! Shared helpers of the `cli_*` tests: build and find the real `host-server`
//! and `host-cli` binaries, start a server on `127.0.0.1:0` in a temp dir,
//! register devices, and run the CLI as one of them.
#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long any awaited condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// The workspace's `target/debug` directory, after building both binaries once.
///
/// `cargo test` builds only this package's targets, so the binaries of the
/// other workspace members are built here (once per test process) with the
/// same `cargo` that runs the tests.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(cargo)
            .args(["build", "-p", "host-server", "-p", "host-cli"])
            .current_dir(manifest.parent().expect("tests/ lives in the workspace"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building host-server and host-cli failed");
        // current_exe is target/debug/deps/cli_xxx-HASH; the binaries are in target/debug.
        let exe = std::env::current_exe().expect("test binary path");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/debug")
            .to_owned()
    })
}

/// Path of a workspace binary.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// A running `host-server` with its data in a temp dir.
pub struct Server {
    /// The server process.
    pub child: Child,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
    /// Its data directory.
    pub data: TempDir,
    /// Keys of the devices registered at start, by name.
    pub keys: Vec<(String, String)>,
    /// Remaining stdout, kept open so the server never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Registers `devices` and starts serving on `127.0.0.1:0`.
    pub fn start(devices: &[&str]) -> Server {
        Server::start_with(devices, &[])
    }

    /// Like [`Server::start`], with extra `serve` arguments (e.g. `--serial PATH:BAUD`).
    pub fn start_with(devices: &[&str], serve_args: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let keys = devices
            .iter()
            .map(|name| (name.to_string(), add_device(data.path(), name)))
            .collect();
        let mut child = Command::new(bin("host-server"))
            .arg("--data")
            .arg(data.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(serve_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("host-server starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("first stdout line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from host-server: {line:?}"))
            .to_owned();
        Server {
            child,
            addr,
            data,
            keys,
            _stdout: stdout,
        }
    }

    /// `tcp://ADDR`.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// The key of a device registered at start.
    pub fn key(&self, device: &str) -> &str {
        &self
            .keys
            .iter()
            .find(|(name, _)| name == device)
            .unwrap_or_else(|| panic!("device {device} was not registered"))
            .1
    }

    /// A CLI acting as `device` over TCP.
    pub fn cli(&self, device: &str) -> Cli {
        Cli::new(&self.url(), device, self.key(device))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `host-server --data DIR device add NAME` and returns the printed key.
pub fn add_device(data: &Path, name: &str) -> String {
    let out = Command::new(bin("host-server"))
        .arg("--data")
        .arg(data)
        .args(["device", "add", name])
        .output()
        .expect("host-server device add runs");
    assert!(
        out.status.success(),
        "device add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|word| word.len() >= 32 && word.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no hex key in `device add` output: {text:?}"))
        .to_owned()
}

/// The CLI as one device: every command gets the server, device and key
/// through the environment, and a config dir of its own (so no user config leaks in).
pub struct Cli {
    /// `--server` URL.
    pub server: String,
    /// Device name.
    pub device: String,
    /// Key in hex.
    pub key: String,
    home: TempDir,
}

impl Cli {
    /// A CLI for `device` with `key` against `server`.
    pub fn new(server: &str, device: &str, key: &str) -> Cli {
        Cli {
            server: server.to_owned(),
            device: device.to_owned(),
            key: key.to_owned(),
            home: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The same identity over another server URL (e.g. a serial line).
    pub fn via(&self, server: &str) -> Cli {
        Cli::new(server, &self.device, &self.key)
    }

    /// A `host-cli` command with this identity in the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin("host-cli"));
        command
            .args(args)
            .env("STATESYNC_SERVER", &self.server)
            .env("STATESYNC_DEVICE", &self.device)
            .env("STATESYNC_KEY", &self.key)
            .env_remove("STATESYNC_KEY_FILE")
            .env_remove("STATESYNC_CONFIG")
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path())
            .stdin(Stdio::null());
        command
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("host-cli runs")
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "host-cli {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command with `--json` that must succeed and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
    }

    /// The record named `name` as `ls --json` shows it, if any.
    pub fn record(&self, name: &str) -> Option<Value> {
        self.json(&["ls"])
            .as_array()
            .expect("ls --json is an array")
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
    }
}

/// Starts `host-cli ARGS` as `cli`'s device; each JSON line it prints
/// arrives on the receiver (a line that is not JSON fails the test).
pub fn spawn_json_lines(cli: &Cli, args: &[&str]) -> (Child, Receiver<Value>) {
    let mut child = cli
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("host-cli {args:?} does not start: {e}"));
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let what = format!("host-cli {args:?}");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { return };
            let value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{what} printed non-JSON ({e}): {line}"));
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    (child, lines)
}

/// A running `host-cli watch --json`: the tests await server-side conditions
/// by reading its event stream, not by polling.
pub struct Watcher {
    child: Child,
    lines: Receiver<Value>,
}

impl Watcher {
    /// Starts watching as `cli`'s device; returns once the subscription is active.
    pub fn start(cli: &Cli) -> Watcher {
        let (child, lines) = spawn_json_lines(cli, &["watch", "--json"]);
        let mut watcher = Watcher { child, lines };
        watcher.until("the subscription", |e| e["event"] == "subscribed");
        watcher
    }

    /// Reads events until one satisfies `accept`, and returns it.
    pub fn until(&mut self, what: &str, mut accept: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(event) if accept(&event) => return event,
                Ok(_) => {}
                Err(_) => panic!("timed out (or watch ended) waiting for {what}"),
            }
        }
    }

    /// Waits for a record event about `name` that satisfies `accept`; returns the record.
    pub fn record(&mut self, name: &str, mut accept: impl FnMut(&Value) -> bool) -> Value {
        let event = self.until(&format!("a change of {name}"), |e| {
            e["event"] == "record" && e["record"]["name"] == name && accept(&e["record"])
        });
        event["record"].clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `len` bytes of deterministic, incompressible-looking content.
pub fn write_pattern(path: &Path, len: usize, seed: u8) {
    let mut data = Vec::with_capacity(len);
    let mut x: u32 = 0x9E37_79B9 ^ u32::from(seed);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create dir");
    }
    std::fs::write(path, data).expect("write file");
}
