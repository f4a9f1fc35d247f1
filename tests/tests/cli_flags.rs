//! The flags users expect from rsync and rclone, with the real binaries:
//! `--limit-rate` on pull, `--exclude`/`--include`, `--dry-run`, `-q`/`-v`, and
//! `RUST_LOG` for the protocol client's own log.

mod cli_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_common::{write_pattern, Server, DEADLINE};

const MIB: u64 = 1 << 20;

/// The `.statesync-*.part` file of a pull under `dir` and its length, once it
/// holds at least `at_least` bytes (looked at every 20 ms, up to the deadline).
fn partial_download(dir: &Path, at_least: u64) -> (PathBuf, u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .find_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let len = e.metadata().ok()?.len();
                (name.starts_with(".statesync-") && len >= at_least).then(|| (e.path(), len))
            });
        if let Some(found) = found {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no partial download of {at_least} bytes appeared in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pull_with_limit_rate_never_takes_in_more_than_the_rate_allows() {
    let server = Server::start(&["laptop", "tv"]);
    let src = tempfile::tempdir().unwrap();
    let size = 6 * MIB;
    let file = src.path().join("film.bin");
    write_pattern(&file, size as usize, 50);
    server.cli("laptop").ok(&["push", file.to_str().unwrap()]);

    let dest = tempfile::tempdir().unwrap();
    let rate = MIB;
    let started = Instant::now();
    let mut pull = server
        .cli("tv")
        .command(&[
            "pull",
            "--dest",
            dest.path().to_str().unwrap(),
            "--limit-rate",
            "1M",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (_, held) = partial_download(dest.path(), 2 * MIB);
    // An upper bound of the time the download ran: a slow machine only
    // makes the bound looser, never the assertion fail.
    let ran_for = started.elapsed().as_secs_f64();
    pull.kill().unwrap();
    pull.wait().unwrap();
    let allowed = (rate as f64 * ran_for) as u64 + 64 * 1024;
    assert!(
        held <= allowed,
        "{held} bytes were on disk after {ran_for:.2} s at 1 MiB/s (at most {allowed})"
    );

    // Without the limit the same pull resumes and finishes.
    let reports = server
        .cli("tv")
        .json(&["pull", "--dest", dest.path().to_str().unwrap()]);
    assert_eq!(reports[0]["result"], "fetched", "{reports}");
    assert_eq!(
        fs::read(dest.path().join("film.bin")).unwrap(),
        fs::read(&file).unwrap()
    );
}

/// Names of the server's records, sorted.
fn server_names(cli: &cli_common::Cli) -> Vec<String> {
    let mut names: Vec<String> = cli
        .json(&["ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Every file under `dir`, as `/`-separated names, sorted.
fn local_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().to_str().unwrap();
                names.push(name.replace('\\', "/"));
            }
        }
    }
    names.sort();
    names
}

#[test]
fn exclude_and_include_choose_what_push_pull_and_sync_touch() {
    let server = Server::start(&["laptop", "tv"]);
    let src = tempfile::tempdir().unwrap();
    let trip = src.path().join("trip");
    for name in ["a.txt", "b.tmp", "keep.tmp", "cache/x.bin", "photos/c.jpg"] {
        let path = trip.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, name).unwrap();
    }
    let laptop = server.cli("laptop");
    laptop.ok(&[
        "push",
        trip.to_str().unwrap(),
        "--exclude",
        "*.tmp",
        "--exclude",
        "cache",
        "--include",
        "keep.tmp",
    ]);
    assert_eq!(
        server_names(&laptop),
        ["trip/a.txt", "trip/keep.tmp", "trip/photos/c.jpg"]
    );

    let dest = tempfile::tempdir().unwrap();
    let tv = server.cli("tv");
    tv.ok(&[
        "pull",
        "--dest",
        dest.path().to_str().unwrap(),
        "--include",
        "photos",
    ]);
    assert_eq!(local_names(dest.path()), ["trip/photos/c.jpg"]);

    // sync: an excluded local file is not pushed, an excluded server file not pulled.
    fs::write(dest.path().join("trip/debug.log"), b"noise").unwrap();
    tv.ok(&[
        "sync",
        dest.path().to_str().unwrap(),
        "--exclude",
        "*.log",
        "--exclude",
        "keep.tmp",
    ]);
    assert_eq!(
        local_names(dest.path()),
        ["trip/a.txt", "trip/debug.log", "trip/photos/c.jpg"]
    );
    assert_eq!(
        server_names(&laptop),
        ["trip/a.txt", "trip/keep.tmp", "trip/photos/c.jpg"]
    );
}

#[test]
fn dry_run_says_what_would_be_pushed_pulled_and_deleted_and_changes_nothing() {
    let server = Server::start(&["laptop", "tv"]);
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("there.txt"), b"on the server").unwrap();
    let tv = server.cli("tv");
    tv.ok(&["push", src.path().join("there.txt").to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("new.txt"), b"only here").unwrap();
    let laptop = server.cli("laptop");
    let action_of = |plan: &serde_json::Value, name: &str| {
        plan.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["action"].as_str().unwrap().to_owned())
    };

    let plan = laptop.json(&["sync", dir.path().to_str().unwrap(), "--dry-run"]);
    assert_eq!(
        action_of(&plan, "new.txt").as_deref(),
        Some("push"),
        "{plan}"
    );
    assert_eq!(
        action_of(&plan, "there.txt").as_deref(),
        Some("pull"),
        "{plan}"
    );
    let plan = laptop.json(&["push", dir.path().join("new.txt").to_str().unwrap(), "-n"]);
    assert_eq!(
        action_of(&plan, "new.txt").as_deref(),
        Some("push"),
        "{plan}"
    );
    let plan = laptop.json(&["pull", "--dest", dir.path().to_str().unwrap(), "-n"]);
    assert_eq!(
        action_of(&plan, "there.txt").as_deref(),
        Some("pull"),
        "{plan}"
    );
    let plan = tv.json(&["rm", "there.txt", "gone.txt", "--dry-run"]);
    assert_eq!(
        action_of(&plan, "there.txt").as_deref(),
        Some("delete"),
        "{plan}"
    );
    assert_eq!(
        action_of(&plan, "gone.txt").as_deref(),
        Some("skip"),
        "{plan}"
    );
    let text = laptop.ok(&["sync", dir.path().to_str().unwrap(), "--dry-run"]);
    assert!(text.contains("would push new.txt"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");

    assert_eq!(server_names(&laptop), ["there.txt"]);
    assert_eq!(local_names(dir.path()), ["new.txt"]);
}

#[test]
fn quiet_prints_only_errors_and_verbose_tells_what_the_quick_check_spared() {
    let server = Server::start(&["laptop", "tv"]);
    let src = tempfile::tempdir().unwrap();
    for name in ["a.txt", "b.txt"] {
        let path = src.path().join(name);
        fs::write(&path, name).unwrap();
        // Older than the quick check's racy window, so its hash is trusted next time.
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    let laptop = server.cli("laptop");
    let quiet = laptop.ok(&["push", "-q", src.path().join("a.txt").to_str().unwrap()]);
    assert_eq!(quiet, "", "-q prints nothing on success");
    let normal = laptop.ok(&["push", src.path().join("b.txt").to_str().unwrap()]);
    assert!(normal.contains("b.txt: uploaded"), "{normal}");
    assert!(!normal.contains("quick check"), "{normal}");
    let verbose = laptop.ok(&["push", "-v", src.path().join("b.txt").to_str().unwrap()]);
    assert!(
        verbose.contains("quick check: 1 file(s) unchanged (not read)"),
        "{verbose}"
    );

    let dest = tempfile::tempdir().unwrap();
    let tv = server.cli("tv");
    let pulled = tv.ok(&["pull", "-q", "--dest", dest.path().to_str().unwrap()]);
    assert_eq!(pulled, "");
    assert_eq!(local_names(dest.path()), ["a.txt", "b.txt"]);
    let synced = tv.ok(&["sync", dest.path().to_str().unwrap(), "-v"]);
    assert!(synced.contains("quick check:"), "{synced}");

    let failed = laptop.run(&["push", "-q", "/no/such/file"]);
    assert_ne!(failed.status.code(), Some(0));
    assert!(failed.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("/no/such/file"),
        "-q still prints errors: {failed:?}"
    );
}

#[test]
fn rust_log_shows_the_protocol_clients_state_changes_on_stderr_and_nothing_without_it() {
    let server = Server::start(&["laptop"]);
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("note.txt");
    fs::write(&file, "hello").unwrap();
    let laptop = server.cli("laptop");

    let logged = laptop
        .command(&["push", file.to_str().unwrap()])
        .env("RUST_LOG", "proto_core=debug")
        .output()
        .unwrap();
    assert!(logged.status.success());
    let stderr = String::from_utf8_lossy(&logged.stderr);
    assert!(
        stderr.contains("session: AwaitWelcome -> Ready"),
        "{stderr}"
    );
    assert!(
        stderr.contains("-> Streaming") || stderr.contains("result uploaded"),
        "{stderr}"
    );

    let quiet = laptop
        .command(&["ls"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
}
