//! Starting and stopping a server: data directory, store, listener, serial
//! ports, signals, and a clean shutdown that tells every session.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::blobs::{BlobDir, BlobLocation, Blobs, S3Blobs, S3ConfigError};
use crate::cleanup::CleanupPolicy;
use crate::config::Limits;
use crate::listener::{TlsError, TlsFiles};
use crate::serial::{self, SerialError, SerialSpec};
use crate::service::Service;
use crate::store::{Database, Store, StoreError};

/// How long shutdown waits for sessions to finish their goodbyes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// What `serve` needs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Data directory.
    pub data: PathBuf,
    /// TCP address to listen on.
    pub listen: String,
    /// Serial ports to attach.
    pub serial: Vec<SerialSpec>,
    /// Limits and switches.
    pub limits: Limits,
    /// Serve TCP over TLS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// Where the records live: SQLite in the data directory, or a PostgreSQL
    /// database shared with other servers (which then share the data directory too).
    pub database: Database,
    /// What clean-up removes and how often.
    pub cleanup: CleanupPolicy,
    /// Where blobs live: the data directory, or an object store.
    pub blobs: BlobLocation,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be created or written.
    #[error("data directory {path} is not usable: {source}; pass --data with a writable directory or fix its permissions")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Another server uses the data directory.
    #[error("data directory {0} is in use by another host-server; stop it or pass another --data")]
    DataDirInUse(PathBuf),
    /// The database cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}; {hint}")]
    Bind {
        /// The address.
        addr: String,
        /// What failed.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
    /// The object store for blobs cannot be used.
    #[error(transparent)]
    BlobStore(#[from] S3ConfigError),
    /// A serial port cannot be used.
    #[error(transparent)]
    Serial(#[from] SerialError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The data directory, checked writable and locked for this server.
pub struct DataDir {
    /// Its path.
    pub path: PathBuf,
    _lock: Option<Flock<File>>,
}

impl DataDir {
    /// Creates the directory if needed and checks it can be written.
    pub fn prepare(path: &Path) -> Result<DataDir, StartError> {
        let fail = |source| StartError::DataDir {
            path: path.to_path_buf(),
            source,
        };
        // The database holds the device keys: the data directory is for this user
        // only, also when it existed before with a looser mode.
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(fail)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(fail)?;
        // One probe per process: `device add` may run while the server or
        // other `device add`s start on the same directory.
        let probe = path.join(format!(".write-test-{}", std::process::id()));
        File::create(&probe)
            .and_then(|mut f| f.write_all(b"ok"))
            .and_then(|()| fs::remove_file(&probe))
            .map_err(fail)?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: None,
        })
    }

    /// Takes the directory for a serving process: alone with SQLite (one
    /// server per directory), or `shared` with the other servers of one
    /// PostgreSQL database (they share blobs; a SQLite server cannot join them).
    pub fn lock(mut self, shared: bool) -> Result<DataDir, StartError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.join("server.lock"))
            .map_err(|source| StartError::DataDir {
                path: self.path.clone(),
                source,
            })?;
        let mode = if shared {
            FlockArg::LockSharedNonblock
        } else {
            FlockArg::LockExclusiveNonblock
        };
        let lock =
            Flock::lock(file, mode).map_err(|_| StartError::DataDirInUse(self.path.clone()))?;
        self._lock = Some(lock);
        Ok(self)
    }

    /// Opens the store: the SQLite database in this directory, or `database`.
    /// Blocking; call it off the async runtime.
    pub fn open_store(
        &self,
        database: &Database,
    ) -> Result<Box<dyn Store + Send + Sync>, StoreError> {
        database.open(&self.path, crate::config::Limits::default().lease)
    }
}

/// A server that has bound its address and is ready to run.
pub struct Server {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: Arc<Service>,
    serial: Vec<SerialSpec>,
    cleanup: CleanupPolicy,
    /// The store's revision when the server started (for catching up with other servers).
    revision: u64,
    _data: DataDir,
}

impl Server {
    /// Prepares everything that can fail with a clear error before serving.
    pub async fn bind(options: ServeOptions) -> Result<Server, StartError> {
        let shared = options.database.is_shared();
        let data = DataDir::prepare(&options.data)?.lock(shared)?;
        let (database, path, lease) = (
            options.database.clone(),
            data.path.clone(),
            options.limits.lease,
        );
        // The PostgreSQL client blocks on a runtime of its own: open it off this one.
        let store = tokio::task::spawn_blocking(move || database.open(&path, lease))
            .await
            .map_err(|e| StoreError::Interrupted(e.to_string()))??;
        let blobs = match &options.blobs {
            BlobLocation::DataDir => {
                Blobs::Local(
                    BlobDir::open(&data.path).map_err(|source| StartError::DataDir {
                        path: data.path.clone(),
                        source,
                    })?,
                )
            }
            BlobLocation::S3(location) => Blobs::S3(S3Blobs::connect(location).await?),
        };
        for spec in &options.serial {
            serial::probe(spec)?;
        }
        let tls = options.tls.as_ref().map(TlsFiles::acceptor).transpose()?;
        let listener = TcpListener::bind(&options.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: options.listen.clone(),
                hint: match source.kind() {
                    std::io::ErrorKind::AddrInUse => {
                        "another program uses that port; stop it or pass --listen with another port (port 0 picks a free one)"
                    }
                    std::io::ErrorKind::PermissionDenied => "ports below 1024 need privileges; use a higher port",
                    _ => "check the address (HOST:PORT)",
                },
                source,
            })?;
        let service = Arc::new(Service::new(Arc::from(store), blobs, options.limits));
        let now = crate::service::unix_now();
        let stale = service
            .db(move |s| {
                if let Some(shared) = s.shared() {
                    shared.renew_lease(now)?;
                }
                s.fail_stale_uploads("server stopped during the upload", now)
            })
            .await?;
        if !stale.is_empty() {
            tracing::warn!(
                records = stale.len(),
                "uploads left running by the last run are now failed (00); they resume at received"
            );
        }
        let revision = service.db(|s| s.revision()).await?;
        Ok(Server {
            listener,
            tls,
            service,
            serial: options.serial,
            cleanup: options.cleanup,
            revision,
            _data: data,
        })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The state sessions share, for the dashboard to read and act on.
    pub fn service(&self) -> Arc<Service> {
        self.service.clone()
    }

    /// Serves until `stop` completes, then tells every session goodbye and
    /// waits (a bounded time) for them to close their uploads.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let (shutdown, _) = broadcast::channel(1);
        let (done_tx, mut done) = mpsc::channel::<()>(1);
        // Every task's receiver is made here, before `stop` can complete: one
        // made inside a task that has not run yet would miss an early shutdown.
        for spec in self.serial {
            tokio::spawn(serial::run(
                spec,
                self.service.clone(),
                shutdown.clone(),
                shutdown.subscribe(),
                done_tx.clone(),
            ));
        }
        tokio::spawn(
            self.service
                .clone()
                .revoke_stale_credentials(shutdown.subscribe()),
        );
        tokio::spawn(crate::cleanup::run(
            self.service.clone(),
            self.cleanup,
            shutdown.subscribe(),
        ));
        tokio::spawn(crate::cluster::run(
            self.service.clone(),
            self.revision,
            self.service.limits.lease / 3,
            shutdown.subscribe(),
        ));
        let listener = tokio::spawn(crate::listener::run(
            self.listener,
            self.service.clone(),
            self.tls,
            shutdown.clone(),
            shutdown.subscribe(),
            done_tx,
        ));
        stop.await;
        tracing::info!(sessions = self.service.hub.session_count(), "shutting down");
        let _ = shutdown.send(());
        let _ = listener.await;
        if tokio::time::timeout(SHUTDOWN_GRACE, done.recv())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not end in time");
        }
        if self.service.is_shared() {
            // Other servers see this one's devices silent at once, not after the lease.
            if let Err(error) = self
                .service
                .db(|s| s.shared().map_or(Ok(()), |shared| shared.retire()))
                .await
            {
                tracing::warn!(%error, "could not give up this server's lease");
            }
        }
        tracing::info!("stopped");
    }
}

/// Installs the Ctrl-C and SIGTERM handlers at once (so either signal, from
/// now on, is a clean shutdown rather than the default kill) and returns a
/// future that completes on the first of them.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    async fn first(signal: std::io::Result<Signal>) {
        match signal {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    }
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        tokio::select! {
            _ = first(interrupt) => {}
            _ = first(terminate) => {}
        }
    }
}
