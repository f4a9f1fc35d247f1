//! Crash consistency: the server is killed with SIGKILL at random moments while devices upload,
//! resume, download, delete, retry and announce manifests; after every kill the data directory
//! is checked as the restarted server will find it, and at the end every upload is finished.
//!
//! Checked after every kill: the database opens; every `11` record has a blob of its size and
//! hash; no `10`/`00` record claims more bytes than its partial file holds; every download that
//! completed during the run had the announced content (nothing half-uploaded was ever served).
//! At the end: every file resumes and finishes with the right hash, and downloads match.
//!
//! Bounded to about 30 seconds in the test command; `STATESYNC_CRASH_SECS=600` runs it longer
//! (see `scripts/crash-soak.sh`).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use host_server::blobs::BlobDir;
use host_server::store::{SqliteStore, Store};
use proto_core::auth::ContentHasher;
use proto_core::{ClientMessage, FileKind, ListFilter, UploadState};
use rand::{Rng, SeedableRng};

/// Files per device; sizes from empty to a few hundred kilobytes, so uploads are caught at
/// every stage (opening, mid-way, verifying, promoting).
const SIZES: [usize; 8] = [0, 1, 999, 65_536, 120_000, 250_000, 400_000, 700_000];
const DEVICES: [&str; 2] = ["w1", "w2"];

fn name_of(device: &str, index: usize) -> String {
    format!("{device}/f{index}.bin")
}

/// The content of a file by name: deterministic, so any reader can check what it got.
fn content_of(name: &str) -> Vec<u8> {
    let (device, file) = name.split_once("/f").unwrap();
    let index: usize = file.trim_end_matches(".bin").parse().unwrap();
    let seed = if device == "w1" { 11 } else { 53 };
    content(SIZES[index], seed + index as u8)
}

/// Checks the data directory as a restarted server will find it.
fn check_data_dir(data: &Path) -> (usize, usize) {
    let store = SqliteStore::open(&data.join("statesync.db")).expect("the database opens");
    let blobs = BlobDir::open(data).unwrap();
    let page = store.records_page(0, ListFilter::All, usize::MAX).unwrap();
    let mut uploaded = 0;
    for record in &page.records {
        let blob = blobs.blob_path(&record.hash);
        if record.state == UploadState::Uploaded {
            uploaded += 1;
            if record.kind == FileKind::Directory {
                continue;
            }
            let bytes = std::fs::read(&blob)
                .unwrap_or_else(|e| panic!("11 record without its blob ({e}): {record:?}"));
            assert_eq!(bytes.len() as u64, record.size, "{record:?}");
            assert_eq!(ContentHasher::digest(&bytes), record.hash, "{record:?}");
            assert_eq!(bytes, content_of(&record.name), "{record:?}");
        } else {
            let partial = std::fs::metadata(blobs.partial_path(record.id, &record.hash))
                .map(|m| m.len())
                .unwrap_or(0);
            // Killed between promoting the verified bytes and storing `11`: they are in blobs/.
            let promoted = std::fs::metadata(&blob).map(|m| m.len()).unwrap_or(0);
            assert!(
                record.received <= partial.max(promoted),
                "received {} but {partial} bytes in partial/ ({promoted} in blobs/): {record:?}",
                record.received
            );
        }
    }
    (page.records.len(), uploaded)
}

/// Counts what the workers did, to show the run exercised every operation.
#[derive(Default)]
struct Tally {
    uploads_done: AtomicUsize,
    downloads_checked: AtomicUsize,
    deletes: AtomicUsize,
    manifests: AtomicUsize,
}

/// One device doing random work until the server dies under it.
fn work(addr: String, device: &'static str, key: Vec<u8>, seed: u64, tally: Arc<Tally>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let Ok(mut client) = std::panic::catch_unwind(|| Client::tcp(&addr, device, &key)) else {
        return;
    };
    loop {
        let index = rng.gen_range(0..SIZES.len());
        let name = name_of(device, index);
        let bytes = content_of(&name);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match rng.gen_range(0..10) {
                0..=4 => {
                    let record = client.upload(&name, &bytes);
                    if record.state == UploadState::Uploaded {
                        tally.uploads_done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                5..=6 => {
                    let other = DEVICES[rng.gen_range(0..2)];
                    let name = name_of(other, rng.gen_range(0..SIZES.len()));
                    if let Ok(got) = client.download(&name, false) {
                        // The harness's download reports Failed on a hash mismatch; the
                        // content itself must be what the uploader had.
                        assert_eq!(
                            got,
                            content_of(&name),
                            "a download of {name} served wrong bytes"
                        );
                        tally.downloads_checked.fetch_add(1, Ordering::Relaxed);
                    }
                }
                7 => {
                    let id = client.request(ClientMessage::Delete { name: &name });
                    let _ = client.reply(id, |_| Some(()));
                    tally.deletes.fetch_add(1, Ordering::Relaxed);
                }
                8 => {
                    let files: Vec<(String, Vec<u8>)> = (0..3)
                        .map(|_| {
                            let name = name_of(device, rng.gen_range(0..SIZES.len()));
                            let bytes = content_of(&name);
                            (name, bytes)
                        })
                        .collect();
                    let mut unique: Vec<(&str, &[u8])> = Vec::new();
                    for (name, bytes) in &files {
                        if !unique.iter().any(|(n, _)| n == name) {
                            unique.push((name, bytes));
                        }
                    }
                    if client.announce("crash-batch", &unique).is_ok() {
                        tally.manifests.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => {
                    let id = client.request(ClientMessage::Retry { name: &name });
                    let _ = client.reply(id, |_| Some(()));
                }
            }
        }));
        if let Err(panic) = outcome {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            assert!(!text.contains("served wrong bytes"), "{device}: {text}");
            return; // the link died with the server
        }
    }
}

#[test]
fn sigkill_at_random_moments_never_breaks_records_blobs_or_resumes() {
    let budget = Duration::from_secs(
        std::env::var("STATESYNC_CRASH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    // Workers panic on purpose when the server dies under them; keep those quiet.
    let quiet = Arc::new(AtomicBool::new(true));
    let default = std::panic::take_hook();
    let hook_quiet = quiet.clone();
    std::panic::set_hook(Box::new(move |info| {
        let worker = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("crash-worker"));
        if !(worker && hook_quiet.load(Ordering::Relaxed)) {
            default(info);
        }
    }));

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start_in(&data, &[]);
    let keys: Vec<Vec<u8>> = DEVICES.iter().map(|d| server.add_device(d)).collect();
    let tally = Arc::new(Tally::default());
    let mut rng = rand::rngs::StdRng::seed_from_u64(
        std::env::var("STATESYNC_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed),
    );
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < budget {
        let workers: Vec<_> = DEVICES
            .iter()
            .zip(&keys)
            .map(|(device, key)| {
                let (addr, key, tally) = (server.addr.clone(), key.clone(), tally.clone());
                let seed = rng.gen();
                std::thread::Builder::new()
                    .name(format!("crash-worker-{device}"))
                    .spawn(move || work(addr, device, key, seed, tally))
                    .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..700)));
        server.kill();
        kills += 1;
        for worker in workers {
            worker.join().expect("no worker saw wrong bytes");
        }
        check_data_dir(&data);
        server = Server::start_in(&data, &[]);
    }
    quiet.store(false, Ordering::Relaxed);

    // Everything resumes and finishes with the right hash.
    for (device, key) in DEVICES.iter().zip(&keys) {
        let mut client = server.connect(device, key);
        for index in 0..SIZES.len() {
            let name = name_of(device, index);
            let bytes = content_of(&name);
            let record = client.upload(&name, &bytes);
            assert_eq!(record.state, UploadState::Uploaded, "{name}");
            assert_eq!(record.hash, hash(&bytes), "{name}");
            assert_eq!(client.download(&name, false).unwrap(), bytes, "{name}");
        }
    }
    server.stop();
    let (records, uploaded) = check_data_dir(&data);
    assert_eq!((records, uploaded), (16, 16));
    eprintln!(
        "crash consistency: {kills} kills in {:.0?}; {} uploads finished, {} downloads checked, \
         {} deletes, {} manifests between kills",
        started.elapsed(),
        tally.uploads_done.load(Ordering::Relaxed),
        tally.downloads_checked.load(Ordering::Relaxed),
        tally.deletes.load(Ordering::Relaxed),
        tally.manifests.load(Ordering::Relaxed),
    );
    assert!(kills >= 5, "only {kills} kills in {budget:?}");
}
