//! UART0 on GP0 (TX) / GP1 (RX) at 115200 8N1: embassy-rp's buffered UART,
//! behind both `embedded_io` (provisioning, before the driver starts) and
//! `embedded_io_async` (proto-core's async driver).
//!
//! The RP2040's receive FIFO holds 32 bytes, 2.8 ms at 115200 baud: less than
//! the time the driver spends writing one frame. So UART0's interrupt moves
//! received bytes into a RAM ring at once (and wakes the task waiting for
//! them), and reads take them from there; its read is cancel-safe, as the
//! async driver requires. Line errors (overrun, framing, break, parity) are
//! counted, not returned: the protocol's frame CRC already catches what they
//! damage, and an error would otherwise end the session.

use core::convert::Infallible;

use embassy_rp::peripherals::{PIN_0, PIN_1, UART0};
use embassy_rp::uart::{BufferedInterruptHandler, BufferedUart, Config};
use embassy_rp::{bind_interrupts, Peri};
use embedded_io::{ErrorType, ReadReady};

use super::BAUD;

bind_interrupts!(struct Irqs {
    UART0_IRQ => BufferedInterruptHandler<UART0>;
});

/// Received bytes buffered between the UART interrupt and the driver: more
/// than two full frames, so a long write never costs received bytes.
const RX_BUFFER_LEN: usize = 2048;
/// Bytes queued for sending: the interrupt refills the FIFO from here.
const TX_BUFFER_LEN: usize = 256;

/// UART0, with received bytes buffered by its interrupt.
pub struct PicoUart {
    uart: BufferedUart,
    /// Line errors reported so far.
    errors: u32,
}

impl PicoUart {
    /// Configures UART0 on GP0/GP1 with its buffers and enables its interrupt.
    pub(super) fn new(
        uart: Peri<'static, UART0>,
        tx: Peri<'static, PIN_0>,
        rx: Peri<'static, PIN_1>,
    ) -> PicoUart {
        let (Some(tx_buffer), Some(rx_buffer)) = (
            cortex_m::singleton!(: [u8; TX_BUFFER_LEN] = [0; TX_BUFFER_LEN]),
            cortex_m::singleton!(: [u8; RX_BUFFER_LEN] = [0; RX_BUFFER_LEN]),
        ) else {
            panic!("UART0 is set up once");
        };
        let mut config = Config::default();
        config.baudrate = BAUD;
        PicoUart {
            uart: BufferedUart::new(uart, tx, rx, Irqs, tx_buffer, rx_buffer, config),
            errors: 0,
        }
    }

    /// Received bytes lost so far: at least one per line error the UART reported.
    pub fn lost_bytes(&self) -> u32 {
        self.errors
    }

    /// Counts a line error; the caller then reads (or writes) again.
    fn count_error(&mut self) {
        self.errors = self.errors.saturating_add(1);
    }
}

impl ErrorType for PicoUart {
    type Error = Infallible;
}

impl embedded_io::Read for PicoUart {
    /// Blocks until at least one byte is buffered, then hands over what is there.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        loop {
            match embedded_io::Read::read(&mut self.uart, buf) {
                Ok(n) => return Ok(n),
                Err(_) => self.count_error(),
            }
        }
    }
}

impl ReadReady for PicoUart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        loop {
            match self.uart.read_ready() {
                Ok(ready) => return Ok(ready),
                Err(_) => self.count_error(),
            }
        }
    }
}

impl embedded_io::Write for PicoUart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        loop {
            match embedded_io::Write::write(&mut self.uart, buf) {
                Ok(n) => return Ok(n),
                Err(_) => self.count_error(),
            }
        }
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        loop {
            match embedded_io::Write::flush(&mut self.uart) {
                Ok(()) => return Ok(()),
                Err(_) => self.count_error(),
            }
        }
    }
}

impl embedded_io_async::Read for PicoUart {
    /// Waits (the interrupt wakes the task) until at least one byte is buffered.
    /// Cancel-safe: a dropped read has taken nothing.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        loop {
            match embedded_io_async::Read::read(&mut self.uart, buf).await {
                Ok(n) => return Ok(n),
                Err(_) => self.count_error(),
            }
        }
    }
}

impl embedded_io_async::Write for PicoUart {
    /// Waits until the send buffer has room, then queues what fits.
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        loop {
            match embedded_io_async::Write::write(&mut self.uart, buf).await {
                Ok(n) => return Ok(n),
                Err(_) => self.count_error(),
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        loop {
            match embedded_io_async::Write::flush(&mut self.uart).await {
                Ok(()) => return Ok(()),
                Err(_) => self.count_error(),
            }
        }
    }
}
