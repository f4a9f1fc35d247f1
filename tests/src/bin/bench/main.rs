//! The statesync benchmark: goodput over simulated serial lines beside ZMODEM,
//! TCP throughput beside rsync and the disk's own limit, scale (thousands of
//! sessions on one server: memory per session, notification latency), the
//! firmware (flash, RAM, and the QEMU board's upload goodput over a simulated
//! UART), cluster (notification latency across two servers on one
//! PostgreSQL; only when named, see `cluster.rs`), blobs (push and pull with
//! blobs in the data directory beside an S3-compatible store; only when named,
//! see `blobs.rs`) and tree (a no-change `sync` of many files beside rsync's
//! no-op, a push over a cut link).
//!
//! ```text
//! cargo run --release -p tests --bin bench -- [all] [serial] [tcp] [scale] [firmware] [cluster] [blobs] [tree]
//!     [--serial-size BYTES] [--tcp-size BYTES] [--reps N] [--bauds 115200,921600]
//!     [--conditions clean,BER,fades,3] [--transfers push,pull,zmodem,zmodem-w,kermit]
//!     [--seed 1] [--firmware-baud 115200]
//!     [--devices 10000] [--waiters 1000] [--tree-files 10000] [--tree-size BYTES]
//!     [--cut-size BYTES] [--out BENCHMARKS.md]
//! ```
//! No bench named, or `all`: serial, tcp, scale and firmware. Prints each
//! bench's tables; with `--out`, writes them as sections of a Markdown
//! document (run date, machine, command, method, results) and keeps the
//! sections of benches that did not run (see `document.rs`). Timings are
//! reported, never asserted.

mod blobs;
mod cluster;
mod document;
mod firmware;
mod machine;
mod report;
mod scale;
mod serial;
mod tcp;
mod tree;

use document::{RunInfo, Section};
use report::Row;

/// The benches `all` (or no name at all) runs.
const ALL: [&str; 5] = ["serial", "tcp", "scale", "firmware", "tree"];
/// How long the tree bench's proxy refuses connections after it cut the link.
const CUT_DOWN_FOR: std::time::Duration = std::time::Duration::from_secs(5);

struct Options {
    benches: Vec<String>,
    serial_bytes: u64,
    tcp_bytes: u64,
    reps: usize,
    /// The line of serial repetition `r` is seeded `seed + r`.
    seed: u64,
    bauds: Vec<u32>,
    firmware_baud: u32,
    devices: usize,
    waiters: usize,
    conditions: Option<Vec<String>>,
    transfers: Option<Vec<String>>,
    out: Option<String>,
    tree_files: usize,
    tree_bytes: u64,
    cut_bytes: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        benches: Vec::new(),
        serial_bytes: 1 << 20,
        tcp_bytes: 1 << 30,
        reps: 3,
        seed: 1,
        bauds: vec![115_200, 921_600],
        firmware_baud: 115_200,
        devices: 10_000,
        waiters: 1000,
        conditions: None,
        transfers: None,
        out: None,
        tree_files: 10_000,
        tree_bytes: 1 << 30,
        cut_bytes: 256 << 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--serial-size" => options.serial_bytes = parse(&value("--serial-size")?)?,
            "--tcp-size" => options.tcp_bytes = parse(&value("--tcp-size")?)?,
            "--reps" => options.reps = parse(&value("--reps")?)?,
            "--seed" => options.seed = parse(&value("--seed")?)?,
            "--bauds" => {
                options.bauds = value("--bauds")?
                    .split(',')
                    .map(parse)
                    .collect::<Result<_, _>>()?
            }
            "--firmware-baud" => options.firmware_baud = parse(&value("--firmware-baud")?)?,
            "--out" => options.out = Some(value("--out")?),
            "--tree-files" => options.tree_files = parse(&value("--tree-files")?)?,
            "--tree-size" => options.tree_bytes = parse(&value("--tree-size")?)?,
            "--cut-size" => options.cut_bytes = parse(&value("--cut-size")?)?,
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
            "--transfers" => {
                options.transfers = Some(
                    value("--transfers")?
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                )
            }
            "serial" | "tcp" | "scale" | "firmware" | "cluster" | "blobs" | "tree" => {
                options.benches.push(arg)
            }
            "all" => options.benches.extend(ALL.iter().map(|b| b.to_string())),
            "--bench" => {} // passed by `cargo bench`
            other => {
                return Err(format!(
                    "unknown argument `{other}`; see the doc comment of bench/main.rs"
                ))
            }
        }
    }
    if options.benches.is_empty() {
        options.benches = ALL.iter().map(|b| b.to_string()).collect();
    }
    options.benches.dedup();
    Ok(options)
}

fn parse<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a number"))
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
    let run = RunInfo::now(work.path());
    let wanted = |bench: &str| options.benches.iter().any(|b| b == bench);
    let mut sections: Vec<Section> = Vec::new();
    if wanted("serial") {
        let file = serial::random_file(work.path(), "serial-1mib.bin", options.serial_bytes)
            .expect("write test file");
        let method = format!(
            "- **serial**: a {} random file through the real `host-cli` and `host-server --serial` over two pseudo-terminals joined by the link simulator (8N1: baud/10 B/s, seeded bit errors, radio fades that lose every byte for 20–50 ms at random intervals of 1–3 s, cable pulled for 3 s from the middle of the nominal transfer time, counted from the timed process's start); `sz -b` → `rz -b` (lrzsz), also with a transmit window (`sz -w 8192 -L 512`), and C-Kermit to C-Kermit (`set window 32`, packets up to 4000 bytes, control prefixing minimal) over the same simulated line. {} repetitions each, repetition r on the line seeded {} + r (errors and fades differ between repetitions); time from the start of `host-cli` (push and pull), `sz` or the sending `kermit` to its exit, handshake included (`sz` exits once `rz` has confirmed the whole file; `rz` may then wait up to 30 s for the closing \"OO\", which is not counted). \"re-sent\" = bytes the sender put on the line minus those of the clean run.",
            report::size(options.serial_bytes),
            options.reps,
            options.seed
        );
        let mut rows: Vec<Row> = Vec::new();
        for &baud in &options.bauds {
            for transfer in [
                serial::Transfer::StatesyncPush,
                serial::Transfer::StatesyncPull,
                serial::Transfer::Zmodem,
                serial::Transfer::ZmodemWindowed,
                serial::Transfer::Kermit,
            ] {
                let chosen = options
                    .transfers
                    .as_ref()
                    .is_none_or(|names| names.iter().any(|n| n == transfer.key()));
                if !chosen {
                    continue;
                }
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
                        (options.reps, options.seed),
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
        sections.push(Section {
            bench: "serial".into(),
            title: "Serial goodput".into(),
            method,
            results: report::markdown(&rows),
        });
    }
    if wanted("tcp") {
        let rows = tcp::run(work.path(), options.tcp_bytes, options.reps).await;
        sections.push(Section {
            bench: "tcp".into(),
            title: "TCP throughput".into(),
            method: tcp::METHOD.into(),
            results: report::markdown(&rows),
        });
    }
    if wanted("tree") {
        let files = options.tree_files.max(1);
        sections.push(Section {
            bench: "tree".into(),
            title: "Trees and flaky links (TCP)".into(),
            method: tree::method(
                files,
                options.tree_bytes,
                options.cut_bytes,
                CUT_DOWN_FOR,
                options.reps,
            ),
            results: report::markdown(
                &tree::run(
                    work.path(),
                    files,
                    options.tree_bytes,
                    options.cut_bytes,
                    CUT_DOWN_FOR,
                    options.reps,
                )
                .await,
            ),
        });
    }
    if wanted("scale") {
        sections.push(Section {
            bench: "scale".into(),
            title: "Scale".into(),
            method: scale::method(options.devices, options.waiters),
            results: scale::run(work.path(), options.devices, options.waiters).await,
        });
    }
    if wanted("cluster") {
        sections.push(Section {
            bench: "cluster".into(),
            title: "Cluster".into(),
            method: cluster::method(options.waiters),
            results: cluster::run(work.path(), options.waiters).await,
        });
    }
    if wanted("blobs") {
        let rows = blobs::run(work.path(), options.tcp_bytes, options.reps).await;
        sections.push(Section {
            bench: "blobs".into(),
            title: "Blobs in object storage".into(),
            method: blobs::method(options.tcp_bytes, options.reps),
            results: report::markdown(&rows),
        });
    }
    if wanted("firmware") {
        sections.push(Section {
            bench: "firmware".into(),
            title: "Firmware".into(),
            method: firmware::method(options.firmware_baud, options.reps),
            results: firmware::run(options.firmware_baud, options.reps).await,
        });
    }
    for section in &sections {
        println!("## {}\n\n{}\n", section.title, section.results.trim());
    }
    if let Some(out) = options.out {
        let rendered: Vec<(String, String)> = sections
            .iter()
            .map(|s| (s.bench.clone(), document::render(s, &run)))
            .collect();
        let existing = std::fs::read_to_string(&out).ok();
        let text = document::merge(existing.as_deref(), &rendered);
        std::fs::write(&out, text).expect("write the report");
        eprintln!("wrote {out}");
    }
}
