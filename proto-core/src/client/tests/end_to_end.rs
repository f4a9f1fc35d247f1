//! The client against the in-test responder over simulated links.

use super::{content, test_config, Seen, Sim};
use crate::client::{ClientError, FileId, LinkState, RamFile, RamStore};
use crate::error::ErrorCode;
use crate::framing::Framing;
use crate::model::ListFilter;
use crate::state::UploadState;

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
