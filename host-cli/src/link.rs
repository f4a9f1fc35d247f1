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
    /// The TCP socket, shut down when the link is dropped so the reader thread
    /// and the server both see the end of a link given up as stalled.
    socket: Option<TcpStream>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(socket) = &self.socket {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Link {
    /// Connects to `server`; on TCP a write that makes no progress for `stall`
    /// fails (the session then counts the link as lost).
    pub fn open(server: &ServerUrl, stall: Duration) -> Result<Link, CliError> {
        let unreachable = |source| CliError::Unreachable {
            server: server.to_string(),
            source,
        };
        match server {
            ServerUrl::Tcp { address } => {
                let stream = TcpStream::connect(address.as_str()).map_err(unreachable)?;
                stream.set_nodelay(true).map_err(unreachable)?;
                stream.set_write_timeout(Some(stall)).map_err(unreachable)?;
                let reader = stream.try_clone().map_err(unreachable)?;
                let socket = stream.try_clone().map_err(unreachable)?;
                Ok(Link {
                    framing: Framing::Length,
                    max_frame: TCP_MAX_FRAME,
                    writer: Box::new(stream),
                    received: spawn_reader(reader),
                    socket: Some(socket),
                })
            }
            ServerUrl::Tls { address, ca } => {
                let stream = TcpStream::connect(address.as_str()).map_err(unreachable)?;
                stream.set_nodelay(true).map_err(unreachable)?;
                stream.set_write_timeout(Some(stall)).map_err(unreachable)?;
                let socket = stream.try_clone().map_err(unreachable)?;
                let (reader, writer) = crate::tls::connect(stream, address, ca.as_deref())
                    .map_err(|e| unreachable(io::Error::other(e.to_string())))?;
                Ok(Link {
                    framing: Framing::Length,
                    max_frame: TCP_MAX_FRAME,
                    writer: Box::new(writer),
                    received: spawn_reader(reader),
                    socket: Some(socket),
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
                    writer: Box::new(LinePacer::new(PatientWriter::new(port), *baud)),
                    received: spawn_reader(reader),
                    socket: None,
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

/// Bytes a serial writer may be ahead of the line, like a UART driver's
/// transmit buffer (Linux keeps 4 KiB per port).
const LINE_BUFFER: u32 = 4096;

/// Keeps a serial writer no more than [`LINE_BUFFER`] bytes ahead of the
/// line's rate (baud / 10 bytes per second, 8N1).
///
/// A real UART blocks the writer once its driver's small buffer is full; a
/// pseudo-terminal or a deep USB adapter queue takes far more, and bytes
/// parked there delay every re-send and acknowledgement behind them. For a
/// virtual port that is faster than its nominal baud (USB CDC-ACM), give its
/// real speed as `baud=`.
struct LinePacer<W> {
    inner: W,
    /// Time one byte takes on the line.
    byte_time: Duration,
    /// When the line will have sent everything written so far.
    line_free_at: Instant,
}

impl<W: Write> LinePacer<W> {
    fn new(inner: W, baud: u32) -> Self {
        LinePacer {
            inner,
            byte_time: Duration::from_nanos(10_000_000_000 / u64::from(baud.max(1))),
            line_free_at: Instant::now(),
        }
    }

    /// How long to wait before writing, given the line's backlog at `now`.
    fn wait(&self, now: Instant) -> Duration {
        let backlog = self.line_free_at.saturating_duration_since(now);
        backlog.saturating_sub(self.byte_time * LINE_BUFFER)
    }

    /// Accounts for `len` bytes handed to the port at `now`.
    fn wrote(&mut self, len: usize, now: Instant) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.line_free_at = self.line_free_at.max(now) + self.byte_time * len;
    }
}

impl<W: Write> Write for LinePacer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let wait = self.wait(Instant::now());
        if !wait.is_zero() {
            thread::sleep(wait);
        }
        let n = self.inner.write(buf)?;
        self.wrote(n, Instant::now());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_lets_one_line_buffer_ahead_then_waits_for_the_line() {
        let mut pacer = LinePacer::new(Vec::new(), 100_000);
        let start = Instant::now();
        assert_eq!(pacer.wait(start), Duration::ZERO);
        pacer.wrote(LINE_BUFFER as usize, start);
        assert_eq!(
            pacer.wait(start),
            Duration::ZERO,
            "one buffer ahead is fine"
        );
        pacer.wrote(1000, start);
        // 1,000 bytes past the buffer take 100 ms at 10,000 B/s.
        assert_eq!(pacer.wait(start), Duration::from_millis(100));
        let later = start + Duration::from_millis(40);
        assert_eq!(pacer.wait(later), Duration::from_millis(60));
    }

    #[test]
    fn an_idle_line_does_not_bank_time() {
        let mut pacer = LinePacer::new(Vec::new(), 115_200);
        let later = Instant::now() + Duration::from_secs(10);
        pacer.wrote(2 * LINE_BUFFER as usize, later);
        assert_eq!(
            pacer.wait(later),
            pacer.byte_time * LINE_BUFFER,
            "idle seconds before do not allow a burst"
        );
    }

    #[test]
    fn paced_writes_reach_the_port_unchanged() {
        let mut pacer = LinePacer::new(Vec::new(), 921_600);
        pacer.write_all(b"abc").unwrap();
        pacer.flush().unwrap();
        assert_eq!(pacer.inner, b"abc");
    }
}
