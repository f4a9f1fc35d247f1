//! TLS around the TCP link (`tcps://`): rustls with the `ring` provider.
//!
//! The link has a writer used by the session loop and a reader on its own
//! thread, but a TLS connection is one object. Both sides share it behind a
//! mutex and never hold that lock across a blocking socket call: the reader
//! reads raw bytes first and then locks to decrypt, and whoever produced TLS
//! records takes the socket's write lock before letting go of the connection,
//! so records reach the socket in the order they were made.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// Bytes read from the socket at a time.
const RAW_READ: usize = 64 * 1024;

/// Why a TLS link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file cannot be read or holds no certificate.
    #[error("cannot use `{path}` as the TLS certificate to trust: {detail}; give a PEM file (for a self-signed server, its --tls-cert file)")]
    Ca {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The host part of the address is not a valid DNS name or IP address.
    #[error("`{0}` is not a host name TLS can check the certificate against")]
    ServerName(String),
    /// The handshake failed (certificate not trusted, wrong host, not a TLS server, ...).
    #[error("TLS handshake failed: {0}; check that the server runs with --tls-cert and that its certificate is trusted (tcps://HOST:PORT?ca=PEM) and names HOST")]
    Handshake(io::Error),
}

/// A client configuration that trusts the certificates in `ca`, or the common public CAs.
fn config(ca: Option<&str>) -> Result<ClientConfig, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let bad = |detail: String| TlsSetupError::Ca {
                path: path.to_owned(),
                detail,
            };
            let file = File::open(path).map_err(|e| bad(e.to_string()))?;
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_reader_iter(BufReader::new(file))
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no CERTIFICATE block in it".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Handshake(io::Error::other(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The host of `HOST:PORT` (without brackets around an IPv6 address).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Runs the TLS handshake on `socket` and returns the reading and writing halves.
pub fn connect(
    socket: TcpStream,
    address: &str,
    ca: Option<&str>,
) -> Result<(TlsReader, TlsWriter), TlsSetupError> {
    let host = host_of(address);
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| TlsSetupError::ServerName(host.to_owned()))?;
    let mut connection = ClientConnection::new(Arc::new(config(ca)?), name)
        .map_err(|e| TlsSetupError::Handshake(io::Error::other(e)))?;
    let mut stream = &socket;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut stream)
            .map_err(TlsSetupError::Handshake)?;
    }
    let read_socket = socket.try_clone().map_err(TlsSetupError::Handshake)?;
    let shared = Arc::new(Shared {
        connection: Mutex::new(connection),
        socket: Mutex::new(socket),
    });
    Ok((
        TlsReader {
            shared: shared.clone(),
            socket: read_socket,
            pending: Vec::new(),
        },
        TlsWriter { shared },
    ))
}

struct Shared {
    connection: Mutex<ClientConnection>,
    /// The socket's write side; taken while the connection lock is still held.
    socket: Mutex<TcpStream>,
}

impl Shared {
    fn connection(&self) -> MutexGuard<'_, ClientConnection> {
        self.connection.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends every TLS record the connection has ready, keeping their order.
    fn send_records(&self, mut connection: MutexGuard<'_, ClientConnection>) -> io::Result<()> {
        let mut records = Vec::new();
        while connection.wants_write() {
            connection.write_tls(&mut records)?;
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        drop(connection);
        socket.write_all(&records)?;
        socket.flush()
    }
}

/// The writing half of a TLS link.
pub struct TlsWriter {
    shared: Arc<Shared>,
}

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut connection = self.shared.connection();
        let written = connection.writer().write(buf)?;
        self.shared.send_records(connection)?;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        let connection = self.shared.connection();
        self.shared.send_records(connection)
    }
}

/// The reading half of a TLS link.
pub struct TlsReader {
    shared: Arc<Shared>,
    socket: TcpStream,
    pending: Vec<u8>,
}

impl Read for TlsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut connection = self.shared.connection();
            match connection.reader().read(out) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !self.pending.is_empty() {
                let mut input = &self.pending[..];
                let taken = connection.read_tls(&mut input)?;
                self.pending.drain(..taken);
                connection
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                self.shared.send_records(connection)?;
                continue;
            }
            drop(connection);
            let mut raw = vec![0u8; RAW_READ];
            let n = self.socket.read(&mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            raw.truncate(n);
            self.pending = raw;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_cut_from_the_address() {
        assert_eq!(host_of("sync.example:7879"), "sync.example");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7879"), "::1");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let missing = config(Some("/no/such/ca.pem")).unwrap_err().to_string();
        assert!(missing.contains("/no/such/ca.pem"), "{missing}");
        let empty = tempfile_path();
        std::fs::write(&empty, b"not a certificate\n").unwrap();
        let error = config(Some(empty.to_str().unwrap())).unwrap_err();
        assert!(error.to_string().contains("no CERTIFICATE"), "{error}");
        let _ = std::fs::remove_file(empty);
    }

    fn tempfile_path() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("host-cli-tls-test-{}.pem", std::process::id()))
    }
}
