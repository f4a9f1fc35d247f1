//! Paces a transmitter to a real line rate. QEMU's UARTs hand bytes to their
//! host character device at host speed; so that the boards behave like real
//! ones (a 64 KiB upload takes seconds at 115200 baud, a test can pull the
//! plug in the middle of it), a driver books 10 bit times per byte here and
//! lets at most a 16-byte burst (a FIFO's worth) run ahead of the line.

/// Bytes the line may run behind the writer: a 16-byte FIFO.
const BURST: u64 = 16;

/// The emulated line's schedule.
pub struct LinePacer {
    /// Microseconds one byte takes on the wire (10 bits at the baud rate).
    byte_time_us: u64,
    /// When the line finishes sending the bytes already booked.
    busy_until_us: u64,
}

impl LinePacer {
    /// A line at `baud`, 8N1, idle.
    pub const fn new(baud: u32) -> LinePacer {
        LinePacer {
            byte_time_us: 10_000_000u64.div_ceil(baud as u64),
            busy_until_us: 0,
        }
    }

    /// True when one more byte may go out at `now_us` without running more
    /// than a FIFO's worth ahead of the line.
    pub fn has_room(&self, now_us: u64) -> bool {
        now_us + BURST * self.byte_time_us >= self.busy_until_us
    }

    /// Books one byte time on the line.
    pub fn occupy(&mut self, now_us: u64) {
        self.busy_until_us = self.busy_until_us.max(now_us) + self.byte_time_us;
    }

    /// True when everything booked has left the line at `now_us`.
    pub fn is_idle(&self, now_us: u64) -> bool {
        now_us >= self.busy_until_us
    }
}
