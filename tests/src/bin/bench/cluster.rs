//! Cluster: notification latency across two release `host-server`s on one
//! PostgreSQL database, beside the same fleet on one of them. The uploader
//! connects to server A (or to B for the baseline), the waiting devices to B;
//! `fleet-load` times each waiting device's `DownloadAvailable` against the
//! uploader's `UploadDone` on one clock.
//!
//! Needs a PostgreSQL server: `STATESYNC_BENCH_DATABASE` (or
//! `HOST_SERVER_TEST_DATABASE`) is a URL of a database whose user may create
//! databases; each run gets a fresh database, dropped afterwards.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tests::process::{bin_dir, Profile};
use tests::scale_fleet::FleetReport;

/// Variables naming the PostgreSQL server, first found wins.
const DATABASE_ENV: [&str; 2] = ["STATESYNC_BENCH_DATABASE", "HOST_SERVER_TEST_DATABASE"];

/// How the cluster figures are obtained, for the report.
pub fn method(waiters: usize) -> String {
    format!(
        "- **cluster**: two release `host-server`s (log level warn, `--lease 10`) on one fresh PostgreSQL {pg} database on 127.0.0.1 and one shared data directory, and a `fleet-load` process with {devices} devices (plain TCP on 127.0.0.1). Device 0 announces a 64 KiB file, {waiters} devices connected to server B send `DownloadOpen` with notify, device 0 uploads it — to server A (\"across servers\": B hears of the completion through `LISTEN/NOTIFY` and wakes its devices) or to B itself (\"one server\", the baseline on the same database) — and each latency is the waiting device's `DownloadAvailable` minus the uploader's `UploadDone`, both taken in the fleet process. Nearest-rank percentiles; one run each, a fresh database each.",
        pg = off_runtime(postgres_version).unwrap_or_else(|| "(version unknown)".into()),
        devices = waiters + 1,
    )
}

/// Runs both cases with `waiters` waiting devices; returns a Markdown table.
pub async fn run(work: &Path, waiters: usize) -> String {
    off_runtime(|| {
        let mut out = String::from(
            "\n### Cluster: notification latency across servers\n\n| uploader on | waiting devices on | notified | p50 | p99 | max |\n|---|---|---|---|---|---|\n",
        );
        for across in [true, false] {
            match run_once(work, waiters, across) {
                Ok(report) => {
                    let ms = |q| {
                        report
                            .latency_ms(q)
                            .map(|v| format!("{v:.1} ms"))
                            .unwrap_or_else(|| "—".into())
                    };
                    let _ = writeln!(
                        out,
                        "| {} | B | {} of {} | {} | {} | {} |",
                        if across {
                            "A (across servers)"
                        } else {
                            "B (one server)"
                        },
                        report.notified,
                        report.waiters,
                        ms(0.5),
                        ms(0.99),
                        ms(1.0)
                    );
                    for problem in report.connect_errors.iter().chain(report.errors.iter()) {
                        let _ = writeln!(out, "\nProblem seen: {problem}\n");
                    }
                }
                Err(e) => {
                    eprintln!("cluster bench: {e}");
                    let _ = writeln!(out, "\nThe cluster bench failed: {e}\n");
                    break;
                }
            }
        }
        out
    })
}

/// Runs `f` on a plain thread: the blocking PostgreSQL client runs a small
/// runtime of its own, which may not start inside the bench's.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| match scope.spawn(f).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    })
}

/// A throwaway database on the bench's PostgreSQL server.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Result<Database, String> {
        let admin = DATABASE_ENV
            .iter()
            .find_map(|name| std::env::var(name).ok())
            .ok_or_else(|| {
                format!(
                    "set {} to postgres://USER:PASSWORD@127.0.0.1:5432/postgres (a user that may create databases)",
                    DATABASE_ENV[0]
                )
            })?;
        let name = format!("statesync_bench_{}", std::process::id());
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .map_err(|e| format!("cannot reach PostgreSQL: {e}"))?;
        // Two statements: CREATE DATABASE may not share a transaction.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            client.batch_execute(&sql).map_err(|e| {
                format!(
                    "`{sql}` failed: {}",
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_string())
                )
            })?;
        }
        let after_scheme = admin.find("://").map_or(0, |i| i + 3);
        let slash = admin[after_scheme..]
            .find('/')
            .ok_or("the database URL must end in /DATABASE")?;
        let url = format!("{}/{name}", &admin[..after_scheme + slash]);
        Ok(Database { admin, name, url })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn postgres_version() -> Option<String> {
    let admin = DATABASE_ENV
        .iter()
        .find_map(|name| std::env::var(name).ok())?;
    let mut client = postgres::Client::connect(&admin, postgres::NoTls).ok()?;
    let row = client.query_one("SHOW server_version", &[]).ok()?;
    row.try_get::<_, String>(0).ok()
}

/// A server process, killed when dropped.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(bin: &Path, data: &Path, url: &str) -> Result<Served, String> {
    let mut child = Command::new(bin)
        .arg("--data")
        .arg(data)
        .args(["--database", url, "serve", "--listen", "127.0.0.1:0"])
        .args(["--max-sessions", "100000", "--lease", "10"])
        .env("STATESYNC_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading the server's address: {e}"))?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("the server said {line:?}"))?
        .to_string();
    Ok(Served { child, addr })
}

fn run_once(work: &Path, waiters: usize, across: bool) -> Result<FleetReport, String> {
    let fleet_load = crate::scale::fleet_load_bin()?;
    let server_bin = bin_dir(Profile::Release).join("host-server");
    let database = Database::create()?;
    let data = work.join(if across {
        "cluster-across"
    } else {
        "cluster-one"
    });
    let a = serve(&server_bin, &data, &database.url)?;
    let b = serve(&server_bin, &data, &database.url)?;
    let added = Command::new(&server_bin)
        .arg("--data")
        .arg(&data)
        .args(["--database", &database.url, "--json", "device", "add-many"])
        .args(["fleet", &(waiters + 1).to_string()])
        .output()
        .map_err(|e| format!("device add-many: {e}"))?;
    if !added.status.success() {
        return Err(format!(
            "device add-many failed: {}",
            String::from_utf8_lossy(&added.stderr)
        ));
    }
    let keys = work.join("cluster-keys.jsonl");
    std::fs::write(&keys, &added.stdout).map_err(|e| format!("writing keys: {e}"))?;
    let uploader = if across { &a.addr } else { &b.addr };
    let out = Command::new(&fleet_load)
        .args(["--addr", &b.addr, "--uploader-addr", uploader, "--keys"])
        .arg(&keys)
        .args(["--waiters", &waiters.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", fleet_load.display()))?;
    if !out.status.success() {
        return Err(format!("fleet-load failed ({})", out.status));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("fleet-load printed no JSON report: {e}"))?;
    drop((a, b));
    FleetReport::from_json(&json)
}
