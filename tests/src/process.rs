//! Real binaries as child processes: find (and build) `host-server` and
//! `host-cli`, start a server on `127.0.0.1:0` with a temp data dir, register
//! devices, and run the CLI as one of them. Used by the bench and the tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

/// The cargo profile the binaries are built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `target/debug` (tests).
    Debug,
    /// `target/release` (benchmarks).
    Release,
}

/// Builds `host-server` and `host-cli` once per process and returns the directory holding them.
///
/// `cargo test` builds only the tested package's targets, so the other
/// workspace members' binaries are built here with the same `cargo`.
pub fn bin_dir(profile: Profile) -> &'static Path {
    static DEBUG: OnceLock<PathBuf> = OnceLock::new();
    static RELEASE: OnceLock<PathBuf> = OnceLock::new();
    let cell = match profile {
        Profile::Debug => &DEBUG,
        Profile::Release => &RELEASE,
    };
    cell.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = workspace_root();
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "host-server", "-p", "host-cli"]);
        if profile == Profile::Release {
            build.arg("--release");
        }
        let status = build.current_dir(&root).status().expect("cargo runs");
        assert!(status.success(), "building host-server and host-cli failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join(match profile {
            Profile::Debug => "debug",
            Profile::Release => "release",
        })
    })
}

/// The workspace root (the parent of the `tests` crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_owned()
}

/// A running `host-server` with its data in a temp dir.
pub struct ServerProcess {
    /// The server process.
    pub child: Child,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
    /// Its data directory.
    pub data: TempDir,
    /// Where the binaries are.
    pub bins: PathBuf,
    /// What follows `serve --listen 127.0.0.1:0`, kept for a restart.
    serve_args: Vec<String>,
    /// Remaining stdout, kept open so the server never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Starts `host-server serve --listen 127.0.0.1:0` plus `serve_args` on a fresh data dir.
    pub fn start(profile: Profile, serve_args: &[&str]) -> ServerProcess {
        let data = tempfile::tempdir().expect("temp dir");
        let bins = bin_dir(profile).to_owned();
        let serve_args: Vec<String> = serve_args.iter().map(|&a| a.to_owned()).collect();
        let (child, addr, stdout) = spawn_server(&bins, data.path(), &serve_args);
        ServerProcess {
            child,
            addr,
            data,
            bins,
            serve_args,
            _stdout: stdout,
        }
    }

    /// Kills the server with SIGKILL — no shutdown, no flush, as a crash or
    /// a power cut would — and waits until it is gone.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same data directory with the same
    /// arguments (after [`ServerProcess::kill_hard`]); `addr` is its new address.
    pub fn restart(&mut self) {
        self.kill_hard();
        let (child, addr, stdout) = spawn_server(&self.bins, self.data.path(), &self.serve_args);
        self.child = child;
        self.addr = addr;
        self._stdout = stdout;
    }

    /// Registers a device and returns its key (hex).
    pub fn add_device(&self, name: &str) -> String {
        let out = Command::new(self.bins.join("host-server"))
            .arg("--data")
            .arg(self.data.path())
            .args(["--json", "device", "add", name])
            .output()
            .expect("host-server device add runs");
        assert!(
            out.status.success(),
            "device add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("device add --json prints JSON");
        json["key"].as_str().expect("a key").to_owned()
    }

    /// Runs `host-server --json device add NAME --provision serial://PORT?baud=115200`:
    /// registers `name` and gives the board on the serial port `port` its
    /// identity (see `host-server/src/provision.rs`). Returns the output; the
    /// caller asserts on it.
    pub fn provision_device(&self, name: &str, port: &str) -> Output {
        Command::new(self.bins.join("host-server"))
            .arg("--data")
            .arg(self.data.path())
            .args(["--json", "device", "add", name, "--provision"])
            .arg(format!("serial://{port}?baud=115200"))
            .args(["--wait", "60"])
            .output()
            .expect("host-server device add --provision runs")
    }

    /// Registers `count` devices named `PREFIX-0`, `PREFIX-1`, … with one
    /// `device add-many` and returns what it prints: one `{"name", "key"}`
    /// JSON object per line (see [`crate::scale_fleet::parse_key_lines`]).
    pub fn add_devices(&self, prefix: &str, count: usize) -> String {
        let out = Command::new(self.bins.join("host-server"))
            .arg("--data")
            .arg(self.data.path())
            .args(["--json", "device", "add-many", prefix, &count.to_string()])
            .output()
            .expect("host-server device add-many runs");
        assert!(
            out.status.success(),
            "device add-many failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("device add-many prints UTF-8")
    }

    /// `tcp://ADDR`.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Runs `host-cli` as `device` against `server_url` with `args`, and waits for it.
    pub fn cli(&self, server_url: &str, device: &str, key: &str, args: &[&str]) -> Output {
        self.cli_command(server_url, device, key, args)
            .output()
            .expect("host-cli runs")
    }

    /// The `host-cli` command line for `device`, not yet started.
    pub fn cli_command(&self, server_url: &str, device: &str, key: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bins.join("host-cli"));
        cmd.env("STATESYNC_SERVER", server_url)
            .env("STATESYNC_DEVICE", device)
            .env("STATESYNC_KEY", key)
            // A config dir of its own, so no user config leaks in, and a
            // quick-check index of its own (in the state dir), fresh per server.
            .env("XDG_CONFIG_HOME", self.data.path())
            .env("XDG_STATE_HOME", self.data.path())
            .env_remove("STATESYNC_CONFIG")
            .args(args);
        cmd
    }
}

/// Starts `host-server --data DATA serve --listen 127.0.0.1:0 ARGS` and reads
/// the address it prints first.
fn spawn_server(
    bins: &Path,
    data: &Path,
    serve_args: &[String],
) -> (Child, String, BufReader<ChildStdout>) {
    let mut child = Command::new(bins.join("host-server"))
        .arg("--data")
        .arg(data)
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
    (child, addr, stdout)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
