//! The async driver over `embedded-io-async`: for tokio hosts and embassy firmware.

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

use embedded_io_async::{Read, Write};

use super::{DriverError, Input};
use crate::client::{Client, Event, FileStore};
use crate::message::Nonce;

/// A millisecond clock that can also sleep (tokio, embassy-time).
pub trait AsyncClock {
    /// Milliseconds since any fixed start; never goes back.
    fn now_ms(&mut self) -> u64;

    /// Completes at `at_ms` (at once if that has passed).
    fn sleep_until(&mut self, at_ms: u64) -> impl Future<Output = ()>;
}

/// Runs a [`Client`] over an async stream `IO`; see the [module docs](super).
///
/// `IO::read` must be cancel-safe (tokio streams through
/// `embedded-io-adapters`, embassy's `BufferedUart` are): a read that loses
/// the race against the next timer is dropped.
pub struct AsyncDriver<'k, S, B, IO, C, R> {
    client: Client<'k, S, B>,
    io: IO,
    clock: C,
    input: Input<R>,
}

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Whichever of `a` and `b` completes first (`a` wins a tie).
async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        if let Poll::Ready(out) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(out));
        }
        Poll::Pending
    })
    .await
}

/// Polls `future` once: its output if it is ready now, `None` otherwise.
async fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    poll_fn(|cx| {
        Poll::Ready(match future.as_mut().poll(cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        })
    })
    .await
}

/// Writes all of `bytes`, refusing a stream that takes none.
async fn write_all<IO: Write>(io: &mut IO, mut bytes: &[u8]) -> Result<(), DriverError<IO::Error>> {
    while !bytes.is_empty() {
        match io.write(bytes).await.map_err(DriverError::Io)? {
            0 => return Err(DriverError::WriteZero),
            n => bytes = &bytes[n..],
        }
    }
    io.flush().await.map_err(DriverError::Io)
}

impl<'k, S, B, IO, C, R> AsyncDriver<'k, S, B, IO, C, R>
where
    S: FileStore,
    B: AsMut<[u8]>,
    IO: Read + Write,
    C: AsyncClock,
    R: AsMut<[u8]>,
{
    /// A driver over `io`, reading into `input` (64 KiB suit TCP, 64 bytes a UART).
    pub fn new(client: Client<'k, S, B>, io: IO, clock: C, input: R) -> Self {
        AsyncDriver {
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

    /// The stream.
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

    /// One step: feed input, or send one frame (then take any input already
    /// there), or wait for input until the next timer. Returns at most one
    /// event; `Ok(None)` means nothing for the application this step.
    ///
    /// On an I/O error or end of stream the client is told the link is gone.
    pub async fn poll(&mut self) -> Result<Option<Event<'_>>, DriverError<IO::Error>> {
        let now = self.clock.now_ms();
        if !self.input.is_empty() {
            let received = self.client.receive(now, self.input.pending());
            self.input.consume(received.consumed);
            return Ok(received.event);
        }
        if let Some(bytes) = self.client.poll_transmit(now) {
            if let Err(e) = write_all(&mut self.io, bytes).await {
                return Err(self.link_lost(now, e));
            }
            // Take acknowledgements that are already there, without waiting.
            if let Some(read) = now_or_never(self.io.read(self.input.buf.as_mut())).await {
                self.filled(now, read)?;
            }
            return Ok(None);
        }
        let deadline = self.client.poll_at();
        if deadline.is_none_or(|at| at > now) {
            let read = self.io.read(self.input.buf.as_mut());
            let outcome = match deadline {
                Some(at) => select(read, self.clock.sleep_until(at)).await,
                None => Either::Left(read.await),
            };
            let now = self.clock.now_ms();
            if let Either::Left(read) = outcome {
                self.filled(now, read)?;
                let received = self.client.receive(now, self.input.pending());
                self.input.consume(received.consumed);
                return Ok(received.event);
            }
            return Ok(self.client.receive(now, &[]).event);
        }
        Ok(self.client.receive(now, &[]).event)
    }

    fn filled(
        &mut self,
        now: u64,
        read: Result<usize, IO::Error>,
    ) -> Result<(), DriverError<IO::Error>> {
        match read {
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
