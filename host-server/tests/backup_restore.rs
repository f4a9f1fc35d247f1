//! `host-server backup` while devices upload, then `restore` into a wiped data
//! directory: every uploaded file comes back with its bytes and every
//! unfinished upload resumes, and a file deleted before the backup can still
//! be restored with its kept bytes.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{content, run_cli, Client, Server};
use proto_core::{ClientMessage, ListFilter, ServerMessage, UploadState};

/// The content of a file of the load, from its name (`load-N.bin`).
fn load_content(name: &str) -> Option<Vec<u8>> {
    let n: u8 = name
        .strip_prefix("load-")?
        .strip_suffix(".bin")?
        .parse()
        .ok()?;
    Some(content(30_000 + usize::from(n) * 100, n))
}

#[test]
fn a_backup_taken_under_load_restores_every_uploaded_file_and_unfinished_uploads_resume() {
    let mut server = Server::start(&[]);
    let (key, load_key) = (server.add_device("cam"), server.add_device("load"));
    let mut client = server.connect("cam", &key);
    let files: Vec<(String, Vec<u8>)> = (0..5u8)
        .map(|i| (format!("done-{i}.bin"), content(50_000 + usize::from(i), i)))
        .collect();
    for (name, bytes) in &files {
        assert_eq!(client.upload(name, bytes).state, UploadState::Uploaded);
    }
    let half = content(200_000, 99);
    let (open_id, opened) = client.open_upload("half.bin", &half).unwrap();
    let (upload, offset, window) = opened.unwrap();
    client.send_chunks(open_id, upload, &half, offset, 100_000, window);
    client.wait_durable(open_id, upload, 100_000);
    client.bye();

    // Another device uploads file after file while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = std::sync::mpsc::channel();
    let loader = {
        let (addr, stop) = (server.addr.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut load = Client::tcp(&addr, "load", &load_key);
            let mut n = 0u8;
            while !stop.load(Ordering::Relaxed) && n < 200 {
                let name = format!("load-{n}.bin");
                load.upload(&name, &load_content(&name).unwrap());
                if n == 0 {
                    let _ = started_tx.send(());
                }
                n += 1;
            }
            n
        })
    };
    started.recv().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let dest = backups.path().join("copy");
    let dest_arg = dest.to_str().unwrap();
    let (ok, out, err) = run_cli(&["backup", dest_arg], &server.data);
    assert!(ok, "backup failed: {err}");
    assert!(out.contains("backed up"), "{out}");
    stop.store(true, Ordering::Relaxed);
    let loaded = loader.join().unwrap();
    assert!(loaded > 0);

    let (ok, _, err) = run_cli(&["restore", dest_arg], &server.data);
    assert!(
        !ok,
        "restore into the running server's directory must be refused"
    );
    assert!(err.contains("in use by another host-server"), "{err}");
    server.stop();
    let (ok, _, err) = run_cli(&["restore", dest_arg], &server.data);
    assert!(!ok, "restore over a database needs --force");
    assert!(err.contains("--force"), "{err}");

    std::fs::remove_dir_all(&server.data).unwrap();
    let (ok, out, err) = run_cli(&["restore", dest_arg], &server.data);
    assert!(ok, "restore failed: {err}");
    assert!(out.contains("restored"), "{out}");

    let restored = Server::start_in(&server.data, &[]);
    let mut client = restored.connect("cam", &key);
    let (records, _) = client.list(0, ListFilter::All);
    for (name, _) in &files {
        assert!(
            records
                .iter()
                .any(|r| &r.name == name && r.state == UploadState::Uploaded),
            "{name} was uploaded before the backup: {records:?}"
        );
    }
    let mut resumed = 0;
    for record in &records {
        let bytes = if record.name == "half.bin" {
            half.clone()
        } else if let Some((_, bytes)) = files.iter().find(|(name, _)| *name == record.name) {
            bytes.clone()
        } else {
            load_content(&record.name).expect("only the test's files exist")
        };
        match record.state {
            UploadState::Uploaded => {
                assert_eq!(
                    client.download(&record.name, false).unwrap(),
                    bytes,
                    "{} came back with its bytes",
                    record.name
                );
            }
            _ => {
                let (id, opened) = client.open_upload(&record.name, &bytes).unwrap();
                let (upload, offset, window) = opened.unwrap();
                assert_eq!(
                    offset, record.received,
                    "{} resumes where it was",
                    record.name
                );
                client.send_chunks(id, upload, &bytes, offset, bytes.len() as u64, window);
                assert_eq!(client.wait_result(id, upload).state, UploadState::Uploaded);
                resumed += 1;
            }
        }
    }
    let half_record = records.iter().find(|r| r.name == "half.bin").unwrap();
    assert_eq!(
        (half_record.state, half_record.received),
        (UploadState::Failed, 100_000)
    );
    assert!(resumed >= 1);
    eprintln!("load: {loaded} files uploaded during the backup; {resumed} unfinished uploads resumed after the restore");
}

#[test]
fn a_file_deleted_before_the_backup_is_restored_with_its_kept_bytes_after_a_restore_of_it() {
    let mut server = Server::start(&[]);
    let key = server.add_device("cam");
    let mut client = server.connect("cam", &key);
    let bytes = content(40_000, 7);
    client.upload("gone.bin", &bytes);
    let id = client.request(ClientMessage::Delete { name: "gone.bin" });
    client.expect_ok(id);
    client.bye();
    let backups = tempfile::tempdir().unwrap();
    let dest = backups.path().join("copy");
    let (ok, _, err) = run_cli(&["backup", dest.to_str().unwrap()], &server.data);
    assert!(ok, "backup failed: {err}");
    server.stop();
    std::fs::remove_dir_all(&server.data).unwrap();
    let (ok, _, err) = run_cli(&["restore", dest.to_str().unwrap()], &server.data);
    assert!(ok, "restore failed: {err}");

    let restored = Server::start_in(&server.data, &[]);
    let mut client = restored.connect("cam", &key);
    let id = client.request(ClientMessage::Restore {
        name: "gone.bin",
        at: None,
    });
    let state = client.reply(id, |message| match message {
        ServerMessage::Restored(record) => Some(record.state),
        _ => None,
    });
    assert_eq!(
        state.unwrap(),
        UploadState::Uploaded,
        "its kept bytes came with the backup"
    );
    assert_eq!(client.download("gone.bin", false).unwrap(), bytes);
}

#[cfg(feature = "postgres-tests")]
#[test]
fn backup_of_a_postgresql_server_points_to_pg_dump() {
    let server = Server::start_on(common::Backend::Postgres, &[]);
    let dest = server.data.with_extension("backup");
    let mut args = server.database_args();
    args.extend(["backup".to_string(), dest.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = run_cli(&args, &server.data);
    assert!(!ok);
    assert!(err.contains("pg_dump"), "{err}");
    assert!(!dest.exists(), "nothing was written");
}
