//! The session (link) machine: handshake, authentication, request ids, liveness.
//!
//! `Idle → AwaitChallenge → AwaitWelcome → Ready → Closed`; every change goes
//! through [`Session::set_state`], which logs it.

use super::fmt::debug;
use crate::auth::ContentHasher;
use crate::framing::mac::Opener;
use crate::message::{Nonce, RequestId, MIN_FRAME};

/// Where the session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkState {
    /// No session: call [`super::Client::connect`].
    Idle,
    /// `Hello` sent (or about to be), waiting for `Challenge`.
    AwaitChallenge,
    /// `Authenticate` sent (or about to be), waiting for `Welcome`.
    AwaitWelcome,
    /// Authenticated: requests and transfers run.
    Ready,
    /// The session ended (`Bye`, `Goodbye`, failure or timeout); connect again.
    Closed,
}

/// Number of distinct request ids (1..=65535).
const ID_SPACE: u32 = u16::MAX as u32;

/// The request id `steps` after `id`, wrapping and skipping 0.
pub(crate) fn id_after(id: RequestId, steps: u32) -> RequestId {
    let ordinal = (u32::from(id.max(1)) - 1 + steps % ID_SPACE) % ID_SPACE;
    (ordinal + 1) as RequestId
}

/// How many steps after `first` the id `id` is.
pub(crate) fn id_distance(first: RequestId, id: RequestId) -> u32 {
    (u32::from(id.max(1)) + ID_SPACE - u32::from(first.max(1))) % ID_SPACE
}

/// The nonce of handshake attempt `attempt`: the driver's nonce first, then
/// values derived from it, so a retried `Hello` never reuses a nonce.
fn attempt_nonce(base: &Nonce, attempt: u8) -> Nonce {
    if attempt == 0 {
        return *base;
    }
    let mut hasher = ContentHasher::new();
    hasher.update(b"statesync-hello-retry");
    hasher.update(base);
    hasher.update(&[attempt]);
    let digest = hasher.finish().0;
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&digest[..16]);
    nonce
}

/// Handshake state, negotiated frame size, ids and liveness timers.
#[derive(Debug)]
pub(crate) struct Session {
    state: LinkState,
    /// When the current state was entered.
    pub since_ms: u64,
    base_nonce: Nonce,
    /// Nonce of the current handshake attempt.
    pub client_nonce: Nonce,
    /// Nonce from `Challenge`.
    pub server_nonce: Nonce,
    /// Handshake attempts made (serial lines retry `Hello`).
    pub attempt: u8,
    /// Largest payload in both directions: [`MIN_FRAME`] until `Welcome`.
    pub max_frame: u32,
    /// A `Hello` is to be sent.
    pub hello_due: bool,
    /// An `Authenticate` is to be sent.
    pub auth_due: bool,
    /// A keepalive `Ping` is to be sent.
    pub ping_due: bool,
    /// Ids of recent keepalive pings (0: free), so their `Pong`s are not events.
    keepalive_ids: [RequestId; 4],
    /// A keepalive ping is unanswered.
    pub keepalive_outstanding: bool,
    /// When the last keepalive ping went out.
    pub last_ping_ms: u64,
    /// Last time a frame arrived.
    pub last_rx_ms: u64,
    /// Last time bytes were handed to the driver.
    pub last_tx_ms: u64,
    /// Checks the server's frames after `Welcome`.
    pub opener: Option<Opener>,
    next_id: RequestId,
}

impl Session {
    /// A session that has not started.
    pub const fn new() -> Self {
        Session {
            state: LinkState::Idle,
            since_ms: 0,
            base_nonce: [0; 16],
            client_nonce: [0; 16],
            server_nonce: [0; 16],
            attempt: 0,
            max_frame: MIN_FRAME,
            hello_due: false,
            auth_due: false,
            ping_due: false,
            keepalive_ids: [0; 4],
            keepalive_outstanding: false,
            last_ping_ms: 0,
            last_rx_ms: 0,
            last_tx_ms: 0,
            opener: None,
            next_id: 1,
        }
    }

    /// The current state.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// The one place the state changes; logs every transition.
    pub fn set_state(&mut self, next: LinkState, now: u64) {
        if next != self.state {
            debug!("session: {} -> {}", self.state, next);
        }
        self.state = next;
        self.since_ms = now;
    }

    /// Starts a handshake with the driver's random `nonce`.
    pub fn start(&mut self, now: u64, nonce: Nonce) {
        let next_id = self.next_id;
        *self = Session::new();
        self.next_id = next_id;
        self.base_nonce = nonce;
        self.client_nonce = nonce;
        self.last_rx_ms = now;
        self.last_tx_ms = now;
        self.hello_due = true;
        self.set_state(LinkState::AwaitChallenge, now);
    }

    /// Starts the next handshake attempt with a fresh derived nonce.
    pub fn retry_hello(&mut self, now: u64) {
        self.attempt = self.attempt.saturating_add(1);
        self.client_nonce = attempt_nonce(&self.base_nonce, self.attempt);
        self.hello_due = true;
        self.auth_due = false;
        self.set_state(LinkState::AwaitChallenge, now);
    }

    /// Remembers keepalive ping `id`, sent at `now`.
    pub fn keepalive_sent(&mut self, id: RequestId, now: u64) {
        self.keepalive_ids.rotate_right(1);
        self.keepalive_ids[0] = id;
        self.keepalive_outstanding = true;
        self.last_ping_ms = now;
    }

    /// True (once) when `id` is a keepalive ping: its answer is not an event.
    pub fn take_keepalive(&mut self, id: RequestId) -> bool {
        match self.keepalive_ids.iter_mut().find(|k| **k == id && id != 0) {
            Some(slot) => {
                *slot = 0;
                self.keepalive_outstanding = false;
                true
            }
            None => false,
        }
    }

    /// A fresh request id.
    pub fn next_id(&mut self) -> RequestId {
        self.reserve_ids(1)
    }

    /// Reserves `count` consecutive ids, returning the first.
    pub fn reserve_ids(&mut self, count: u32) -> RequestId {
        let first = self.next_id;
        self.next_id = id_after(first, count);
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_wrap_and_skip_zero() {
        assert_eq!(id_after(65_535, 1), 1);
        assert_eq!(id_after(65_534, 3), 2);
        assert_eq!(id_distance(65_534, 2), 3);
        let mut session = Session::new();
        session.next_id = 65_535;
        assert_eq!(session.next_id(), 65_535);
        assert_eq!(session.next_id(), 1);
    }

    #[test]
    fn retried_hello_uses_a_fresh_nonce() {
        let mut session = Session::new();
        session.start(0, [9; 16]);
        assert_eq!(session.client_nonce, [9; 16]);
        session.retry_hello(10);
        let second = session.client_nonce;
        assert_ne!(second, [9; 16]);
        session.retry_hello(20);
        assert_ne!(session.client_nonce, second);
    }
}
