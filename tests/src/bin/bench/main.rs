//! The statesync benchmark: goodput over simulated serial lines beside ZMODEM,
//! TCP throughput beside rsync and the disk's own limit, and scale (thousands of
//! sessions on one server: memory per session, notification latency).
//!
//! ```text
//! cargo run --release -p tests --bin bench -- [serial] [tcp] [scale] [--size BYTES] [--reps N]
//!     [--bauds 115200,921600] [--conditions clean,BER,3] [--out BENCHMARKS.md]
//!     [--devices 10000] [--waiters 1000]
//! ```
//! Prints a Markdown table and writes it, with the method and the machine, to
//! `--out` (default: print only). Timings are reported, never asserted.

mod report;
mod scale;
mod serial;
mod tcp;

use std::fmt::Write as _;

use report::Row;

struct Options {
    benches: Vec<String>,
    serial_bytes: u64,
    tcp_bytes: u64,
    reps: usize,
    bauds: Vec<u32>,
    devices: usize,
    waiters: usize,
    conditions: Option<Vec<String>>,
    out: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        benches: Vec::new(),
        serial_bytes: 1 << 20,
        tcp_bytes: 1 << 30,
        reps: 3,
        bauds: vec![115_200, 921_600],
        devices: 10_000,
        waiters: 1000,
        conditions: None,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--serial-size" => options.serial_bytes = parse(&value("--serial-size")?)?,
            "--tcp-size" => options.tcp_bytes = parse(&value("--tcp-size")?)?,
            "--reps" => options.reps = parse(&value("--reps")?)?,
            "--bauds" => {
                options.bauds = value("--bauds")?
                    .split(',')
                    .map(parse)
                    .collect::<Result<_, _>>()?
            }
            "--out" => options.out = Some(value("--out")?),
            "--devices" => options.devices = parse(&value("--devices")?)?,
            "--waiters" => options.waiters = parse(&value("--waiters")?)?,
            "--conditions" => {
                options.conditions = Some(
                    value("--conditions")?
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                )
            }
            "serial" | "tcp" | "scale" => options.benches.push(arg),
            "--bench" => {} // passed by `cargo bench`
            other => {
                return Err(format!(
                    "unknown argument `{other}`; see the doc comment of bench/main.rs"
                ))
            }
        }
    }
    if options.benches.is_empty() {
        options.benches = vec!["serial".into(), "tcp".into(), "scale".into()];
    }
    Ok(options)
}

fn parse<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a number"))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cores} cores, {cpu}, {}", std::env::consts::OS)
}

#[tokio::main]
async fn main() {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    let work = tempfile::tempdir().expect("temp dir");
    let mut rows: Vec<Row> = Vec::new();
    let mut method = String::new();
    if options.benches.iter().any(|b| b == "serial") {
        let file = serial::random_file(work.path(), "serial-1mib.bin", options.serial_bytes)
            .expect("write test file");
        let _ = writeln!(
            method,
            "- **serial**: a {} random file through the real `host-cli` and `host-server --serial` over two pseudo-terminals joined by the link simulator (8N1: baud/10 B/s, seeded bit errors, cable pull for 3 s in the middle); `sz -b` → `rz -b` (lrzsz) over the same simulated line. {} repetitions each; time from process start to exit, handshake included. \"re-sent\" = bytes the sender put on the line minus those of the clean run.",
            report::size(options.serial_bytes),
            options.reps
        );
        for &baud in &options.bauds {
            for transfer in [
                serial::Transfer::StatesyncPush,
                serial::Transfer::StatesyncPull,
                serial::Transfer::Zmodem,
            ] {
                let mut clean_offered = None;
                for condition in serial::conditions(baud, options.serial_bytes) {
                    let wanted = options.conditions.as_ref().is_none_or(|names| {
                        names.iter().any(|n| condition.name.starts_with(n.as_str()))
                    });
                    if !wanted {
                        continue;
                    }
                    let (row, offered) = serial::measure(
                        transfer,
                        baud,
                        &condition,
                        &file,
                        options.reps,
                        clean_offered,
                    )
                    .await;
                    if condition.name == "clean" {
                        clean_offered = offered;
                    }
                    eprintln!(
                        "{}",
                        report::markdown(std::slice::from_ref(&row))
                            .lines()
                            .last()
                            .unwrap_or("")
                    );
                    rows.push(row);
                }
            }
        }
    }
    if options.benches.iter().any(|b| b == "tcp") {
        let _ = writeln!(method, "{}", tcp::METHOD);
        rows.extend(tcp::run(work.path(), options.tcp_bytes, options.reps).await);
    }
    let mut table = if rows.is_empty() {
        String::new()
    } else {
        report::markdown(&rows)
    };
    if options.benches.iter().any(|b| b == "scale") {
        let _ = writeln!(
            method,
            "{}",
            scale::method(options.devices, options.waiters)
        );
        table += &scale::run(work.path(), options.devices, options.waiters).await;
    }
    println!("{table}");
    if let Some(out) = options.out {
        let text = format!(
            "# Benchmarks\n\nMachine: {}. Produced by `cargo run --release -p tests --bin bench -- {}`.\n\n## Method\n\n{method}\n## Results\n\n{table}",
            machine(),
            std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        );
        std::fs::write(&out, text).expect("write the report");
        eprintln!("wrote {out}");
    }
}
