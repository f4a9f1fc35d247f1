//! The real `host-cli` against a real `host-server` on `127.0.0.1:0`: every
//! command over TCP, its text and `--json` output, and its exit codes.

mod cli_common;

use std::fs;

use cli_common::{write_pattern, Cli, Server, Watcher};
use serde_json::Value;

fn names(records: &Value) -> Vec<String> {
    let mut names: Vec<String> = records
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn push_announces_and_uploads_then_ls_shows_every_field() {
    let server = Server::start(&["laptop"]);
    let cli = server.cli("laptop");
    let dir = tempfile::tempdir().unwrap();
    write_pattern(&dir.path().join("photos/a.bin"), 300_000, 1);
    write_pattern(&dir.path().join("photos/sub/b.bin"), 1234, 2);
    fs::create_dir_all(dir.path().join("photos/empty")).unwrap();

    let pushed = cli.json(&["push", dir.path().join("photos").to_str().unwrap()]);
    let results: Vec<&str> = pushed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    // The empty directory has no bytes: the server completes it on the manifest.
    assert_eq!(results[0], "uploaded");
    assert_eq!(results[2], "uploaded");

    let records = cli.json(&["ls"]);
    assert_eq!(
        names(&records),
        ["photos/a.bin", "photos/empty", "photos/sub/b.bin"]
    );
    let a = cli.record("photos/a.bin").unwrap();
    assert_eq!(a["size"], 300_000);
    assert_eq!(a["state"], "uploaded");
    assert_eq!(a["bits"], "11");
    assert_eq!(a["received"], 300_000);
    assert_eq!(a["owner"], "laptop");
    assert_eq!(a["hash"].as_str().unwrap().len(), 64);
    assert_eq!(a["kind"], "file");

    let text = cli.ok(&["ls"]);
    assert!(text.contains("photos/a.bin"), "{text}");
    assert!(text.contains("uploaded"), "{text}");
    assert!(text.contains("11"), "{text}");
    assert!(text.contains("300000/300000"), "{text}");

    // A second push sends nothing: the server already has every file (11, same hash).
    let again = cli.json(&["push", dir.path().join("photos").to_str().unwrap()]);
    for file in again.as_array().unwrap() {
        assert_eq!(file["result"], "already-uploaded", "{file}");
        assert!(file["lowest_sent"].is_null(), "no chunk was sent: {file}");
    }

    // Filters: by state and by owner (`--device` after `ls`).
    assert_eq!(
        names(&cli.json(&["ls", "--state", "failed"])),
        Vec::<String>::new()
    );
    assert_eq!(names(&cli.json(&["ls", "--state", "uploaded"])).len(), 3);
    assert_eq!(names(&cli.json(&["ls", "--device", "nobody"])).len(), 0);
    assert_eq!(names(&cli.json(&["ls", "--device", "laptop"])).len(), 3);
}

#[test]
fn push_of_a_copy_reports_already_on_the_server_and_sends_no_byte_of_it() {
    let server = Server::start(&["laptop"]);
    let cli = server.cli("laptop");
    let dir = tempfile::tempdir().unwrap();
    write_pattern(&dir.path().join("photos/a.bin"), 200_000, 5);
    cli.ok(&["push", dir.path().join("photos").to_str().unwrap()]);
    write_pattern(&dir.path().join("backup/a-copy.bin"), 200_000, 5);
    write_pattern(&dir.path().join("backup/new.bin"), 1000, 6);

    let text = cli.ok(&["push", dir.path().join("backup").to_str().unwrap()]);
    assert!(text.contains("1 already on the server"), "{text}");
    assert!(
        text.contains("backup/a-copy.bin: already on the server"),
        "{text}"
    );
    assert!(text.contains("backup/new.bin: uploaded"), "{text}");
    let copy = cli.record("backup/a-copy.bin").unwrap();
    assert_eq!(
        (copy["bits"].as_str(), copy["received"].as_u64()),
        (Some("11"), Some(200_000))
    );

    write_pattern(&dir.path().join("again/b-copy.bin"), 200_000, 5);
    let pushed = cli.json(&["push", dir.path().join("again").to_str().unwrap()]);
    let report = &pushed[0];
    assert_eq!(report["result"], "already-uploaded", "{report}");
    assert_eq!(report["wire_bytes"], 0, "{report}");
    assert!(report["lowest_sent"].is_null(), "{report}");
}

#[test]
fn pull_verifies_writes_atomically_and_skips_files_already_present() {
    let server = Server::start(&["laptop", "tv"]);
    let dir = tempfile::tempdir().unwrap();
    write_pattern(&dir.path().join("show/ep1.mp4"), 2_000_000, 3);
    write_pattern(&dir.path().join("show/ep2.mp4"), 10, 4);
    server
        .cli("laptop")
        .ok(&["push", dir.path().join("show").to_str().unwrap()]);

    let dest = tempfile::tempdir().unwrap();
    let tv = server.cli("tv");
    let pulled = tv.json(&["pull", "--dest", dest.path().to_str().unwrap()]);
    assert!(pulled
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["result"] == "fetched"));
    for name in ["show/ep1.mp4", "show/ep2.mp4"] {
        assert_eq!(
            fs::read(dest.path().join(name)).unwrap(),
            fs::read(dir.path().join(name)).unwrap()
        );
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(dest.path().join("show"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let again = tv.json(&["pull", "--dest", dest.path().to_str().unwrap()]);
    assert!(again
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["result"] == "skipped"));

    // A named pull fetches only that file; an unknown name fails with exit 1.
    let other = tempfile::tempdir().unwrap();
    let one = tv.json(&[
        "pull",
        "--dest",
        other.path().to_str().unwrap(),
        "show/ep2.mp4",
    ]);
    assert_eq!(names(&one), ["show/ep2.mp4"]);
    assert!(!other.path().join("show/ep1.mp4").exists());
    let missing = tv.run(&["pull", "--dest", other.path().to_str().unwrap(), "nope.bin"]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("could not be fetched"), "{err}");
}

#[test]
fn watch_streams_record_changes_and_presence_as_json_lines() {
    let server = Server::start(&["laptop", "tv"]);
    let mut watcher = Watcher::start(&server.cli("tv"));
    let dir = tempfile::tempdir().unwrap();
    write_pattern(&dir.path().join("clip.bin"), 50_000, 5);
    server
        .cli("laptop")
        .ok(&["push", dir.path().join("clip.bin").to_str().unwrap()]);
    watcher.until("laptop joining", |e| {
        e["event"] == "presence"
            && e["device"]["device"] == "laptop"
            && e["device"]["active"] == true
    });
    let needed = watcher.record("clip.bin", |r| r["bits"] == "01");
    assert_eq!(needed["state"], "needed");
    let done = watcher.record("clip.bin", |r| r["bits"] == "11");
    assert_eq!(done["received"], 50_000);
    watcher.until("laptop leaving", |e| {
        e["event"] == "presence"
            && e["device"]["device"] == "laptop"
            && e["device"]["active"] == false
    });
}

#[test]
fn devices_status_and_history_show_presence_and_batches() {
    let server = Server::start(&["laptop", "tv"]);
    let laptop = server.cli("laptop");
    let dir = tempfile::tempdir().unwrap();
    write_pattern(&dir.path().join("set/one.bin"), 1000, 6);
    write_pattern(&dir.path().join("set/two.bin"), 2000, 7);
    laptop.ok(&["push", dir.path().join("set").to_str().unwrap()]);

    let tv = server.cli("tv");
    let devices = tv.json(&["devices"]);
    let by_name = |name: &str| {
        devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {devices}"))
    };
    assert_eq!(by_name("tv")["active"], true, "the asking device is active");
    assert_eq!(by_name("laptop")["active"], false, "laptop left: silent");

    let status = tv.json(&["status"]);
    let laptop_status = status
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "laptop")
        .unwrap();
    assert_eq!(laptop_status["active"], false);
    let batch = &laptop_status["batches"][0];
    assert_eq!(batch["batch"], "set");
    assert_eq!(batch["expected"], 2);
    assert_eq!(batch["uploaded"], 2);
    assert_eq!(batch["uploading"], 0);
    assert_eq!(batch["failed"], 0);
    assert_eq!(batch["needed"], 0);
    let text = tv.ok(&["status"]);
    assert!(text.contains("laptop (silent"), "{text}");
    assert!(text.contains("set: 2 expected, 2 uploaded"), "{text}");

    let history = tv.json(&["history"]);
    let kinds: Vec<(String, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["device"].as_str().unwrap().to_owned(),
                h["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in ["joined", "uploaded", "left"] {
        assert!(
            kinds.contains(&("laptop".into(), expected.into())),
            "no laptop {expected} in {kinds:?}"
        );
    }
    assert!(tv.ok(&["history"]).contains("joined"));
    assert!(tv.ok(&["devices"]).contains("silent"));
}

#[test]
fn status_of_a_directory_puts_each_file_beside_its_record_on_the_server() {
    let server = Server::start(&["laptop", "tv"]);
    let laptop = server.cli("laptop");
    let tv = server.cli("tv");
    let mine = tempfile::tempdir().unwrap();
    let dir = mine.path().to_str().unwrap();
    for (name, seed) in [("same.txt", 1), ("edited.txt", 2), ("again.txt", 3)] {
        write_pattern(&mine.path().join(name), 100, seed);
    }
    laptop.ok(&["sync", dir]);
    let theirs = tempfile::tempdir().unwrap();
    write_pattern(&theirs.path().join("theirs.txt"), 50, 4);
    write_pattern(&theirs.path().join("clash.txt"), 50, 5);
    tv.ok(&["sync", theirs.path().to_str().unwrap()]);

    write_pattern(&mine.path().join("edited.txt"), 120, 6);
    write_pattern(&mine.path().join("clash.txt"), 60, 7);
    write_pattern(&mine.path().join("new.txt"), 10, 8);
    laptop.ok(&["retry", "again.txt"]);

    let view = laptop.json(&["status", dir]);
    let standings: Vec<(String, String)> = view
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_owned();
            (name, e["standing"].as_str().unwrap().to_owned())
        })
        .collect();
    let expected = [
        ("again.txt", "uploading"),
        ("clash.txt", "conflict"),
        ("edited.txt", "changed-here"),
        ("new.txt", "only-here"),
        ("same.txt", "in-sync"),
        ("theirs.txt", "only-on-server"),
    ]
    .map(|(n, s)| (n.to_owned(), s.to_owned()));
    assert_eq!(standings, expected, "{view}");
    let again = &view[0]["record"];
    assert_eq!(
        (&again["bits"], &again["owner"]),
        (&"01".into(), &"laptop".into())
    );

    let text = laptop.ok(&["status", dir]);
    assert!(
        text.contains(
            "1 changed here, 1 conflict, 1 in sync, 1 only here, 1 only on server, 1 uploading"
        ),
        "{text}"
    );
    assert!(text.contains("uploaded (11) from tv"), "{text}");
}

#[test]
fn rm_deletes_and_retry_asks_the_owner_to_upload_again() {
    let server = Server::start_with(&["laptop", "tv"], &["--allow-foreign-retry"]);
    let laptop = server.cli("laptop");
    let dir = tempfile::tempdir().unwrap();
    write_pattern(&dir.path().join("a.bin"), 4000, 8);
    write_pattern(&dir.path().join("b.bin"), 4000, 9);
    laptop.ok(&[
        "push",
        dir.path().join("a.bin").to_str().unwrap(),
        dir.path().join("b.bin").to_str().unwrap(),
    ]);

    let mut owner_watch = Watcher::start(&laptop);
    server.cli("tv").ok(&["retry", "b.bin"]);
    let b = server.cli("tv").record("b.bin").unwrap();
    assert_eq!(
        (b["state"].as_str(), b["bits"].as_str()),
        (Some("needed"), Some("01"))
    );
    owner_watch.until("the retry notification", |e| {
        e["event"] == "retry-requested" && e["name"] == "b.bin"
    });

    laptop.ok(&["rm", "a.bin"]);
    assert!(laptop.record("a.bin").is_none());
    owner_watch.until("the deletion", |e| {
        e["event"] == "deleted" && e["name"] == "a.bin"
    });
    let again = laptop.run(&["rm", "a.bin"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "deleting a missing record fails"
    );
    assert!(!String::from_utf8_lossy(&again.stderr).is_empty());
}

#[test]
fn a_deleted_file_shows_in_ls_at_an_earlier_revision_and_restore_brings_it_back_for_pull() {
    let server = Server::start(&["laptop", "tv"]);
    let laptop = server.cli("laptop");
    let tv = server.cli("tv");
    let dir = tempfile::tempdir().unwrap();
    write_pattern(&dir.path().join("keep.bin"), 5000, 21);
    write_pattern(&dir.path().join("note.txt"), 100, 22);
    laptop.ok(&[
        "push",
        dir.path().join("keep.bin").to_str().unwrap(),
        dir.path().join("note.txt").to_str().unwrap(),
    ]);
    let pushed = laptop.json(&["ls"]);
    let revision = pushed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .max()
        .unwrap()
        .to_string();
    laptop.ok(&["rm", "keep.bin"]);
    assert_eq!(names(&tv.json(&["ls"])), ["note.txt"]);

    assert_eq!(
        names(&tv.json(&["ls", "--at", &revision])),
        ["keep.bin", "note.txt"]
    );
    let text = tv.ok(&["ls", "--at", &revision]);
    assert!(
        text.contains(&format!("the directory at revision {revision}"))
            && text.contains("keep.bin"),
        "{text}"
    );
    let bad = tv.run(&["ls", "--at", "yesterday"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a malformed --at is a usage error"
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));

    let restored = tv.json(&["restore", "keep.bin"]);
    assert_eq!(
        (restored["bits"].as_str(), restored["owner"].as_str()),
        (Some("11"), Some("laptop"))
    );
    let again = tv.run(&["restore", "keep.bin"]);
    assert!(
        !again.status.success(),
        "a live file cannot be restored over"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let dest = tempfile::tempdir().unwrap();
    tv.ok(&["pull", "--dest", dest.path().to_str().unwrap()]);
    assert_eq!(
        fs::read(dest.path().join("keep.bin")).unwrap(),
        fs::read(dir.path().join("keep.bin")).unwrap()
    );
    let history = tv.ok(&["history"]);
    assert!(
        history
            .lines()
            .any(|l| l.contains("laptop") && l.contains("deleted") && l.contains("keep.bin"))
            && history
                .lines()
                .any(|l| l.contains("tv") && l.contains("restored") && l.contains("keep.bin")),
        "{history}"
    );
}

#[test]
fn sync_pushes_new_files_pulls_missing_ones_and_reports_conflicts() {
    let server = Server::start(&["laptop", "tv"]);
    let laptop_dir = tempfile::tempdir().unwrap();
    let tv_dir = tempfile::tempdir().unwrap();
    write_pattern(&laptop_dir.path().join("docs/report.txt"), 5000, 10);
    write_pattern(&laptop_dir.path().join("shared.txt"), 100, 11);
    write_pattern(&tv_dir.path().join("recording.ts"), 7000, 12);
    write_pattern(&tv_dir.path().join("shared.txt"), 100, 13); // same name, other content

    server
        .cli("laptop")
        .ok(&["sync", laptop_dir.path().to_str().unwrap()]);
    let out = server
        .cli("tv")
        .run(&["sync", tv_dir.path().to_str().unwrap(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a conflict is reported as exit 1"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["conflicts"][0]["name"], "shared.txt");
    assert_eq!(report["conflicts"][0]["owner"], "laptop");
    assert_eq!(
        fs::read(tv_dir.path().join("docs/report.txt")).unwrap(),
        fs::read(laptop_dir.path().join("docs/report.txt")).unwrap()
    );
    // Neither side's shared.txt was overwritten.
    let mut theirs = Vec::new();
    write_pattern(&laptop_dir.path().join("check.txt"), 100, 13);
    theirs.extend(fs::read(laptop_dir.path().join("check.txt")).unwrap());
    assert_eq!(fs::read(tv_dir.path().join("shared.txt")).unwrap(), theirs);
    fs::remove_file(laptop_dir.path().join("check.txt")).unwrap();

    // The laptop now gets the TV's recording.
    let out = server
        .cli("laptop")
        .run(&["sync", laptop_dir.path().to_str().unwrap()]);
    assert!(laptop_dir.path().join("recording.ts").exists(), "{out:?}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let cli = Cli::new("tcp://127.0.0.1:1", "x", &"00".repeat(32));
    for shell in ["bash", "zsh", "fish"] {
        let script = cli.ok(&["completions", shell]);
        assert!(script.contains("host-cli"), "{shell}");
        assert!(script.contains("pull"), "{shell}");
    }
}

#[test]
fn exit_codes_distinguish_usage_unreachable_auth_and_failure() {
    let server = Server::start(&["laptop"]);
    let usage = server.cli("laptop").run(&["ls", "--state", "sideways"]);
    assert_eq!(usage.status.code(), Some(2));
    let bad_url = Cli::new("ftp://x", "laptop", "00").run(&["ls"]);
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("tcp://HOST:PORT"));

    // A port nobody listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = Cli::new(
        &format!("tcp://127.0.0.1:{port}"),
        "laptop",
        &"00".repeat(32),
    )
    .run(&["ls"]);
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("host-server serve"));

    let wrong_key = Cli::new(&server.url(), "laptop", &"ab".repeat(32)).run(&["ls"]);
    assert_eq!(wrong_key.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&wrong_key.stderr),
        "error: authentication as `laptop` failed: unknown device or wrong key; \
         check the device name and its key, as `host-server device add laptop` printed it\n",
        "the advice is said once"
    );

    let no_device = server
        .cli("laptop")
        .command(&["ls"])
        .env_remove("STATESYNC_DEVICE")
        .output()
        .unwrap();
    assert_eq!(no_device.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_device.stderr).contains("--device"));
}

#[test]
fn settings_come_from_flags_before_or_after_the_command_env_and_config_file() {
    let server = Server::start(&["laptop"]);
    let cfg = tempfile::tempdir().unwrap();
    let key_file = cfg.path().join("laptop.key");
    fs::write(&key_file, format!("{}\n", server.key("laptop"))).unwrap();
    let config = cfg.path().join("cli.toml");
    fs::write(
        &config,
        format!(
            "server = \"{}\"\ndevice = \"laptop\"\nkey_file = \"laptop.key\"\n",
            server.url()
        ),
    )
    .unwrap();
    let bare = Cli::new("unused", "unused", "unused");
    let strip = |c: &mut std::process::Command| {
        c.env_remove("STATESYNC_SERVER")
            .env_remove("STATESYNC_DEVICE")
            .env_remove("STATESYNC_KEY");
    };

    // Everything from an explicit config file.
    let mut c = bare.command(&["--config", config.to_str().unwrap(), "devices", "--json"]);
    strip(&mut c);
    assert!(c.output().unwrap().status.success());
    // The config file from the environment, global options after the command.
    let mut c = bare.command(&["devices", "--json"]);
    strip(&mut c);
    c.env("STATESYNC_CONFIG", &config);
    assert!(c.output().unwrap().status.success());
    // The default location: <config dir>/statesync/cli.toml.
    let home = tempfile::tempdir().unwrap();
    fs::create_dir_all(home.path().join("statesync")).unwrap();
    fs::copy(&config, home.path().join("statesync/cli.toml")).unwrap();
    fs::copy(&key_file, home.path().join("statesync/laptop.key")).unwrap();
    let mut c = bare.command(&["devices"]);
    strip(&mut c);
    c.env("XDG_CONFIG_HOME", home.path())
        .env("HOME", home.path());
    let out = c.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // Flags beat the config file: a wrong key on the command line fails, before or after.
    let wrong_key = "ab".repeat(32);
    for args in [
        vec![
            "--key",
            &wrong_key,
            "--config",
            config.to_str().unwrap(),
            "devices",
        ],
        vec![
            "devices",
            "--config",
            config.to_str().unwrap(),
            "--key",
            &wrong_key,
        ],
    ] {
        let mut c = bare.command(&args);
        strip(&mut c);
        assert_eq!(c.output().unwrap().status.code(), Some(3), "{args:?}");
    }
    // --key-file on the command line, identity after the command name.
    let mut c = bare.command(&[
        "devices",
        "--server",
        &server.url(),
        "--device",
        "laptop",
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    strip(&mut c);
    assert!(c.output().unwrap().status.success());
    // The config file's `key_file`: `~/` is the home directory, an absolute
    // path stands as it is (the relative one was used above).
    for key_file_line in [
        "key_file = \"~/keys/laptop.key\"".to_owned(),
        format!("key_file = '{}'", key_file.display()),
    ] {
        let home = tempfile::tempdir().unwrap();
        fs::create_dir_all(home.path().join("keys")).unwrap();
        fs::copy(&key_file, home.path().join("keys/laptop.key")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let moved = elsewhere.path().join("cli.toml");
        fs::write(
            &moved,
            format!(
                "server = \"{}\"\ndevice = \"laptop\"\n{key_file_line}\n",
                server.url()
            ),
        )
        .unwrap();
        let mut c = bare.command(&["--config", moved.to_str().unwrap(), "devices"]);
        strip(&mut c);
        c.env("HOME", home.path());
        let out = c.output().unwrap();
        assert!(out.status.success(), "{key_file_line}: {out:?}");
    }
    // A config file that does not parse is a usage error.
    fs::write(&config, "sever = 1").unwrap();
    let mut c = bare.command(&["--config", config.to_str().unwrap(), "devices"]);
    strip(&mut c);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cli.toml"));
}

#[test]
fn malformed_keys_are_usage_errors_before_any_connection() {
    // Nobody listens here: a key that got as far as connecting would exit 3.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("tcp://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let short_file = dir.path().join("short.key");
    fs::write(&short_file, "00\n").unwrap();
    let config = dir.path().join("cli.toml");
    fs::write(&config, "key = \"00\"\n").unwrap();
    let not_hex = "zz".repeat(32);
    let well_formed = "00".repeat(32);

    let cases: Vec<(&str, Cli, Vec<&str>)> = vec![
        (
            "--key 00",
            Cli::new(&server, "laptop", &well_formed),
            vec!["--key", "00", "ls"],
        ),
        (
            "--key non-hex",
            Cli::new(&server, "laptop", &well_formed),
            vec!["ls", "--key", &not_hex],
        ),
        (
            "STATESYNC_KEY=00",
            Cli::new(&server, "laptop", "00"),
            vec!["ls"],
        ),
        (
            "--key-file with 00",
            Cli::new(&server, "laptop", &well_formed),
            vec!["--key-file", short_file.to_str().unwrap(), "ls"],
        ),
    ];
    for (case, cli, args) in cases {
        let out = cli.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(
            stderr.contains(
                "a device key is 64 hex digits, as `host-server device add NAME` printed it"
            ),
            "{case}: {stderr}"
        );
    }

    let mut from_config = Cli::new(&server, "laptop", "unused").command(&[
        "--config",
        config.to_str().unwrap(),
        "ls",
    ]);
    from_config.env_remove("STATESYNC_KEY");
    let out = from_config.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "config key: {stderr}");
    assert!(
        stderr.contains("the config file's `key` has 2 hex digits"),
        "{stderr}"
    );
}
