//! Real trees and flaky links over TCP loopback: a `sync` of a folder of
//! many files in which nothing changed (the quick check's case) beside an
//! `rsync -a` no-op against a daemon, and a push over a link that is cut and
//! stays down for a few seconds (the CLI reconnects on its own).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ::tests::cut_proxy::{CutProxy, Direction};
use ::tests::process::{Profile, ServerProcess};

use crate::report::{self, Row};
use crate::tcp::RsyncDaemon;

/// How the figures are obtained, for the report.
pub fn method(
    files: usize,
    tree_bytes: u64,
    cut_bytes: u64,
    down: Duration,
    reps: usize,
) -> String {
    format!(
        "- **tree**: {files} random files of {} each ({} in all) in 100 folders. `host-cli sync DIR` \
         uploads them once to a fresh release `host-server` (untimed, it also fills the quick-check \
         index), then each repetition times a `host-cli sync DIR` in which nothing changed (process \
         start to exit: walk, stat, index look-ups, the server's list of {files} records, compare) \
         beside `rsync -a DIR/ rsync://127.0.0.1/…` against an `rsync --daemon` that already holds \
         the tree (its no-op: walk, stat, file list exchange). {reps} repetitions; `× rsync` = \
         rsync's time / ours.\n\
         - **cut link**: `host-cli push` of a {} random file through a TCP proxy on 127.0.0.1 that \
         cuts the connection once half the file went through and refuses connections for {} s; the \
         CLI reconnects with its default back-off (0.5 s, 1 s, 2 s, 4 s …) and resumes at the \
         server's offset. Time from start to exit; re-sent = what the CLI wrote beyond one copy of \
         the file (`resent_bytes` of `push --json`: framing and the window lost in the cut).",
        report::size(tree_bytes / files as u64),
        report::size(tree_bytes),
        report::size(cut_bytes),
        down.as_secs()
    )
}

fn timed(mut cmd: Command) -> Result<(Duration, Output), String> {
    let started = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok((elapsed, out))
}

fn row(tool: &str, condition: &str, bytes: u64) -> Row {
    Row {
        bench: "tcp loopback".into(),
        tool: tool.into(),
        condition: condition.into(),
        bytes,
        times: Vec::new(),
        failures: 0,
        line_rate: None,
        note: String::new(),
    }
}

fn record(row: &mut Row, result: Result<Duration, String>) -> Option<Duration> {
    match result {
        Ok(d) => {
            row.times.push(d);
            Some(d)
        }
        Err(e) => {
            row.failures += 1;
            if row.note.is_empty() {
                row.note = format!("failure: {}", e.replace('\n', " "));
            }
            None
        }
    }
}

/// Runs both benches.
pub async fn run(
    work: &Path,
    files: usize,
    tree_bytes: u64,
    cut_bytes: u64,
    down: Duration,
    reps: usize,
) -> Vec<Row> {
    tokio::task::block_in_place(|| {
        let mut rows = no_change_sync(work, files, tree_bytes, reps);
        rows.push(cut_push(work, cut_bytes, down, reps));
        rows
    })
}

fn no_change_sync(work: &Path, files: usize, tree_bytes: u64, reps: usize) -> Vec<Row> {
    let tree = work.join("tree");
    let per_file = (tree_bytes / files as u64).max(1);
    for i in 0..files {
        let dir = tree.join(format!("d{:03}", i % 100));
        std::fs::create_dir_all(&dir).expect("tree dir");
        crate::serial::random_file(&dir, &format!("f{i:05}.bin"), per_file)
            .expect("write tree file");
    }
    let server = ServerProcess::start(Profile::Release, &[]);
    let key = server.add_device("box");
    let state = work.join("cli-state");
    let sync = || {
        let mut cmd = server.cli_command(&server.url(), "box", &key, &["sync"]);
        cmd.arg(&tree).env("XDG_STATE_HOME", &state);
        cmd
    };
    let mut ours = row(
        "host-cli sync, nothing changed",
        &format!("{files} files"),
        0,
    );
    let mut theirs = row(
        "rsync -a (daemon), nothing changed",
        &format!("{files} files"),
        0,
    );
    if let Err(e) = timed(sync()) {
        ours.note = format!("first sync failed: {e}");
        return vec![ours];
    }
    let module = work.join("rsync-tree");
    std::fs::create_dir_all(&module).expect("rsync module dir");
    let daemon = RsyncDaemon::start(work, &module).ok();
    let rsync = |daemon: &RsyncDaemon| {
        let mut cmd = Command::new("rsync");
        cmd.arg("-a")
            .arg(format!("{}/", tree.display()))
            .arg(daemon.url(""));
        cmd
    };
    if let Some(daemon) = &daemon {
        let _ = timed(rsync(daemon));
    }
    let mut ratios = Vec::new();
    for _ in 0..reps {
        let a = record(&mut ours, timed(sync()).map(|(d, _)| d));
        let b = daemon
            .as_ref()
            .and_then(|daemon| record(&mut theirs, timed(rsync(daemon)).map(|(d, _)| d)));
        if let (Some(a), Some(b)) = (a, b) {
            ratios.push(b.as_secs_f64() / a.as_secs_f64());
        }
    }
    if let (Some(min), Some(median)) = (report::min(&ratios), report::median(&ratios)) {
        ours.note = format!(
            "× rsync: min {min:.2}×, median {median:.2}× ({} paired reps)",
            ratios.len()
        );
    }
    vec![ours, theirs]
}

fn cut_push(work: &Path, bytes: u64, down: Duration, reps: usize) -> Row {
    let file = crate::serial::random_file(work, "cut-push.bin", bytes).expect("write test file");
    let mut result = row(
        "host-cli push, link cut",
        &format!("cut at half, down {} s", down.as_secs()),
        bytes,
    );
    let mut resent = Vec::new();
    for _ in 0..reps {
        let server = ServerProcess::start(Profile::Release, &[]);
        let key = server.add_device("box");
        let proxy = CutProxy::start(&server.addr, 0);
        proxy.cut_after(Direction::ToServer, bytes / 2, down);
        let mut cmd = server.cli_command(&proxy.url(), "box", &key, &["push", "--json"]);
        cmd.arg(&file)
            .env("XDG_STATE_HOME", work.join("cli-state-cut"));
        match timed(cmd) {
            Ok((elapsed, out)) => {
                record(&mut result, Ok(elapsed));
                let report: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or_default();
                resent.push(report[0]["resent_bytes"].as_u64().unwrap_or(0));
            }
            Err(e) => {
                record(&mut result, Err(e));
            }
        }
    }
    if let Some(median) = report::median(&resent) {
        result.note = format!(
            "re-sent: median {} (max {}); finished by itself",
            report::size(median),
            report::size(resent.iter().copied().max().unwrap_or(0))
        );
    }
    result
}
