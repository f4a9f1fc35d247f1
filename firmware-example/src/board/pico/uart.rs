//! UART0 on GP0 (TX) / GP1 (RX) at 115200 8N1, implementing `embedded_io`.
//!
//! The RP2040's receive FIFO holds 32 bytes, 2.8 ms at 115200 baud: less than
//! the time the driver spends writing one frame. So the UART0 interrupt moves
//! every received byte into a RAM ring at once, and [`PicoUart`] reads from
//! there. Line errors (overrun, framing, break) are counted, not returned: the
//! protocol's frame CRC already catches what they damage.

use core::cell::{Cell, RefCell};
use core::convert::Infallible;

use critical_section::Mutex;
use embedded_io::{ErrorType, Read, ReadReady, Write};
use rp2040_hal::gpio::bank0::{Gpio0, Gpio1};
use rp2040_hal::gpio::{FunctionUart, Pin, PullNone, PullUp};
use rp2040_hal::pac::{self, interrupt, UART0};
use rp2040_hal::uart::{Enabled, Reader, UartPeripheral, Writer};

use super::ring::Ring;

type UartPins = (
    Pin<Gpio0, FunctionUart, PullNone>,
    Pin<Gpio1, FunctionUart, PullUp>,
);

/// The receiving half of UART0, owned by the interrupt handler.
static READER: Mutex<RefCell<Option<Reader<UART0, UartPins>>>> = Mutex::new(RefCell::new(None));

/// Received bytes not read yet (all zero at reset: lives in `.bss`).
static RING: Mutex<RefCell<Ring>> = Mutex::new(RefCell::new(Ring::new()));

/// Bytes lost so far: ring full, or damaged on the line.
static LOST: Mutex<Cell<u32>> = Mutex::new(Cell::new(0));

/// UART0, with received bytes buffered by its interrupt.
pub struct PicoUart {
    writer: Writer<UART0, UartPins>,
}

impl PicoUart {
    /// Takes the enabled UART, hands its receiving half to the interrupt and unmasks it.
    pub fn new(peripheral: UartPeripheral<Enabled, UART0, UartPins>) -> PicoUart {
        let (mut reader, writer) = peripheral.split();
        reader.enable_rx_interrupt();
        critical_section::with(|cs| READER.borrow(cs).replace(Some(reader)));
        // SAFETY: the handler below only touches state behind the critical-section mutex.
        unsafe { pac::NVIC::unmask(pac::Interrupt::UART0_IRQ) };
        PicoUart { writer }
    }

    /// Bytes lost so far (ring overflow or line errors).
    pub fn lost_bytes(&self) -> u32 {
        critical_section::with(|cs| LOST.borrow(cs).get())
    }
}

#[interrupt]
fn UART0_IRQ() {
    critical_section::with(|cs| {
        let reader = READER.borrow_ref(cs);
        let Some(reader) = reader.as_ref() else {
            return;
        };
        let mut ring = RING.borrow_ref_mut(cs);
        let mut lost = 0;
        let mut chunk = [0u8; 32];
        // Drain the FIFO: that also clears the receive and timeout interrupts.
        loop {
            match reader.read_raw(&mut chunk) {
                Ok(n) => lost += ring.push(&chunk[..n]),
                Err(nb::Error::WouldBlock) => break,
                Err(nb::Error::Other(error)) => lost += ring.push(error.discarded) + 1,
            }
        }
        let counter = LOST.borrow(cs);
        counter.set(counter.get().saturating_add(lost as u32));
    });
}

impl ErrorType for PicoUart {
    type Error = Infallible;
}

impl Read for PicoUart {
    /// Blocks until at least one byte is buffered, then hands over what is there.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = critical_section::with(|cs| RING.borrow_ref_mut(cs).pop(buf));
            if n > 0 {
                return Ok(n);
            }
            core::hint::spin_loop();
        }
    }
}

impl ReadReady for PicoUart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(critical_section::with(|cs| !RING.borrow_ref(cs).is_empty()))
    }
}

impl Write for PicoUart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        self.writer.flush()
    }
}
