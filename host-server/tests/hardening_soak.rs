//! Load soak on loopback: hundreds of devices connect, upload, download, subscribe and
//! disconnect (politely or by dropping the link) over and over; the server's memory stays flat
//! and every session's resources are given back.
//!
//! Measured from outside the server process: resident memory (`VmRSS`) sampled every 250 ms,
//! its threads and open file descriptors, and the device list (no device stays active once
//! every link is gone, so every session task ended and left the hub).
//!
//! In the test command: 200 devices for about 20 seconds. `scripts/soak.sh` runs it longer
//! and with more devices (`STATESYNC_SOAK_SECS`, `STATESYNC_SOAK_DEVICES`).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use proto_core::{ClientMessage, ListFilter, UploadState};
use rand::{Rng, SeedableRng};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The server process's id, found by its data directory on its command line.
fn server_pid(server: &Server) -> u32 {
    let needle = server.data.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap() {
        let entry = entry.unwrap();
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "serve") && args.contains(&needle) {
            return pid;
        }
    }
    panic!("no server process for {needle}");
}

/// A `/proc/PID/status` field in its unit (kB for memory).
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The two contents a device's file `slot` alternates between (the owner replaces it).
fn versions_of(device: usize, slot: u64) -> [Vec<u8>; 2] {
    [0u64, 1].map(|version| {
        let len = 1024 + (device * 997 + slot as usize * 131 + version as usize * 7) % 48_000;
        content(len, (device as u64 * 3 + slot + version * 101) as u8)
    })
}

/// The file a device uploads in round `round`: one of three names, in one of two versions.
fn file_of(device: usize, round: u64) -> (String, Vec<u8>) {
    let slot = round % 3;
    let [first, second] = versions_of(device, slot);
    let name = format!("soak/d{device}/f{slot}.bin");
    (name, if (round / 3) % 2 == 0 { first } else { second })
}

#[derive(Default)]
struct Counts {
    sessions: AtomicU64,
    uploads: AtomicU64,
    downloads: AtomicU64,
    dropped_links: AtomicU64,
}

#[test]
fn hundreds_of_devices_churning_keep_memory_flat_and_leak_no_session() {
    let devices = env_or("STATESYNC_SOAK_DEVICES", 200) as usize;
    let seconds = env_or("STATESYNC_SOAK_SECS", 20);
    let server = Server::start(&["--max-sessions", "4096"]);
    let (ok, out, err) = run_cli(
        &["--json", "device", "add-many", "soak", &devices.to_string()],
        &server.data,
    );
    assert!(ok, "{err}");
    let keys: Vec<Vec<u8>> = out
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            hex::decode(json["key"].as_str().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(keys.len(), devices);
    let first_key = keys[0].clone();
    let pid = server_pid(&server);
    let baseline_fds = open_fds(pid);
    let baseline_threads = status_field(pid, "Threads:");

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let samples = Arc::new(Mutex::new(Vec::<(Duration, u64)>::new()));
    let started = Instant::now();
    let sampler = {
        let (stop, samples) = (stop.clone(), samples.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let rss = status_field(pid, "VmRSS:");
                samples.lock().unwrap().push((started.elapsed(), rss));
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let workers: Vec<_> = keys
        .into_iter()
        .enumerate()
        .map(|(index, key)| {
            let (addr, stop, counts) = (server.addr.clone(), stop.clone(), counts.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let device = format!("soak-{index}");
                    let mut rng = rand::rngs::StdRng::seed_from_u64(index as u64);
                    let mut round = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let mut client = Client::tcp(&addr, &device, &key);
                        counts.sessions.fetch_add(1, Ordering::Relaxed);
                        if rng.gen_bool(0.3) {
                            client.subscribe(ListFilter::UploadedOnly, 0);
                        }
                        let (name, bytes) = file_of(index, round);
                        let record = client.upload(&name, &bytes);
                        assert_eq!(record.state, UploadState::Uploaded);
                        counts.uploads.fetch_add(1, Ordering::Relaxed);
                        let peer = rng.gen_range(0..devices.max(2) - 1);
                        let peer = if peer >= index { peer + 1 } else { peer };
                        let slot = rng.gen_range(0..3);
                        let wanted = format!("soak/d{peer}/f{slot}.bin");
                        if let Ok(got) = client.download(&wanted, false) {
                            assert!(
                                versions_of(peer, slot).contains(&got),
                                "{wanted} was served with bytes its owner never uploaded"
                            );
                            counts.downloads.fetch_add(1, Ordering::Relaxed);
                        }
                        if rng.gen_bool(0.5) {
                            client.bye();
                        } else {
                            // Pull the plug mid-request.
                            client.request(ClientMessage::List {
                                since: 0,
                                filter: ListFilter::All,
                            });
                            counts.dropped_links.fetch_add(1, Ordering::Relaxed);
                            drop(client);
                        }
                        round += 1;
                    }
                })
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("a device failed");
    }
    sampler.join().unwrap();

    // Memory: what the busy server held in the first third of the run is what it holds
    // in the last third (allocator warm-up aside), not a steady climb.
    let samples = samples.lock().unwrap().clone();
    let third = samples.len() / 3;
    let early = samples[..third].iter().map(|s| s.1).max().unwrap();
    let late = samples[2 * third..].iter().map(|s| s.1).max().unwrap();
    let (sessions, uploads) = (
        counts.sessions.load(Ordering::Relaxed),
        counts.uploads.load(Ordering::Relaxed),
    );
    eprintln!(
        "soak: {devices} devices, {seconds} s: {sessions} sessions, {uploads} uploads, {} downloads, \
         {} dropped links; server RSS {} MiB early, {} MiB late (peak of each third)",
        counts.downloads.load(Ordering::Relaxed),
        counts.dropped_links.load(Ordering::Relaxed),
        early / 1024,
        late / 1024
    );
    assert!(
        sessions as usize >= devices * 2,
        "too little load: {sessions} sessions"
    );
    assert!(
        late <= early + early / 4 + 16 * 1024,
        "server memory grew from {early} kB to {late} kB under a steady load"
    );

    // Every session ended: the sockets and threads are given back, and no device is active
    // (each session task left the hub).
    let deadline = Instant::now() + WAIT;
    loop {
        let fds = open_fds(pid);
        let threads = status_field(pid, "Threads:");
        if fds <= baseline_fds + 2 && threads <= baseline_threads + 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server still holds {fds} descriptors (baseline {baseline_fds}) and {threads} \
             threads (baseline {baseline_threads})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut watcher = server.connect("soak-0", &first_key);
    let active: Vec<String> = watcher
        .devices()
        .into_iter()
        .filter(|(name, active, _, _)| *active && name != "soak-0")
        .map(|(name, ..)| name)
        .collect();
    assert!(active.is_empty(), "sessions left behind: {active:?}");
}
