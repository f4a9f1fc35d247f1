//! The flags users expect from rsync and rclone, with the real binaries:
//! `--limit-rate` on pull, `--exclude`/`--include`, `--dry-run`, `-q`/`-v`.

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
