//! The client trusts no name from the server: a fake server (proto-core's framing and
//! messages, a valid handshake) lists records whose names climb out of `--dest`, and
//! `pull` and `sync` must refuse them without touching the disk outside the folder.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;

use proto_core::auth::{server_tag, ContentHasher};
use proto_core::framing::mac::{Direction, Opener, Sealer, SessionKey};
use proto_core::framing::{Accumulator, Feed, Framing};
use proto_core::message::{
    ClientFrame, ClientMessage, ServerFrame, ServerMessage, PROTOCOL_VERSION,
};
use proto_core::model::Record;
use proto_core::{FileKind, UploadState};

const KEY: [u8; 32] = [0x5a; 32];
const SERVER_NONCE: [u8; 16] = [7; 16];
const MAX_FRAME: u32 = 64 * 1024;

/// Names a hostile server might send, each meant to land outside the destination.
const HOSTILE: [(&str, FileKind); 4] = [
    ("../../escape-dir", FileKind::Directory),
    ("../escape.txt", FileKind::File),
    ("/tmp/statesync-absolute-escape.txt", FileKind::File),
    ("ok/../../escape-nested.txt", FileKind::File),
];

fn record(id: u64, name: &str, kind: FileKind) -> Record<'_> {
    let size = if kind == FileKind::File { 3 } else { 0 };
    let hash = if kind == FileKind::File {
        ContentHasher::digest(b"bad")
    } else {
        ContentHasher::digest(b"")
    };
    Record {
        id,
        name,
        kind,
        size,
        hash,
        state: UploadState::Uploaded,
        received: size,
        owner: "mallory",
        batch: 0,
        revision: id,
        updated_at: 0,
        conflict: false,
        reason: "",
    }
}

fn send(stream: &mut TcpStream, sealer: &mut Option<Sealer>, id: u16, message: ServerMessage<'_>) {
    let mut payload = vec![0u8; MAX_FRAME as usize];
    let mut len = ServerFrame { id, message }
        .encode(&mut payload)
        .expect("the fake server's frame fits")
        .len();
    if let Some(sealer) = sealer {
        len = sealer.seal(&mut payload, len).expect("the trailer fits");
    }
    let mut wire = vec![0u8; Framing::Length.max_wire_len(len)];
    let n = Framing::Length.encode(&payload[..len], &mut wire).unwrap();
    stream.write_all(&wire[..n]).unwrap();
}

/// Serves one session: a correct handshake, then hostile records for every list,
/// `Ok` for anything else (downloads are answered with an error).
fn serve_one(mut stream: TcpStream) {
    let mut acc = Accumulator::new(Framing::Length, vec![0u8; MAX_FRAME as usize]);
    let mut client_nonce = [0u8; 16];
    let mut device = String::new();
    // A correct session: frames after Welcome are sealed, the client's are checked.
    let mut sealer: Option<Sealer> = None;
    let mut opener: Option<Opener> = None;
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut input = &buf[..n];
        let mut frames = Vec::new();
        loop {
            match acc.feed(input) {
                Feed::Consumed => break,
                Feed::Frame { payload, remaining } => {
                    let opened = match &mut opener {
                        Some(opener) => opener.open(payload),
                        None => Ok(payload),
                    };
                    let Ok(payload) = opened else {
                        return;
                    };
                    frames.push(payload.to_vec());
                    input = remaining;
                }
                Feed::Error { remaining, .. } => input = remaining,
            }
        }
        for payload in frames {
            let Ok(frame) = ClientFrame::decode(&payload) else {
                return;
            };
            let id = frame.id;
            match frame.message {
                ClientMessage::Hello {
                    device: name,
                    nonce,
                    ..
                } => {
                    client_nonce = nonce;
                    device = name.to_string();
                    let challenge = ServerMessage::Challenge {
                        version: PROTOCOL_VERSION,
                        max_frame: MAX_FRAME,
                        nonce: SERVER_NONCE,
                    };
                    send(&mut stream, &mut sealer, id, challenge);
                }
                ClientMessage::Authenticate { .. } => {
                    let mac = server_tag(&KEY, &SERVER_NONCE, &client_nonce, &device);
                    let welcome = ServerMessage::Welcome {
                        device: &device,
                        revision: 9,
                        max_frame: MAX_FRAME,
                        mac,
                    };
                    send(&mut stream, &mut sealer, id, welcome);
                    let key = |direction| {
                        SessionKey::derive(&KEY, &client_nonce, &SERVER_NONCE, &device, direction)
                    };
                    sealer = Some(Sealer::new(key(Direction::ServerToClient)));
                    opener = Some(Opener::new(key(Direction::ClientToServer)));
                }
                ClientMessage::List { .. } => {
                    for (i, (name, kind)) in HOSTILE.iter().enumerate() {
                        let item = ServerMessage::RecordItem(record(i as u64 + 1, name, *kind));
                        send(&mut stream, &mut sealer, id, item);
                    }
                    let count = HOSTILE.len() as u32;
                    let end = ServerMessage::ListEnd { revision: 9, count };
                    send(&mut stream, &mut sealer, id, end);
                }
                ClientMessage::DownloadOpen { .. } => {
                    let error = ServerMessage::Error {
                        code: proto_core::ErrorCode::NotFound,
                        message: "the fake server holds no bytes",
                    };
                    send(&mut stream, &mut sealer, id, error);
                }
                _ => send(&mut stream, &mut sealer, id, ServerMessage::Ok),
            }
        }
    }
}

/// Starts the fake server on 127.0.0.1 for up to `sessions` sessions; returns its URL.
fn fake_server(sessions: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(sessions) {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || serve_one(stream));
        }
    });
    format!("tcp://{addr}")
}

fn host_cli(server: &str, args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_host-cli"))
        .current_dir(cwd)
        .args(["--server", server, "--device", "victim", "--key"])
        .arg(hex::encode(KEY))
        .args(args)
        .env_remove("STATESYNC_CONFIG")
        .env("HOME", cwd)
        .output()
        .expect("host-cli runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Everything under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

fn assert_refused(ok: bool, text: &str, root: &Path, dest: &str) {
    assert!(!ok, "the command must fail: {text}");
    for (name, _) in HOSTILE {
        assert!(text.contains(name), "the refusal names `{name}`: {text}");
    }
    assert!(text.contains("unsafe name"), "{text}");
    assert_eq!(
        tree(root),
        [dest.to_string()],
        "nothing was written beside `{dest}`"
    );
    assert!(!Path::new("/tmp/statesync-absolute-escape.txt").exists());
}

#[test]
fn pull_refuses_names_that_climb_out_of_the_destination() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("a/b");
    std::fs::create_dir_all(work.join("dest")).unwrap();
    let server = fake_server(1);
    let (ok, text) = host_cli(&server, &["pull", "--dest", "dest"], &work);
    assert!(tree(&work.join("dest")).is_empty(), "{text}");
    assert_eq!(tree(root.path()), ["a", "a/b", "a/b/dest"], "{text}");
    assert_refused(ok, &text, &work, "dest");
}

#[test]
fn sync_refuses_names_that_climb_out_of_the_folder() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("a/b");
    std::fs::create_dir_all(work.join("shared")).unwrap();
    let server = fake_server(1);
    let (ok, text) = host_cli(&server, &["sync", "shared"], &work);
    assert!(tree(&work.join("shared")).is_empty(), "{text}");
    assert_eq!(tree(root.path()), ["a", "a/b", "a/b/shared"], "{text}");
    assert_refused(ok, &text, &work, "shared");
}
