//! The TCP listener: accepts connections, enforces the session cap, and
//! starts a session task per connection — over TLS when the server has a
//! certificate ([`TlsFiles`], `serve --tls-cert --tls-key`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proto_core::framing::Framing;
use proto_core::model::LinkKind;
use proto_core::{ErrorCode, ServerFrame, ServerMessage};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::service::Service;
use crate::session::{serve_link, LinkInfo};

/// The certificate chain and private key of a TLS listener, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The leaf's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the TLS certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("cannot read the TLS {what} from {path}: {detail}; pass a PEM file")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the pair (for example, a key that does not match the certificate).
    #[error("TLS certificate {cert} and key {key} cannot be used together: {source}")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

impl TlsFiles {
    /// Loads the files into an acceptor (TLS 1.2 and 1.3, the `ring` provider, no client
    /// certificates: devices prove themselves with their key inside the session).
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let pem = |what, path: &Path, detail: String| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            detail,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect())
            .map_err(|e| pem("certificate", &self.cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(pem(
                "certificate",
                &self.cert,
                "no CERTIFICATE block".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| pem("private key", &self.key, e.to_string()))?;
        let config_error = |source| TlsError::Config {
            cert: self.cert.clone(),
            key: self.key.clone(),
            source,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(config_error)?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Accepts connections until shutdown. `done` is held by every session task,
/// so the caller knows all sessions ended when its receiver yields `None`.
/// With `tls`, every connection must complete a TLS handshake within the
/// handshake timeout before the protocol starts.
pub async fn run(
    listener: TcpListener,
    service: Arc<Service>,
    tls: Option<TlsAcceptor>,
    shutdown: broadcast::Sender<()>,
    mut stop: broadcast::Receiver<()>,
    done: mpsc::Sender<()>,
) {
    let sessions = Arc::new(Semaphore::new(service.limits.max_sessions));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: wait a little instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = service.limits.max_sessions, "session limit reached; refusing a connection");
            if tls.is_none() {
                // Bounded: a flood that does not read must not pile up refusal tasks.
                let refusal = refuse_busy(stream, service.limits.max_sessions);
                tokio::spawn(tokio::time::timeout(
                    service.limits.handshake_timeout,
                    refusal,
                ));
            }
            // Over TLS the refusal would cost a handshake per connection of a flood: just close.
            continue;
        };
        let service = service.clone();
        let stop = shutdown.subscribe();
        let done = done.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let link = LinkInfo {
                kind: LinkKind::Tcp,
                peer: peer.to_string(),
            };
            match tls {
                None => {
                    let (read, write) = stream.into_split();
                    serve_link(service, read, write, link, stop).await;
                }
                Some(tls) => {
                    let limit = service.limits.handshake_timeout;
                    match tokio::time::timeout(limit, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let (read, write) = tokio::io::split(stream);
                            serve_link(service, read, write, link, stop).await;
                        }
                        Ok(Err(error)) => {
                            tracing::info!(%peer, %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
            drop(done);
        });
    }
}

/// Tells a client over the limit why it is turned away.
async fn refuse_busy(mut stream: TcpStream, limit: usize) {
    let message =
        format!("server has {limit} sessions (its --max-sessions limit); try again later");
    let frame = ServerFrame {
        id: 0,
        message: ServerMessage::Error {
            code: ErrorCode::Busy,
            message: &message,
        },
    };
    let mut payload = [0u8; 256];
    let Ok(payload) = frame.encode(&mut payload) else {
        return;
    };
    let mut wire = vec![0u8; Framing::Length.max_wire_len(payload.len())];
    if let Ok(n) = Framing::Length.encode(payload, &mut wire) {
        let _ = stream.write_all(&wire[..n]).await;
    }
    let _ = stream.shutdown().await;
}
