//! Running under a service manager: options from a TOML config file (flags win),
//! the example config in the repository, and systemd readiness notifications.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use common::{binary, run_cli, Server, WAIT};

fn config_file(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("serve.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_config_file_sets_serve_options_and_flags_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    // The harness passes `--listen 127.0.0.1:0`: were the file's address used, the start would fail.
    let config = config_file(
        dir.path(),
        "listen = \"256.0.0.1:1\"\nops_listen = \"127.0.0.1:0\"\nhistory-days = 5\n",
    );
    let server = Server::start(&["--config", &config]);
    let ops = server.printed("ops on http://");
    assert!(ops.starts_with("127.0.0.1:"), "{ops}");
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
}

#[test]
fn a_config_file_with_an_unknown_key_or_a_bad_value_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(dir.path(), "max_sesions = 3\n");
    let (ok, _, err) = run_cli(&["serve", "--config", &config], &data);
    assert!(!ok);
    assert!(err.contains("`max_sesions` is not an option"), "{err}");
    let config = config_file(dir.path(), "max-sessions = \"many\"\n");
    let (ok, _, err) = run_cli(&["serve", "--config", &config], &data);
    assert!(!ok);
    assert!(
        err.contains("--max-sessions") && err.contains("many"),
        "{err}"
    );
}

#[test]
fn the_example_config_in_the_repository_is_accepted() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/statesync.toml");
    let server = Server::start(&["--config", example, "--ops-listen", "127.0.0.1:0"]);
    server.printed("ops on http://");
}

#[test]
fn serve_tells_systemd_when_it_is_ready_and_stopping_and_an_early_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let child = Command::new(binary())
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).expect("READY=1 within the wait");
    assert_eq!(&buf[..n], b"READY=1");
    // A SIGTERM at once (before the server's tasks ran) is a clean shutdown.
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let n = socket.recv(&mut buf).expect("STOPPING=1 within the wait");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = wait_for_exit(child).expect("the server exits after SIGTERM");
    assert!(status.success(), "a clean shutdown exits 0: {status}");
}

/// The child's exit status, or None (and the child killed) if it has not
/// exited within the tests' wait.
fn wait_for_exit(mut child: std::process::Child) -> Option<std::process::ExitStatus> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (exited, exit) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = exited.send(child.wait().unwrap());
    });
    let status = exit.recv_timeout(WAIT).ok();
    if status.is_none() {
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    }
    waiter.join().unwrap();
    status
}
