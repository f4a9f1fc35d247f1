//! Faults on a simulated 115,200-baud serial line between a device and the
//! real server: cable pulls in the middle of transfers, bit errors, dropped
//! bytes, and a device that never finishes. The link's counters and the
//! device's wire tap measure what happened on the line.

use std::time::Duration;

use proto_core::model::DownloadState;
use proto_core::{ListFilter, UploadState};
use tests::device::{Device, DeviceEvent, DeviceOptions, DownloadOutcome, MemStore, Wire};
use tests::link::LineModel;
use tests::rig::{content, Rig};

const BAUD: u32 = 115_200;

/// A device that notices a dead line within 4 s and reconnects by itself
/// (not much less: a server on a busy machine may be quiet for a second).
fn impatient() -> DeviceOptions {
    DeviceOptions {
        dead_after: Some(Duration::from_secs(4)),
        keepalive: Some(Duration::from_secs(1)),
        reconnect_after: Some(Duration::from_millis(300)),
        ..DeviceOptions::default()
    }
}

/// Chunks of `name` the device sent after the server's resume offset `from`
/// was announced: `(lowest offset, bytes)`.
fn sent_after_resume(device: &Device, name: &str, from: u64) -> (Option<u64>, u64) {
    let entries = device.wire.entries();
    let resumed = entries
        .iter()
        .rposition(|e| matches!(&e.wire, Wire::UploadReady { name: n, offset } if n == name && *offset == from))
        .expect("the resumed upload's UploadReady is on the wire");
    let mut lowest = None::<u64>;
    let mut bytes = 0;
    for entry in &entries[resumed..] {
        if let Wire::UploadChunk {
            name: n,
            offset,
            len,
        } = &entry.wire
        {
            if n == name {
                lowest = Some(lowest.map_or(*offset, |l| l.min(*offset)));
                bytes += len;
            }
        }
    }
    (lowest, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cable_pull_mid_upload_fails_the_record_keeps_received_and_resume_resends_nothing_below_it()
{
    let mut rig = Rig::start(&[LineModel::clean(BAUD)], &[]);
    let mut observer = rig.observer("observer").await;
    observer.subscribe(ListFilter::All, 0).await.unwrap();
    let data = content(100, 32 * 1024);
    let size = data.len() as u64;
    let mut store = MemStore::new();
    let file = store.add_file("logs/pulled.bin", data);
    let cable = rig.lines[0].cable.clone();
    let mut board = rig.serial_device(0, "board", store, impatient());
    board.connect().await.unwrap();

    let upload = board.request(move |c| c.upload(file)).await.unwrap();
    board
        .wait_for("a quarter of the file durable", |e| match e {
            DeviceEvent::UploadProgress { durable, .. } if *durable >= size / 4 => Some(()),
            _ => None,
        })
        .await
        .unwrap();
    cable.pull();
    board.wait_closed().await.unwrap();
    let lost = rig.lines[0].up.snapshot().lost;
    assert!(lost > 0, "bytes were lost on the line while it was out");
    cable.plug();

    // The device reconnects by itself; its new Hello ends the old session: 10 → 00.
    board.wait_connected().await.unwrap();
    let failed = observer
        .wait_record("logs/pulled.bin", |r| r.state == UploadState::Failed)
        .await
        .unwrap();
    assert!(
        failed.received >= size / 4 && failed.received < size,
        "received is kept: {failed:?}"
    );
    assert!(!failed.reason.is_empty());

    let report = board.upload(file).await.unwrap();
    assert_eq!(
        report.resumed_from,
        Some(failed.received),
        "resumes at received"
    );
    assert_eq!(report.record.state, UploadState::Uploaded);
    let (lowest, resent) = sent_after_resume(&board, "logs/pulled.bin", failed.received);
    assert!(
        lowest.is_some_and(|l| l >= failed.received),
        "no byte before received is sent again: lowest chunk at {lowest:?}, received {}",
        failed.received
    );
    assert!(
        resent >= size - failed.received,
        "the rest of the file was sent"
    );
    let _first_attempt = upload;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cable_pull_mid_download_resumes_where_the_device_stood_and_verifies() {
    let mut rig = Rig::start(&[LineModel::clean(BAUD)], &[]);
    let data = content(101, 32 * 1024);
    let size = data.len() as u64;
    let mut desktop = rig.tcp_device("desktop", MemStore::new(), DeviceOptions::default());
    desktop.connect().await.unwrap();
    let source = desktop
        .with_store({
            let data = data.clone();
            move |s| s.add_file("media/pulled.mp4", data)
        })
        .await
        .unwrap();
    desktop.upload(source).await.unwrap();

    let mut store = MemStore::new();
    let target = store.add_target("media/pulled.mp4");
    let cable = rig.lines[0].cable.clone();
    let mut board = rig.serial_device(0, "board", store, impatient());
    board.connect().await.unwrap();
    board
        .request(move |c| c.download(target, true))
        .await
        .unwrap();
    let mut held = 0;
    board
        .wait_for("a quarter of the file stored", |e| match e {
            DeviceEvent::DownloadProgress { durable, .. } => {
                held = *durable;
                (*durable >= size / 4).then_some(())
            }
            _ => None,
        })
        .await
        .unwrap();
    cable.pull();
    // Progress that was already on its way still counts.
    for event in board.drain_events() {
        if let DeviceEvent::DownloadProgress { durable, .. } = event {
            held = held.max(durable);
        }
    }
    board.wait_closed().await.unwrap();
    cable.plug();
    board.wait_connected().await.unwrap();

    let outcome = board.download_from(target, held, true).await.unwrap();
    assert_eq!(
        outcome,
        DownloadOutcome::Done {
            from: held,
            verified: true
        }
    );
    assert_eq!(board.file(target).await.unwrap().unwrap().data, data);
    let resumed: Vec<_> = board
        .wire
        .data_received("media/pulled.mp4")
        .into_iter()
        .filter(|&(session, ..)| session == 2)
        .collect();
    assert!(
        resumed.iter().all(|&(_, offset, _)| offset >= held),
        "the server sent nothing the device held: {resumed:?} from {held}"
    );
    let mut observer = rig.observer("observer").await;
    observer
        .wait_download_state("board", "media/pulled.mp4", DownloadState::Done)
        .await
        .unwrap();
}

/// Uploads one file from a serial board and downloads another to it over a
/// line with `model`'s faults; returns the board for the caller's checks.
async fn both_ways_over(model: LineModel) -> (Rig, Device, u64) {
    let mut rig = Rig::start(&[model], &[]);
    let up = content(102, 16 * 1024);
    let down = content(103, 16 * 1024);
    let mut desktop = rig.tcp_device("desktop", MemStore::new(), DeviceOptions::default());
    desktop.connect().await.unwrap();
    let source = desktop
        .with_store({
            let down = down.clone();
            move |s| s.add_file("noisy/down.bin", down)
        })
        .await
        .unwrap();
    desktop.upload(source).await.unwrap();

    let mut store = MemStore::new();
    let file = store.add_file("noisy/up.bin", up.clone());
    let target = store.add_target("noisy/down.bin");
    // A device on a noisy line offers smaller frames and retries Hello sooner.
    let options = DeviceOptions {
        max_frame: Some(512),
        handshake_timeout: Some(Duration::from_secs(1)),
        wait: Some(Duration::from_secs(60)),
        ..DeviceOptions::default()
    };
    let mut board = rig.serial_device(0, "board", store, options);
    board.connect().await.unwrap();
    let report = board.upload(file).await.unwrap();
    assert_eq!(report.record.state, UploadState::Uploaded);
    assert_eq!(
        report.record.hash,
        proto_core::auth::ContentHasher::digest(&up)
    );
    let outcome = board.download(target, false).await.unwrap();
    assert!(
        matches!(outcome, DownloadOutcome::Done { verified: true, .. }),
        "{outcome:?}"
    );
    assert_eq!(board.file(target).await.unwrap().unwrap().data, down);
    (rig, board, 16 * 1024)
}

fn bytes_of(transfers: &[(u32, u64, u64)]) -> u64 {
    transfers.iter().map(|&(_, _, len)| len).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_errors_at_1e_4_corrupt_frames_that_are_dropped_and_retransmitted_and_files_arrive_intact(
) {
    let mut model = LineModel::clean(BAUD);
    model.bit_error_rate = 1e-4;
    model.seed = 7;
    let (rig, board, size) = both_ways_over(model).await;
    let up = rig.lines[0].up.snapshot();
    let down = rig.lines[0].down.snapshot();
    assert!(up.corrupted > 0 && down.corrupted > 0, "{up:?} {down:?}");
    assert!(
        board.wire.damaged_frames_in() > 0,
        "the device counted and dropped damaged frames"
    );
    let sent = bytes_of(&board.wire.chunks_sent("noisy/up.bin"));
    assert!(
        sent > size,
        "upload chunks were retransmitted: {sent} bytes for {size}"
    );
    let refilled = gaps_filled(&board.wire.data_received("noisy/down.bin"));
    assert!(refilled > 0, "damaged download frames were sent again");
}

/// Download frames that arrived after a frame beyond them: re-sent ranges
/// that fill the gap a damaged frame left.
fn gaps_filled(transfers: &[(u32, u64, u64)]) -> usize {
    let mut end = 0;
    let mut filled = 0;
    for &(_, offset, len) in transfers {
        if offset < end {
            filled += 1;
        }
        end = end.max(offset + len);
    }
    filled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_bytes_lose_frames_that_are_retransmitted_and_files_arrive_intact() {
    let mut model = LineModel::clean(BAUD);
    model.byte_drop_rate = 1e-3;
    model.seed = 11;
    let (rig, board, size) = both_ways_over(model).await;
    let up = rig.lines[0].up.snapshot();
    let down = rig.lines[0].down.snapshot();
    // About 16 bytes are lost each way (16 KiB at 1e-3), most of them inside data frames:
    // each direction must have lost some, and each must have recovered by re-sending.
    assert!(up.lost > 0 && down.lost > 0, "{up:?} {down:?}");
    let sent = bytes_of(&board.wire.chunks_sent("noisy/up.bin"));
    assert!(
        sent > size,
        "lost upload frames were sent again: {sent} bytes sent for {size}"
    );
    let refilled = gaps_filled(&board.wire.data_received("noisy/down.bin"));
    assert!(
        refilled > 0,
        "lost download frames were sent again: {refilled} gaps filled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flipped_bit_in_every_frame_both_ways_is_corrected_and_no_byte_is_sent_twice() {
    let mut rig = Rig::start(&[LineModel::clean(BAUD)], &[]);
    let size = 32 * 1024;
    let up = content(107, size);
    let down = content(108, size);
    let mut desktop = rig.tcp_device("desktop", MemStore::new(), DeviceOptions::default());
    desktop.connect().await.unwrap();
    let source = desktop
        .with_store({
            let down = down.clone();
            move |s| s.add_file("flipped/down.bin", down)
        })
        .await
        .unwrap();
    desktop.upload(source).await.unwrap();

    let mut store = MemStore::new();
    let file = store.add_file("flipped/up.bin", up.clone());
    let target = store.add_target("flipped/down.bin");
    // Frames up to 4 KiB, so long frames are corrected too, not only acks.
    let options = DeviceOptions {
        max_frame: Some(4096),
        ..DeviceOptions::default()
    };
    let mut flips = None;
    let mut board = rig.serial_device_through(0, "board", store, options, |end| {
        let (end, log) = tests::bit_flipper::spawn(end, 9);
        flips = Some(log);
        end
    });
    let flips = flips.expect("the flipper sits on the line");
    board.connect().await.unwrap();
    let report = board.upload(file).await.unwrap();
    assert_eq!(report.record.state, UploadState::Uploaded);
    let outcome = board.download(target, false).await.unwrap();
    assert!(
        matches!(outcome, DownloadOutcome::Done { verified: true, .. }),
        "{outcome:?}"
    );
    assert_eq!(board.file(target).await.unwrap().unwrap().data, down);

    let chunks = board.wire.chunks_sent("flipped/up.bin");
    assert_eq!(
        bytes_of(&chunks),
        size as u64,
        "the server corrected every chunk: none was sent twice"
    );
    let data = board.wire.data_received("flipped/down.bin");
    assert_eq!(
        bytes_of(&data),
        size as u64,
        "the device corrected every data frame: none came twice"
    );
    assert_eq!(board.wire.damaged_frames_in(), 0, "no frame was dropped");
    let corrected = board.wire.corrected_frames_in();
    assert!(
        corrected >= data.len() as u64,
        "every data frame was corrected: {corrected} corrected, {} data frames",
        data.len()
    );
    let up_flips = flips.up.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        up_flips >= chunks.len() as u64,
        "every chunk had a bit flipped: {up_flips} flipped, {} chunks",
        chunks.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_that_never_finishes_stays_failed_and_others_are_told() {
    let mut rig = Rig::start(&[LineModel::clean(BAUD)], &["--idle-timeout", "3"]);
    let awake = DeviceOptions {
        keepalive: Some(Duration::from_millis(500)),
        ..DeviceOptions::default()
    };
    let mut observer = rig.tcp_device("observer", MemStore::new(), awake.clone());
    observer.connect().await.unwrap();
    observer.subscribe(ListFilter::All, 0).await.unwrap();
    let mut store = MemStore::new();
    let data = content(104, 32 * 1024);
    let size = data.len() as u64;
    let file = store.add_file("field/never.bin", data);
    store.add_file("field/also-never.bin", content(105, 1000));
    let cable = rig.lines[0].cable.clone();
    let mut board = rig.serial_device(0, "board", store, DeviceOptions::default());
    board.connect().await.unwrap();
    board.manifest("field", 0..2).await.unwrap();
    board.request(move |c| c.upload(file)).await.unwrap();
    board
        .wait_for("some bytes durable", |e| match e {
            DeviceEvent::UploadProgress { durable, .. } if *durable >= size / 4 => Some(()),
            _ => None,
        })
        .await
        .unwrap();
    // The board dies in the field: the line goes quiet for good.
    cable.pull();
    drop(board);

    let failed = observer
        .wait_record("field/never.bin", |r| r.state == UploadState::Failed)
        .await
        .unwrap();
    assert!(
        failed.received >= size / 4 && failed.received < size,
        "{failed:?}"
    );

    let mut store = MemStore::new();
    let target = store.add_target("field/never.bin");
    let mut other = rig.tcp_device("other", store, awake);
    other.connect().await.unwrap();
    let outcome = other.download(target, true).await.unwrap();
    assert_eq!(
        outcome,
        DownloadOutcome::Rejected {
            state: UploadState::Failed,
            received: failed.received,
            size,
            notify: true
        },
        "others are told the state and how far it got"
    );
    let records = other.list(0, ListFilter::All).await.unwrap();
    let never = records
        .iter()
        .find(|r| r.name == "field/never.bin")
        .unwrap();
    assert_eq!(
        (never.state, never.received),
        (UploadState::Failed, failed.received)
    );
    let also = records
        .iter()
        .find(|r| r.name == "field/also-never.bin")
        .unwrap();
    assert_eq!(also.state, UploadState::Needed, "announced, never started");
    assert!(other
        .list(0, ListFilter::UploadedOnly)
        .await
        .unwrap()
        .is_empty());
    let states = observer.downloads().await.unwrap();
    assert!(
        states.contains(&(
            "other".into(),
            "field/never.bin".into(),
            DownloadState::Pending
        )),
        "the other device holds a pending notification: {states:?}"
    );
}

/// Runs `host-cli push` of one file and, at the same time, `host-cli pull`
/// of another (published over TCP first) by a second device, each over its
/// own simulated line following `model` (other seeds for the other
/// directions and line), between the real binaries on pseudo-terminals.
/// Checks that both files arrived whole and that the server's records tell
/// the truth about them. Returns the bytes the lines lost (dropped, faded),
/// or what failed.
async fn cli_push_and_pull_over(model: LineModel, bytes: usize) -> Result<u64, String> {
    use tests::link::Link;
    use tests::process::{Profile, ServerProcess};
    use tests::pty::PtyBridge;

    let baud = model.baud;
    let push_link = Link::symmetric(model.clone());
    let mut other = model.clone();
    other.seed = model.seed.wrapping_mul(31).wrapping_add(5);
    let pull_link = Link::symmetric(other);
    let lines = [
        push_link.a_to_b.clone(),
        push_link.b_to_a.clone(),
        pull_link.a_to_b.clone(),
        pull_link.b_to_a.clone(),
    ];
    let push_cli = PtyBridge::new(push_link.a).map_err(|e| e.to_string())?;
    let push_server = PtyBridge::new(push_link.b).map_err(|e| e.to_string())?;
    let pull_cli = PtyBridge::new(pull_link.a).map_err(|e| e.to_string())?;
    let pull_server = PtyBridge::new(pull_link.b).map_err(|e| e.to_string())?;
    let args = [
        "--serial".to_owned(),
        format!("{}:{baud}", push_server.path_str()),
        "--serial".to_owned(),
        format!("{}:{baud}", pull_server.path_str()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = tokio::task::block_in_place(|| ServerProcess::start(Profile::Debug, &args));
    let keys = tokio::task::block_in_place(|| {
        ["board", "other", "laptop"].map(|name| server.add_device(name))
    });
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let up = dir.path().join("up.bin");
    let down = dir.path().join("down.bin");
    std::fs::write(&up, content(model.seed, bytes)).map_err(|e| e.to_string())?;
    std::fs::write(&down, content(model.seed + 1000, bytes)).map_err(|e| e.to_string())?;
    let seeded = tokio::task::block_in_place(|| {
        server.cli(
            &server.url(),
            "laptop",
            &keys[2],
            &["push", &down.display().to_string()],
        )
    });
    if !seeded.status.success() {
        return Err(format!("publishing over TCP failed: {seeded:?}"));
    }
    let dest = tempfile::tempdir().map_err(|e| e.to_string())?;
    // Generous: three times the line time, plus room for the dead timer to fire.
    let bound = Duration::from_secs_f64(3.0 * bytes as f64 / model.bytes_per_second() + 100.0);
    let run = |url: String, device: &str, key: &str, args: Vec<String>| {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = tokio::process::Command::from(server.cli_command(&url, device, key, &argv));
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        async move {
            let started = std::time::Instant::now();
            let child = cmd.spawn().map_err(|e| e.to_string())?;
            let out = tokio::time::timeout(bound, child.wait_with_output())
                .await
                .map_err(|_| format!("{} did not end within {bound:?}", args[0]))?
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                eprintln!("{} took {:?}", args[0], started.elapsed());
                Ok(())
            } else {
                Err(format!(
                    "{} failed after {:?}: {}",
                    args[0],
                    started.elapsed(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
    };
    let push = run(
        format!("serial://{}?baud={baud}", push_cli.path_str()),
        "board",
        &keys[0],
        vec!["push".into(), up.display().to_string()],
    );
    let pull = run(
        format!("serial://{}?baud={baud}", pull_cli.path_str()),
        "other",
        &keys[1],
        vec![
            "pull".into(),
            "--dest".into(),
            dest.path().display().to_string(),
        ],
    );
    let (pushed, pulled) = tokio::join!(push, pull);
    pushed?;
    pulled?;
    let fetched = std::fs::read(dest.path().join("down.bin"))
        .map_err(|e| format!("pull exited 0 but fetched nothing: {e}"))?;
    if fetched != content(model.seed + 1000, bytes) {
        return Err("the pulled file differs".into());
    }
    let listed = tokio::task::block_in_place(|| {
        server.cli(&server.url(), "laptop", &keys[2], &["ls", "--json"])
    });
    let listing: serde_json::Value = serde_json::from_slice(&listed.stdout)
        .map_err(|e| format!("ls --json printed no JSON ({e}): {listed:?}"))?;
    record_tells_the_truth(&listing, "up.bin", &content(model.seed, bytes))?;
    record_tells_the_truth(&listing, "down.bin", &content(model.seed + 1000, bytes))?;
    let lost = lines.iter().map(|line| line.snapshot().lost).sum();
    Ok(lost)
}

/// The record `name` in `ls --json`'s `listing` says what the server holds:
/// uploaded (`11`), every byte of `data` received, its hash, no failure reason.
fn record_tells_the_truth(
    listing: &serde_json::Value,
    name: &str,
    data: &[u8],
) -> Result<(), String> {
    let record = listing
        .as_array()
        .and_then(|records| records.iter().find(|r| r["name"] == name))
        .ok_or_else(|| format!("{name} is not listed: {listing}"))?;
    let hash = proto_core::auth::ContentHasher::digest(data).to_string();
    let truthful = record["state"] == "uploaded"
        && record["bits"] == "11"
        && record["size"] == data.len() as u64
        && record["received"] == data.len() as u64
        && record["hash"] == hash.as_str()
        && record["reason"] == "";
    if truthful {
        Ok(())
    } else {
        Err(format!(
            "the record of {name} is not that of its {} bytes (hash {hash}): {record}",
            data.len()
        ))
    }
}

/// A knob for soaks: `STATESYNC_NOISY_<NAME>` from the environment, else `default`.
fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(format!("STATESYNC_NOISY_{name}"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How one fault test runs `host-cli push` and `pull`: seeds, line rate,
/// file size and how many seeds run at once. A soak overrides any of them
/// from the environment (`STATESYNC_NOISY_SEEDS=20 STATESYNC_NOISY_BAUD=115200
/// STATESYNC_NOISY_BYTES=524288 STATESYNC_NOISY_PARALLEL=1`).
#[derive(Clone, Copy)]
struct Runs {
    seeds: u64,
    baud: u32,
    bytes: usize,
    parallel: usize,
}

impl Runs {
    /// These runs, with what the environment overrides ([`knob`]).
    fn or_from_env(self) -> Runs {
        Runs {
            seeds: knob("SEEDS", self.seeds),
            baud: knob("BAUD", self.baud),
            bytes: knob("BYTES", self.bytes),
            parallel: knob("PARALLEL", self.parallel).max(1),
        }
    }
}

/// Push and pull with `host-cli` on lines shaped by `shape`, for every seed
/// of `runs` (from `STATESYNC_NOISY_FIRST_SEED`, default 1); fails with
/// every seed's failure. Returns the bytes the lines lost in all runs.
async fn cli_transfers_complete_for_every_seed(runs: Runs, shape: fn(&mut LineModel)) -> u64 {
    let runs = runs.or_from_env();
    let first: u64 = knob("FIRST_SEED", 1);
    let seeds: Vec<u64> = (first..first + runs.seeds).collect();
    let mut failures = Vec::new();
    let mut lost = 0;
    for batch in seeds.chunks(runs.parallel) {
        let mut running = tokio::task::JoinSet::new();
        for &seed in batch {
            let mut model = LineModel::clean(runs.baud);
            model.seed = seed;
            shape(&mut model);
            running.spawn(async move { (seed, cli_push_and_pull_over(model, runs.bytes).await) });
        }
        while let Some(done) = running.join_next().await {
            match done.expect("a seed's run panicked") {
                (_, Ok(bytes)) => lost += bytes,
                (seed, Err(e)) => failures.push(format!("seed {seed}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_push_and_pull_at_ber_1e_4_never_give_up_and_deliver_whole_files() {
    let runs = Runs {
        seeds: 3,
        baud: 921_600,
        bytes: 256 * 1024,
        parallel: 1,
    };
    cli_transfers_complete_for_every_seed(runs, |model| model.bit_error_rate = 1e-4).await;
}

/// The promise: at BER 1e-4, 20 seeds in a row, every push and pull
/// completes with the whole file and truthful records. Small files on a
/// fast line keep it to seconds a seed, so most errors land where they hurt
/// most: in the handshake, in delimiters and in the short control frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_push_and_pull_at_ber_1e_4_complete_twenty_seeds_in_a_row_with_truthful_records() {
    let runs = Runs {
        seeds: 20,
        baud: 921_600,
        bytes: 16 * 1024,
        parallel: 4,
    };
    cli_transfers_complete_for_every_seed(runs, |model| model.bit_error_rate = 1e-4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_push_and_pull_through_radio_fades_never_give_up_and_deliver_whole_files() {
    let runs = Runs {
        seeds: 3,
        baud: 921_600,
        bytes: 256 * 1024,
        parallel: 1,
    };
    let lost = cli_transfers_complete_for_every_seed(runs, |model| {
        model.bit_error_rate = 1e-5;
        model.fades = Some(tests::link::Fades::radio());
    })
    .await;
    assert!(lost > 0, "the transfers met fades (bytes lost to them)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_lost_a_record_item_is_asked_again_and_pull_fetches_the_file() {
    use proto_core::{ClientFrame, ClientMessage, ServerMessage};
    use tests::link::Link;
    use tests::process::{Profile, ServerProcess};
    use tests::pty::PtyBridge;

    let baud = 2_000_000;
    let link = Link::symmetric(LineModel::clean(baud));
    let server_pty = PtyBridge::new(link.b).unwrap();
    let mut dropped_one = false;
    let (device_end, filter) = tests::frame_filter::spawn(link.a, move |frame| {
        let lose = !dropped_one && matches!(frame.message, ServerMessage::RecordItem(_));
        dropped_one |= lose;
        lose
    });
    let cli_pty = PtyBridge::new(device_end).unwrap();
    let serial_arg = format!("{}:{baud}", server_pty.path_str());
    let server = tokio::task::block_in_place(|| {
        ServerProcess::start(Profile::Debug, &["--serial", &serial_arg])
    });
    let (board_key, laptop_key) =
        tokio::task::block_in_place(|| (server.add_device("board"), server.add_device("laptop")));
    let serial_url = format!("serial://{}?baud={baud}", cli_pty.path_str());
    let dest = tempfile::tempdir().unwrap();
    let dest_arg = dest.path().display().to_string();
    let pull = || {
        let mut cmd = tokio::process::Command::from(server.cli_command(
            &serial_url,
            "board",
            &board_key,
            &["pull", "--dest", &dest_arg],
        ));
        cmd.kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
                .await
                .expect("pull ends")
                .unwrap();
            assert!(
                out.status.success(),
                "pull failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };

    let empty = pull().await;
    assert!(
        empty.contains("nothing to fetch"),
        "pull says when there is nothing to fetch: {empty:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.bin");
    std::fs::write(&file, content(106, 20_000)).unwrap();
    let pushed = tokio::task::block_in_place(|| {
        server.cli(
            &server.url(),
            "laptop",
            &laptop_key,
            &["push", &file.display().to_string()],
        )
    });
    assert!(pushed.status.success(), "{pushed:?}");

    pull().await;
    assert_eq!(
        std::fs::read(dest.path().join("report.bin")).unwrap(),
        content(106, 20_000),
        "the file was fetched although its RecordItem was lost once"
    );
    assert_eq!(filter.dropped.load(std::sync::atomic::Ordering::SeqCst), 1);
    let lists = filter
        .sent_by_device
        .lock()
        .unwrap()
        .iter()
        .filter(|payload| {
            matches!(
                ClientFrame::decode(payload).map(|f| f.message),
                Ok(ClientMessage::List { .. })
            )
        })
        .count();
    // One list by the empty pull, two by the second: the incomplete one and the one asked again.
    assert_eq!(lists, 3, "the client asked again for the incomplete list");
}

/// The adaptive chunk size end to end (issue 22): a push's frames shrink
/// while the line is noisy and grow back once it is clean, as host-cli's own
/// log says (`RUST_LOG`, the client's `chunk size A -> B` lines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_shrinks_its_chunks_on_a_noisy_line_and_grows_them_back_once_it_is_clean() {
    use tests::link::Link;
    use tests::process::{Profile, ServerProcess};
    use tests::pty::PtyBridge;

    let baud = 921_600;
    let mut model = LineModel::clean(baud);
    model.seed = 7;
    model.bit_error_rate = 3e-4;
    model.noisy_bytes = Some(256 * 1024);
    let link = Link::symmetric(model);
    let cli_end = PtyBridge::new(link.a).unwrap();
    let server_end = PtyBridge::new(link.b).unwrap();
    let serial = format!("{}:{baud}", server_end.path_str());
    let server = tokio::task::block_in_place(|| {
        ServerProcess::start(Profile::Debug, &["--serial", &serial])
    });
    let key = tokio::task::block_in_place(|| server.add_device("board"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.bin");
    let bytes = 2 * 1024 * 1024;
    std::fs::write(&file, content(7, bytes)).unwrap();

    let url = format!("serial://{}?baud={baud}", cli_end.path_str());
    let mut push = tokio::process::Command::from(server.cli_command(
        &url,
        "board",
        &key,
        &["push", &file.display().to_string()],
    ));
    push.env("RUST_LOG", "proto_core::client::chunk_size=debug")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), push.output())
        .await
        .expect("the push ends")
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "push failed: {log}");
    let sizes: Vec<(u32, u32)> = log
        .lines()
        .filter_map(|line| {
            let (from, to) = line.split_once("chunk size ")?.1.split_once(" -> ")?;
            Some((from.trim().parse().ok()?, to.trim().parse().ok()?))
        })
        .collect();
    let smallest = sizes
        .iter()
        .map(|&(_, to)| to)
        .min()
        .expect("the chunk size changed");
    let shrunk_at = sizes
        .iter()
        .position(|&(from, to)| to < from)
        .expect("the chunks shrank on the noisy line");
    let (_, last) = *sizes.last().unwrap();
    assert!(
        sizes[shrunk_at..].iter().any(|&(from, to)| to > from) && last >= 2 * smallest,
        "the chunks grew back on the clean line (from {smallest} to {last}): {sizes:?}"
    );
}
