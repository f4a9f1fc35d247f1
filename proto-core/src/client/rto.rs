//! The retransmission timeout: how long the client waits for an upload
//! acknowledgement to advance before it asks the server what it lacks.
//!
//! Round trips are sampled one chunk at a time (never a re-sent one, so the
//! sample is unambiguous) and from the answer to the only query out, and
//! smoothed as TCP does (RFC 6298):
//! `rto = srtt + 4 · rttvar`, clamped, doubled after each timeout (on a
//! lossy link the upload asks again at a steady pace instead, see
//! `upload.rs`).

/// Smoothed round-trip estimate and the timeout derived from it, in ms.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rto {
    min_ms: u64,
    max_ms: u64,
    srtt_ms: Option<u64>,
    rttvar_ms: u64,
    current_ms: u64,
}

impl Rto {
    /// A timer starting at `initial_ms`, kept within `min_ms..=max_ms`.
    pub fn new(initial_ms: u64, min_ms: u64, max_ms: u64) -> Self {
        let max_ms = max_ms.max(min_ms);
        Rto {
            min_ms,
            max_ms,
            srtt_ms: None,
            rttvar_ms: 0,
            current_ms: initial_ms.clamp(min_ms, max_ms),
        }
    }

    /// The current timeout.
    pub fn timeout_ms(&self) -> u64 {
        self.current_ms
    }

    /// Takes a round-trip sample.
    pub fn sample(&mut self, rtt_ms: u64) {
        let (srtt, rttvar) = match self.srtt_ms {
            None => (rtt_ms, rtt_ms / 2),
            Some(srtt) => {
                let rttvar = (3 * self.rttvar_ms + srtt.abs_diff(rtt_ms)) / 4;
                ((7 * srtt + rtt_ms) / 8, rttvar)
            }
        };
        self.srtt_ms = Some(srtt);
        self.rttvar_ms = rttvar;
        self.current_ms = (srtt + 4 * rttvar).clamp(self.min_ms, self.max_ms);
    }

    /// A timeout fired: wait twice as long next time.
    pub fn back_off(&mut self) {
        self.current_ms = self
            .current_ms
            .saturating_mul(2)
            .clamp(self.min_ms, self.max_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rto_follows_samples_and_backs_off_within_bounds() {
        let mut rto = Rto::new(3000, 200, 10_000);
        assert_eq!(rto.timeout_ms(), 3000);
        rto.sample(100);
        assert_eq!(rto.timeout_ms(), 300);
        for _ in 0..20 {
            rto.sample(100);
        }
        assert_eq!(rto.timeout_ms(), 200);
        rto.back_off();
        assert_eq!(rto.timeout_ms(), 400);
        for _ in 0..10 {
            rto.back_off();
        }
        assert_eq!(rto.timeout_ms(), 10_000);
    }
}
