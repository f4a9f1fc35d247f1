//! TCP throughput on loopback: statesync push and pull of a large file (hashing
//! and fsync on) beside `rsync` in daemon mode (`--whole-file`) and the disk's
//! synced write rate (`dd conv=fsync`), interleaved in one run.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ::tests::process::{Profile, ServerProcess};

use crate::report::{self, Row};

/// How the TCP figures are obtained, for the report.
pub const METHOD: &str = "- **tcp**: one random file over loopback, all files on the same disk. Each repetition runs, in this order: `dd if=FILE of=COPY bs=4M conv=fsync` (the disk's synced write rate), `rsync --whole-file` push to and pull from an `rsync --daemon` on 127.0.0.1 (rsync's defaults: its own whole-file checksum, no fsync), the same with `--fsync` (rsync syncs the file before it finishes: the durability a statesync transfer has), then `host-cli push` and `host-cli pull --dest DIR` against a fresh release `host-server` (the file is new to host-cli's quick-check index, so it is read once: hashed while it is sent, the SHA-256 given at `UploadClose` and verified by the server; bytes acknowledged only once fsynced; a pull is hashed while it arrives, fsynced and renamed into place). `sync` runs before every step, so no step pays for the write-back of the one before it. Times are from process start to exit (the client's hashing, handshake and the server's final checks included). Ratios pair the same repetition: `× rsync` = rsync's time / ours (above 1 = faster than rsync), `× dd's synced write` = dd's time / push's time (1 = as fast as the disk's synced write). Min and median over the repetitions; the median of an even count is the larger middle value.\n\n  Defaults (host-server `config.rs`, host-cli `link.rs`/`session.rs`/`background_writer.rs`): 256 KiB frames on TCP; upload window 32 frames, at most 8 MiB; the server's writer copies and hashes on one thread while a syncer thread runs `fdatasync` for every 2 MiB (window / 4) and acknowledges only synced bytes (group commit); download window 8 MiB; a pull is written by a thread of its own while the session thread receives and hashes, and a third thread runs `fdatasync` every 16 MiB so the disk writes while the pull goes on. A 64 MiB upload window (sync every 16 MiB) was 2–10 % faster in alternating runs, within this disk's noise, so the window stays bounded at 8 MiB.\n\n  What limits the ratios: rsync's default run leaves its bytes in the page cache unsynced and reads the file once, so its time does not include the disk. A push (protocol 6) reads the file once and hashes it on both ends while it goes (before protocol 6 it read it twice: SHA-256 first, about 0.6 s per GiB, since the manifest and `UploadOpen` carried the hash), and waits for the disk before each acknowledgement; a pull fsyncs before the rename. So 1.5× rsync would need the whole file made durable in two thirds of the time rsync takes to copy it into the cache: compare the `dd` row (the same bytes made durable) with the rsync rows of the same run. The `--fsync` rows are the comparison at equal durability. This machine's disk changes speed from minute to minute (a synced 1 GiB write took from 0.8 s to 6 s on the same day), so only ratios within one repetition mean much.";

/// Flushes every dirty page to disk, so that a timed step neither pays for
/// the write-back of the step before it nor leaves its own to the next one.
fn settle() {
    let _ = Command::new("sync").status();
}

fn timed(mut cmd: Command) -> Result<Duration, String> {
    settle();
    let started = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(started.elapsed())
}

/// An `rsync --daemon` on 127.0.0.1 with one writable module, `bench`.
pub struct RsyncDaemon {
    child: std::process::Child,
    port: u16,
}

impl RsyncDaemon {
    /// Starts a daemon whose module `bench` is `module_dir`; its config lives in `dir`.
    pub fn start(dir: &Path, module_dir: &Path) -> Result<RsyncDaemon, String> {
        // Run as ourselves: a daemon started as root would switch to `nobody`,
        // who may not write into our temporary module directory.
        let owner = std::fs::metadata(module_dir).map_err(|e| e.to_string())?;
        let conf = dir.join("rsyncd.conf");
        std::fs::write(
            &conf,
            format!(
                "use chroot = no\nuid = {}\ngid = {}\npid file = {}\n[bench]\npath = {}\nread only = false\n",
                owner.uid(),
                owner.gid(),
                dir.join("rsyncd.pid").display(),
                module_dir.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new("rsync")
            .arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", conf.display()))
            .arg(format!("--port={port}"))
            .arg("--address=127.0.0.1")
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("rsync: {e} (install rsync)"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("rsync daemon did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(RsyncDaemon { child, port })
    }

    /// `rsync://` URL of `name` in the module.
    pub fn url(&self, name: &str) -> String {
        format!("rsync://127.0.0.1:{}/bench/{name}", self.port)
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One tool's repetitions, in order: `None` where a repetition failed, so
/// ratios pair the same repetition of two tools.
struct Series {
    row: Row,
    per_rep: Vec<Option<Duration>>,
}

impl Series {
    fn new(tool: &str, condition: &str, bytes: u64) -> Series {
        Series {
            row: Row {
                bench: "tcp loopback".into(),
                tool: tool.into(),
                condition: condition.into(),
                bytes,
                times: Vec::new(),
                failures: 0,
                line_rate: None,
                note: String::new(),
            },
            per_rep: Vec::new(),
        }
    }

    fn record(&mut self, result: Result<Duration, String>) {
        match result {
            Ok(d) => {
                self.row.times.push(d);
                self.per_rep.push(Some(d));
            }
            Err(e) => {
                self.row.failures += 1;
                self.per_rep.push(None);
                if self.row.note.is_empty() {
                    self.row.note = format!("failure: {}", e.replace('\n', " "));
                }
            }
        }
    }
}

/// How many times faster `ours` was than `theirs`, for each repetition where
/// both succeeded (`theirs` time / `ours` time).
pub fn speedups(ours: &[Option<Duration>], theirs: &[Option<Duration>]) -> Vec<f64> {
    ours.iter()
        .zip(theirs)
        .filter_map(|(o, t)| match (o, t) {
            (Some(o), Some(t)) if !o.is_zero() => Some(t.as_secs_f64() / o.as_secs_f64()),
            _ => None,
        })
        .collect()
}

/// `what: min A×, median B× (N runs)` over paired repetitions, or nothing.
fn ratio_note(ours: &Series, theirs: &Series, what: &str) -> String {
    let ratios = speedups(&ours.per_rep, &theirs.per_rep);
    match (report::min(&ratios), report::median(&ratios)) {
        (Some(min), Some(median)) => format!(
            "{what}: min {min:.2}×, median {median:.2}× ({} paired reps)",
            ratios.len()
        ),
        _ => String::new(),
    }
}

fn join_notes(notes: &[String]) -> String {
    notes
        .iter()
        .filter(|n| !n.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs the TCP bench with a file of `bytes` bytes, `reps` times.
pub async fn run(work: &Path, bytes: u64, reps: usize) -> Vec<Row> {
    tokio::task::block_in_place(|| run_blocking(work, bytes, reps))
}

fn run_blocking(work: &Path, bytes: u64, reps: usize) -> Vec<Row> {
    let name = "tcp-bench.bin";
    let file = crate::serial::random_file(work, name, bytes).expect("write test file");
    let rsync_dir = work.join("rsync-module");
    std::fs::create_dir_all(&rsync_dir).expect("rsync module dir");
    let daemon = match RsyncDaemon::start(work, &rsync_dir) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("tcp bench: {e}");
            None
        }
    };
    let mut dd = Series::new(
        "dd conv=fsync (disk limit)",
        "write, one fsync at the end",
        bytes,
    );
    let mut rsync_push = Series::new(
        "rsync --whole-file push (daemon)",
        "rsync's checksum, no fsync",
        bytes,
    );
    let mut rsync_pull = Series::new(
        "rsync --whole-file pull (daemon)",
        "rsync's checksum, no fsync",
        bytes,
    );
    let mut rsync_push_synced = Series::new(
        "rsync --whole-file --fsync push (daemon)",
        "rsync's checksum, fsync at the end",
        bytes,
    );
    let mut rsync_pull_synced = Series::new(
        "rsync --whole-file --fsync pull (daemon)",
        "rsync's checksum, fsync at the end",
        bytes,
    );
    let mut push = Series::new(
        "statesync push",
        "one read, SHA-256 both ends, fsync before ack",
        bytes,
    );
    let mut pull = Series::new(
        "statesync pull",
        "SHA-256 both ends, fsync before rename",
        bytes,
    );
    for rep in 0..reps {
        eprintln!("tcp bench: repetition {} of {reps}", rep + 1);
        let copy = work.join("dd-copy.bin");
        let mut cmd = Command::new("dd");
        cmd.arg(format!("if={}", file.display()))
            .arg(format!("of={}", copy.display()))
            .args(["bs=4M", "conv=fsync"]);
        dd.record(timed(cmd));
        let _ = std::fs::remove_file(&copy);

        if let Some(daemon) = &daemon {
            let runs = [
                (&mut rsync_push, &mut rsync_pull, None),
                (
                    &mut rsync_push_synced,
                    &mut rsync_pull_synced,
                    Some("--fsync"),
                ),
            ];
            for (push_series, pull_series, extra) in runs {
                let _ = std::fs::remove_file(rsync_dir.join(name));
                let mut cmd = Command::new("rsync");
                cmd.arg("--whole-file")
                    .args(extra)
                    .arg(&file)
                    .arg(daemon.url(""));
                push_series.record(timed(cmd));
                let dest = work.join("rsync-pulled");
                let _ = std::fs::remove_dir_all(&dest);
                std::fs::create_dir_all(&dest).expect("dest dir");
                let mut cmd = Command::new("rsync");
                cmd.arg("--whole-file")
                    .args(extra)
                    .arg(daemon.url(name))
                    .arg(&dest);
                pull_series.record(timed(cmd));
                let _ = std::fs::remove_dir_all(&dest);
            }
        }

        let server = ServerProcess::start(Profile::Release, &[]);
        let key = server.add_device("bench-desktop");
        let cmd = server.cli_command(
            &server.url(),
            "bench-desktop",
            &key,
            &["push", &file.display().to_string()],
        );
        push.record(timed(cmd));
        let dest = tempfile::tempdir_in(work).expect("dest dir");
        let dest_arg = dest.path().display().to_string();
        let cmd = server.cli_command(
            &server.url(),
            "bench-desktop",
            &key,
            &["pull", "--dest", &dest_arg, name],
        );
        pull.record(timed(cmd));
    }
    push.row.note = join_notes(&[
        push.row.note.clone(),
        ratio_note(&push, &rsync_push, "× rsync push"),
        ratio_note(&push, &rsync_push_synced, "× rsync --fsync push"),
        ratio_note(&push, &dd, "× dd's synced write"),
    ]);
    pull.row.note = join_notes(&[
        pull.row.note.clone(),
        ratio_note(&pull, &rsync_pull, "× rsync pull"),
        ratio_note(&pull, &rsync_pull_synced, "× rsync --fsync pull"),
    ]);
    vec![
        dd.row,
        rsync_push.row,
        rsync_push_synced.row,
        push.row,
        rsync_pull.row,
        rsync_pull_synced.row,
        pull.row,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(values: &[Option<f64>]) -> Vec<Option<Duration>> {
        values
            .iter()
            .map(|v| v.map(Duration::from_secs_f64))
            .collect()
    }

    #[test]
    fn speedups_pair_the_same_repetition_and_skip_failures() {
        let ours = secs(&[Some(1.0), None, Some(2.0), Some(4.0)]);
        let theirs = secs(&[Some(3.0), Some(1.0), None, Some(2.0)]);
        assert_eq!(speedups(&ours, &theirs), vec![3.0, 0.5]);
    }

    #[test]
    fn the_ratio_note_gives_min_and_median() {
        let mut ours = Series::new("a", "", 1);
        let mut theirs = Series::new("b", "", 1);
        for (o, t) in [(1.0, 1.5), (1.0, 2.0), (2.0, 2.0)] {
            ours.record(Ok(Duration::from_secs_f64(o)));
            theirs.record(Ok(Duration::from_secs_f64(t)));
        }
        ours.record(Err("boom".into()));
        theirs.record(Ok(Duration::from_secs(1)));
        assert_eq!(
            ratio_note(&ours, &theirs, "× b"),
            "× b: min 1.00×, median 1.50× (3 paired reps)"
        );
        assert_eq!(ours.row.failures, 1);
        assert_eq!(ours.row.note, "failure: boom");
    }
}
