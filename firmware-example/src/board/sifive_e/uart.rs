//! The FE310's UART0, polled, 115200 8N1, implementing `embedded_io` 0.6, as
//! QEMU's `sifive_e` emulates it: an 8-byte receive FIFO (QEMU holds further
//! bytes back in its character device, so none is lost while the firmware
//! writes) read through `rxdata` (bit 31: empty; reading takes the byte), and
//! `txdata` (bit 31: full). No interrupts.
//!
//! Reading `rxdata` is the only way to know whether a byte waits, and it takes
//! the byte: the driver keeps that byte until it is read.
//! Transmission is paced to the line rate ([`LinePacer`]).

use core::convert::Infallible;
use core::ptr;

use embedded_io::{ErrorType, Read, ReadReady, Write};

use super::line_pacer::LinePacer;

/// UART0's registers.
const BASE: usize = 0x1001_3000;
const TXDATA: usize = 0x00;
const RXDATA: usize = 0x04;
const TXCTRL: usize = 0x08;
const RXCTRL: usize = 0x0C;
const DIV: usize = 0x18;

/// `txdata` / `rxdata` bit 31: transmit FIFO full / receive FIFO empty.
const FLAG: u32 = 1 << 31;
/// `txctrl` / `rxctrl` bit 0: enable.
const ENABLE: u32 = 1;

/// The FE310's UART0.
pub struct SifiveUart {
    pacer: LinePacer,
    now_us: fn() -> u64,
    /// A byte taken from `rxdata` by [`ReadReady::read_ready`], not read yet.
    peeked: Option<u8>,
}

impl SifiveUart {
    /// Enables UART0's transmitter and receiver at `baud` from `bus_clock_hz`
    /// and returns the driver; `now_us` paces the transmitter.
    ///
    /// # Safety
    /// Nothing else may use UART0 for as long as this value lives.
    pub unsafe fn new(bus_clock_hz: u32, baud: u32, now_us: fn() -> u64) -> SifiveUart {
        let uart = SifiveUart {
            pacer: LinePacer::new(baud),
            now_us,
            peeked: None,
        };
        // The baud rate is bus clock / (div + 1).
        uart.write_reg(DIV, bus_clock_hz.div_ceil(baud) - 1);
        uart.write_reg(TXCTRL, ENABLE);
        uart.write_reg(RXCTRL, ENABLE);
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
    /// FE310's UART reports none; the protocol's CRC catches damage).
    pub fn lost_bytes(&self) -> u32 {
        0
    }

    /// The next received byte, if one waits.
    fn take_byte(&mut self) -> Option<u8> {
        if let Some(byte) = self.peeked.take() {
            return Some(byte);
        }
        let word = self.read_reg(RXDATA);
        (word & FLAG == 0).then_some(word as u8)
    }

    fn tx_room(&self) -> bool {
        self.read_reg(TXDATA) & FLAG == 0 && self.pacer.has_room((self.now_us)())
    }
}

impl ErrorType for SifiveUart {
    type Error = Infallible;
}

impl Read for SifiveUart {
    /// Blocks until at least one byte arrived, then drains the FIFO into `buf`.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut filled = 0;
        while filled == 0 {
            while filled < buf.len() {
                let Some(byte) = self.take_byte() else { break };
                buf[filled] = byte;
                filled += 1;
            }
        }
        Ok(filled)
    }
}

impl ReadReady for SifiveUart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        if self.peeked.is_none() {
            self.peeked = self.take_byte();
        }
        Ok(self.peeked.is_some())
    }
}

impl Write for SifiveUart {
    /// Blocks until at least one byte went out; returns how many did.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        let mut written = 0;
        for &byte in buf {
            if !self.tx_room() {
                if written > 0 {
                    break;
                }
                while !self.tx_room() {
                    super::wait_for_interrupt();
                }
            }
            self.pacer.occupy((self.now_us)());
            self.write_reg(TXDATA, u32::from(byte));
            written += 1;
        }
        Ok(written)
    }

    /// Waits until every byte written has left the line.
    fn flush(&mut self) -> Result<(), Infallible> {
        while !self.pacer.is_idle((self.now_us)()) {
            core::hint::spin_loop();
        }
        Ok(())
    }
}
