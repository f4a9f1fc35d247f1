//! `host-server serve`: run the server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::blobs::{BlobLocation, S3Location};
use crate::cleanup::CleanupPolicy;
use crate::config::Limits;
use crate::http::Dashboard;
use crate::listener::TlsFiles;
use crate::probes::Probes;
use crate::serial::SerialSpec;
use crate::server::{shutdown_signal, ServeOptions, Server};
use crate::store::Database;

/// How long shutdown waits for dashboard downloads in progress.
const DASHBOARD_GRACE: Duration = Duration::from_secs(5);

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TCP address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// Serial port to serve, `PATH[:BAUD]` (baud defaults to 115200); repeat for more ports.
    /// Only a trailing `:DIGITS` is the baud rate, so paths with colons such as
    /// /dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0 work as they are
    /// (a path that itself ends in `:DIGITS` needs its baud rate after it).
    #[arg(long = "serial", value_name = "PATH[:BAUD]")]
    pub serial: Vec<SerialSpec>,
    /// End sessions that send nothing for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub idle_timeout: u64,
    /// Most TCP sessions at once.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_sessions: usize,
    /// Largest frame payload in bytes (at least 512).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    pub max_frame: u32,
    /// Largest file a device may upload, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 40)]
    pub max_file_size: u64,
    /// Push the full record list to subscribers this often (0: only when they ask for it).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub full_list_every: u64,
    /// Let any device delete any record, not only the records it owns.
    #[arg(long)]
    pub allow_foreign_delete: bool,
    /// Keep a deleted file's bytes this long, so `host-cli restore` brings it back
    /// whole (`11`); later restores give `01` and ask its owner (`30d`, `12h`, `0`: not kept).
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = crate::cleanup::parse_duration)]
    pub keep_deleted: Duration,
    /// Let any device ask for a re-upload of any record (by default only its owner may:
    /// a retry puts the record back to 01 and discards its bytes).
    #[arg(long)]
    pub allow_foreign_retry: bool,
    /// Do not ask a device for bytes that ANY device already uploaded (by default only
    /// its own finished files count). A privacy trade-off: a device then learns whether
    /// someone else holds a file with exactly the content it announces.
    #[arg(long)]
    pub share_content_across_devices: bool,
    /// Close connections that have not completed the handshake (and TLS) within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    pub handshake_timeout: u64,
    /// Most sessions one device may have at once; further logins get `Busy`.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_sessions_per_device: usize,
    /// Most records one device may own; announcing or uploading more gets `TooLarge`.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_records_per_device: u64,
    /// Most batches one device may have announced (batches left empty are dropped first).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_batches_per_device: u64,
    /// Most unfinished uploads (records in 10 or 00, each a partial file) one device may have.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_partial_uploads_per_device: u64,
    /// Failed logins one address may make per minute before it is refused for the rest of it (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_failed_logins: u32,
    /// Serve TCP over TLS with this certificate chain (PEM, leaf first); needs --tls-key.
    /// Clients then connect with `tcps://HOST:PORT`.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// With `--database postgres://…`: a server whose heartbeat is older than this
    /// many seconds counts as gone; its devices turn silent for the other servers
    /// and its uploads fail so they can resume on another server.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub lease: u64,
    /// Serve the web dashboard on ADDR (off unless given; `--http` alone is
    /// 127.0.0.1:8080, a bare PORT listens on 127.0.0.1). Log in with the
    /// token `host-server admin token` prints.
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = crate::http::DEFAULT_ADDR, value_parser = crate::http::parse_listen)]
    pub http: Option<String>,
    /// The dashboard is reached through a TLS-terminating proxy (HTTPS): its login
    /// cookie is marked `Secure`, so a browser never sends it over plain HTTP.
    #[arg(long, requires = "http")]
    pub behind_tls_proxy: bool,
    /// Serve /healthz, /readyz and Prometheus /metrics on ADDR (off unless given;
    /// a bare PORT listens on 127.0.0.1). No authentication: keep it on loopback
    /// or a private network.
    #[arg(long, value_name = "ADDR", value_parser = crate::http::parse_listen)]
    pub ops_listen: Option<String>,
    /// Fail unfinished uploads untouched this long and free their bytes
    /// (`7d`, `12h`, `30m`, `45s`).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = crate::cleanup::parse_duration)]
    pub partial_ttl: Duration,
    /// Keep history lines this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 90)]
    pub history_days: u64,
    /// Run clean-up (expired uploads, unused blobs, old history) this often.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::cleanup::parse_duration)]
    pub cleanup_every: Duration,
    /// Read options from this TOML file (keys are the long options, e.g.
    /// `max-sessions = 100`); flags and environment variables win over it.
    #[arg(long, value_name = "FILE", env = "STATESYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Keep blobs in an S3-compatible object store, `s3://BUCKET/PREFIX`, instead of
    /// the data directory; servers on one PostgreSQL database then share no
    /// filesystem. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    /// (and the other usual AWS_* variables).
    #[arg(long, value_name = "s3://BUCKET/PREFIX", env = "STATESYNC_BLOBS")]
    pub blobs: Option<String>,
    /// With --blobs: the store's endpoint, for self-hosted stores
    /// (`http://127.0.0.1:9000`); AWS when neither this nor AWS_ENDPOINT_URL is set.
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub s3_endpoint: Option<String>,
    /// With --blobs: the bucket's region (default us-east-1).
    #[arg(long, value_name = "REGION", env = "AWS_REGION")]
    pub s3_region: Option<String>,
    /// With --blobs: address the bucket as BUCKET.ENDPOINT (virtual-hosted style)
    /// instead of ENDPOINT/BUCKET (path style, which self-hosted stores expect).
    #[arg(long, requires = "blobs")]
    pub s3_virtual_hosted: bool,
}

impl ServeArgs {
    fn blobs(&self) -> anyhow::Result<BlobLocation> {
        let Some(url) = &self.blobs else {
            return Ok(BlobLocation::DataDir);
        };
        let mut location = S3Location::parse(url)?;
        location.endpoint = self.s3_endpoint.clone();
        location.region = self.s3_region.clone();
        location.virtual_hosted = self.s3_virtual_hosted;
        Ok(BlobLocation::S3(location))
    }

    fn limits(&self) -> anyhow::Result<Limits> {
        anyhow::ensure!(
            self.max_frame >= proto_core::message::MIN_FRAME,
            "--max-frame {} is below the protocol minimum of {} bytes; raise it",
            self.max_frame,
            proto_core::message::MIN_FRAME
        );
        anyhow::ensure!(
            self.idle_timeout > 0,
            "--idle-timeout must be at least 1 second"
        );
        anyhow::ensure!(self.max_sessions > 0, "--max-sessions must be at least 1");
        anyhow::ensure!(
            self.max_sessions_per_device > 0,
            "--max-sessions-per-device must be at least 1"
        );
        anyhow::ensure!(self.lease > 0, "--lease must be at least 1 second");
        anyhow::ensure!(
            self.handshake_timeout > 0,
            "--handshake-timeout must be at least 1 second"
        );
        anyhow::ensure!(
            self.max_file_size <= i64::MAX as u64,
            "--max-file-size must be below 2^63 bytes"
        );
        Ok(Limits {
            max_frame: self.max_frame,
            max_sessions: self.max_sessions,
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_file_size: self.max_file_size,
            full_list_every: Duration::from_secs(self.full_list_every),
            allow_foreign_delete: self.allow_foreign_delete,
            keep_deleted: self.keep_deleted,
            allow_foreign_retry: self.allow_foreign_retry,
            share_content_across_devices: self.share_content_across_devices,
            handshake_timeout: Duration::from_secs(self.handshake_timeout),
            failed_logins_allowed: self.max_failed_logins,
            lease: Duration::from_secs(self.lease),
            max_sessions_per_device: self.max_sessions_per_device,
            max_records_per_device: self.max_records_per_device,
            max_batches_per_device: self.max_batches_per_device,
            max_partial_uploads_per_device: self.max_partial_uploads_per_device,
            ..Limits::default()
        })
    }

    fn cleanup(&self) -> anyhow::Result<CleanupPolicy> {
        anyhow::ensure!(
            !self.cleanup_every.is_zero(),
            "--cleanup-every must be at least 1 second"
        );
        anyhow::ensure!(
            !self.partial_ttl.is_zero(),
            "--partial-ttl must be at least 1 second"
        );
        anyhow::ensure!(self.history_days > 0, "--history-days must be at least 1");
        Ok(CleanupPolicy {
            partial_ttl: self.partial_ttl,
            history_days: self.history_days,
            every: self.cleanup_every,
        })
    }
}

/// Runs the server until a signal; prints `listening on ADDR` first on stdout.
pub fn run(data: &Path, database: Database, args: ServeArgs) -> anyhow::Result<()> {
    let options = ServeOptions {
        database,
        data: data.to_path_buf(),
        listen: args.listen.clone(),
        serial: args.serial.clone(),
        limits: args.limits()?,
        cleanup: args.cleanup()?,
        blobs: args.blobs()?,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
    };
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(options).await?;
        let addr = server
            .local_addr()
            .context("cannot read the bound address")?;
        let dashboard = match &args.http {
            Some(listen) => {
                Some(Dashboard::bind(listen, server.service(), args.behind_tls_proxy).await?)
            }
            None => None,
        };
        let probes = match &args.ops_listen {
            Some(listen) => Some(Probes::bind(listen, server.service()).await?),
            None => None,
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        if let Some(probes) = &probes {
            let ops = probes
                .local_addr()
                .context("cannot read the ops listener's address")?;
            writeln!(stdout, "ops on http://{ops}")?;
        }
        if let Some(dashboard) = &dashboard {
            let http = dashboard
                .local_addr()
                .context("cannot read the dashboard's address")?;
            writeln!(stdout, "dashboard on http://{http}")?;
        }
        stdout.flush()?;
        drop(stdout);
        let stop_signal = shutdown_signal();
        crate::systemd::notify("READY=1");
        tracing::info!(%addr, data = %data.display(), tls = args.tls_cert.is_some(), "serving");
        let (stop_probes, probes_stop) = tokio::sync::oneshot::channel::<()>();
        if let Some(probes) = probes {
            tokio::spawn(probes.run(async move {
                let _ = probes_stop.await;
            }));
        }
        let (stop_dashboard, dashboard_stops) = tokio::sync::oneshot::channel::<()>();
        let dashboard = match dashboard {
            Some(dashboard) => {
                dashboard.warn_about_setup().await;
                Some(tokio::spawn(dashboard.run(async move {
                    let _ = dashboard_stops.await;
                })))
            }
            None => None,
        };
        server
            .run(async move {
                stop_signal.await;
                crate::systemd::notify("STOPPING=1");
                let _ = stop_dashboard.send(());
                let _ = stop_probes.send(());
            })
            .await;
        if let Some(dashboard) = dashboard {
            if tokio::time::timeout(DASHBOARD_GRACE, dashboard)
                .await
                .is_err()
            {
                tracing::warn!("dashboard requests did not end in time");
            }
        }
        Ok(())
    })
}

/// Raises the soft limit on open files to the hard limit: every TCP session
/// holds a socket, and the common soft limit of 1024 is far below
/// `--max-sessions`. Failing to raise it only logs a warning.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(%error, soft, hard, "cannot raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot read the open-file limit"),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::super::{Cli, Command};

    #[test]
    fn serial_help_says_colons_in_paths_work_and_such_a_path_parses() {
        let by_path = "/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0";
        let cli = Cli::try_parse_from(["host-server", "serve", "--serial", by_path]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("`serve` parsed as another command");
        };
        assert_eq!(args.serial[0].path, by_path);

        let help = Cli::command()
            .find_subcommand_mut("serve")
            .expect("serve exists")
            .render_long_help()
            .to_string();
        assert!(
            help.contains("Only a trailing `:DIGITS` is the baud rate"),
            "{help}"
        );
    }
}
