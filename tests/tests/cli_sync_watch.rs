//! The sync daemon, `host-cli sync DIR --watch`, against a real server: files
//! created and edited in the watched directory reach the server as `11`,
//! another device's uploads and deletions reach the directory, a retry
//! request is answered from it, both sides converge after the link was down,
//! conflicts are reported and overwrite nothing, a file deleted while it was
//! stopped is deleted on the server at its next start, and SIGTERM ends it with
//! exit 0 after the chunk in flight, the next start resuming at the server's
//! offset.
//!
//! Every wait is on an event (the daemon's `--json` log, a `watch --json`
//! stream), bounded by `cli_common::DEADLINE`.

mod cli_common;

use std::fs;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use cli_common::{spawn_json_lines, write_pattern, Cli, Server, Watcher, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proto_core::auth::ContentHasher;
use serde_json::Value;
use tests::cut_proxy::CutProxy;

/// A running `host-cli sync DIR --watch --json`, read line by line.
struct SyncDaemon {
    /// The process, until it is handed to the thread that waits for its end.
    child: Option<Child>,
    pid: Pid,
    lines: Receiver<Value>,
}

impl SyncDaemon {
    /// Starts the daemon on `dir` as `cli`'s device.
    fn spawn(cli: &Cli, dir: &Path, extra: &[&str]) -> SyncDaemon {
        let mut args = vec!["sync", dir.to_str().unwrap(), "--watch", "--json"];
        args.extend_from_slice(extra);
        let (child, lines) = spawn_json_lines(cli, &args);
        SyncDaemon {
            pid: Pid::from_raw(child.id() as i32),
            child: Some(child),
            lines,
        }
    }

    /// Starts the daemon on `dir` as `cli`'s device; returns once it watches.
    fn start(cli: &Cli, dir: &Path, extra: &[&str]) -> SyncDaemon {
        let mut daemon = SyncDaemon::spawn(cli, dir, extra);
        daemon.until("the watch to start", |l| l["action"] == "watching");
        daemon
    }

    /// Reads log lines until one satisfies `accept`, and returns it.
    fn until(&mut self, what: &str, mut accept: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if accept(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("timed out (or the daemon ended) waiting for {what}"),
            }
        }
    }

    /// Waits for the log line of `action` on `name`.
    fn action(&mut self, action: &str, name: &str) -> Value {
        self.until(&format!("`{action} {name}`"), |l| {
            l["action"] == action && l["name"] == name
        })
    }

    /// Sends SIGTERM and returns the exit status once the daemon ended.
    fn terminate(&mut self) -> ExitStatus {
        kill(self.pid, Signal::SIGTERM).expect("send SIGTERM");
        self.until("the `stopped` line", |l| l["action"] == "stopped");
        let mut child = self.child.take().expect("the daemon is still running");
        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match exited.recv_timeout(DEADLINE) {
            Ok(status) => status.expect("wait for the daemon"),
            Err(_) => {
                let _ = kill(self.pid, Signal::SIGKILL);
                panic!("the daemon did not exit after SIGTERM and its `stopped` line");
            }
        }
    }
}

impl Drop for SyncDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn hash_of(content: &[u8]) -> String {
    ContentHasher::digest(content).to_string()
}

#[test]
fn watched_dir_and_server_converge_through_edits_remote_uploads_and_a_cut_link() {
    let server = Server::start(&["laptop", "phone"]);
    let proxy = CutProxy::start(&server.addr, 0);
    let dir = tempfile::tempdir().unwrap();
    let phone = server.cli("phone");
    let mut seen_by_phone = Watcher::start(&phone);
    let laptop = server.cli("laptop").via(&proxy.url());
    let mut daemon = SyncDaemon::start(&laptop, dir.path(), &["--retries", "2"]);

    // Created here: on the server as 11.
    fs::create_dir(dir.path().join("notes")).unwrap();
    fs::write(dir.path().join("notes/a.txt"), b"first draft").unwrap();
    let record = seen_by_phone.record("notes/a.txt", |r| r["bits"] == "11");
    assert_eq!(record["hash"], hash_of(b"first draft"));
    assert_eq!(record["owner"], "laptop");

    // Edited here: the server gets the new content.
    fs::write(dir.path().join("notes/a.txt"), b"second draft, longer").unwrap();
    seen_by_phone.record("notes/a.txt", |r| {
        r["bits"] == "11" && r["hash"] == hash_of(b"second draft, longer")
    });

    // Asked for again (this server lets only the owner ask, from anywhere): uploaded again.
    server.cli("laptop").ok(&["retry", "notes/a.txt"]);
    daemon.action("retry-requested", "notes/a.txt");
    seen_by_phone.record("notes/a.txt", |r| r["bits"] == "01");
    seen_by_phone.record("notes/a.txt", |r| {
        r["bits"] == "11" && r["hash"] == hash_of(b"second draft, longer")
    });

    // Uploaded by another device: it appears here.
    let elsewhere = tempfile::tempdir().unwrap();
    let photo = elsewhere.path().join("photo.jpg");
    write_pattern(&photo, 300_000, 7);
    phone.ok(&["push", photo.to_str().unwrap()]);
    daemon.action("pulled", "photo.jpg");
    assert_eq!(
        fs::read(dir.path().join("photo.jpg")).unwrap(),
        fs::read(&photo).unwrap()
    );

    // The link goes down; both sides change meanwhile.
    proxy.go_down();
    fs::write(dir.path().join("offline.txt"), b"written while offline").unwrap();
    let song = elsewhere.path().join("song.ogg");
    write_pattern(&song, 200_000, 8);
    phone.ok(&["push", song.to_str().unwrap()]);
    proxy.restore();

    // Both sides converge by themselves.
    daemon.until("a new session", |l| l["action"] == "online");
    let record = seen_by_phone.record("offline.txt", |r| r["bits"] == "11");
    assert_eq!(record["hash"], hash_of(b"written while offline"));
    daemon.action("pulled", "song.ogg");
    assert_eq!(
        fs::read(dir.path().join("song.ogg")).unwrap(),
        fs::read(&song).unwrap()
    );
    assert!(proxy.connections() >= 2, "the daemon connected again");

    let status = daemon.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM ends the daemon with exit 0"
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".statesync-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn a_name_that_differs_from_another_devices_version_is_reported_and_neither_is_overwritten() {
    let server = Server::start(&["laptop", "phone"]);
    let elsewhere = tempfile::tempdir().unwrap();
    fs::write(elsewhere.path().join("plan.txt"), b"the phone's plan").unwrap();
    let phone = server.cli("phone");
    phone.ok(&["push", elsewhere.path().join("plan.txt").to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("plan.txt"), b"the laptop's plan").unwrap();

    let laptop = server.cli("laptop");
    let mut daemon = SyncDaemon::start(&laptop, dir.path(), &[]);
    let conflict = daemon.action("conflict", "plan.txt");
    assert!(
        conflict["detail"].as_str().unwrap().contains("phone"),
        "{conflict}"
    );

    // An edit here is still a conflict, reported again, and overwrites nothing.
    fs::write(dir.path().join("plan.txt"), b"the laptop's plan, v2").unwrap();
    daemon.action("conflict", "plan.txt");
    assert_eq!(daemon.terminate().code(), Some(0));
    assert_eq!(
        fs::read(dir.path().join("plan.txt")).unwrap(),
        b"the laptop's plan, v2"
    );
    let record = phone.record("plan.txt").unwrap();
    assert_eq!(record["owner"], "phone");
    assert_eq!(record["hash"], hash_of(b"the phone's plan"));
}

#[test]
fn deletions_travel_both_ways_and_a_copy_changed_here_is_kept() {
    let server = Server::start(&["laptop", "phone"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let shared = elsewhere.path().join("shared");
    fs::create_dir(&shared).unwrap();
    for (name, content) in [("gone.txt", "delete me"), ("kept.txt", "edit me")] {
        fs::write(shared.join(name), content).unwrap();
    }
    let phone = server.cli("phone");
    phone.ok(&["push", shared.to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let laptop = server.cli("laptop");
    let mut daemon = SyncDaemon::start(&laptop, dir.path(), &[]);
    let (gone, kept) = ("shared/gone.txt", "shared/kept.txt");
    daemon.action("pulled", gone);
    daemon.action("pulled", kept);

    // Deleted on the server: the unchanged copy goes, the edited one stays.
    fs::write(dir.path().join(kept), b"edited on the laptop").unwrap();
    phone.ok(&["rm", gone, kept]);
    daemon.action("deleted-here", gone);
    daemon.action("kept", kept);
    assert!(!dir.path().join(gone).exists());
    daemon.action("pushed", kept);

    // Deleted here: the server's record goes too.
    let mut seen_by_phone = Watcher::start(&phone);
    fs::remove_file(dir.path().join(kept)).unwrap();
    daemon.action("deleted-on-server", kept);
    seen_by_phone.until("the deletion", |e| {
        e["event"] == "deleted" && e["name"] == kept
    });
    assert!(phone.record(kept).is_none());

    // An empty directory too: it is synced as an entry, and its deletion here stands.
    fs::create_dir(dir.path().join("empty")).unwrap();
    seen_by_phone.record("empty", |r| r["bits"] == "11");
    fs::remove_dir(dir.path().join("empty")).unwrap();
    daemon.action("deleted-on-server", "empty");
    seen_by_phone.until("the deletion of the directory", |e| {
        e["event"] == "deleted" && e["name"] == "empty"
    });
    assert!(!dir.path().join("empty").exists());
    assert_eq!(daemon.terminate().code(), Some(0));
}

#[test]
fn a_file_deleted_while_the_daemon_was_stopped_is_deleted_on_the_server_at_the_next_start() {
    let server = Server::start(&["laptop", "phone"]);
    let dir = tempfile::tempdir().unwrap();
    let laptop = server.cli("laptop");
    let phone = server.cli("phone");
    let mut daemon = SyncDaemon::start(&laptop, dir.path(), &[]);
    let (gone, stays) = ("gone.txt", "stays.txt");
    fs::write(dir.path().join(gone), "delete me").unwrap();
    fs::write(dir.path().join(stays), "keep me").unwrap();
    daemon.action("pushed", gone);
    daemon.action("pushed", stays);
    assert_eq!(daemon.terminate().code(), Some(0));

    fs::remove_file(dir.path().join(gone)).unwrap();
    let mut seen_by_phone = Watcher::start(&phone);
    let mut daemon = SyncDaemon::start(&laptop, dir.path(), &[]);
    daemon.until("the deletion on the server", |l| {
        assert!(
            !(l["action"] == "pulled" && l["name"] == gone),
            "the file deleted here was downloaded again: {l}"
        );
        l["action"] == "deleted-on-server" && l["name"] == gone
    });
    seen_by_phone.until("the deletion", |e| {
        e["event"] == "deleted" && e["name"] == gone
    });
    assert!(phone.record(gone).is_none());
    assert!(phone.record(stays).is_some(), "only the deleted file goes");
    assert!(!dir.path().join(gone).exists());
    assert_eq!(daemon.terminate().code(), Some(0));
}

#[test]
fn sigterm_mid_upload_exits_0_after_the_chunk_and_the_next_start_resumes_there() {
    const MIB: usize = 1 << 20;
    let server = Server::start(&["laptop", "phone"]);
    // A slow link, so the upload is still running when the signal comes.
    let proxy = CutProxy::start(&server.addr, 2 * MIB as u64);
    let dir = tempfile::tempdir().unwrap();
    let laptop = server.cli("laptop").via(&proxy.url());
    let mut seen_by_phone = Watcher::start(&server.cli("phone"));
    let mut daemon = SyncDaemon::start(&laptop, dir.path(), &[]);

    write_pattern(&dir.path().join("film.bin"), 24 * MIB, 9);
    seen_by_phone.record("film.bin", |r| {
        r["bits"] == "10" && r["received"].as_u64().unwrap() > 0
    });
    assert_eq!(daemon.terminate().code(), Some(0));
    let record = seen_by_phone.record("film.bin", |r| r["bits"] != "10");
    let held = record["received"].as_u64().unwrap();
    assert!(
        held > 0 && held < 24 * MIB as u64,
        "the server keeps the bytes before the stop: {record}"
    );

    let fast = server.cli("laptop");
    let mut daemon = SyncDaemon::start(&fast, dir.path(), &[]);
    let pushed = daemon.action("pushed", "film.bin");
    assert!(
        pushed["detail"].as_str().unwrap().contains("resumed at"),
        "{pushed}"
    );
    seen_by_phone.record("film.bin", |r| r["bits"] == "11");
    assert_eq!(daemon.terminate().code(), Some(0));
}

#[test]
fn a_daemon_started_while_the_server_is_unreachable_waits_for_it() {
    let server = Server::start(&["laptop"]);
    let proxy = CutProxy::start(&server.addr, 0);
    proxy.go_down();
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("early.txt"),
        b"written before the server was there",
    )
    .unwrap();
    let laptop = server.cli("laptop").via(&proxy.url());
    let mut daemon = SyncDaemon::spawn(&laptop, dir.path(), &[]);

    daemon.until("going offline", |l| l["action"] == "offline");
    proxy.restore();
    daemon.until("the watch to start", |l| l["action"] == "watching");
    daemon.action("pushed", "early.txt");
    let record = server.cli("laptop").record("early.txt").unwrap();
    assert_eq!(record["bits"], "11");
    assert_eq!(daemon.terminate().code(), Some(0));
}

#[test]
fn a_tree_the_daemon_cannot_read_is_reported_and_it_carries_on_once_fixed() {
    use std::os::unix::ffi::OsStrExt;
    let server = Server::start(&["laptop"]);
    let dir = tempfile::tempdir().unwrap();
    let laptop = server.cli("laptop");
    let mut daemon = SyncDaemon::start(&laptop, dir.path(), &[]);

    let bad = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"bad-\xff.txt"));
    fs::write(&bad, b"a name that is not UTF-8").unwrap();
    let failed = daemon.until("the failure", |l| l["action"] == "failed");
    assert!(
        failed["detail"].as_str().unwrap().contains("not UTF-8"),
        "{failed}"
    );

    fs::rename(&bad, dir.path().join("good.txt")).unwrap();
    daemon.action("pushed", "good.txt");
    assert_eq!(daemon.terminate().code(), Some(0));
}
