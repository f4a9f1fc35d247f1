//! `fleet-load`: thousands of simulated devices on one server, in a process of
//! their own (a process may hold only so many sockets, and the server's
//! memory must not include the fleet's). Runs [`tests::scale_fleet::run`] and
//! prints its report as one JSON object on stdout; progress goes to stderr.
//!
//! ```text
//! fleet-load --addr 127.0.0.1:PORT --keys KEYS.jsonl [--waiters 1000]
//!     [--uploader-addr 127.0.0.1:PORT] [--server-pid PID] [--connect-parallel 256] [--file-size 65536]
//!     [--max-frame 4096] [--settle-ms 2000] [--deadline-secs 600]
//! ```
//! `KEYS.jsonl` is what `host-server --json device add-many PREFIX COUNT`
//! prints; every line is one device, the first one uploads. With
//! `--server-pid` the report holds the server's `VmRSS` before the fleet
//! connects, with the fleet idle, and at the end. With `--uploader-addr` the
//! uploading device connects there (another server on the same database) and
//! every other device to `--addr`.

use std::process::ExitCode;
use std::time::Duration;

use tests::scale_fleet::{self, FleetPlan};

struct Options {
    addr: String,
    uploader_addr: Option<String>,
    keys: String,
    waiters: usize,
    server_pid: Option<u32>,
    connect_parallel: usize,
    file_size: usize,
    max_frame: u32,
    settle: Duration,
    deadline: Duration,
}

fn parse_args() -> Result<Options, String> {
    let mut addr = None;
    let mut keys = None;
    let mut options = Options {
        addr: String::new(),
        uploader_addr: None,
        keys: String::new(),
        waiters: 1000,
        server_pid: None,
        connect_parallel: 256,
        file_size: 64 * 1024,
        max_frame: 4096,
        settle: Duration::from_secs(2),
        deadline: Duration::from_secs(600),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => addr = Some(value()?),
            "--keys" => keys = Some(value()?),
            "--uploader-addr" => options.uploader_addr = Some(value()?),
            "--waiters" => options.waiters = number(&value()?)?,
            "--server-pid" => options.server_pid = Some(number(&value()?)?),
            "--connect-parallel" => options.connect_parallel = number(&value()?)?,
            "--file-size" => options.file_size = number(&value()?)?,
            "--max-frame" => options.max_frame = number(&value()?)?,
            "--settle-ms" => options.settle = Duration::from_millis(number(&value()?)?),
            "--deadline-secs" => options.deadline = Duration::from_secs(number(&value()?)?),
            other => {
                return Err(format!(
                    "unknown argument `{other}`; see the doc comment of fleet-load.rs"
                ))
            }
        }
    }
    options.addr = addr.ok_or("--addr 127.0.0.1:PORT is required")?;
    options.keys = keys.ok_or("--keys FILE (from `device add-many --json`) is required")?;
    Ok(options)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a number"))
}

/// Every device holds a socket: lift the soft limit on open files to the hard one.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                eprintln!("fleet-load: cannot raise the open-file limit from {soft}: {error}");
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("fleet-load: {e}");
            return ExitCode::from(2);
        }
    };
    raise_open_file_limit();
    let devices = match std::fs::read_to_string(&options.keys)
        .map_err(|e| format!("cannot read {}: {e}", options.keys))
        .and_then(|text| scale_fleet::parse_key_lines(&text))
    {
        Ok(devices) => devices,
        Err(e) => {
            eprintln!("fleet-load: {e}");
            return ExitCode::from(2);
        }
    };
    let mut plan = FleetPlan::new(&options.addr, devices);
    plan.waiters = options.waiters;
    plan.uploader_addr = options.uploader_addr;
    plan.server_pid = options.server_pid;
    plan.connect_parallel = options.connect_parallel;
    plan.file_size = options.file_size;
    plan.max_frame = options.max_frame;
    plan.settle = options.settle;
    match tokio::time::timeout(options.deadline, scale_fleet::run(plan)).await {
        Ok(report) => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(_) => {
            eprintln!(
                "fleet-load: gave up after {} s (--deadline-secs)",
                options.deadline.as_secs()
            );
            ExitCode::FAILURE
        }
    }
}
