//! Test harness: the real `host-server` binary on `127.0.0.1:0` with a temp
//! data directory, and a small blocking client that speaks proto-core frames.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod s3;

use proto_core::auth::{client_tag, ContentHasher};
use proto_core::framing::mac::{Direction, Opener, Sealer, SessionKey};
use proto_core::framing::{Accumulator, Feed, Framing};
use proto_core::message::{ByteRange, TransferId};
use proto_core::model::{BatchSummary, DeviceInfo, HistoryKind};
use proto_core::{
    ClientFrame, ClientMessage, ContentHash, ErrorCode, FileKind, ListFilter, Record, ServerFrame,
    ServerMessage, UploadState, PROTOCOL_VERSION,
};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_host-server")
}

/// The variable naming a PostgreSQL server for the PostgreSQL tests, as a URL
/// of a database there whose user may create databases
/// (`postgres://USER:PASSWORD@127.0.0.1:5432/postgres`).
pub const TEST_DATABASE_ENV: &str = "HOST_SERVER_TEST_DATABASE";

/// The lease of PostgreSQL servers in tests: a killed server's uploads fail and
/// its devices turn silent within about this long.
pub const TEST_LEASE_SECS: u64 = 2;

/// Which store a test's servers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in the data directory.
    Sqlite,
    /// A fresh PostgreSQL database per test.
    Postgres,
    /// A fresh PostgreSQL database and blobs under a fresh prefix of the test
    /// object store (`--blobs s3://…`), so servers share no directory.
    PostgresS3,
}

impl Backend {
    /// The database for one test: none for SQLite (it lives in the data
    /// directory), a new PostgreSQL database otherwise.
    pub fn database(self) -> Option<Arc<TestDatabase>> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Arc::new(TestDatabase::create())),
            Backend::PostgresS3 => Some(Arc::new(TestDatabase::create_with_blobs())),
        }
    }

    /// True when servers on one database keep blobs in an object store, so each
    /// may have a data directory of its own.
    pub fn blobs_in_object_store(self) -> bool {
        self == Backend::PostgresS3
    }
}

/// A throwaway PostgreSQL database, dropped (with its connections) at the end of the test.
pub struct TestDatabase {
    admin: String,
    name: String,
    /// The URL servers get with `--database`.
    pub url: String,
    /// The object store prefix servers keep blobs under, if not their data directory.
    pub blobs: Option<s3::TestBlobs>,
}

impl TestDatabase {
    /// Creates a database on the server [`TEST_DATABASE_ENV`] names; panics with
    /// what to do when the variable is missing or the server is unreachable.
    pub fn create() -> TestDatabase {
        TestDatabase::create_reached_by(None)
    }

    /// [`TestDatabase::create`], owned by the user of `user_url`
    /// (`postgres://USER:PASSWORD@HOST:PORT/ANY?PARAMS`) and reached through
    /// that URL with its database replaced and its parameters kept.
    pub fn create_for_user(user_url: &str) -> TestDatabase {
        TestDatabase::create_reached_by(Some(user_url))
    }

    fn create_reached_by(user_url: Option<&str>) -> TestDatabase {
        let admin = std::env::var(TEST_DATABASE_ENV).unwrap_or_else(|_| {
            panic!(
                "{TEST_DATABASE_ENV} is not set: the PostgreSQL tests need a PostgreSQL server \
                 (postgres://USER:PASSWORD@127.0.0.1:5432/postgres, a user that may create databases); \
                 .ci/run shows how to start one"
            )
        });
        let name = format!(
            "statesync_test_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL through {TEST_DATABASE_ENV}: {e:?}")
        });
        let url = with_database(user_url.unwrap_or(&admin), &name);
        let owner = match user_url {
            Some(user_url) => {
                // USER in `SCHEME://USER[:PASSWORD]@…` (postgres::Config would
                // refuse the TLS parameters that host-server understands).
                let user = user_url
                    .split_once("://")
                    .and_then(|(_, rest)| rest.split_once('@'))
                    .map(|(credentials, _)| credentials.split(':').next().unwrap_or_default())
                    .unwrap_or_else(|| panic!("no user in {user_url}"));
                format!(" OWNER {user}")
            }
            None => String::new(),
        };
        client
            .batch_execute(&format!("CREATE DATABASE {name}{owner}"))
            .unwrap();
        TestDatabase {
            admin,
            name,
            url,
            blobs: None,
        }
    }

    /// [`TestDatabase::create`], with blobs under a fresh prefix of the test object store.
    pub fn create_with_blobs() -> TestDatabase {
        let blobs = s3::TestBlobs::create();
        let mut database = TestDatabase::create();
        database.blobs = Some(blobs);
        database
    }
}

/// `url` (`SCHEME://AUTHORITY/DATABASE?PARAMS`) with `name` for its database.
fn with_database(url: &str, name: &str) -> String {
    let (url, params) = url
        .split_once('?')
        .map_or((url, None), |(u, p)| (u, Some(p)));
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let base = match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => panic!("a database URL must end in /DATABASE, got {url}"),
    };
    match params {
        Some(params) => format!("{base}/{name}?{params}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A running server process.
pub struct Server {
    pub data: PathBuf,
    pub addr: String,
    child: Child,
    args: Vec<String>,
    /// What the server printed on stdout after its first line (read by a thread,
    /// so later lines such as `ops on …` never meet a closed pipe).
    stdout: Arc<std::sync::Mutex<Vec<String>>>,
    /// The PostgreSQL database, if the server does not use SQLite.
    pub database: Option<Arc<TestDatabase>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh temp data directory with extra `serve` args.
    pub fn start(args: &[&str]) -> Server {
        Server::start_on(Backend::Sqlite, args)
    }

    /// Starts a server on a fresh temp data directory and a fresh database of `backend`.
    pub fn start_on(backend: Backend, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut server = Server::start_in_on(&data, backend.database(), args);
        server._dir = Some(dir);
        server
    }

    /// Starts a server on `data`.
    pub fn start_in(data: &Path, args: &[&str]) -> Server {
        Server::start_in_on(data, None, args)
    }

    /// Starts a server on `data` and `database` (SQLite in `data` when `None`).
    /// PostgreSQL servers get a lease of [`TEST_LEASE_SECS`].
    pub fn start_in_on(data: &Path, database: Option<Arc<TestDatabase>>, args: &[&str]) -> Server {
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if let Some(database) = &database {
            args.extend([
                "--database".to_string(),
                database.url.clone(),
                "--lease".to_string(),
                TEST_LEASE_SECS.to_string(),
            ]);
            if let Some(blobs) = &database.blobs {
                args.extend(blobs.args());
            }
        }
        let (child, addr, stdout) = spawn(data, &args);
        Server {
            data: data.to_path_buf(),
            addr,
            child,
            args,
            stdout,
            database,
            _dir: None,
        }
    }

    /// The server's process id (to read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `--database` arguments for commands run on this server's store.
    pub fn database_args(&self) -> Vec<String> {
        self.database
            .iter()
            .flat_map(|d| ["--database".to_string(), d.url.clone()])
            .collect()
    }

    /// True when the blob of `hash` is stored (in the data directory or the object store).
    pub fn holds_blob(&self, hash: &ContentHash) -> bool {
        match self.database.as_ref().and_then(|d| d.blobs.as_ref()) {
            Some(blobs) => blobs.keys().contains(&format!("blobs/{hash}")),
            None => self.data.join("blobs").join(hash.to_string()).exists(),
        }
    }

    /// Registers a device and returns its key.
    pub fn add_device(&self, name: &str) -> Vec<u8> {
        let out = Command::new(binary())
            .args(["--data"])
            .arg(&self.data)
            .args(self.database_args())
            .args(["device", "add", name, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "device add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        hex::decode(json["key"].as_str().unwrap()).unwrap()
    }

    /// Connects and authenticates as `device`.
    pub fn connect(&self, device: &str, key: &[u8]) -> Client {
        Client::tcp(&self.addr, device, key)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "server exited with {status}");
    }

    /// Kills the process without warning (a crash).
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGINT (Ctrl-C) and waits for a clean exit.
    pub fn interrupt(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "server exited with {status}");
    }

    /// Stops and starts again on the same data directory (same extra args).
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts the stopped server again on the same data directory (same extra args).
    pub fn start_again(&mut self) {
        let (child, addr, stdout) = spawn(&self.data, &self.args);
        self.child = child;
        self.addr = addr;
        self.stdout = stdout;
    }

    /// The rest of the stdout line that starts with `prefix` (e.g. `ops on `),
    /// waiting for the server to print it.
    pub fn printed(&self, prefix: &str) -> String {
        eventually(
            &format!("a line starting with {prefix:?} on stdout"),
            || {
                let lines = self.stdout.lock().unwrap();
                lines
                    .iter()
                    .find_map(|line| line.strip_prefix(prefix).map(str::to_string))
            },
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(log_path(&self.data)).unwrap_or_default();
            eprintln!("--- server log ---\n{log}--- end of server log ---");
        }
    }
}

/// Calls `f` until it returns something, for at most [`WAIT`]: for state the
/// server changes on its own time (a lease running out, a slot freed, a log
/// line written), which no frame of the test's own session announces.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Where a server on `data` writes its log (beside the data directory).
fn log_path(data: &Path) -> PathBuf {
    data.with_extension("log")
}

type Printed = Arc<std::sync::Mutex<Vec<String>>>;

fn spawn(data: &Path, args: &[String]) -> (Child, String, Printed) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(data))
        .unwrap();
    let mut child = Command::new(binary())
        .arg("--data")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("STATESYNC_LOG", "host_server=debug")
        .env("NO_COLOR", "1")
        // The test object store checks no credentials, but the client wants some.
        .env("AWS_ACCESS_KEY_ID", "statesync-test")
        .env("AWS_SECRET_ACCESS_KEY", "statesync-test")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let printed: Printed = Arc::default();
    let keep = Arc::clone(&printed);
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { return };
            keep.lock().unwrap().push(line);
        }
    });
    (child, addr, printed)
}

/// Runs the binary with arguments and returns (success, stdout, stderr).
pub fn run_cli(args: &[&str], data: &Path) -> (bool, String, String) {
    let out = Command::new(binary())
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A byte link the client talks over.
pub trait Link: Send {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Reads some bytes, waiting at most `timeout`; `Ok(0)` on timeout or EOF is told apart by `eof`.
    fn receive(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<usize>>;
}

impl Link for TcpStream {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)
    }

    fn receive(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<usize>> {
        self.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// The controlling side of a pseudo-terminal.
pub struct PtyMaster(pub std::fs::File);

impl Link for PtyMaster {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }

    fn receive(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<usize>> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(timeout.as_millis().min(60_000) as i32).unwrap();
        if poll(&mut fds, ms)? == 0 {
            return Ok(None);
        }
        Ok(Some(self.0.read(buf)?))
    }
}

/// A `BatchCreated` answer: (batch id, records, conflicts).
pub type BatchAnswer = (u64, u32, u32);

/// An owned copy of a record, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub id: u64,
    pub name: String,
    pub size: u64,
    pub hash: ContentHash,
    pub state: UploadState,
    pub received: u64,
    pub owner: String,
    pub batch: u64,
    pub revision: u64,
    pub conflict: bool,
    pub reason: String,
}

impl From<&Record<'_>> for Rec {
    fn from(r: &Record<'_>) -> Rec {
        Rec {
            id: r.id,
            name: r.name.to_string(),
            size: r.size,
            hash: r.hash,
            state: r.state,
            received: r.received,
            owner: r.owner.to_string(),
            batch: r.batch,
            revision: r.revision,
            conflict: r.conflict,
            reason: r.reason.to_string(),
        }
    }
}

/// An error reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub code: ErrorCode,
    pub message: String,
}

/// Why a download did not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownloadRefused {
    Rejected {
        state: UploadState,
        received: u64,
        size: u64,
        notify: bool,
    },
    Error(Refused),
}

pub fn hash(bytes: &[u8]) -> ContentHash {
    ContentHasher::digest(bytes)
}

/// Deterministic test content.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// An opened upload: `Ok((upload, offset, window))`, or `Err(record)` when nothing is to be sent.
pub type Opened = Result<(TransferId, u64, u32), Rec>;

/// A blocking test client.
pub struct Client {
    link: Box<dyn Link>,
    framing: Framing,
    acc: Accumulator<Vec<u8>>,
    pending: Vec<u8>,
    pending_at: usize,
    next_id: u16,
    pub max_frame: u32,
    pub device: String,
    pub welcome_revision: u64,
    /// Frames received while waiting for something else (raw payloads).
    pub skipped: Vec<Vec<u8>>,
    /// Seals our frames after `Welcome`.
    sealer: Option<Sealer>,
    /// Checks the server's frames after `Welcome`.
    opener: Option<Opener>,
}

impl Client {
    /// A raw client on a link, before any handshake.
    pub fn raw(link: Box<dyn Link>, framing: Framing) -> Client {
        Client {
            link,
            framing,
            acc: Accumulator::new(framing, vec![0u8; Framing::Serial.max_wire_len(1 << 20)]),
            pending: Vec::new(),
            pending_at: 0,
            next_id: 1,
            max_frame: 512,
            device: String::new(),
            welcome_revision: 0,
            skipped: Vec::new(),
            sealer: None,
            opener: None,
        }
    }

    pub fn tcp_raw(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Client::raw(Box::new(stream), Framing::Length)
    }

    /// Connects over TCP and authenticates; panics if refused.
    pub fn tcp(addr: &str, device: &str, key: &[u8]) -> Client {
        let mut client = Client::tcp_raw(addr);
        client.handshake(device, key).unwrap();
        client
    }

    /// Runs the handshake.
    pub fn handshake(&mut self, device: &str, key: &[u8]) -> Result<(), Refused> {
        // A new handshake is not sealed; the server starts over on its `Hello`.
        self.sealer = None;
        self.opener = None;
        let nonce = [42u8; 16];
        let id = self.request(ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            max_frame: 1 << 20,
            device,
            nonce,
        });
        let server_nonce = self.reply(id, |m| match m {
            ServerMessage::Challenge { nonce, .. } => Some(*nonce),
            _ => None,
        })?;
        let mac = client_tag(key, &server_nonce, &nonce, device);
        let id = self.request(ClientMessage::Authenticate { mac });
        let (revision, max_frame) = self.reply(id, |m| match m {
            ServerMessage::Welcome {
                revision,
                max_frame,
                ..
            } => Some((*revision, *max_frame)),
            _ => None,
        })?;
        self.start_sealing(key, device, &nonce, &server_nonce);
        self.max_frame = max_frame;
        self.device = device.to_string();
        self.welcome_revision = revision;
        Ok(())
    }

    /// Seals and checks every frame from now on, with the keys of a handshake that just
    /// ended in `Welcome` (for tests that run the handshake by hand).
    pub fn start_sealing(
        &mut self,
        key: &[u8],
        device: &str,
        client_nonce: &[u8; 16],
        server_nonce: &[u8; 16],
    ) {
        let session_key =
            |direction| SessionKey::derive(key, client_nonce, server_nonce, device, direction);
        self.sealer = Some(Sealer::new(session_key(Direction::ClientToServer)));
        self.opener = Some(Opener::new(session_key(Direction::ServerToClient)));
    }

    /// `payload` with the trailer of the next frame after `Welcome` (the payload as it is
    /// before), for tests that build payloads by hand.
    pub fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut sealed = payload.to_vec();
        if let Some(sealer) = &mut self.sealer {
            sealed.resize(payload.len() + proto_core::framing::mac::TRAILER_LEN, 0);
            let len = sealer.seal(&mut sealed, payload.len()).unwrap();
            sealed.truncate(len);
        }
        sealed
    }

    /// Sends a message with a fresh id and returns the id.
    pub fn request(&mut self, message: ClientMessage<'_>) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.send(id, message);
        id
    }

    /// Sends a message with the given id.
    pub fn send(&mut self, id: u16, message: ClientMessage<'_>) {
        let wire = self.wire(id, message);
        self.link.send(&wire).unwrap();
    }

    /// The wire bytes of a message with the given id, sealed after `Welcome`
    /// (each call uses the next sequence number).
    pub fn wire(&mut self, id: u16, message: ClientMessage<'_>) -> Vec<u8> {
        let mut payload = vec![0u8; (self.max_frame as usize).max(2048) + 64];
        let mut len = ClientFrame { id, message }
            .encode(&mut payload)
            .unwrap()
            .len();
        if let Some(sealer) = &mut self.sealer {
            len = sealer.seal(&mut payload, len).unwrap();
        }
        let mut wire = vec![0u8; self.framing.max_wire_len(len)];
        let n = self.framing.encode(&payload[..len], &mut wire).unwrap();
        wire.truncate(n);
        wire
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.link.send(bytes).unwrap();
    }

    /// The next frame payload, or `None` when the link closed. Panics after `WAIT`.
    pub fn next_payload(&mut self) -> Option<Vec<u8>> {
        self.next_payload_within(WAIT)
            .unwrap_or_else(|| panic!("no frame from the server within {WAIT:?}"))
    }

    /// The next frame payload within `timeout`: `None` on timeout, `Some(None)` on close.
    pub fn next_payload_within(&mut self, timeout: Duration) -> Option<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        loop {
            while self.pending_at < self.pending.len() {
                let input = &self.pending[self.pending_at..];
                match self.acc.feed(input) {
                    Feed::Consumed => self.pending_at = self.pending.len(),
                    Feed::Frame { payload, remaining } => {
                        let payload = match &mut self.opener {
                            Some(opener) => opener
                                .open(payload)
                                .expect("every frame from the server after Welcome is authentic")
                                .to_vec(),
                            None => payload.to_vec(),
                        };
                        self.pending_at += input.len() - remaining.len();
                        return Some(Some(payload));
                    }
                    Feed::Error { error, remaining } => {
                        self.pending_at += input.len() - remaining.len();
                        panic!("damaged frame from the server: {error}");
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let mut buf = vec![0u8; 1 << 16];
            match self.link.receive(&mut buf, deadline - now) {
                Ok(None) => return None,
                Ok(Some(0)) | Err(_) => return Some(None),
                Ok(Some(n)) => {
                    self.pending = buf[..n].to_vec();
                    self.pending_at = 0;
                }
            }
        }
    }

    /// Waits for a frame for which `f` returns `Some`, keeping the others in `skipped`.
    ///
    /// Frames skipped by earlier waits are looked at first, so an event that
    /// arrived while the test waited for something else is not lost.
    pub fn wait<T>(&mut self, mut f: impl FnMut(&ServerFrame<'_>) -> Option<T>) -> T {
        for i in 0..self.skipped.len() {
            let frame =
                ServerFrame::decode(&self.skipped[i]).expect("server sent an undecodable frame");
            if let Some(value) = f(&frame) {
                self.skipped.remove(i);
                return value;
            }
        }
        loop {
            let payload = self
                .next_payload()
                .expect("server closed the link while the test waited");
            let frame = ServerFrame::decode(&payload).expect("server sent an undecodable frame");
            if let Some(value) = f(&frame) {
                return value;
            }
            self.skipped.push(payload);
        }
    }

    /// Waits for the reply to request `id`: `Ok` when `f` accepts it, `Err` for an error reply.
    pub fn reply<T>(
        &mut self,
        id: u16,
        mut f: impl FnMut(&ServerMessage<'_>) -> Option<T>,
    ) -> Result<T, Refused> {
        self.wait(|frame| {
            if frame.id != id {
                return None;
            }
            if let ServerMessage::Error { code, message } = frame.message {
                return Some(Err(Refused {
                    code,
                    message: message.to_string(),
                }));
            }
            Some(Ok(f(&frame.message).unwrap_or_else(|| {
                panic!("unexpected reply {:?}", frame.message)
            })))
        })
    }

    /// Waits for an error reply to `id`.
    pub fn expect_error(&mut self, id: u16) -> Refused {
        match self.reply(id, |_| Some(())) {
            Err(refused) => refused,
            Ok(()) => panic!("request {id} succeeded but an error was expected"),
        }
    }

    /// Waits until the link closes (ignoring frames).
    pub fn expect_closed(&mut self) {
        while let Some(payload) = self.next_payload() {
            self.skipped.push(payload);
        }
    }

    /// `Ok` reply.
    pub fn expect_ok(&mut self, id: u16) {
        self.reply(id, |m| matches!(m, ServerMessage::Ok).then_some(()))
            .unwrap();
    }

    /// Every record changed after `since` that passes `filter`, and the revision.
    pub fn list(&mut self, since: u64, filter: ListFilter) -> (Vec<Rec>, u64) {
        let id = self.request(ClientMessage::List { since, filter });
        self.collect_list(id)
    }

    /// Collects `RecordItem`s with id `id` until `ListEnd`.
    pub fn collect_list(&mut self, id: u16) -> (Vec<Rec>, u64) {
        let mut records = Vec::new();
        loop {
            let done = self.wait(|frame| {
                if frame.id != id {
                    return None;
                }
                match frame.message {
                    ServerMessage::RecordItem(r) => Some(Err(Rec::from(&r))),
                    ServerMessage::ListEnd { revision, .. } => Some(Ok(revision)),
                    other => panic!("unexpected {other:?} in a list"),
                }
            });
            match done {
                Ok(revision) => return (records, revision),
                Err(record) => records.push(record),
            }
        }
    }

    /// The record of `name`, from a full list.
    pub fn record(&mut self, name: &str) -> Option<Rec> {
        self.list(0, ListFilter::All)
            .0
            .into_iter()
            .find(|r| r.name == name)
    }

    /// Batch summaries: (name, owner, expected, needed, uploaded, uploading, failed).
    pub fn batches(&mut self) -> Vec<(String, String, u32, u32, u32)> {
        let id = self.request(ClientMessage::Batches);
        let mut out = Vec::new();
        loop {
            let item = self.wait(|frame| {
                if frame.id != id {
                    return None;
                }
                match frame.message {
                    ServerMessage::BatchItem(BatchSummary {
                        name,
                        owner,
                        expected,
                        counts,
                        ..
                    }) => Some(Some((
                        name.to_string(),
                        owner.to_string(),
                        expected,
                        counts.needed,
                        counts.uploaded,
                    ))),
                    ServerMessage::ListEnd { .. } => Some(None),
                    other => panic!("unexpected {other:?}"),
                }
            });
            match item {
                Some(item) => out.push(item),
                None => return out,
            }
        }
    }

    /// Devices: (name, active, last_seen, link).
    pub fn devices(&mut self) -> Vec<(String, bool, u64, proto_core::model::LinkKind)> {
        let id = self.request(ClientMessage::Devices);
        let mut out = Vec::new();
        loop {
            let item = self.wait(|frame| {
                if frame.id != id {
                    return None;
                }
                match frame.message {
                    ServerMessage::DeviceItem(DeviceInfo {
                        name,
                        active,
                        last_seen,
                        link,
                    }) => Some(Some((name.to_string(), active, last_seen, link))),
                    ServerMessage::ListEnd { .. } => Some(None),
                    other => panic!("unexpected {other:?}"),
                }
            });
            match item {
                Some(item) => out.push(item),
                None => return out,
            }
        }
    }

    /// History: (device, kind, subject, detail).
    pub fn history(&mut self) -> Vec<(String, HistoryKind, String, String)> {
        let id = self.request(ClientMessage::History {
            since: 0,
            limit: 1000,
        });
        let mut out = Vec::new();
        loop {
            let item = self.wait(|frame| {
                if frame.id != id {
                    return None;
                }
                match frame.message {
                    ServerMessage::HistoryItem(e) => Some(Some((
                        e.device.to_string(),
                        e.kind,
                        e.subject.to_string(),
                        e.detail.to_string(),
                    ))),
                    ServerMessage::ListEnd { .. } => Some(None),
                    other => panic!("unexpected {other:?}"),
                }
            });
            match item {
                Some(item) => out.push(item),
                None => return out,
            }
        }
    }

    /// Announces a batch of (name, content) files: (batch, records, conflicts).
    pub fn announce(
        &mut self,
        batch: &str,
        files: &[(&str, &[u8])],
    ) -> Result<(u64, u32, u32), Refused> {
        self.announce_held(batch, files).map(|(created, _)| created)
    }

    /// Announces a batch of (name, content) files: (batch, records, conflicts) and
    /// the entries the server already held, `(index, record)`, as `EntryHeld` said.
    pub fn announce_held(
        &mut self,
        batch: &str,
        files: &[(&str, &[u8])],
    ) -> Result<(BatchAnswer, Vec<(u32, u64)>), Refused> {
        let begin = self.request(ClientMessage::ManifestBegin {
            batch,
            files: files.len() as u32,
        });
        let _ = begin;
        for (index, (name, bytes)) in files.iter().enumerate() {
            self.request(ClientMessage::ManifestEntry {
                index: index as u32,
                name,
                kind: FileKind::File,
                size: bytes.len() as u64,
                hash: Some(hash(bytes)),
            });
        }
        let end = self.request(ClientMessage::ManifestEnd);
        let mut held = Vec::new();
        loop {
            let answer = self.reply(end, |m| match m {
                ServerMessage::EntryHeld { index, record } => Some(Err((*index, *record))),
                ServerMessage::BatchCreated {
                    batch,
                    records,
                    conflicts,
                    held,
                } => Some(Ok(((*batch, *records, *conflicts), *held))),
                _ => None,
            })?;
            match answer {
                Err(entry) => held.push(entry),
                Ok((created, count)) => {
                    assert_eq!(
                        count as usize,
                        held.len(),
                        "BatchCreated counts the EntryHelds"
                    );
                    return Ok((created, held));
                }
            }
        }
    }

    /// Opens an upload: `Ok(Ok((upload, offset, window)))` when ready, `Ok(Err(record))` when already uploaded.
    pub fn open_upload(&mut self, name: &str, bytes: &[u8]) -> Result<(u16, Opened), Refused> {
        self.open_upload_as(name, bytes, hash(bytes))
    }

    /// Opens an upload claiming `claimed` as its hash (`None`: the hash comes at close).
    pub fn open_upload_as(
        &mut self,
        name: &str,
        bytes: &[u8],
        claimed: impl Into<Option<ContentHash>>,
    ) -> Result<(u16, Opened), Refused> {
        let id = self.request(ClientMessage::UploadOpen {
            name,
            kind: FileKind::File,
            size: bytes.len() as u64,
            hash: claimed.into(),
        });
        let opened = self.reply(id, |m| match m {
            ServerMessage::UploadReady {
                upload,
                offset,
                window,
                ..
            } => Some(Ok((*upload, *offset, *window))),
            ServerMessage::UploadResult { record, .. } => Some(Err(Rec::from(record))),
            _ => None,
        })?;
        Ok((id, opened))
    }

    /// Sends `bytes[from..to]` as chunks, respecting the window; returns the last durable offset.
    pub fn send_chunks(
        &mut self,
        open_id: u16,
        upload: TransferId,
        bytes: &[u8],
        from: u64,
        to: u64,
        window: u32,
    ) -> u64 {
        let chunk = (self.max_frame as usize - 64).min(64 * 1024);
        let mut sent = from;
        let mut durable = from;
        while sent < to {
            while sent < to && sent - durable < u64::from(window) {
                let end = (sent + chunk as u64).min(to);
                self.request(ClientMessage::UploadChunk {
                    upload,
                    offset: sent,
                    data: &bytes[sent as usize..end as usize],
                });
                sent = end;
            }
            if sent < to {
                durable = self.wait_durable(open_id, upload, durable + 1);
            }
        }
        durable
    }

    /// Waits until an ack reports at least `at_least` durable bytes; returns it.
    pub fn wait_durable(&mut self, open_id: u16, upload: TransferId, at_least: u64) -> u64 {
        self.wait(|frame| match frame.message {
            ServerMessage::UploadAck {
                upload: u, durable, ..
            } if frame.id == open_id && u == upload && durable >= at_least => Some(durable),
            ServerMessage::UploadResult { upload: u, record }
                if frame.id == open_id && u == upload && record.received >= at_least =>
            {
                Some(record.received)
            }
            ServerMessage::Error { code, message } if frame.id != 0 => {
                panic!("upload error {code:?}: {message}")
            }
            _ => None,
        })
    }

    /// Waits for the `UploadResult` of an upload.
    pub fn wait_result(&mut self, open_id: u16, upload: TransferId) -> Rec {
        self.wait(|frame| match frame.message {
            ServerMessage::UploadResult { upload: u, record }
                if frame.id == open_id && u == upload =>
            {
                Some(Rec::from(&record))
            }
            ServerMessage::Error { code, message } if frame.id == open_id => {
                panic!("upload error {code:?}: {message}")
            }
            _ => None,
        })
    }

    /// Closes an upload giving `hash` (for one opened without a hash) and waits for its result.
    pub fn close_with_hash(&mut self, open_id: u16, upload: TransferId, hash: ContentHash) -> Rec {
        self.request(ClientMessage::UploadClose {
            upload,
            hash: Some(hash),
        });
        self.wait_result(open_id, upload)
    }

    /// Uploads a whole file (resuming where the server is) and returns the final record.
    pub fn upload(&mut self, name: &str, bytes: &[u8]) -> Rec {
        let (id, opened) = self.open_upload(name, bytes).unwrap();
        match opened {
            Err(record) => record,
            Ok((upload, offset, window)) => {
                self.send_chunks(id, upload, bytes, offset, bytes.len() as u64, window);
                self.wait_result(id, upload)
            }
        }
    }

    /// Downloads a whole file, acknowledging as it goes, and reports the result.
    pub fn download(&mut self, name: &str, notify: bool) -> Result<Vec<u8>, DownloadRefused> {
        let id = self.request(ClientMessage::DownloadOpen {
            name,
            offset: 0,
            window: 256 * 1024,
            notify,
        });
        let opened = self.wait(|frame| {
            if frame.id != id {
                return None;
            }
            Some(match frame.message {
                ServerMessage::DownloadReady {
                    download,
                    record,
                    size,
                    hash,
                    ..
                } => Ok((download, record, size, hash)),
                ServerMessage::DownloadRejected {
                    state,
                    received,
                    size,
                    notify,
                    ..
                } => Err(DownloadRefused::Rejected {
                    state,
                    received,
                    size,
                    notify,
                }),
                ServerMessage::Error { code, message } => Err(DownloadRefused::Error(Refused {
                    code,
                    message: message.to_string(),
                })),
                other => panic!("unexpected {other:?}"),
            })
        });
        let (download, record, size, expected) = opened?;
        let data = self.take_data(download, 0, size);
        let state = if hash(&data) == expected {
            proto_core::model::DownloadState::Done
        } else {
            proto_core::model::DownloadState::Failed
        };
        let report = self.request(ClientMessage::DownloadReport { record, state });
        self.expect_ok(report);
        Ok(data)
    }

    /// Takes the data frames of `download` in order from `from` until at least
    /// `until` bytes are held, acknowledging each; returns the bytes taken.
    pub fn take_data(&mut self, download: TransferId, from: u64, until: u64) -> Vec<u8> {
        let mut data = Vec::new();
        let mut have = from;
        while have < until {
            let (offset, bytes) = self.wait(|frame| match frame.message {
                ServerMessage::DownloadData {
                    download: d,
                    offset,
                    data,
                } if d == download => Some((offset, data.to_vec())),
                _ => None,
            });
            if offset == have {
                have += bytes.len() as u64;
                data.extend_from_slice(&bytes);
                self.request(ClientMessage::DownloadAck {
                    download,
                    durable: have,
                    missing: None,
                });
            }
        }
        data
    }

    /// Subscribes; returns the revision.
    pub fn subscribe(&mut self, filter: ListFilter, every: u32) -> u64 {
        let id = self.request(ClientMessage::Subscribe {
            filter,
            full_list_every_secs: every,
        });
        self.reply(id, |m| match m {
            ServerMessage::Subscribed { revision } => Some(*revision),
            _ => None,
        })
        .unwrap()
    }

    /// Waits for a pushed `RecordChanged` of `name` for which `f` holds.
    pub fn wait_change(&mut self, name: &str, mut f: impl FnMut(&Rec) -> bool) -> Rec {
        self.wait(|frame| match frame.message {
            ServerMessage::RecordChanged(r) if frame.id == 0 && r.name == name => {
                let r = Rec::from(&r);
                f(&r).then_some(r)
            }
            _ => None,
        })
    }

    /// Says goodbye and closes.
    pub fn bye(mut self) {
        self.request(ClientMessage::Bye);
    }
}

/// A range helper for gap tests.
pub fn range(offset: u64, len: u32) -> ByteRange {
    ByteRange { offset, len }
}

/// Opens a pseudo-terminal pair in raw mode: (master as a link, slave path, slave fd kept open).
pub fn pty() -> (PtyMaster, String, OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let pair = nix::pty::openpty(None, None).unwrap();
    // openpty does not set close-on-exec: without it a server spawned later
    // would inherit the master and the line could never hang up.
    for fd in [&pair.master, &pair.slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).unwrap();
    }
    let mut termios = tcgetattr(&pair.slave).unwrap();
    cfmakeraw(&mut termios);
    tcsetattr(&pair.slave, SetArg::TCSANOW, &termios).unwrap();
    let path = nix::unistd::ttyname(&pair.slave).unwrap();
    (
        PtyMaster(std::fs::File::from(pair.master)),
        path.to_string_lossy().into_owned(),
        pair.slave,
    )
}
