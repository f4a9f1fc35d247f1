//! Property tests: the client's behaviour does not depend on how received
//! bytes are split, and transfers complete over a link that loses frames.

use proptest::prelude::*;
use std::vec::Vec;

use super::{content, test_config, Seen, Sim};
use crate::client::{FileId, RamFile, RamStore};
use crate::framing::Framing;
use crate::model::DownloadState;
use crate::state::UploadState;

/// How one simulated session is set up.
#[derive(Clone, Debug)]
struct Scenario {
    framing: Framing,
    max_frame: u32,
    upload_len: usize,
    download_len: usize,
    loss_per_mille: u32,
    keep_out_of_order: bool,
    upload_window: u32,
    max_split: usize,
    /// Pull the cable once the upload has this many durable bytes.
    pull_at: Option<u64>,
    seed: u64,
}

/// Runs manifest, upload (maybe interrupted and resumed) and download; checks
/// the outcome and returns every event seen.
fn run(scenario: &Scenario) -> Vec<Seen> {
    let mut upload = content(scenario.upload_len, 1);
    let published = content(scenario.download_len, 2);
    let mut target = std::vec![0u8; scenario.download_len];
    let mut files = [
        RamFile::with_content("up/file.bin", &mut upload),
        RamFile::empty("down/file.bin", &mut target),
    ];
    let mut sim = Sim::new(
        test_config(scenario.framing, scenario.max_frame),
        RamStore::new(&mut files),
        scenario.seed,
    );
    sim.max_split = scenario.max_split;
    sim.up.loss_per_mille = scenario.loss_per_mille;
    sim.down.loss_per_mille = scenario.loss_per_mille;
    sim.server.keep_out_of_order = scenario.keep_out_of_order;
    sim.server.upload_window = scenario.upload_window;
    sim.server.publish("down/file.bin", &published);
    sim.connect();

    // The client repeats a manifest hit by losses a few times; an application
    // starts it again when even that failed.
    let created = (0..5)
        .map(|_| {
            let handle = sim.client.send_manifest("batch", 0..1).unwrap();
            let outcome = sim.run_until(120_000, |e| match e {
                Seen::BatchCreated { .. } => true,
                Seen::RequestFailed(id, _) => *id == handle,
                _ => false,
            });
            (handle, outcome)
        })
        .find(|(_, outcome)| !matches!(outcome, Seen::RequestFailed(..)));
    let (handle, created) = created.expect("a manifest gets through in five tries");
    assert_eq!(
        created,
        Seen::BatchCreated {
            id: handle,
            records: 1
        }
    );

    sim.client.upload(FileId(0)).unwrap();
    let mut outcome = None;
    if let Some(pull_at) = scenario.pull_at {
        let reached = sim.run_until(120_000, |e| {
            matches!(e, Seen::UploadProgress { durable } if *durable >= pull_at)
                || matches!(e, Seen::UploadDone { .. } | Seen::Closed(_))
        });
        if matches!(reached, Seen::UploadProgress { .. }) {
            sim.up.cut = true;
            sim.down.cut = true;
            sim.run_until(60_000, |e| matches!(e, Seen::Closed(_)));
            sim.up.cut = false;
            sim.down.cut = false;
        }
        outcome = Some(reached);
    }
    // Like an application: when the session dies, reconnect and start the
    // upload again; it resumes where the server stands.
    loop {
        match outcome {
            Some(Seen::UploadDone { state, .. }) => {
                assert_eq!(state, UploadState::Uploaded);
                break;
            }
            Some(Seen::UploadProgress { .. } | Seen::Closed(_)) => {
                reconnect(&mut sim, scenario.framing);
                sim.client.upload(FileId(0)).unwrap();
            }
            _ => {}
        }
        outcome = Some(sim.run_until(600_000, |e| {
            matches!(e, Seen::UploadDone { .. } | Seen::Closed(_))
        }));
    }
    let index = sim.server.file_named("up/file.bin").unwrap();
    assert_eq!(
        sim.server.files[index].data,
        content(scenario.upload_len, 1)
    );
    assert_eq!(
        sim.server.chunks_below_resume, 0,
        "a chunk below the resume offset was sent"
    );

    sim.client.download(FileId(1), false).unwrap();
    loop {
        let outcome = sim.run_until(600_000, |e| {
            matches!(
                e,
                Seen::DownloadDone { .. } | Seen::TransferFailed(_) | Seen::Closed(_)
            )
        });
        if !matches!(outcome, Seen::Closed(_)) {
            assert_eq!(outcome, Seen::DownloadDone { verified: true });
            break;
        }
        // Resume from what the store holds contiguously.
        let held = sim
            .client
            .download_status()
            .map_or(0, |status| status.durable);
        reconnect(&mut sim, scenario.framing);
        sim.client.download_from(FileId(1), held, false).unwrap();
    }
    assert_eq!(
        sim.client.store().file(FileId(1)).unwrap().contents(),
        &published[..]
    );
    if scenario.loss_per_mille == 0 {
        sim.run_for(100);
        let record = sim.server.files[sim.server.file_named("down/file.bin").unwrap()].id;
        assert!(sim.server.reports.contains(&(record, DownloadState::Done)));
    }
    sim.log
}

/// A new session after the old one died (a new connection on TCP).
fn reconnect(sim: &mut Sim<'_, '_>, framing: Framing) {
    if framing == Framing::Length {
        sim.server.end_session();
    }
    sim.connect();
}

/// 32 cases by default (they simulate whole sessions); `PROPTEST_CASES` overrides.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

fn baseline(framing: Framing, seed: u64) -> Scenario {
    Scenario {
        framing,
        max_frame: 1024,
        upload_len: 9_000,
        download_len: 7_000,
        loss_per_mille: 0,
        keep_out_of_order: true,
        upload_window: 4096,
        max_split: usize::MAX,
        pull_at: None,
        seed,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_split_of_incoming_bytes_gives_the_same_events(
        serial in any::<bool>(),
        max_split in 1usize..80,
        seed in any::<u64>(),
    ) {
        let framing = if serial { Framing::Serial } else { Framing::Length };
        let whole = run(&baseline(framing, seed));
        let split = run(&Scenario { max_split, ..baseline(framing, seed) });
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn transfers_complete_over_a_link_that_loses_frames(
        loss_per_mille in 0u32..80,
        keep_out_of_order in any::<bool>(),
        max_frame in prop::sample::select(std::vec![512u32, 700, 1024]),
        upload_window in 600u32..8000,
        upload_len in 1usize..20_000,
        download_len in 0usize..12_000,
        pull in any::<bool>(),
        max_split in 1usize..200,
        seed in any::<u64>(),
    ) {
        let scenario = Scenario {
            framing: Framing::Serial,
            max_frame,
            upload_len,
            download_len,
            loss_per_mille,
            keep_out_of_order,
            upload_window,
            max_split,
            pull_at: pull.then_some(upload_len as u64 / 3).filter(|&at| at > 0),
            seed,
        };
        run(&scenario);
    }
}

#[test]
fn tcp_upload_interrupted_by_a_dead_connection_resumes_on_a_new_one() {
    run(&Scenario {
        pull_at: Some(3_000),
        upload_len: 12_000,
        ..baseline(Framing::Length, 3)
    });
}
