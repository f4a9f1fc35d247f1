//! Thin drivers that run a [`Client`](crate::client::Client) over a real link:
//! [`BlockingDriver`] over `embedded-io` (firmware super-loops, threads) and
//! [`AsyncDriver`] over `embedded-io-async` (tokio hosts, embassy firmware).
//!
//! Both do the same three things per [`poll`](BlockingDriver::poll) step, and
//! return at most one [`Event`](crate::client::Event):
//!
//! 1. feed buffered input to the client (input always goes first, so
//!    acknowledgements are seen while an upload streams);
//! 2. write what the client wants to send (one frame per step);
//! 3. otherwise wait for input, but not past [`Client::poll_at`](crate::client::Client::poll_at),
//!    and let the client run its timers.
//!
//! The application makes requests between steps through `driver.client()`.
//! An event borrows the driver, so copy out ids and numbers first:
//!
//! ```text
//! loop {
//!     let mut wanted = None;
//!     match driver.poll()? {
//!         Some(Event::Connected { .. }) => wanted = Some(FileId(0)),
//!         Some(Event::DownloadAvailable { file: Some(file), .. }) => wanted = Some(file),
//!         Some(Event::Closed { .. }) => driver.connect(rng.nonce()),
//!         _ => {}
//!     }
//!     if let Some(file) = wanted {
//!         driver.client().download(file, true)?;
//!     }
//! }
//! ```
//!
//! # A tokio host (TCP)
//!
//! `embedded-io-adapters` 0.6 (feature `tokio-1`) turns a `TcpStream` into an
//! `embedded-io-async` stream (`embedded_io_adapters::tokio_1::FromTokio`)
//! whose `read` is cancel-safe, as the driver needs. Set `TCP_NODELAY`: acks
//! and requests are small frames.
//!
//! ```text
//! struct TokioClock(tokio::time::Instant);
//! impl AsyncClock for TokioClock {
//!     fn now_ms(&mut self) -> u64 { self.0.elapsed().as_millis() as u64 }
//!     fn sleep_until(&mut self, at_ms: u64) -> impl Future<Output = ()> {
//!         tokio::time::sleep_until(self.0 + Duration::from_millis(at_ms))
//!     }
//! }
//!
//! let stream = tokio::net::TcpStream::connect("127.0.0.1:7878").await?;
//! stream.set_nodelay(true)?;
//! let config = Config::tcp("laptop", &key);
//! let client = Client::new(config, my_fs_store, vec![0; 256 * 1024 + 8], vec![0; 256 * 1024 + 8])?;
//! let mut driver = AsyncDriver::new(client, FromTokio::new(stream), TokioClock(Instant::now()), vec![0; 64 * 1024]);
//! driver.connect(rand::random());
//! loop {
//!     match driver.poll().await? {
//!         Some(Event::Connected { .. }) => { driver.client().upload(FileId(0))?; }
//!         Some(Event::UploadDone { record, .. }) => { println!("{} is {}", record.name, record.state); break; }
//!         Some(Event::Closed { error, .. }) => return Err(error.into()),
//!         _ => {}
//!     }
//! }
//! ```
//!
//! # Firmware on a UART
//!
//! A blocking UART `read` blocks until a byte comes, which would stop the
//! timers (retransmission, keepalive). [`BlockingDriver`] asks
//! `ReadReady::read_ready` first and only reads what is there, so `poll`
//! never blocks on input; it returns `Ok(None)` when idle and the loop may
//! sleep until the next interrupt:
//!
//! ```text
//! let config = Config::serial("sensor-1", KEY);
//! let client = Client::new(config, RamStore::new(&mut files), [0u8; 1034], [0u8; 1034])?;
//! let mut driver = BlockingDriver::new(client, uart, SysTickClock, [0u8; 64]);
//! driver.connect(trng.nonce());
//! loop {
//!     match driver.poll() {
//!         Ok(Some(Event::Connected { .. })) => { driver.client().send_manifest("sensor-1", 0..3).ok(); }
//!         Ok(Some(Event::BatchCreated { .. })) => { driver.client().upload(FileId(0)).ok(); }
//!         Ok(Some(Event::Closed { .. })) | Err(_) => driver.connect(trng.nonce()),
//!         Ok(_) => {}
//!     }
//! }
//! ```
//!
//! With embassy, `BufferedUart` implements `embedded-io-async` with a
//! cancel-safe `read`; use [`AsyncDriver`] with an `AsyncClock` over
//! `embassy_time::Timer::at`.

use crate::text::text;

mod asynch;
mod blocking;

pub use asynch::{AsyncClock, AsyncDriver};
pub use blocking::{BlockingDriver, Clock};

/// The link under a driver failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DriverError<E> {
    /// The stream reported an error.
    Io(E),
    /// The stream accepted no byte of a write.
    WriteZero,
    /// The stream ended (peer closed, cable pulled).
    Eof,
}

impl<E> DriverError<E> {
    /// What happened and what to do.
    pub const fn message(&self) -> &'static str {
        match self {
            DriverError::Io(_) => text!(
                "link I/O error",
                "the link reported an I/O error; reconnect (transfers resume)"
            ),
            DriverError::WriteZero => text!(
                "link took no bytes",
                "the link accepted no bytes; check the port or connection, then reconnect"
            ),
            DriverError::Eof => text!(
                "link closed",
                "the link was closed by the other side; reconnect (transfers resume)"
            ),
        }
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for DriverError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DriverError::Io(e) => write!(f, "{} ({:?})", self.message(), e),
            _ => f.write_str(self.message()),
        }
    }
}

#[cfg(feature = "std")]
impl<E: core::fmt::Debug> std::error::Error for DriverError<E> {}

/// The input buffered by a driver: `buf[start..end]` is not fed yet.
#[derive(Debug)]
struct Input<R> {
    buf: R,
    start: usize,
    end: usize,
}

impl<R: AsMut<[u8]>> Input<R> {
    fn new(buf: R) -> Self {
        Input {
            buf,
            start: 0,
            end: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    fn pending(&mut self) -> &[u8] {
        self.buf
            .as_mut()
            .get(self.start..self.end)
            .unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    fn filled(&mut self, n: usize) {
        self.start = 0;
        self.end = n;
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests;
