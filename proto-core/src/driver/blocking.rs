//! The blocking driver over `embedded-io`: for firmware super-loops and threads.

use embedded_io::{Read, ReadReady, Write};

use super::{DriverError, Input};
use crate::client::{Client, Event, FileStore};
use crate::message::Nonce;

/// A millisecond clock the application provides (a SysTick counter, `Instant`).
pub trait Clock {
    /// Milliseconds since any fixed start; never goes back.
    fn now_ms(&mut self) -> u64;
}

/// Runs a [`Client`] over a blocking stream `IO`; see the [module docs](super).
///
/// Reads only when `read_ready` says bytes are there, so a step never blocks
/// on input and timers keep firing. Writes block until the frame is out.
pub struct BlockingDriver<'k, S, B, IO, C, R> {
    client: Client<'k, S, B>,
    io: IO,
    clock: C,
    input: Input<R>,
}

/// Writes all of `bytes`, refusing a stream that takes none.
fn write_all<IO: Write>(io: &mut IO, mut bytes: &[u8]) -> Result<(), DriverError<IO::Error>> {
    while !bytes.is_empty() {
        match io.write(bytes).map_err(DriverError::Io)? {
            0 => return Err(DriverError::WriteZero),
            n => bytes = bytes.get(n..).unwrap_or_default(),
        }
    }
    io.flush().map_err(DriverError::Io)
}

impl<'k, S, B, IO, C, R> BlockingDriver<'k, S, B, IO, C, R>
where
    S: FileStore,
    B: AsMut<[u8]>,
    IO: Read + ReadReady + Write,
    C: Clock,
    R: AsMut<[u8]>,
{
    /// A driver over `io`, reading into `input` (64 bytes are plenty on a UART).
    pub fn new(client: Client<'k, S, B>, io: IO, clock: C, input: R) -> Self {
        BlockingDriver {
            client,
            io,
            clock,
            input: Input::new(input),
        }
    }

    /// The client, to make requests between steps.
    pub fn client(&mut self) -> &mut Client<'k, S, B> {
        &mut self.client
    }

    /// The stream (e.g. to reopen a port).
    pub fn io(&mut self) -> &mut IO {
        &mut self.io
    }

    /// Starts a new session with a fresh random `nonce`, dropping buffered input.
    pub fn connect(&mut self, nonce: Nonce) {
        self.input.clear();
        let now = self.clock.now_ms();
        self.client.connect(now, nonce);
    }

    /// Gives the parts back.
    pub fn into_parts(self) -> (Client<'k, S, B>, IO, C) {
        (self.client, self.io, self.clock)
    }

    /// One step: feed input, or send one frame, or run due timers. Returns at
    /// most one event; `Ok(None)` means nothing for the application this step.
    ///
    /// On an I/O error or end of stream the client is told the link is gone.
    pub fn poll(&mut self) -> Result<Option<Event<'_>>, DriverError<IO::Error>> {
        let now = self.clock.now_ms();
        if self.input.is_empty() {
            match self.io.read_ready() {
                Ok(true) => self.fill(now)?,
                Ok(false) => {}
                Err(e) => return Err(self.link_lost(now, DriverError::Io(e))),
            }
        }
        if !self.input.is_empty() {
            let received = self.client.receive(now, self.input.pending());
            self.input.consume(received.consumed);
            return Ok(received.event);
        }
        if let Some(bytes) = self.client.poll_transmit(now) {
            if let Err(e) = write_all(&mut self.io, bytes) {
                return Err(self.link_lost(now, e));
            }
            return Ok(None);
        }
        if self.client.poll_at().is_some_and(|at| at <= now) {
            return Ok(self.client.receive(now, &[]).event);
        }
        Ok(None)
    }

    /// Reads what is there into the input buffer.
    fn fill(&mut self, now: u64) -> Result<(), DriverError<IO::Error>> {
        match self.io.read(self.input.buf.as_mut()) {
            Ok(0) => Err(self.link_lost(now, DriverError::Eof)),
            Ok(n) => {
                self.input.filled(n);
                Ok(())
            }
            Err(e) => Err(self.link_lost(now, DriverError::Io(e))),
        }
    }

    fn link_lost(&mut self, now: u64, error: DriverError<IO::Error>) -> DriverError<IO::Error> {
        self.input.clear();
        self.client.disconnected(now);
        error
    }
}
