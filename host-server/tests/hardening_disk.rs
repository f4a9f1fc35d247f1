//! A full disk and a read-only data directory: uploads fail with a clear `Storage` error,
//! nothing half-written is ever served, reads go on, other devices keep being served, and the
//! server recovers without a restart once there is room (or the disk is writable) again.
//!
//! Each test mounts a small tmpfs of its own (`mount -t tmpfs`, which needs root, as on CI).
//! As root (CI) a failed mount fails the test. Elsewhere the tests check nothing and say
//! `SKIPPED` with the reason on the terminal (written past the test harness's capture, so it
//! shows even though the test passes).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use proto_core::{ClientMessage, ErrorCode, ListFilter, ServerMessage, UploadState};

/// True when the test runs as root (as on CI), where mounting must work.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Says a test was skipped, and why, where it shows: straight to the terminal's
/// stderr, which the harness does not capture (it captures `eprintln!`).
fn skipped(why: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a disk test")
        .to_owned();
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (e.g. `2m`), or `None` when this machine does not allow it.
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .output();
        let reason = match out {
            Ok(out) if out.status.success() => return Some(SmallDisk { _dir: dir, mount }),
            Ok(out) => format!(
                "cannot mount a tmpfs here ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(error) => format!("no `mount` command ({error})"),
        };
        assert!(
            !running_as_root(),
            "running as root, yet {reason}: the disk tests cannot be skipped here"
        );
        skipped(&format!(
            "{reason}; run as root to test a full or read-only disk"
        ));
        None
    }

    /// Makes the data directory read-only for new opens: a read-only bind mount over it.
    /// (The whole tmpfs cannot be remounted read-only while the server holds files open for
    /// writing; those keep writing, as a database opened before the disk went read-only would.)
    fn read_only(&self) {
        let data = self.data();
        for args in [&["--bind"][..], &["-o", "remount,bind,ro"][..]] {
            let status = Command::new("mount")
                .args(args)
                .arg(&data)
                .arg(&data)
                .status()
                .unwrap();
            assert!(status.success(), "mount {args:?}");
        }
    }

    /// Undoes [`SmallDisk::read_only`].
    fn writable(&self) {
        let status = Command::new("umount").arg(self.data()).status().unwrap();
        assert!(status.success(), "umount the read-only bind mount");
    }

    fn data(&self) -> PathBuf {
        self.mount.join("data")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        for path in [self.data(), self.mount.clone()] {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(path)
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Sends a whole file's chunks without waiting for acks and returns the first error the
/// upload gets (or `None` when it completed).
fn upload_until_error(client: &mut Client, name: &str, bytes: &[u8]) -> Option<Refused> {
    let (open, opened) = match client.open_upload(name, bytes) {
        Ok(opened) => opened,
        Err(refused) => return Some(refused),
    };
    let Ok((upload, offset, _)) = opened else {
        return None;
    };
    let chunk = 32 * 1024;
    let mut at = offset as usize;
    while at < bytes.len() {
        let end = (at + chunk).min(bytes.len());
        client.request(ClientMessage::UploadChunk {
            upload,
            offset: at as u64,
            data: &bytes[at..end],
        });
        at = end;
    }
    client.request(ClientMessage::UploadClose { upload, hash: None });
    client.wait(|frame| match frame.message {
        ServerMessage::Error { code, message } if frame.id == open => Some(Some(Refused {
            code,
            message: message.to_string(),
        })),
        ServerMessage::UploadResult { upload: u, record } if u == upload => {
            assert_eq!(record.state, UploadState::Uploaded);
            Some(None)
        }
        _ => None,
    })
}

fn ping(client: &mut Client) {
    let id = client.request(ClientMessage::Ping);
    client
        .reply(id, |m| matches!(m, ServerMessage::Pong).then_some(()))
        .unwrap();
}

/// Downloads a file without reporting the result (the report is a store write, which a full
/// disk refuses); `None` when the download is rejected.
fn fetch(client: &mut Client, name: &str) -> Option<Vec<u8>> {
    let id = client.request(ClientMessage::DownloadOpen {
        name,
        offset: 0,
        window: 1 << 20,
        notify: false,
    });
    let (download, size) = client.wait(|frame| match frame.message {
        ServerMessage::DownloadReady { download, size, .. } if frame.id == id => {
            Some(Some((download, size)))
        }
        ServerMessage::DownloadRejected { state, .. } if frame.id == id => {
            assert_ne!(state, UploadState::Uploaded);
            Some(None)
        }
        ServerMessage::Error { code, message } if frame.id == id => {
            panic!("download of {name}: {code:?} {message}")
        }
        _ => None,
    })?;
    let mut data = vec![0u8; size as usize];
    let mut have = 0u64;
    while have < size {
        let (offset, bytes) = client.wait(|frame| match frame.message {
            ServerMessage::DownloadData {
                download: d,
                offset,
                data,
            } if d == download => Some((offset, data.to_vec())),
            _ => None,
        });
        if offset == have {
            data[offset as usize..][..bytes.len()].copy_from_slice(&bytes);
            have += bytes.len() as u64;
            client.request(ClientMessage::DownloadAck {
                download,
                durable: have,
                missing: None,
            });
        }
    }
    Some(data)
}

fn partial_bytes(data: &Path) -> u64 {
    std::fs::read_dir(data.join("partial"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn a_full_disk_fails_the_upload_clearly_serves_nothing_partial_and_resumes_once_there_is_room() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let server = Server::start_in(&disk.data(), &[]);
    let k1 = server.add_device("d1");
    let k2 = server.add_device("d2");
    let mut d1 = server.connect("d1", &k1);
    let mut d2 = server.connect("d2", &k2);
    let small = content(10_000, 1);
    assert_eq!(d1.upload("before.bin", &small).state, UploadState::Uploaded);
    // Something else on the disk takes most of it.
    let ballast = disk.mount.join("ballast");
    std::fs::write(&ballast, vec![0u8; 4 << 20]).unwrap();

    let big = content(5 << 20, 2);
    let refused =
        upload_until_error(&mut d1, "big.bin", &big).expect("5 MiB cannot fit in the 4 MiB left");
    assert_eq!(refused.code, ErrorCode::Storage, "{}", refused.message);
    assert!(
        refused.message.contains("disk"),
        "the message says where to look: {}",
        refused.message
    );
    // Not served: the record is not 11, and a download is rejected.
    assert!(
        fetch(&mut d2, "big.bin").is_none(),
        "a file that did not fit was served"
    );
    // Reads and other devices go on while the disk is full.
    ping(&mut d1);
    assert_eq!(fetch(&mut d2, "before.bin").unwrap(), small);
    let mut d3 = server.connect("d2", &k2);
    ping(&mut d3);

    // The operator frees space: the same server takes the upload again (it resumes at what
    // was stored) and it completes with the right hash.
    std::fs::remove_file(&ballast).unwrap();
    let record = eventually("the upload to resume", || {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d1.upload("big.bin", &big)))
        {
            Ok(record) => Some(record),
            Err(_) => {
                d1 = server.connect("d1", &k1);
                None
            }
        }
    });
    assert_eq!(record.state, UploadState::Uploaded);
    assert_eq!(record.hash, hash(&big));
    assert_eq!(d2.download("big.bin", false).unwrap(), big);
    assert_eq!(partial_bytes(&disk.data()), 0);
}

#[test]
fn a_read_only_data_directory_refuses_writes_clearly_keeps_serving_reads_and_recovers() {
    let Some(disk) = SmallDisk::mount("16m") else {
        return;
    };
    let mut server = Server::start_in(&disk.data(), &[]);
    let key = server.add_device("d1");
    let other = server.add_device("d2");
    let mut d1 = server.connect("d1", &key);
    let mut d2 = server.connect("d2", &other);
    d2.subscribe(ListFilter::All, 0);
    let kept = content(300_000, 4);
    d1.upload("kept.bin", &kept);

    disk.read_only();
    let fresh = content(100_000, 5);
    let refused = upload_until_error(&mut d1, "fresh.bin", &fresh).expect("nothing can be written");
    assert_eq!(refused.code, ErrorCode::Storage, "{}", refused.message);
    assert!(
        refused.message.contains("disk") || refused.message.contains("permissions"),
        "the message says where to look: {}",
        refused.message
    );
    // Reading goes on: lists, downloads, pings, for every device.
    assert_eq!(d2.download("kept.bin", false).unwrap(), kept);
    assert!(d1
        .list(0, ListFilter::All)
        .0
        .iter()
        .any(|r| r.name == "kept.bin"));
    ping(&mut d2);

    // Writable again: the same server takes the upload.
    disk.writable();
    eventually("the upload to be taken after the disk came back", || {
        upload_until_error(&mut d1, "fresh.bin", &fresh)
            .is_none()
            .then_some(())
    });
    assert_eq!(d2.download("fresh.bin", false).unwrap(), fresh);

    // Starting on a read-only directory is a clear error, not a crash later.
    server.stop();
    disk.read_only();
    let (ok, _, err) = run_cli(&["serve", "--listen", "127.0.0.1:0"], &disk.data());
    assert!(!ok && err.contains("is not usable"), "{err}");
    disk.writable();
}
