//! The nRF51's UART, polled, 115200 8N1, implementing `embedded_io` 0.6, as
//! QEMU's `microbit` emulates it: a 6-byte receive FIFO (QEMU holds further
//! bytes back in its character device, so none is lost while the firmware
//! writes), `RXDRDY` set while a byte waits, one byte in flight on transmit
//! (`TXDRDY` when it has left). No flow control pins, no interrupts.
//!
//! Transmission is paced to the line rate ([`LinePacer`]).

use core::convert::Infallible;
use core::ptr;

use embedded_io::{ErrorType, Read, ReadReady, Write};

use super::line_pacer::LinePacer;

/// UART0's registers.
const BASE: usize = 0x4000_2000;
const TASKS_STARTRX: usize = 0x000;
const TASKS_STARTTX: usize = 0x008;
const EVENTS_RXDRDY: usize = 0x108;
const EVENTS_TXDRDY: usize = 0x11C;
const ENABLE: usize = 0x500;
const PSELTXD: usize = 0x50C;
const PSELRXD: usize = 0x514;
const RXD: usize = 0x518;
const TXD: usize = 0x51C;
const BAUDRATE: usize = 0x524;

/// `ENABLE` value that turns the UART on.
const ENABLE_UART: u32 = 4;
/// `BAUDRATE` for 115200 baud.
const BAUD_115200: u32 = 0x01D7_E000;
/// The micro:bit's edge-connector UART pins (P0.24 TX, P0.25 RX).
const PIN_TXD: u32 = 24;
const PIN_RXD: u32 = 25;

/// The nRF51's UART0.
pub struct Nrf51Uart {
    pacer: LinePacer,
    now_us: fn() -> u64,
    /// A byte was written and its `TXDRDY` has not been seen yet.
    sending: bool,
}

impl Nrf51Uart {
    /// Sets UART0 to 115200 8N1 on the micro:bit's pins, starts both
    /// directions and returns the driver; `now_us` paces the transmitter.
    ///
    /// # Safety
    /// Nothing else may use UART0 for as long as this value lives.
    pub unsafe fn new(now_us: fn() -> u64) -> Nrf51Uart {
        let uart = Nrf51Uart {
            pacer: LinePacer::new(115_200),
            now_us,
            sending: false,
        };
        uart.write_reg(PSELTXD, PIN_TXD);
        uart.write_reg(PSELRXD, PIN_RXD);
        uart.write_reg(BAUDRATE, BAUD_115200);
        uart.write_reg(ENABLE, ENABLE_UART);
        uart.write_reg(EVENTS_RXDRDY, 0);
        uart.write_reg(EVENTS_TXDRDY, 0);
        uart.write_reg(TASKS_STARTRX, 1);
        uart.write_reg(TASKS_STARTTX, 1);
        uart
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract gives this driver UART0; `offset` is one
        // of the register constants above, inside its block and 4-byte
        // aligned. Volatile: these are device registers.
        unsafe { ptr::read_volatile((BASE + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`.
        unsafe { ptr::write_volatile((BASE + offset) as *mut u32, value) }
    }

    /// Received bytes dropped so far because of line errors: none here (the
    /// emulated line has none; the protocol's CRC would catch them).
    pub fn lost_bytes(&self) -> u32 {
        0
    }

    fn rx_ready(&self) -> bool {
        self.read_reg(EVENTS_RXDRDY) != 0
    }

    /// Takes one received byte: clear the event first, so a byte still
    /// waiting behind this one raises it again.
    fn take_byte(&mut self) -> u8 {
        self.write_reg(EVENTS_RXDRDY, 0);
        self.read_reg(RXD) as u8
    }

    /// True when the previous byte has left (or none is in flight).
    fn tx_free(&mut self) -> bool {
        if self.sending && self.read_reg(EVENTS_TXDRDY) != 0 {
            self.sending = false;
        }
        !self.sending
    }

    fn tx_room(&mut self) -> bool {
        self.tx_free() && self.pacer.has_room((self.now_us)())
    }
}

impl ErrorType for Nrf51Uart {
    type Error = Infallible;
}

impl Read for Nrf51Uart {
    /// Blocks until at least one byte arrived, then drains the FIFO into `buf`.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !self.rx_ready() {
            core::hint::spin_loop();
        }
        let mut filled = 0;
        while filled < buf.len() && self.rx_ready() {
            buf[filled] = self.take_byte();
            filled += 1;
        }
        Ok(filled)
    }
}

impl ReadReady for Nrf51Uart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.rx_ready())
    }
}

impl Write for Nrf51Uart {
    /// Blocks until at least one byte went out; returns how many did.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        let mut written = 0;
        for &byte in buf {
            if !self.tx_room() {
                if written > 0 {
                    break;
                }
                while !self.tx_room() {
                    // SysTick wakes the core every millisecond; QEMU then
                    // idles instead of spinning a host CPU.
                    cortex_m::asm::wfi();
                }
            }
            self.pacer.occupy((self.now_us)());
            self.write_reg(EVENTS_TXDRDY, 0);
            self.write_reg(TXD, u32::from(byte));
            self.sending = true;
            written += 1;
        }
        Ok(written)
    }

    /// Waits until every byte written has left the UART.
    fn flush(&mut self) -> Result<(), Infallible> {
        while !self.tx_free() || !self.pacer.is_idle((self.now_us)()) {
            core::hint::spin_loop();
        }
        Ok(())
    }
}
