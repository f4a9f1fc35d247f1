//! TLS on TCP (`serve --tls-cert --tls-key`): the protocol runs inside TLS, a plain client gets
//! nothing, and a bad certificate or key stops the server at start with a clear error. The CLI's
//! side (`host-cli --server tcps://…`) is tested in `tests/tests/cli_tls.rs`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use proto_core::framing::Framing;
use proto_core::{ListFilter, UploadState};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

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

    fn serve_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

fn start_tls(certificate: &Certificate) -> Server {
    let args = certificate.serve_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&args)
}

/// A TLS client link for the test client, trusting `ca`.
struct TlsLink(StreamOwned<ClientConnection, TcpStream>);

impl TlsLink {
    fn connect(addr: &str, ca: &Path) -> TlsLink {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let connection = ClientConnection::new(Arc::new(config), name).unwrap();
        let socket = TcpStream::connect(addr).unwrap();
        socket.set_nodelay(true).unwrap();
        TlsLink(StreamOwned::new(connection, socket))
    }
}

impl Link for TlsLink {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)?;
        self.0.flush()
    }

    fn receive(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<usize>> {
        self.0
            .sock
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.0.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[test]
fn the_protocol_runs_inside_tls_and_a_plain_tcp_client_gets_nothing() {
    let certificate = Certificate::new();
    let server = start_tls(&certificate);
    let key = server.add_device("d1");

    let mut client = Client::raw(
        Box::new(TlsLink::connect(&server.addr, &certificate.cert)),
        Framing::Length,
    );
    client.handshake("d1", &key).unwrap();
    let bytes = content(300_000, 4);
    let record = client.upload("over-tls.bin", &bytes);
    assert_eq!(record.state, UploadState::Uploaded);
    assert_eq!(client.download("over-tls.bin", false).unwrap(), bytes);

    // A client that skips TLS: its Hello is not a TLS ClientHello, so the server
    // drops the connection without a protocol frame.
    let mut raw = Client::tcp_raw(&server.addr);
    raw.send(
        1,
        proto_core::ClientMessage::Hello {
            version: proto_core::PROTOCOL_VERSION,
            max_frame: 4096,
            device: "d1",
            nonce: [1; 16],
        },
    );
    raw.expect_closed();
    assert!(
        raw.skipped.is_empty(),
        "no protocol frame reaches a client without TLS"
    );
    // The TLS session is unaffected.
    let (records, _) = client.list(0, ListFilter::All);
    assert_eq!(records.len(), 1);
}

#[test]
fn a_missing_or_mismatched_certificate_or_key_is_a_clear_start_error() {
    let certificate = Certificate::new();
    let other = Certificate::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = |cert: &Path, key: &Path| {
        run_cli(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
            &data,
        )
    };
    let (ok, _, err) = serve(Path::new("/no/such/cert.pem"), &certificate.key);
    assert!(
        !ok && err.contains("cannot read the TLS certificate"),
        "{err}"
    );
    let (ok, _, err) = serve(&certificate.cert, &certificate.cert);
    assert!(
        !ok && err.contains("cannot read the TLS private key"),
        "{err}"
    );
    let (ok, _, err) = serve(&certificate.cert, &other.key);
    assert!(!ok && err.contains("cannot be used together"), "{err}");
    let (ok, _, err) = run_cli(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            certificate.cert.to_str().unwrap(),
        ],
        &data,
    );
    assert!(!ok && err.contains("--tls-key"), "{err}");
}
