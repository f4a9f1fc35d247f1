//! Interrupted and awaited transfers with the real binaries: a killed push
//! resumes where the server's `received` says, `pull --all --wait` fetches a
//! file that completes after it started, and `status` counts a batch whose
//! third file failed.

mod cli_common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use cli_common::{write_pattern, Cli, Server, Watcher};

const MIB: u64 = 1 << 20;

/// Starts `push PATH... --limit-rate RATE` in the background.
fn slow_push(cli: &Cli, paths: &[&Path], rate: &str) -> Child {
    let mut args = vec!["push".to_owned()];
    args.extend(paths.iter().map(|p| p.to_str().unwrap().to_owned()));
    args.extend(["--limit-rate".to_owned(), rate.to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli.command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("push starts")
}

/// Kills a push once the server holds at least `at_least` bytes of `name`,
/// then waits for the record to turn `00`; returns the bytes held before the
/// kill and after it.
fn interrupt(watcher: &mut Watcher, mut push: Child, name: &str, at_least: u64) -> (u64, u64) {
    let seen = watcher.record(name, |r| r["received"].as_u64().unwrap() >= at_least);
    push.kill().unwrap();
    push.wait().unwrap();
    let failed = watcher.record(name, |r| r["bits"] == "00");
    assert_eq!(failed["state"], "failed");
    (
        seen["received"].as_u64().unwrap(),
        failed["received"].as_u64().unwrap(),
    )
}

#[test]
fn interrupted_push_resumes_at_received_without_resending_more_than_a_window() {
    let server = Server::start(&["laptop", "tv"]);
    let dir = tempfile::tempdir().unwrap();
    let size = 12 * MIB;
    let file = dir.path().join("big.bin");
    write_pattern(&file, size as usize, 20);
    let laptop = server.cli("laptop");
    let mut watcher = Watcher::start(&server.cli("tv"));

    let push = slow_push(&laptop, &[&file], "2M");
    let (before_kill, kept) = interrupt(&mut watcher, push, "big.bin", 2 * MIB);
    assert!(
        kept >= before_kill,
        "received never shrinks: {kept} < {before_kill}"
    );
    assert!(kept < size);

    let resumed = laptop.json(&["push", file.to_str().unwrap()]);
    let report = &resumed[0];
    assert_eq!(report["result"], "uploaded", "{report}");
    assert_eq!(
        report["resumed_from"], kept,
        "resumes at the server's received"
    );
    assert_eq!(
        report["lowest_sent"], kept,
        "no byte below the server's received is sent again"
    );
    // Everything written for the file: the rest of it plus framing, no second copy of a window.
    let wire = report["wire_bytes"].as_u64().unwrap();
    assert!(wire >= size - kept, "{wire}");
    assert!(
        wire < size - kept + (size - kept) / 100 + 4096,
        "re-sent bytes: {wire} for {} left",
        size - kept
    );
    let record = laptop.record("big.bin").unwrap();
    assert_eq!(record["bits"], "11");

    let dest = tempfile::tempdir().unwrap();
    server
        .cli("tv")
        .ok(&["pull", "--dest", dest.path().to_str().unwrap()]);
    assert_eq!(
        fs::read(dest.path().join("big.bin")).unwrap(),
        fs::read(&file).unwrap()
    );
}

#[test]
fn pull_all_wait_fetches_a_file_that_finishes_uploading_after_the_pull_started() {
    let server = Server::start(&["laptop", "tv"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("late.bin");
    write_pattern(&file, (6 * MIB) as usize, 21);
    write_pattern(&dir.path().join("early.bin"), 1000, 22);
    let laptop = server.cli("laptop");
    laptop.ok(&["push", dir.path().join("early.bin").to_str().unwrap()]);
    let mut watcher = Watcher::start(&server.cli("tv"));
    let push = slow_push(&laptop, &[&file], "2M");
    interrupt(&mut watcher, push, "late.bin", MIB);

    // Without --wait, the unfinished file is reported with its state and progress, exit 1.
    let dest = tempfile::tempdir().unwrap();
    let tv = server.cli("tv");
    let quick = tv.run(&["pull", "--all", "--dest", dest.path().to_str().unwrap()]);
    assert_eq!(quick.status.code(), Some(1));
    let text = String::from_utf8_lossy(&quick.stdout);
    assert!(
        text.contains("late.bin: not uploaded yet: failed (00)"),
        "{text}"
    );
    assert!(dest.path().join("early.bin").exists());
    assert!(!dest.path().join("late.bin").exists());

    // With --wait it stays connected; the file is finished afterwards.
    let mut pull = tv
        .command(&[
            "pull",
            "--all",
            "--wait",
            "--dest",
            dest.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(pull.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next()
            .expect("pull --wait printed the waiting line")
            .unwrap();
        let waiting = line.starts_with("waiting for 1 unfinished");
        seen.push(line);
        if waiting {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.starts_with("late.bin: not uploaded yet")),
        "{seen:?}"
    );
    assert!(!dest.path().join("late.bin").exists());

    laptop.ok(&["push", file.to_str().unwrap()]);
    let status = pull.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "{seen:?} {rest:?}");
    assert!(
        rest.iter().any(|l| l.starts_with("late.bin: fetched")),
        "{rest:?}"
    );
    assert_eq!(
        fs::read(dest.path().join("late.bin")).unwrap(),
        fs::read(&file).unwrap()
    );
}

#[test]
fn status_counts_three_expected_two_uploaded_when_the_third_file_failed() {
    let server = Server::start(&["laptop", "tv"]);
    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("trip");
    write_pattern(&batch.join("a.jpg"), 20_000, 23);
    write_pattern(&batch.join("b.jpg"), 30_000, 24);
    write_pattern(&batch.join("c.mov"), (6 * MIB) as usize, 25);
    let mut watcher = Watcher::start(&server.cli("tv"));
    let push = slow_push(&server.cli("laptop"), &[&batch], "2M");
    interrupt(&mut watcher, push, "trip/c.mov", MIB);

    let status = server.cli("tv").json(&["status"]);
    let laptop = status
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "laptop")
        .unwrap();
    assert_eq!(laptop["active"], false);
    let trip = laptop["batches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["batch"] == "trip")
        .unwrap();
    assert_eq!(trip["expected"], 3);
    assert_eq!(trip["uploaded"], 2);
    assert_eq!(trip["failed"], 1);
    assert_eq!(trip["uploading"], 0);
    assert_eq!(trip["needed"], 0);
    let text = server.cli("tv").ok(&["status"]);
    assert!(
        text.contains("trip: 3 expected, 2 uploaded, 0 uploading, 1 failed, 0 needed"),
        "{text}"
    );
}
