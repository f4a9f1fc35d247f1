//! Serial goodput: statesync push and pull through the real binaries over a
//! simulated 8N1 line (pseudo-terminals through the link simulator), beside
//! `sz`/`rz` (ZMODEM, lrzsz; streaming and with a window) and C-Kermit
//! (sliding windows, long packets) sending the same file over the same
//! simulated line. Repetition `r` runs on the line seeded `seed + r`, so the
//! repetitions meet different errors and fades.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tests::link::{Cable, CablePull, Fades, LineModel, Link};
use tests::process::{Profile, ServerProcess};
use tests::pty::PtyBridge;
use tokio::process::Command;

use crate::report::Row;

/// One line condition of the serial bench.
#[derive(Clone, Debug)]
pub struct Condition {
    /// How the table names it.
    pub name: String,
    /// The line in both directions. Unlike a [`Link`]'s own, its cable
    /// pulls count from the timed process's start ([`pull_on_schedule`]).
    pub model: LineModel,
}

/// The conditions the issue asks for: clean, BER 1e-5, BER 1e-4, radio
/// fades (every byte lost for 20–50 ms every 1–3 s), and a 3-second cable
/// pull in the middle of a transfer of `bytes` bytes.
pub fn conditions(baud: u32, bytes: u64) -> Vec<Condition> {
    let clean = LineModel::clean(baud);
    let with_ber = |ber: f64| LineModel {
        bit_error_rate: ber,
        ..clean.clone()
    };
    let middle = Duration::from_secs_f64(bytes as f64 / clean.bytes_per_second() / 2.0);
    let pulled = LineModel {
        pulls: vec![CablePull {
            at: middle,
            duration: Duration::from_secs(3),
        }],
        ..clean.clone()
    };
    vec![
        Condition {
            name: "clean".into(),
            model: clean.clone(),
        },
        Condition {
            name: "BER 1e-5".into(),
            model: with_ber(1e-5),
        },
        Condition {
            name: "BER 1e-4".into(),
            model: with_ber(1e-4),
        },
        Condition {
            name: "fades 20–50 ms every 1–3 s".into(),
            model: LineModel {
                fades: Some(Fades::radio()),
                ..clean.clone()
            },
        },
        Condition {
            name: "3 s cable pull".into(),
            model: pulled,
        },
    ]
}

/// What one transfer took.
struct Sample {
    elapsed: Duration,
    /// Bytes the sending side put on the line.
    offered: u64,
}

/// A transfer that did not finish correctly.
type Failure = String;

/// Which transfer to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// `host-cli push` over the serial line to `host-server --serial`.
    StatesyncPush,
    /// `host-cli pull` over the serial line from `host-server --serial`.
    StatesyncPull,
    /// `sz` to `rz` over the same line.
    Zmodem,
    /// `sz` to `rz` with a transmit window and shorter sub-packets, so a
    /// go-back after an error re-sends less.
    ZmodemWindowed,
    /// C-Kermit sending to C-Kermit: sliding windows and long packets.
    Kermit,
}

impl Transfer {
    /// The name `--transfers` selects it by.
    pub fn key(self) -> &'static str {
        match self {
            Transfer::StatesyncPush => "push",
            Transfer::StatesyncPull => "pull",
            Transfer::Zmodem => "zmodem",
            Transfer::ZmodemWindowed => "zmodem-w",
            Transfer::Kermit => "kermit",
        }
    }

    /// The tool's name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Transfer::StatesyncPush => "statesync push",
            Transfer::StatesyncPull => "statesync pull",
            Transfer::Zmodem => "ZMODEM sz→rz (lrzsz)",
            Transfer::ZmodemWindowed => "ZMODEM sz -w 8192 -L 512",
            Transfer::Kermit => "C-Kermit (window 32, packets ≤ 4000)",
        }
    }
}

/// Times `transfer` of `file` under `condition`, `reps` times, repetition
/// `r` on the line seeded `seed + r`.
pub async fn measure(
    transfer: Transfer,
    baud: u32,
    condition: &Condition,
    file: &Path,
    (reps, seed): (usize, u64),
    clean_offered: Option<u64>,
) -> (Row, Option<u64>) {
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let mut row = Row {
        bench: format!("serial {baud}"),
        tool: transfer.label().into(),
        condition: condition.name.clone(),
        bytes,
        times: Vec::new(),
        failures: 0,
        line_rate: Some(condition.model.bytes_per_second()),
        note: String::new(),
    };
    let mut offered = Vec::new();
    let mut errors = Vec::new();
    for rep in 0..reps {
        let model = LineModel {
            seed: seed + rep as u64,
            ..condition.model.clone()
        };
        let result = match transfer {
            Transfer::StatesyncPush | Transfer::StatesyncPull => {
                statesync(transfer, baud, &model, file).await
            }
            Transfer::Zmodem => zmodem(&model, file, &[]).await,
            Transfer::ZmodemWindowed => zmodem(&model, file, &["-w", "8192", "-L", "512"]).await,
            Transfer::Kermit => kermit(baud, &model, file).await,
        };
        match result {
            Ok(sample) => {
                row.times.push(sample.elapsed);
                offered.push(sample.offered);
            }
            Err(e) => {
                row.failures += 1;
                errors.push(e);
            }
        }
    }
    offered.sort();
    let median_offered = offered.get(offered.len() / 2).copied();
    if let (Some(clean), Some(now)) = (clean_offered, median_offered) {
        row.note = format!("re-sent ≈ {} B", now.saturating_sub(clean));
    }
    if let Some(e) = errors.first() {
        row.note = format!("{} failure: {e}", row.note).trim().to_owned();
    }
    (row, median_offered)
}

/// A generous bound: three times the nominal transfer time plus a minute.
fn deadline(model: &LineModel, bytes: u64) -> Duration {
    Duration::from_secs_f64(3.0 * bytes as f64 / model.bytes_per_second() + 60.0)
}

async fn statesync(
    transfer: Transfer,
    baud: u32,
    model: &LineModel,
    file: &Path,
) -> Result<Sample, Failure> {
    let bytes = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    // A is the CLI's end, B the server's.
    let link = Link::new(unpulled(model), unpulled(model));
    let cable = link.cable.clone();
    let (a_to_b, b_to_a) = (link.a_to_b.clone(), link.b_to_a.clone());
    let cli_pty = PtyBridge::new(link.a).map_err(|e| e.to_string())?;
    let server_pty = PtyBridge::new(link.b).map_err(|e| e.to_string())?;
    let serial_arg = format!("{}:{baud}", server_pty.path_str());
    let server = ServerProcess::start(Profile::Release, &["--serial", &serial_arg]);
    let key = server.add_device("bench-board");
    let serial_url = format!("serial://{}?baud={baud}", cli_pty.path_str());
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("file name")?
        .to_owned();
    let dest = tempfile::tempdir().map_err(|e| e.to_string())?;
    let args: Vec<String> = match transfer {
        Transfer::StatesyncPush => vec!["push".into(), file.display().to_string()],
        _ => {
            // Publish the file over TCP first, from another device.
            let seed_key = server.add_device("bench-seed");
            let out = server.cli(
                &server.url(),
                "bench-seed",
                &seed_key,
                &["push", &file.display().to_string()],
            );
            if !out.status.success() {
                return Err(format!(
                    "seeding push failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            vec![
                "pull".into(),
                "--dest".into(),
                dest.path().display().to_string(),
                name.clone(),
            ]
        }
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = Command::from(server.cli_command(&serial_url, "bench-board", &key, &args));
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let pulls = pull_on_schedule(cable, model.pulls.clone());
    let child = cmd.spawn().map_err(|e| e.to_string())?;
    let out = tokio::time::timeout(deadline(model, bytes), child.wait_with_output()).await;
    pulls.abort();
    let out = out
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "host-cli failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if transfer == Transfer::StatesyncPull {
        same_content(file, &dest.path().join(&name))?;
    }
    let offered = match transfer {
        Transfer::StatesyncPush => a_to_b.snapshot().offered,
        _ => b_to_a.snapshot().offered,
    };
    Ok(Sample { elapsed, offered })
}

/// `model` without its cable pulls: the bench times them itself
/// ([`pull_on_schedule`]).
fn unpulled(model: &LineModel) -> LineModel {
    LineModel {
        pulls: Vec::new(),
        ..model.clone()
    }
}

/// Pulls and plugs `cable` as `pulls` say, timed from now: the start of the
/// timed transfer. (A link times its own pulls from its creation, which comes
/// before the server's start-up and, for a pull, the seeding upload.)
fn pull_on_schedule(cable: Cable, pulls: Vec<CablePull>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for pull in pulls {
            tokio::time::sleep_until(start + pull.at).await;
            cable.pull();
            tokio::time::sleep_until(start + pull.at + pull.duration).await;
            cable.plug();
        }
    })
}

fn open_tty(path: &Path) -> Result<(File, File), Failure> {
    let tty = File::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let out = tty.try_clone().map_err(|e| e.to_string())?;
    Ok((tty, out))
}

/// `sz` to `rz` with `options` for `sz` besides `-b -q`.
async fn zmodem(model: &LineModel, file: &Path, options: &[&str]) -> Result<Sample, Failure> {
    let bytes = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    let link = Link::new(unpulled(model), unpulled(model));
    let (a_to_b, cable) = (link.a_to_b.clone(), link.cable.clone());
    let sender_pty = PtyBridge::new(link.a).map_err(|e| e.to_string())?;
    let receiver_pty = PtyBridge::new(link.b).map_err(|e| e.to_string())?;
    let dest = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (rx_in, rx_out) = open_tty(&receiver_pty.path)?;
    let (tx_in, tx_out) = open_tty(&sender_pty.path)?;
    let started = Instant::now();
    let pulls = pull_on_schedule(cable, model.pulls.clone());
    let rz = Command::new("rz")
        .args(["-b", "-y", "-q"])
        .current_dir(dest.path())
        .stdin(rx_in)
        .stdout(rx_out)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("rz: {e} (install lrzsz)"))?;
    let sz = Command::new("sz")
        .args(["-b", "-q"])
        .args(options)
        .arg(file)
        .stdin(tx_in)
        .stdout(tx_out)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("sz: {e} (install lrzsz)"))?;
    // The time is the sender's, as for `host-cli push`: sz exits once rz has
    // confirmed the whole file (its ZFIN). rz itself may then wait 3 × 10 s
    // for sz's closing "OO" (at 921600 it did in every run here, the file
    // complete all the while); the file is checked all the same.
    let sender = async {
        let sent = sz.wait_with_output().await;
        (sent, started.elapsed())
    };
    let both = async { tokio::join!(sender, rz.wait_with_output()) };
    let finished = tokio::time::timeout(deadline(model, bytes), both).await;
    pulls.abort();
    let ((sent, elapsed), received) = finished.map_err(|_| "timed out".to_string())?;
    let ok =
        |r: std::io::Result<std::process::Output>| r.map(|o| o.status.success()).unwrap_or(false);
    if !ok(sent) || !ok(received) {
        return Err("sz/rz reported failure".into());
    }
    let name = file.file_name().ok_or("file name")?;
    same_content(file, &dest.path().join(name))?;
    Ok(Sample {
        elapsed,
        offered: a_to_b.snapshot().offered,
    })
}

/// C-Kermit to C-Kermit, each on its end of the line: 8-bit clean, no
/// flow control, minimal control prefixing, 32-packet sliding windows and
/// packets of up to 4000 bytes (C-Kermit shortens them itself on errors).
/// Timed from the start of the sender to its exit.
async fn kermit(baud: u32, model: &LineModel, file: &Path) -> Result<Sample, Failure> {
    let bytes = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    let link = Link::new(unpulled(model), unpulled(model));
    let (a_to_b, cable) = (link.a_to_b.clone(), link.cable.clone());
    let sender_pty = PtyBridge::new(link.a).map_err(|e| e.to_string())?;
    let receiver_pty = PtyBridge::new(link.b).map_err(|e| e.to_string())?;
    let dest = tempfile::tempdir().map_err(|e| e.to_string())?;
    let setup = |line: &Path| {
        format!(
            "set line {}, set speed {baud}, set carrier-watch off, set flow none, \
             set parity none, set file type binary, set prefixing minimal, \
             set streaming off, set reliable off, set window 32, \
             set receive packet-length 4000, set send packet-length 4000, \
             set receive timeout 2, set retry-limit 100",
            line.display()
        )
    };
    let kermit = |commands: String, dir: &Path| {
        let mut cmd = Command::new("kermit");
        cmd.args(["-Y", "-B", "-C", &commands])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        cmd
    };
    let receive = format!("{}, receive, exit", setup(&receiver_pty.path));
    let send = format!("{}, send {}, exit", setup(&sender_pty.path), file.display());
    let started = Instant::now();
    let pulls = pull_on_schedule(cable, model.pulls.clone());
    let receiver = kermit(receive, dest.path())
        .spawn()
        .map_err(|e| format!("kermit: {e} (install ckermit)"))?;
    let sender = kermit(send, dest.path())
        .spawn()
        .map_err(|e| format!("kermit: {e} (install ckermit)"))?;
    let sender = async {
        let sent = sender.wait_with_output().await;
        (sent, started.elapsed())
    };
    let both = async { tokio::join!(sender, receiver.wait_with_output()) };
    let finished = tokio::time::timeout(deadline(model, bytes), both).await;
    pulls.abort();
    let ((sent, elapsed), received) = finished.map_err(|_| "timed out".to_string())?;
    let ok =
        |r: std::io::Result<std::process::Output>| r.map(|o| o.status.success()).unwrap_or(false);
    if !ok(sent) || !ok(received) {
        return Err("kermit reported failure".into());
    }
    let name = file.file_name().ok_or("file name")?;
    same_content(file, &dest.path().join(name))?;
    Ok(Sample {
        elapsed,
        offered: a_to_b.snapshot().offered,
    })
}

fn same_content(a: &Path, b: &Path) -> Result<(), Failure> {
    let (x, y) = (std::fs::read(a), std::fs::read(b));
    match (x, y) {
        (Ok(x), Ok(y)) if x == y => Ok(()),
        (Ok(_), Ok(_)) => Err(format!("{} differs from the original", b.display())),
        (_, Err(e)) => Err(format!("{}: {e}", b.display())),
        (Err(e), _) => Err(format!("{}: {e}", a.display())),
    }
}

/// A file of `bytes` random bytes named `name` in `dir`.
pub fn random_file(dir: &Path, name: &str, bytes: u64) -> std::io::Result<PathBuf> {
    use rand::{RngCore, SeedableRng};
    use std::io::Write;
    let path = dir.join(name);
    let mut rng = rand::rngs::StdRng::seed_from_u64(bytes);
    let mut out = std::io::BufWriter::new(File::create(&path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(path)
}
