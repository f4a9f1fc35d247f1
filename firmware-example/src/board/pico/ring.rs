//! A fixed-size byte ring: the UART interrupt pushes, the main loop pops.

/// Bytes buffered between the UART interrupt and the protocol driver: more
/// than two full frames, so a long write never costs received bytes.
pub const RX_RING_LEN: usize = 2048;

/// A FIFO of at most [`RX_RING_LEN`] bytes.
pub struct Ring {
    bytes: [u8; RX_RING_LEN],
    /// Index of the oldest byte.
    head: usize,
    /// Bytes held.
    len: usize,
}

impl Ring {
    /// An empty ring.
    pub const fn new() -> Ring {
        Ring {
            bytes: [0; RX_RING_LEN],
            head: 0,
            len: 0,
        }
    }

    /// Appends as many of `data` as fit; returns how many were dropped.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let room = RX_RING_LEN - self.len;
        let taken = data.len().min(room);
        for &byte in &data[..taken] {
            self.bytes[(self.head + self.len) % RX_RING_LEN] = byte;
            self.len += 1;
        }
        data.len() - taken
    }

    /// Moves the oldest bytes into `out`; returns how many.
    pub fn pop(&mut self, out: &mut [u8]) -> usize {
        let taken = out.len().min(self.len);
        for slot in &mut out[..taken] {
            *slot = self.bytes[self.head];
            self.head = (self.head + 1) % RX_RING_LEN;
        }
        self.len -= taken;
        taken
    }

    /// True when no byte is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
