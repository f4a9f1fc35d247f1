//! Serial ports: each attached port carries one device session at a time.
//!
//! The port is driven by two blocking threads (the `serialport` crate is
//! blocking) bridged to the async session through an in-memory pipe. Nothing
//! depends on DTR or carrier detect, so pseudo-terminals and bare USB adapters
//! work. When the port disappears (cable pulled, adapter unplugged), the
//! session ends and the port is reopened every second until it is back.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proto_core::model::LinkKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};

use crate::service::Service;
use crate::session::{serve_link, LinkInfo};

/// Default line speed when a `--serial` path gives none.
pub const DEFAULT_BAUD: u32 = 115_200;
const REOPEN_EVERY: Duration = Duration::from_secs(1);
const READ_POLL: Duration = Duration::from_millis(100);

/// A port to attach: `PATH[:BAUD]`.
///
/// Only a trailing `:DIGITS` is a baud rate, so stable names with colons such
/// as `/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0` are paths. A
/// path that itself ends in `:DIGITS` needs its baud rate written after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialSpec {
    /// Device path, e.g. `/dev/ttyUSB0`.
    pub path: String,
    /// Line speed.
    pub baud: u32,
}

/// A `--serial` value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    /// The text is empty, or its baud rate is zero or too large.
    #[error("`{0}` is not PATH[:BAUD] (e.g. /dev/ttyUSB0:115200); a trailing `:DIGITS` is the baud rate, 1 to 4294967295")]
    BadSpec(String),
    /// The port cannot be opened.
    #[error("cannot open serial port {path}: {reason}; check the path, that the device is plugged in, and that you may use it (group dialout)")]
    Open {
        /// The path.
        path: String,
        /// What the system said.
        reason: String,
    },
}

impl std::str::FromStr for SerialSpec {
    type Err = SerialError;

    fn from_str(text: &str) -> Result<SerialSpec, SerialError> {
        let bad = || SerialError::BadSpec(text.to_string());
        let (path, baud) = match text.rsplit_once(':') {
            Some((path, digits))
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let baud = digits.parse().ok().filter(|&baud| baud > 0);
                (path, baud.ok_or_else(bad)?)
            }
            _ => (text, DEFAULT_BAUD),
        };
        if path.is_empty() {
            return Err(bad());
        }
        Ok(SerialSpec {
            path: path.to_string(),
            baud,
        })
    }
}

fn open(spec: &SerialSpec) -> Result<Box<dyn serialport::SerialPort>, SerialError> {
    serialport::new(&spec.path, spec.baud)
        .timeout(READ_POLL)
        .open()
        .map_err(|e| SerialError::Open {
            path: spec.path.clone(),
            reason: e.to_string(),
        })
}

/// Checks at start that a port can be opened, for a clear error before serving.
pub fn probe(spec: &SerialSpec) -> Result<(), SerialError> {
    open(spec).map(drop)
}

/// Serves a port until shutdown, reopening it whenever it goes away.
pub async fn run(
    spec: SerialSpec,
    service: Arc<Service>,
    shutdown: broadcast::Sender<()>,
    mut stop: broadcast::Receiver<()>,
    done: mpsc::Sender<()>,
) {
    let mut reported = false;
    loop {
        let attempt = {
            let spec = spec.clone();
            tokio::task::spawn_blocking(move || open(&spec)).await
        };
        match attempt {
            Ok(Ok(port)) => {
                tracing::info!(path = %spec.path, baud = spec.baud, "serial port open");
                reported = false;
                serve_port(port, &spec, &service, &shutdown).await;
                tracing::info!(path = %spec.path, "serial port closed");
            }
            Ok(Err(error)) if !reported => {
                tracing::warn!(%error, "serial port unavailable; retrying every second");
                reported = true;
            }
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(REOPEN_EVERY) => {}
            _ = stop.recv() => break,
        }
        if !matches!(stop.try_recv(), Err(broadcast::error::TryRecvError::Empty)) {
            break;
        }
    }
    drop(done);
}

/// Bridges one open port to a session until the port fails or shutdown.
async fn serve_port(
    port: Box<dyn serialport::SerialPort>,
    spec: &SerialSpec,
    service: &Arc<Service>,
    shutdown: &broadcast::Sender<()>,
) {
    let mut writer_port = match port.try_clone() {
        Ok(clone) => clone,
        Err(error) => {
            tracing::warn!(path = %spec.path, %error, "cannot use the serial port for writing");
            return;
        }
    };
    let mut reader_port = port;
    let stopped = Arc::new(AtomicBool::new(false));
    let (from_port_tx, mut from_port) = mpsc::channel::<Vec<u8>>(16);
    let (to_port, mut to_port_rx) = mpsc::channel::<Vec<u8>>(16);

    let read_stop = stopped.clone();
    let path = spec.path.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while !read_stop.load(Ordering::Relaxed) {
            match reader_port.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if from_port_tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::info!(path = %path, %error, "serial port read failed");
                    break;
                }
            }
        }
    });
    let write_stop = stopped.clone();
    let path = spec.path.clone();
    let writer = std::thread::spawn(move || {
        while let Some(bytes) = to_port_rx.blocking_recv() {
            if let Err(error) = write_patiently(&mut writer_port, &bytes, &write_stop) {
                tracing::info!(path = %path, %error, "serial port write failed");
                break;
            }
        }
    });

    let (session_side, bridge_side) = tokio::io::duplex(64 * 1024);
    let (mut bridge_read, mut bridge_write) = tokio::io::split(bridge_side);
    let inbound = tokio::spawn(async move {
        while let Some(bytes) = from_port.recv().await {
            if bridge_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = bridge_write.shutdown().await;
    });
    let outbound = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            match bridge_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_port.send(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
    });

    let (read, write) = tokio::io::split(session_side);
    let link = LinkInfo {
        kind: LinkKind::Serial,
        peer: spec.path.clone(),
    };
    serve_link(service.clone(), read, write, link, shutdown.subscribe()).await;

    stopped.store(true, Ordering::Relaxed);
    inbound.abort();
    let _ = outbound.await;
    let _ = tokio::task::spawn_blocking(move || {
        let _ = reader.join();
        let _ = writer.join();
    })
    .await;
}

/// True for the errors a serial port returns while it is merely busy.
fn is_transient(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::WouldBlock
    )
}

/// Writes all of `bytes` and drains them to the port.
///
/// The port has a short timeout (so the threads notice a stop), and a write
/// to a line still sending earlier bytes fails with `TimedOut` once the
/// driver's buffer is full. That is backpressure, not a broken port: giving
/// up there would leave the session blocked on a pipe nobody empties and the
/// device without an answer for good. Only a real error (or a stop) ends it.
fn write_patiently(
    port: &mut impl Write,
    mut bytes: &[u8],
    stopped: &AtomicBool,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match port.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if is_transient(&e) && !stopped.load(Ordering::Relaxed) => {}
            Err(e) => return Err(e),
        }
    }
    loop {
        match port.flush() {
            Err(e) if is_transient(&e) && !stopped.load(Ordering::Relaxed) => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port whose buffer is full for a while: writes time out, then take a few bytes.
    struct DrainingPort {
        busy: usize,
        written: Vec<u8>,
    }

    impl Write for DrainingPort {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.busy > 0 {
                self.busy -= 1;
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            self.busy = 2;
            let n = buf.len().min(3);
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_port_that_times_out_while_the_line_drains_still_gets_every_byte() {
        let mut port = DrainingPort {
            busy: 5,
            written: Vec::new(),
        };
        let running = AtomicBool::new(false);
        write_patiently(&mut port, b"every byte arrives", &running).unwrap();
        assert_eq!(port.written, b"every byte arrives");
    }

    #[test]
    fn a_stopped_port_gives_up_a_write_that_times_out() {
        let mut port = DrainingPort {
            busy: 1,
            written: Vec::new(),
        };
        let stopped = AtomicBool::new(true);
        let error = write_patiently(&mut port, b"late", &stopped).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn specs_parse_with_and_without_baud() {
        assert_eq!(
            "/dev/ttyUSB0:9600".parse::<SerialSpec>().unwrap(),
            SerialSpec {
                path: "/dev/ttyUSB0".into(),
                baud: 9600
            }
        );
        assert_eq!(
            "/dev/pts/3".parse::<SerialSpec>().unwrap().baud,
            DEFAULT_BAUD
        );
    }

    #[test]
    fn stable_device_names_with_colons_are_paths_and_only_trailing_digits_are_a_baud() {
        let by_path = "/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0";
        assert_eq!(
            by_path.parse::<SerialSpec>().unwrap(),
            SerialSpec {
                path: by_path.into(),
                baud: DEFAULT_BAUD
            }
        );
        assert_eq!(
            format!("{by_path}:921600").parse::<SerialSpec>().unwrap(),
            SerialSpec {
                path: by_path.into(),
                baud: 921_600
            }
        );
        assert_eq!(
            "/dev/x:fast".parse::<SerialSpec>().unwrap().path,
            "/dev/x:fast"
        );
        // A path ending in `:DIGITS` keeps them when a baud rate follows.
        assert_eq!(
            "/dev/odd:1:9600".parse::<SerialSpec>().unwrap(),
            SerialSpec {
                path: "/dev/odd:1".into(),
                baud: 9600
            }
        );
    }

    #[test]
    fn empty_paths_and_impossible_bauds_are_refused() {
        for text in ["", ":9600", "/dev/ttyUSB0:0", "/dev/ttyUSB0:99999999999"] {
            assert!(text.parse::<SerialSpec>().is_err(), "{text:?}");
        }
    }
}
