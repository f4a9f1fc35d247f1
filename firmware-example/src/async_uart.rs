//! The board's UART as an `embedded-io-async` stream, for proto-core's async
//! driver (feature `async-driver`): a read is ready when a byte waits (and
//! takes nothing otherwise, so a read that loses a race is cancel-safe, as
//! the driver requires); a write goes out through the board's blocking
//! driver, which returns as soon as the UART took a byte.

use core::future::poll_fn;
use core::task::Poll;

use embedded_io::{ErrorType, Read as _, ReadReady, Write as _};

use crate::board;

/// The board's UART behind the async traits.
pub struct AsyncUart(pub board::Uart);

impl AsyncUart {
    /// Received bytes the board's driver dropped because of line errors.
    pub fn lost_bytes(&self) -> u32 {
        self.0.lost_bytes()
    }
}

impl ErrorType for AsyncUart {
    type Error = <board::Uart as ErrorType>::Error;
}

impl ReadReady for AsyncUart {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        self.0.read_ready()
    }
}

impl embedded_io_async::Read for AsyncUart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        poll_fn(|_| match self.0.read_ready() {
            Ok(false) => Poll::Pending,
            Ok(true) => Poll::Ready(self.0.read(buf)),
            Err(error) => Poll::Ready(Err(error)),
        })
        .await
    }
}

impl embedded_io_async::Write for AsyncUart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf)
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}
