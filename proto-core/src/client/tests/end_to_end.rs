//! The client against the in-test responder over simulated links.

use super::{content, test_config, Seen, Sim};
use crate::client::{ClientError, FileId, LinkState, RamFile, RamStore};
use crate::error::ErrorCode;
use crate::framing::Framing;
use crate::model::ListFilter;
use crate::state::UploadState;

#[test]
fn manifest_entry_whose_content_the_server_holds_is_reported_held_before_the_batch() {
    let mut kept = content(5_000, 3);
    let mut fresh = content(6_000, 4);
    let mut files = [
        RamFile::with_content("logs/kept.bin", &mut kept),
        RamFile::with_content("logs/fresh.bin", &mut fresh),
    ];
    let mut sim = Sim::new(
        test_config(Framing::Length, 4 * 1024),
        RamStore::new(&mut files),
        11,
    );
    sim.server.publish("logs/kept.bin", &content(5_000, 3));
    sim.connect();
    let batch = sim.client.send_manifest("logs", 0..2).unwrap();
    let created = sim.run_until(1000, |e| matches!(e, Seen::BatchCreated { .. }));
    assert_eq!(
        created,
        Seen::BatchCreated {
            id: batch,
            records: 2
        }
    );
    let held: std::vec::Vec<_> = sim
        .log
        .iter()
        .filter(|e| matches!(e, Seen::EntryHeld { .. }))
        .collect();
    assert_eq!(
        held,
        [&Seen::EntryHeld {
            id: batch,
            file: FileId(0)
        }]
    );
}

#[test]
fn tcp_session_announces_uploads_downloads_lists_and_repairs() {
    let mut upload = content(70_000, 1);
    let published = content(50_000, 2);
    let mut target = std::vec![0u8; 60_000];
    let mut files = [
        RamFile::with_content("photos/a.jpg", &mut upload),
        RamFile::empty("shared/b.bin", &mut target),
    ];
    let mut sim = Sim::new(
        test_config(Framing::Length, 16 * 1024),
        RamStore::new(&mut files),
        7,
    );
    sim.max_split = 3000;
    sim.server.publish("shared/b.bin", &published);
    sim.connect();
    assert_eq!(sim.client.state(), LinkState::Ready);
    assert_eq!(sim.client.max_frame(), 16 * 1024);

    let subscribe = sim.client.subscribe(ListFilter::All, 0).unwrap();
    assert_eq!(sim.run_until(1000, |_| true), Seen::Subscribed(subscribe));

    let batch = sim.client.send_manifest("photos", 0..1).unwrap();
    let created = sim.run_until(1000, |e| matches!(e, Seen::BatchCreated { .. }));
    assert_eq!(
        created,
        Seen::BatchCreated {
            id: batch,
            records: 1
        }
    );

    let id = sim.client.upload(FileId(0)).unwrap();
    assert_eq!(
        sim.run_until(1000, |e| matches!(e, Seen::UploadStarted { .. })),
        Seen::UploadStarted { id, offset: 0 }
    );
    let done = sim.run_until(10_000, |e| matches!(e, Seen::UploadDone { .. }));
    assert_eq!(
        done,
        Seen::UploadDone {
            id,
            state: UploadState::Uploaded
        }
    );
    let server_file = &sim.server.files[sim.server.file_named("photos/a.jpg").unwrap()];
    assert_eq!(server_file.data, content(70_000, 1));
    assert!(sim.log.contains(&Seen::RecordChanged {
        name: "photos/a.jpg".into(),
        state: UploadState::Uploaded
    }));

    sim.client.download(FileId(1), false).unwrap();
    assert_eq!(
        sim.run_until(1000, |e| matches!(e, Seen::DownloadStarted { .. })),
        Seen::DownloadStarted { offset: 0 }
    );
    assert_eq!(
        sim.run_until(10_000, |e| matches!(e, Seen::DownloadDone { .. })),
        Seen::DownloadDone { verified: true }
    );
    assert_eq!(
        sim.client.store().file(FileId(1)).unwrap().contents(),
        &published[..]
    );
    sim.run_for(100);
    assert!(sim
        .server
        .reports
        .iter()
        .any(|&(_, state)| state == crate::model::DownloadState::Done));

    let list = sim.client.list(0, ListFilter::UploadedOnly).unwrap();
    let mut items = 0;
    let end = sim.run_until(1000, |e| {
        items += usize::from(*e == Seen::Item(list));
        matches!(e, Seen::ListEnd(_))
    });
    assert_eq!((end, items), (Seen::ListEnd(list), 2));

    let ping = sim.client.ping().unwrap();
    assert_eq!(
        sim.run_until(1000, |e| matches!(e, Seen::Pong(_))),
        Seen::Pong(ping)
    );
    let delete = sim.client.delete("photos/a.jpg").unwrap();
    assert_eq!(
        sim.run_until(1000, |e| matches!(e, Seen::Ok(_))),
        Seen::Ok(delete)
    );
    let retry = sim.client.retry("no/such.file").unwrap();
    let failed = sim.run_until(1000, |e| matches!(e, Seen::RequestFailed(..)));
    assert_eq!(failed, Seen::RequestFailed(retry, ErrorCode::NotFound));
    assert_eq!(
        sim.client.delete("../etc/passwd").unwrap_err(),
        ClientError::BadName(crate::name::NameError::DotSegment)
    );

    sim.client.close(sim.now).unwrap();
    sim.step();
    assert_eq!(sim.client.state(), LinkState::Closed);
    assert!(!sim.server.authed, "Bye ends the server session");
}

/// Pulls the cable until the client gives the session up, then plugs it back.
fn pull_cable_until_closed(sim: &mut Sim<'_, '_>) {
    sim.up.cut = true;
    sim.down.cut = true;
    let closed = sim.run_until(20_000, |e| matches!(e, Seen::Closed(_)));
    assert_eq!(closed, Seen::Closed(ClientError::Timeout));
    sim.up.cut = false;
    sim.down.cut = false;
}

#[test]
fn lossy_serial_link_upload_and_download_resume_after_a_pulled_cable_without_resending_held_bytes()
{
    let mut upload = content(24_000, 3);
    let published = content(20_000, 4);
    let mut target = std::vec![0u8; 20_000];
    let mut files = [
        RamFile::with_content("logs/day1.bin", &mut upload),
        RamFile::empty("fw/update.bin", &mut target),
    ];
    let mut sim = Sim::new(
        test_config(Framing::Serial, 512),
        RamStore::new(&mut files),
        11,
    );
    sim.max_split = 37;
    sim.up.loss_per_mille = 30;
    sim.down.loss_per_mille = 30;
    sim.server.upload_window = 2048;
    sim.server.publish("fw/update.bin", &published);
    sim.connect();

    // Upload: interrupted after a third, resumed at what the server holds.
    sim.client.upload(FileId(0)).unwrap();
    sim.run_until(
        30_000,
        |e| matches!(e, Seen::UploadProgress { durable } if *durable >= 8_000),
    );
    pull_cable_until_closed(&mut sim);
    let index = sim.server.file_named("logs/day1.bin").unwrap();
    let held = sim.server.files[index].received;
    assert!(held >= 8_000);
    sim.connect();
    assert_eq!(
        sim.server.files[index].state,
        UploadState::Failed,
        "a broken upload is 00 on the server"
    );
    let session = sim.server.session;
    let id = sim.client.upload(FileId(0)).unwrap();
    let started = sim.run_until(30_000, |e| matches!(e, Seen::UploadStarted { .. }));
    assert_eq!(started, Seen::UploadStarted { id, offset: held });
    let done = sim.run_until(60_000, |e| matches!(e, Seen::UploadDone { .. }));
    assert_eq!(
        done,
        Seen::UploadDone {
            id,
            state: UploadState::Uploaded
        }
    );
    assert_eq!(sim.server.files[index].data, content(24_000, 3));
    let resumed: std::vec::Vec<_> = sim
        .server
        .chunk_log
        .iter()
        .filter(|c| c.0 >= session)
        .collect();
    assert!(!resumed.is_empty());
    assert!(
        resumed.iter().all(|&&(_, offset, _)| offset >= held),
        "a chunk below the server's received offset {held} was sent again"
    );

    // Download: interrupted halfway, resumed from the bytes already stored.
    sim.client.download(FileId(1), false).unwrap();
    let progress = sim.run_until(
        30_000,
        |e| matches!(e, Seen::DownloadProgress { durable } if *durable >= 10_000),
    );
    let Seen::DownloadProgress { durable: stored } = progress else {
        unreachable!()
    };
    pull_cable_until_closed(&mut sim);
    sim.connect();
    let session = sim.server.session;
    sim.client.download_from(FileId(1), stored, false).unwrap();
    assert_eq!(
        sim.run_until(30_000, |e| matches!(e, Seen::DownloadStarted { .. })),
        Seen::DownloadStarted { offset: stored }
    );
    let done = sim.run_until(60_000, |e| matches!(e, Seen::DownloadDone { .. }));
    assert_eq!(done, Seen::DownloadDone { verified: true });
    assert_eq!(
        sim.client.store().file(FileId(1)).unwrap().contents(),
        &published[..]
    );
    let resent: std::vec::Vec<_> = sim
        .server
        .data_log
        .iter()
        .filter(|d| d.0 >= session)
        .collect();
    assert!(
        resent.iter().all(|&&(_, offset, _)| offset >= stored),
        "the server sent bytes the client held"
    );
    assert!(
        sim.up.frames_dropped > 0 && sim.down.frames_dropped > 0,
        "the link should have lost frames"
    );
}

#[test]
fn rejected_download_is_notified_and_downloaded_again_with_one_call() {
    let later = content(3_000, 5);
    let mut target = std::vec![0u8; 4_000];
    let mut files = [RamFile::empty("inbox/later.bin", &mut target)];
    let mut sim = Sim::new(
        test_config(Framing::Serial, 1024),
        RamStore::new(&mut files),
        5,
    );
    sim.server.announce("inbox/later.bin", &later);
    sim.connect();
    sim.client.download(FileId(0), true).unwrap();
    let rejected = sim.run_until(5_000, |e| matches!(e, Seen::DownloadRejected { .. }));
    assert_eq!(rejected, Seen::DownloadRejected { notify: true });
    assert!(sim.client.download_status().is_none());

    sim.server.publish("inbox/later.bin", &later);
    let available = sim.run_until(5_000, |e| matches!(e, Seen::DownloadAvailable { .. }));
    let Seen::DownloadAvailable {
        file: Some(file), ..
    } = available
    else {
        panic!("the store should know the file: {available:?}");
    };
    sim.client.download(file, true).unwrap();
    assert_eq!(
        sim.run_until(10_000, |e| matches!(e, Seen::DownloadDone { .. })),
        Seen::DownloadDone { verified: true }
    );
    assert_eq!(
        sim.client.store().file(FileId(0)).unwrap().contents(),
        &later[..]
    );
}

#[test]
fn notification_queued_while_silent_arrives_right_after_welcome() {
    let later = content(1_000, 6);
    let mut target = std::vec![0u8; 1_000];
    let mut files = [RamFile::empty("inbox/later.bin", &mut target)];
    let mut sim = Sim::new(
        test_config(Framing::Length, 4096),
        RamStore::new(&mut files),
        6,
    );
    sim.server.announce("inbox/later.bin", &later);
    sim.connect();
    sim.client.download(FileId(0), true).unwrap();
    sim.run_until(5_000, |e| matches!(e, Seen::DownloadRejected { .. }));
    sim.client.disconnected(sim.now);
    assert_eq!(
        sim.run_until(100, |_| true),
        Seen::Closed(ClientError::LinkClosed)
    );
    sim.server.end_session();
    sim.server.publish("inbox/later.bin", &later);
    sim.connect();
    let next = sim.run_until(1_000, |_| true);
    assert_eq!(
        next,
        Seen::DownloadAvailable {
            name: "inbox/later.bin".into(),
            file: Some(FileId(0))
        }
    );
}

#[test]
fn keepalive_pings_keep_an_idle_session_open_and_a_silent_server_times_out() {
    let mut files: [RamFile<'_>; 0] = [];
    let mut sim = Sim::new(
        test_config(Framing::Serial, 512),
        RamStore::new(&mut files),
        8,
    );
    sim.connect();
    sim.run_for(20_000);
    assert_eq!(
        sim.client.state(),
        LinkState::Ready,
        "pings every 2 s keep the 5 s dead timer away"
    );
    assert!(
        !sim.log.iter().any(|e| matches!(e, Seen::Pong(_))),
        "keepalive pongs are not events"
    );
    sim.up.cut = true;
    let closed = sim.run_until(10_000, |e| matches!(e, Seen::Closed(_)));
    assert_eq!(closed, Seen::Closed(ClientError::Timeout));
}

#[test]
fn lost_hello_on_a_serial_line_is_retried_with_a_fresh_nonce() {
    let mut files: [RamFile<'_>; 0] = [];
    let mut sim = Sim::new(
        test_config(Framing::Serial, 512),
        RamStore::new(&mut files),
        9,
    );
    // Frame 0 is the lone 0x00 before Hello; frame 1 is the Hello itself.
    sim.up.drop_frames = std::vec![1];
    sim.connect();
    assert_eq!(
        sim.server.session, 1,
        "only the second Hello reached the server"
    );
    assert!(sim.now >= 500, "the retry waited for the handshake timeout");
}

#[test]
fn an_upload_the_server_already_holds_completes_at_once() {
    let mut data = content(5_000, 8);
    let mut files = [RamFile::with_content("same.bin", &mut data)];
    let mut sim = Sim::new(
        test_config(Framing::Length, 4096),
        RamStore::new(&mut files),
        10,
    );
    sim.server.publish("same.bin", &content(5_000, 8));
    sim.connect();
    let id = sim.client.upload(FileId(0)).unwrap();
    let done = sim.run_until(1_000, |e| {
        matches!(e, Seen::UploadDone { .. } | Seen::UploadStarted { .. })
    });
    assert_eq!(
        done,
        Seen::UploadDone {
            id,
            state: UploadState::Uploaded
        }
    );
    assert!(sim.server.chunk_log.is_empty());
}
