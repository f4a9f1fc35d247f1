//! TCP throughput on loopback: statesync push and pull of a large file (hashing
//! and fsync on) beside `rsync` in daemon mode (`--whole-file`) and the disk's
//! synced write rate (`dd conv=fsync`), interleaved in one run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::process::{Profile, ServerProcess};

use crate::report::Row;

/// How the TCP figures are obtained, for the report.
pub const METHOD: &str = "- **tcp**: one random file over loopback; each repetition runs, in this order, `dd if=FILE of=COPY bs=4M conv=fsync` (the disk's synced write rate), `rsync --whole-file` push to and pull from an `rsync --daemon` on 127.0.0.1, and `host-cli push` / `host-cli pull` against a fresh `host-server` (SHA-256 verified on both sides, data fsynced before it is acknowledged). Ratios are statesync/rsync of the same repetition; min and median over the repetitions. All files live on the same disk.";

fn timed(mut cmd: Command) -> Result<Duration, String> {
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

struct RsyncDaemon {
    child: std::process::Child,
    port: u16,
}

impl RsyncDaemon {
    fn start(dir: &Path, module_dir: &Path) -> Result<RsyncDaemon, String> {
        let conf = dir.join("rsyncd.conf");
        std::fs::write(
            &conf,
            format!(
                "use chroot = no\npid file = {}\n[bench]\npath = {}\nread only = false\n",
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

    fn url(&self, name: &str) -> String {
        format!("rsync://127.0.0.1:{}/bench/{name}", self.port)
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn row(tool: &str, bytes: u64) -> Row {
    Row {
        bench: "tcp loopback".into(),
        tool: tool.into(),
        condition: "hash + fsync".into(),
        bytes,
        times: Vec::new(),
        failures: 0,
        line_rate: None,
        note: String::new(),
    }
}

fn record(row: &mut Row, result: Result<Duration, String>) {
    match result {
        Ok(d) => row.times.push(d),
        Err(e) => {
            row.failures += 1;
            if row.note.is_empty() {
                row.note = format!("failure: {e}");
            }
        }
    }
}

fn ratio_note(ours: &Row, theirs: &Row, what: &str) -> String {
    let mut ratios: Vec<f64> = ours
        .times
        .iter()
        .zip(&theirs.times)
        .map(|(o, t)| t.as_secs_f64() / o.as_secs_f64())
        .collect();
    if ratios.is_empty() {
        return String::new();
    }
    ratios.sort_by(f64::total_cmp);
    format!(
        "{what}: min {:.2}×, median {:.2}×",
        ratios[0],
        ratios[ratios.len() / 2]
    )
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
    let (mut dd, mut rsync_push, mut rsync_pull, mut push, mut pull) = (
        row("dd conv=fsync (disk limit)", bytes),
        row("rsync --whole-file push (daemon)", bytes),
        row("rsync --whole-file pull (daemon)", bytes),
        row("statesync push", bytes),
        row("statesync pull", bytes),
    );
    for rep in 0..reps {
        eprintln!("tcp bench: repetition {} of {reps}", rep + 1);
        let copy = work.join("dd-copy.bin");
        let mut cmd = Command::new("dd");
        cmd.arg(format!("if={}", file.display()))
            .arg(format!("of={}", copy.display()))
            .args(["bs=4M", "conv=fsync"]);
        record(&mut dd, timed(cmd));
        let _ = std::fs::remove_file(&copy);

        if let Some(daemon) = &daemon {
            let _ = std::fs::remove_file(rsync_dir.join(name));
            let mut cmd = Command::new("rsync");
            cmd.arg("--whole-file").arg(&file).arg(daemon.url(""));
            record(&mut rsync_push, timed(cmd));
            let dest = work.join("rsync-pulled");
            let _ = std::fs::remove_dir_all(&dest);
            std::fs::create_dir_all(&dest).expect("dest dir");
            let mut cmd = Command::new("rsync");
            cmd.arg("--whole-file").arg(daemon.url(name)).arg(&dest);
            record(&mut rsync_pull, timed(cmd));
            let _ = std::fs::remove_dir_all(&dest);
        }

        let server = ServerProcess::start(Profile::Release, &[]);
        let key = server.add_device("bench-desktop");
        let cmd = server.cli_command(
            &server.url(),
            "bench-desktop",
            &key,
            &["push", &file.display().to_string()],
        );
        record(&mut push, timed(cmd));
        let dest = tempfile::tempdir_in(work).expect("dest dir");
        let dest_arg = dest.path().display().to_string();
        let cmd = server.cli_command(
            &server.url(),
            "bench-desktop",
            &key,
            &["pull", "--dest", &dest_arg, name],
        );
        record(&mut pull, timed(cmd));
    }
    push.note = ratio_note(&push, &rsync_push, "vs rsync");
    pull.note = ratio_note(&pull, &rsync_pull, "vs rsync");
    let disk = ratio_note(&push, &dd, "push / disk");
    if !disk.is_empty() {
        push.note = format!("{}; {disk}", push.note);
    }
    vec![dd, rsync_push, push, rsync_pull, pull]
}
