//! The provisioning exchange at boot, before the first `Hello`: a board
//! without identity says so on its UART and waits until a host gives it one
//! (`host-server device add NAME --provision serial://…`); a board with one
//! offers a short window in which a host holding its current key may give it
//! a new one. The frames, the proofs and what is checked are proto-core's
//! (`proto_core::provision`, docs/PROTOCOL.md *Provisioning*); this file only
//! moves them on the UART, keeps time and stores the result.
//!
//! * Without identity: `Offer { device: None }` every [`OFFER_EVERY_MS`],
//!   forever, until a request is accepted.
//! * With one: `Offer { device: Some(NAME) }`, then [`WINDOW_MS`] of
//!   listening; each refused request gets `Refused`, a new offer (new nonce)
//!   and a new window. When a window passes quietly, the board goes on with
//!   the identity it has.
//!
//! Every request, accepted or refused, uses up the nonce it carried.

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

use embedded_io::{Read, ReadReady, Write};
use proto_core::framing::{Feed, Framing, SerialAccumulator};
use proto_core::message::Nonce;
use proto_core::provision::{
    accepted_proof, check_request, ProvisionMessage, Refusal, MAX_PAYLOAD,
};

use crate::board;
use crate::identity::Identity;
use crate::nonces::Nonces;
use crate::nv_page::NvPage;

/// How often a board without identity repeats its offer.
pub const OFFER_EVERY_MS: u64 = 1_000;
/// How long a board with an identity listens after its offer.
pub const WINDOW_MS: u64 = 1_000;

/// Bytes of one provisioning frame on the wire, at most.
const WIRE_LEN: usize = Framing::Serial.max_wire_len(MAX_PAYLOAD);

/// What the board listens with: its UART and a frame accumulator.
struct Line<'u> {
    uart: &'u mut board::Uart,
    frames: SerialAccumulator<[u8; WIRE_LEN]>,
}

impl Line<'_> {
    /// Sends one provisioning message as a serial frame.
    fn send(&mut self, message: &ProvisionMessage<'_>) {
        let mut payload = [0u8; MAX_PAYLOAD];
        let mut wire = [0u8; WIRE_LEN];
        // Every message the board sends fits MAX_PAYLOAD (proto-core tests the largest).
        let Ok(payload) = message.encode(&mut payload) else {
            return;
        };
        if let Ok(len) = Framing::Serial.encode(payload, &mut wire) {
            let _ = self.uart.write_all(&wire[..len]);
            let _ = self.uart.flush();
        }
    }

    /// Offers `nonce`, then waits until `window_ms` passed (forever with
    /// `None`, offering again every [`OFFER_EVERY_MS`]) for a provisioning
    /// request; hands the request to `answer`, which returns what the wait yields.
    fn offer_and_wait<T>(
        &mut self,
        nonce: &Nonce,
        device: Option<&str>,
        window_ms: Option<u64>,
        mut answer: impl FnMut(&mut Self, &ProvisionMessage<'_>) -> Option<T>,
    ) -> Option<T> {
        let offer = ProvisionMessage::Offer {
            nonce: *nonce,
            device,
        };
        // A lone delimiter first: whatever noise the line holds ends here.
        let _ = self.uart.write_all(&[0]);
        self.send(&offer);
        let started = now_ms();
        let mut offered = started;
        loop {
            let now = now_ms();
            match window_ms {
                Some(window) if now - started >= window => return None,
                None if now - offered >= OFFER_EVERY_MS => {
                    self.send(&offer);
                    offered = now;
                }
                _ => {}
            }
            if !self.uart.read_ready().unwrap_or(false) {
                board::wait_for_interrupt();
                continue;
            }
            let mut byte = [0u8; 1];
            if !matches!(self.uart.read(&mut byte), Ok(1)) {
                continue;
            }
            let Feed::Frame { payload, .. } = self.frames.feed(&byte) else {
                continue;
            };
            // Copied out of the accumulator's buffer, so the answer may use the line.
            let mut copy = [0u8; MAX_PAYLOAD];
            let Some(copy) = copy.get_mut(..payload.len()) else {
                continue;
            };
            copy.copy_from_slice(payload);
            // Anything else on the line (a server's answer to the offer, noise) is not ours.
            let Ok(message) = ProvisionMessage::decode(copy) else {
                continue;
            };
            if let Some(result) = answer(self, &message) {
                return Some(result);
            }
        }
    }
}

/// The outcome of one provisioning request.
enum Outcome {
    /// Stored: the board's new identity.
    Accepted(Identity),
    /// Refused, and answered so.
    Refused,
}

/// Checks one request against `nonce` and `current`, stores an accepted
/// identity in `page` and answers it on the line; `None` for a message that is no request.
fn handle<P: NvPage>(
    line: &mut Line<'_>,
    message: &ProvisionMessage<'_>,
    nonce: &Nonce,
    current: Option<&Identity>,
    page: &mut P,
) -> Option<Outcome> {
    let checked = check_request(message, nonce, current.map(|id| &id.key()[..]))?;
    let stored = checked.and_then(|(device, key)| {
        let identity = Identity::new(device, key).ok_or(Refusal::BadName)?;
        identity.store(page).map_err(|error| {
            error!("identity page not written: {}", error.message());
            Refusal::StoreFailed
        })?;
        Ok(identity)
    });
    Some(match stored {
        Ok(identity) => {
            line.send(&ProvisionMessage::Accepted {
                device: identity.name(),
                proof: accepted_proof(identity.key(), nonce, identity.name()),
            });
            info!("provisioned as `{}`", identity.name());
            Outcome::Accepted(identity)
        }
        Err(reason) => {
            line.send(&ProvisionMessage::Refused { reason });
            warn!("provisioning request refused: {}", reason.message());
            Outcome::Refused
        }
    })
}

/// The identity the board goes on with, for as long as it runs.
static mut IDENTITY: MaybeUninit<Identity> = MaybeUninit::uninit();
/// Set once [`IDENTITY`] is written.
static IDENTITY_KEPT: AtomicBool = AtomicBool::new(false);

/// Runs the exchange and keeps the identity the board goes on with (the one
/// in `page` or a new one a host gave it) in a static. Not inlined: the
/// identity passes through this frame only, so `main`'s frame, which lasts
/// as long as the board runs, holds just the reference (on an 8 KiB part
/// that decides whether the stack fits).
#[inline(never)]
pub fn run<P: NvPage>(
    uart: &mut board::Uart,
    page: &mut P,
    nonces: &mut Nonces,
) -> &'static Identity {
    let identity = exchange(uart, page, nonces);
    // Load and store under a critical section: thumbv6m and rv32imc have no atomic swap.
    let first = critical_section::with(|_| {
        let kept = IDENTITY_KEPT.load(Ordering::Relaxed);
        IDENTITY_KEPT.store(true, Ordering::Relaxed);
        !kept
    });
    if !first {
        panic!("the identity is kept once");
    }
    // SAFETY: `first` is true exactly once (tested and set with interrupts
    // off on a single core), so this is the only reference ever made to IDENTITY.
    unsafe { &mut *core::ptr::addr_of_mut!(IDENTITY) }.write(identity)
}

/// The exchange itself: returns the identity in `page`, or a new one a host gave it.
#[inline(never)]
fn exchange<P: NvPage>(uart: &mut board::Uart, page: &mut P, nonces: &mut Nonces) -> Identity {
    let mut line = Line {
        uart,
        frames: SerialAccumulator::new([0u8; WIRE_LEN]),
    };
    let mut current = Identity::load(page);
    match &current {
        Some(identity) => info!(
            "identity `{}` from the identity page; re-provisioning window {} ms",
            identity.name(),
            WINDOW_MS
        ),
        None => info!(
            "no identity: waiting to be provisioned (host-server device add NAME --provision serial://PORT)"
        ),
    }
    loop {
        let nonce = nonces.next();
        let device = current.as_ref().map(|identity| identity.name());
        let window = current.as_ref().map(|_| WINDOW_MS);
        let outcome = line.offer_and_wait(&nonce, device, window, |line, message| {
            handle(line, message, &nonce, current.as_ref(), page)
        });
        match (outcome, current.take()) {
            (Some(Outcome::Accepted(identity)), _) => return identity,
            (Some(Outcome::Refused), kept) => current = kept,
            (None, Some(identity)) => return identity,
            // Without identity the wait only ends with a request.
            (None, None) => {}
        }
    }
}

fn now_ms() -> u64 {
    board::now_us() / 1_000
}
