//! The byte link to the server: a TCP connection (plain or TLS) or a serial port.
//!
//! A link is split into a writer, used by the session loop, and a reader that
//! runs on its own thread and hands received bytes over a bounded channel, so
//! sending a large window never stops us from draining acknowledgements.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use proto_core::framing::Framing;

use crate::error::CliError;
use crate::url::ServerUrl;

/// Largest frame payload we announce on TCP: large frames keep per-frame
/// costs (syscalls, headers, acks) negligible next to the bytes moved.
pub const TCP_MAX_FRAME: u32 = 256 * 1024;
/// Largest frame payload we announce on a serial line: a corrupted frame costs
/// one frame, so keep them short where errors happen.
pub const SERIAL_MAX_FRAME: u32 = 4096;
/// How many received blocks may wait for the session loop before the reader pauses.
const RECEIVED_BLOCKS_QUEUED: usize = 64;
/// Bytes the reader asks for per read.
const READ_BLOCK: usize = 256 * 1024;

/// An open link to the server.
pub struct Link {
    /// How frames are cut on this link.
    pub framing: Framing,
    /// Largest frame payload we accept on this link.
    pub max_frame: u32,
    /// Where we write.
    pub writer: Box<dyn Write + Send>,
    /// Blocks of received bytes; an `Err` or a closed channel ends the link.
    pub received: Receiver<io::Result<Vec<u8>>>,
}

impl Link {
    /// Connects to `server`.
    pub fn open(server: &ServerUrl) -> Result<Link, CliError> {
        let unreachable = |source| CliError::Unreachable {
            server: server.to_string(),
            source,
        };
        match server {
            ServerUrl::Tcp { address } => {
                let stream = TcpStream::connect(address.as_str()).map_err(unreachable)?;
                stream.set_nodelay(true).map_err(unreachable)?;
                let reader = stream.try_clone().map_err(unreachable)?;
                Ok(Link {
                    framing: Framing::Length,
                    max_frame: TCP_MAX_FRAME,
                    writer: Box::new(stream),
                    received: spawn_reader(reader),
                })
            }
            ServerUrl::Tls { address, ca } => {
                let stream = TcpStream::connect(address.as_str()).map_err(unreachable)?;
                stream.set_nodelay(true).map_err(unreachable)?;
                let (reader, writer) = crate::tls::connect(stream, address, ca.as_deref())
                    .map_err(|e| unreachable(io::Error::other(e.to_string())))?;
                Ok(Link {
                    framing: Framing::Length,
                    max_frame: TCP_MAX_FRAME,
                    writer: Box::new(writer),
                    received: spawn_reader(reader),
                })
            }
            ServerUrl::Serial { path, baud } => {
                let port = serialport::new(path.as_str(), *baud)
                    .timeout(Duration::from_millis(200))
                    .open()
                    .map_err(|e| unreachable(io::Error::from(e)))?;
                let reader = port
                    .try_clone()
                    .map_err(|e| unreachable(io::Error::from(e)))?;
                Ok(Link {
                    framing: Framing::Serial,
                    max_frame: SERIAL_MAX_FRAME,
                    writer: Box::new(PatientWriter::new(port)),
                    received: spawn_reader(reader),
                })
            }
        }
    }
}

/// How long a serial write may make no progress before the line counts as dead.
const SERIAL_STALL_LIMIT: Duration = Duration::from_secs(30);

/// A serial port writer that waits out the port's short timeout.
///
/// The port's timeout is short so the reader thread stays responsive, but a
/// slow line (115200 baud moves 11.5 KB/s) with flow-controlled buffers can
/// take longer than that to accept a whole window: only a write that makes no
/// progress for [`SERIAL_STALL_LIMIT`] is an error.
struct PatientWriter<W> {
    inner: W,
}

impl<W: Write> PatientWriter<W> {
    fn new(inner: W) -> Self {
        PatientWriter { inner }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

impl<W: Write> Write for PatientWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let started = Instant::now();
        loop {
            match self.inner.write(buf) {
                Err(e) if is_transient(&e) && started.elapsed() < SERIAL_STALL_LIMIT => {}
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let started = Instant::now();
        loop {
            match self.inner.flush() {
                Err(e) if is_transient(&e) && started.elapsed() < SERIAL_STALL_LIMIT => {}
                other => return other,
            }
        }
    }
}

fn spawn_reader<R: Read + Send + 'static>(reader: R) -> Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::sync_channel(RECEIVED_BLOCKS_QUEUED);
    thread::spawn(move || pump(reader, tx));
    rx
}

fn pump<R: Read>(mut reader: R, tx: SyncSender<io::Result<Vec<u8>>>) {
    let mut buffer = vec![0u8; READ_BLOCK];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => {
                let _ = tx.send(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
                return;
            }
            Ok(n) => {
                if tx.send(Ok(buffer[..n].to_vec())).is_err() {
                    return;
                }
            }
            // A serial port's read timeout: nothing arrived, keep listening.
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}
