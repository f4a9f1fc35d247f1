//! A minimal driver for the ARM PL011 UART (UART0 of the LM3S6965), polled,
//! with its 16-byte FIFOs on, implementing `embedded_io` 0.6.
//!
//! QEMU's PL011 hands bytes to its host character device at host speed. So
//! that the demo behaves like the real line (a 64 KiB upload takes seconds,
//! the test can pull the plug in the middle of it), [`Pl011::write`] holds
//! each byte for the time it would take on the wire: 10 bit times at the
//! configured baud rate, with the 16-byte FIFO as a buffer in between.
//!
//! A byte that arrives damaged (overrun, break, parity or framing error) is
//! dropped and counted, not returned as an error: the protocol's frame CRC
//! already catches what it damaged, and the session should go on.

use core::ptr;

use core::convert::Infallible;

use embedded_io::{ErrorType, Read, ReadReady, Write};

/// Data register: bits 0–7 the byte, bits 8–11 its receive errors.
const DR: usize = 0x000;
/// Flag register.
const FR: usize = 0x018;
/// Integer part of the baud rate divisor.
const IBRD: usize = 0x024;
/// Fractional part of the baud rate divisor (in 1/64).
const FBRD: usize = 0x028;
/// Line control: word length, FIFO enable; writing it latches the divisors.
const LCR_H: usize = 0x02C;
/// Control: UART, transmitter and receiver enable.
const CR: usize = 0x030;
/// Interrupt mask (all masked: this driver polls).
const IMSC: usize = 0x038;
/// Interrupt clear.
const ICR: usize = 0x044;

const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;

const DR_FE: u32 = 1 << 8;
const DR_PE: u32 = 1 << 9;
const DR_BE: u32 = 1 << 10;
const DR_OE: u32 = 1 << 11;

const LCR_H_FEN: u32 = 1 << 4;
const LCR_H_WLEN_8: u32 = 0b11 << 5;

const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;

/// Depth of the transmit FIFO.
const TX_FIFO_DEPTH: u64 = 16;

/// One PL011 UART, 8N1, FIFOs on, polled.
pub struct Pl011 {
    base: usize,
    /// Microseconds one byte takes on the wire (10 bits at the baud rate).
    byte_time_us: u64,
    /// When the emulated line finishes sending the bytes already written.
    line_busy_until_us: u64,
    now_us: fn() -> u64,
    /// Received bytes dropped because of a line error.
    lost: u32,
}

impl Pl011 {
    /// Configures the UART at `base` for `baud` 8N1 with FIFOs, given the
    /// UART's input clock, and enables it. `now_us` paces the transmitter.
    ///
    /// # Safety
    /// `base` must be the address of a PL011 and nothing else may use it for
    /// as long as this value lives.
    pub unsafe fn new(base: usize, uart_clock_hz: u32, baud: u32, now_us: fn() -> u64) -> Pl011 {
        let uart = Pl011 {
            base,
            byte_time_us: 10_000_000u64.div_ceil(u64::from(baud)),
            line_busy_until_us: 0,
            now_us,
            lost: 0,
        };
        // Divisor = clock / (16 × baud), in 1/64 steps.
        let divisor_64ths = (u64::from(uart_clock_hz) * 4).div_ceil(u64::from(baud)) as u32;
        uart.write_reg(CR, 0);
        uart.write_reg(IMSC, 0);
        uart.write_reg(ICR, 0x7FF);
        uart.write_reg(IBRD, divisor_64ths >> 6);
        uart.write_reg(FBRD, divisor_64ths & 0x3F);
        uart.write_reg(LCR_H, LCR_H_WLEN_8 | LCR_H_FEN);
        uart.write_reg(CR, CR_UARTEN | CR_TXE | CR_RXE);
        uart
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract makes `base` a PL011 we own exclusively;
        // `offset` is one of the register constants above, all inside its
        // 4 KiB block and 4-byte aligned. Volatile: these are device registers.
        unsafe { ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`.
        unsafe { ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    /// Received bytes dropped so far because of line errors.
    pub fn lost_bytes(&self) -> u32 {
        self.lost
    }

    fn rx_empty(&self) -> bool {
        self.read_reg(FR) & FR_RXFE != 0
    }

    /// True when the emulated transmit FIFO can take one more byte: the line
    /// needs at most a FIFO's worth of byte times to send what it already has.
    fn line_has_room(&self) -> bool {
        (self.now_us)() + TX_FIFO_DEPTH * self.byte_time_us >= self.line_busy_until_us
    }

    /// Books one byte time on the emulated line.
    fn occupy_line(&mut self) {
        self.line_busy_until_us = self.line_busy_until_us.max((self.now_us)()) + self.byte_time_us;
    }

    fn tx_room(&self) -> bool {
        self.read_reg(FR) & FR_TXFF == 0 && self.line_has_room()
    }
}

impl ErrorType for Pl011 {
    type Error = Infallible;
}

impl Read for Pl011 {
    /// Blocks until at least one good byte arrived, then drains the FIFO into `buf`.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut filled = 0;
        while filled == 0 {
            while self.rx_empty() {
                core::hint::spin_loop();
            }
            while filled < buf.len() && !self.rx_empty() {
                let word = self.read_reg(DR);
                if word & (DR_OE | DR_BE | DR_PE | DR_FE) != 0 {
                    self.lost = self.lost.saturating_add(1);
                    continue;
                }
                buf[filled] = word as u8;
                filled += 1;
            }
        }
        Ok(filled)
    }
}

impl ReadReady for Pl011 {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(!self.rx_empty())
    }
}

impl Write for Pl011 {
    /// Blocks until at least one byte is in the FIFO; returns how many went in.
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
            self.occupy_line();
            self.write_reg(DR, u32::from(byte));
            written += 1;
        }
        Ok(written)
    }

    /// Waits until every byte written has left the UART.
    fn flush(&mut self) -> Result<(), Infallible> {
        while self.read_reg(FR) & FR_BUSY != 0 || (self.now_us)() < self.line_busy_until_us {
            core::hint::spin_loop();
        }
        Ok(())
    }
}
