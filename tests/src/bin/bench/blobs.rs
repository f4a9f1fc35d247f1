//! Blobs: `host-cli push` and `pull` of one large file against a release
//! `host-server` keeping blobs in its data directory, beside one keeping them
//! in an S3-compatible object store (`--blobs s3://…`), interleaved in one run.
//!
//! Needs the store's endpoint in `STATESYNC_BENCH_S3` (or `HOST_SERVER_TEST_S3`),
//! e.g. `moto_server -p 45123` and `http://127.0.0.1:45123`, and credentials in
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (moto takes any). The bucket
//! `statesync-bench` is made with a plain unsigned `PUT`, as moto allows.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ::tests::process::{Profile, ServerProcess};

use crate::report::Row;

/// Variables naming the object store's endpoint, first found wins.
const S3_ENV: [&str; 2] = ["STATESYNC_BENCH_S3", "HOST_SERVER_TEST_S3"];

/// The bucket the bench uses (a prefix per server).
const BUCKET: &str = "statesync-bench";

/// How the figures are obtained, for the report.
pub fn method(bytes: u64, reps: usize) -> String {
    format!(
        "- **blobs**: one {size} random file over loopback. Each of {reps} repetitions starts a fresh release `host-server` with blobs in its data directory (the default) and then one with `--blobs s3://{BUCKET}/PREFIX --s3-endpoint http://127.0.0.1:PORT` (and SQLite for records, as the first), and times `host-cli push` then `host-cli pull --dest DIR` against each, process start to exit, `sync` before each step; the record is deleted afterwards (its blob with it). The object store is **moto** (`moto_server`, Python, from PyPI) on the same machine, keeping objects in memory: a stand-in that speaks the S3 API, not a production store — no network between server and store, no replication, no real disk behind it — so these figures show what the S3 path costs in this server (parts of 5 MiB, a tail object at each drained input, the sealed upload copied to its blob key, downloads in 8 MiB ranges, up to 4 fetched ahead of what is sent), not what a real S3 or MinIO would do.",
        size = crate::report::size(bytes),
    )
}

/// Runs the bench; returns the rows (local directory first, then the object store).
pub async fn run(work: &Path, bytes: u64, reps: usize) -> Vec<Row> {
    tokio::task::block_in_place(|| run_blocking(work, bytes, reps))
}

fn run_blocking(work: &Path, bytes: u64, reps: usize) -> Vec<Row> {
    let row = |tool: &str, condition: &str| Row {
        bench: "blobs, tcp loopback".into(),
        tool: tool.into(),
        condition: condition.into(),
        bytes,
        times: Vec::new(),
        failures: 0,
        line_rate: None,
        note: String::new(),
    };
    let mut rows = vec![
        row("statesync push", "blobs in the data directory"),
        row("statesync pull", "blobs in the data directory"),
        row("statesync push", "blobs in S3 (moto on 127.0.0.1)"),
        row("statesync pull", "blobs in S3 (moto on 127.0.0.1)"),
    ];
    let endpoint = match endpoint() {
        Ok(endpoint) => Some(endpoint),
        Err(error) => {
            eprintln!("blobs bench: {error}");
            for row in &mut rows[2..] {
                row.note = format!("not run: {error}");
            }
            None
        }
    };
    let name = "blobs-bench.bin";
    let file = crate::serial::random_file(work, name, bytes).expect("write test file");
    for rep in 0..reps {
        eprintln!("blobs bench: repetition {} of {reps}", rep + 1);
        let prefix = format!("run-{}-{rep}", std::process::id());
        let url = format!("s3://{BUCKET}/{prefix}");
        let backends: Vec<(usize, Vec<&str>)> = match &endpoint {
            Some(endpoint) => vec![
                (0, vec![]),
                (2, vec!["--blobs", &url, "--s3-endpoint", endpoint]),
            ],
            None => vec![(0, vec![])],
        };
        for (first_row, args) in backends {
            let server = ServerProcess::start(Profile::Release, &args);
            let key = server.add_device("bench-desktop");
            let cli =
                |args: &[&str]| server.cli_command(&server.url(), "bench-desktop", &key, args);
            record(
                &mut rows[first_row],
                timed(cli(&["push", &file.display().to_string()])),
            );
            let dest = tempfile::tempdir_in(work).expect("dest dir");
            let dest_arg = dest.path().display().to_string();
            record(
                &mut rows[first_row + 1],
                timed(cli(&["pull", "--dest", &dest_arg, name])),
            );
            // Frees the store (moto keeps every object in memory).
            let _ = cli(&["rm", name]).output();
        }
    }
    rows
}

/// The object store's endpoint, with the bucket made.
fn endpoint() -> Result<String, String> {
    let endpoint = S3_ENV
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .ok_or_else(|| format!("set {} to http://127.0.0.1:PORT of an S3-compatible server (e.g. moto_server -p PORT)", S3_ENV[0]))?;
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        return Err("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (moto takes any)".into());
    }
    let host = endpoint
        .trim_end_matches('/')
        .strip_prefix("http://")
        .ok_or_else(|| format!("{endpoint} is not http://HOST:PORT"))?
        .to_string();
    let mut stream =
        std::net::TcpStream::connect(&host).map_err(|e| format!("cannot reach {host}: {e}"))?;
    write!(
        stream,
        "PUT /{BUCKET} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    if !(response.starts_with("HTTP/1.1 200") || response.contains("BucketAlreadyOwnedByYou")) {
        return Err(format!(
            "cannot make bucket {BUCKET}: {}",
            response.lines().next().unwrap_or("")
        ));
    }
    Ok(format!("http://{host}"))
}

fn record(row: &mut Row, result: Result<Duration, String>) {
    match result {
        Ok(time) => row.times.push(time),
        Err(error) => {
            row.failures += 1;
            if row.note.is_empty() {
                row.note = format!("failure: {}", error.replace('\n', " "));
            }
        }
    }
}

/// Runs `cmd` after a `sync`, timed from start to exit.
fn timed(mut cmd: Command) -> Result<Duration, String> {
    let _ = Command::new("sync").status();
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
