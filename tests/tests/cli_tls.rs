//! The CLI over TLS (`host-server serve --tls-cert --tls-key`, `host-cli --server tcps://…`):
//! push and pull go through, and the CLI refuses a certificate it was not told to trust.
//! The server's side of TLS is tested in `host-server/tests/security_tls.rs`.

mod cli_common;

use std::path::PathBuf;

use cli_common::{write_pattern, Server};

/// A self-signed certificate for `127.0.0.1` and `localhost`, written as PEM files.
struct Certificate {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl Certificate {
    fn new() -> Certificate {
        let dir = tempfile::tempdir().unwrap();
        let generated =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap();
        let cert = dir.path().join("server.pem");
        let key = dir.path().join("server.key");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
        Certificate {
            _dir: dir,
            cert,
            key,
        }
    }
}

#[test]
fn host_cli_pushes_and_pulls_over_tcps_and_refuses_an_untrusted_certificate() {
    let certificate = Certificate::new();
    let server = Server::start_with(
        &["desk"],
        &[
            "--tls-cert",
            certificate.cert.to_str().unwrap(),
            "--tls-key",
            certificate.key.to_str().unwrap(),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("report.csv");
    write_pattern(&file, 200_000, 9);
    let bytes = std::fs::read(&file).unwrap();

    let url = format!("tcps://{}?ca={}", server.addr, certificate.cert.display());
    let cli = server.cli("desk").via(&url);
    cli.ok(&["push", file.to_str().unwrap()]);
    assert!(
        cli.record("report.csv").is_some(),
        "ls over TLS lists the file"
    );
    let into = work.path().join("pulled");
    std::fs::create_dir_all(&into).unwrap();
    cli.ok(&["pull", "--dest", into.to_str().unwrap(), "report.csv"]);
    assert_eq!(std::fs::read(into.join("report.csv")).unwrap(), bytes);

    // Another certificate is not trusted: the CLI refuses before sending anything.
    let stranger = Certificate::new();
    let untrusted = format!("tcps://{}?ca={}", server.addr, stranger.cert.display());
    // Without a CA file the public roots do not vouch for a self-signed certificate either.
    let without_ca = format!("tcps://{}", server.addr);
    for url in [untrusted, without_ca] {
        let out = cli.via(&url).run(&["ls"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("TLS handshake failed"),
            "{url}: {err}"
        );
    }
    // Plain tcp:// to a TLS server fails cleanly too.
    let out = cli.via(&server.url()).run(&["ls"]);
    assert!(
        !out.status.success(),
        "a plain client must not get through: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
