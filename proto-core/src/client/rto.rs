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
///
/// Kept in `u32` (49 days of ms; samples and bounds beyond that saturate):
/// 64-bit multiplication and division cost a Cortex-M0+ a library call each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rto {
    min_ms: u32,
    max_ms: u32,
    srtt_ms: Option<u32>,
    rttvar_ms: u32,
    current_ms: u32,
}

/// `ms` in `u32`, saturating.
fn saturate(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

impl Rto {
    /// A timer starting at `initial_ms`, kept within `min_ms..=max_ms`.
    pub fn new(initial_ms: u64, min_ms: u64, max_ms: u64) -> Self {
        let min_ms = saturate(min_ms);
        let max_ms = saturate(max_ms).max(min_ms);
        let mut rto = Rto {
            min_ms,
            max_ms,
            srtt_ms: None,
            rttvar_ms: 0,
            current_ms: 0,
        };
        rto.set(saturate(initial_ms));
        rto
    }

    /// The current timeout.
    pub fn timeout_ms(&self) -> u64 {
        self.current_ms.into()
    }

    /// Takes a round-trip sample.
    pub fn sample(&mut self, rtt_ms: u64) {
        let rtt_ms = saturate(rtt_ms);
        let (srtt, rttvar) = match self.srtt_ms {
            None => (rtt_ms, rtt_ms / 2),
            Some(srtt) => {
                // Weighted means of u32 values, summed in u64 so they cannot overflow.
                let rttvar = (3 * u64::from(self.rttvar_ms) + u64::from(srtt.abs_diff(rtt_ms))) / 4;
                let srtt = (7 * u64::from(srtt) + u64::from(rtt_ms)) / 8;
                (srtt as u32, rttvar as u32)
            }
        };
        self.srtt_ms = Some(srtt);
        self.rttvar_ms = rttvar;
        self.set(srtt.saturating_add(rttvar.saturating_mul(4)));
    }

    /// A timeout fired: wait twice as long next time.
    pub fn back_off(&mut self) {
        self.set(self.current_ms.saturating_mul(2));
    }

    /// Sets the timeout to `ms`, kept within the bounds.
    fn set(&mut self, ms: u32) {
        self.current_ms = ms.max(self.min_ms).min(self.max_ms);
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
