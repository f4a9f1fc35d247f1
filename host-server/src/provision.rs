//! Provisioning a board over its serial line: `host-server device add NAME
//! --provision serial://PATH?baud=N` waits for the board's offer, sends it
//! the new name and key (signed with the board's current key when it has an
//! identity already) and checks the board's proof that it stored them. The
//! exchange is `proto_core::provision` (docs/PROTOCOL.md, *Provisioning*);
//! this module moves its frames on a blocking line and keeps time.

use std::io::{ErrorKind, Read, Write};
use std::str::FromStr;
use std::time::{Duration, Instant};

use proto_core::auth::tags_equal;
use proto_core::framing::{Feed, Framing, SerialAccumulator};
use proto_core::message::Nonce;
use proto_core::provision::{
    accepted_proof, request, DeviceKey, ProvisionMessage, Refusal, MAX_PAYLOAD,
};

/// How long the board may take to answer a request (it erases and writes a flash page).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one read of the port waits for a byte.
const READ_POLL: Duration = Duration::from_millis(50);

/// Where a board to provision is: `serial://PATH[?baud=N]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionTarget {
    /// The serial port's path.
    pub path: String,
    /// Its line speed (default 115200).
    pub baud: u32,
}

/// Why a board was not provisioned.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The `--provision` value is not a serial URL.
    #[error("`{0}` is not serial://PATH[?baud=N] (e.g. serial:///dev/ttyACM0?baud=115200)")]
    BadUrl(String),
    /// The port cannot be opened.
    #[error("cannot open serial port {path}: {reason}; check the path, that the board is plugged in, that you may use it (group dialout), and that no `host-server serve --serial` holds it")]
    Open {
        /// The path.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// Reading or writing the port failed.
    #[error("the serial line failed: {0}; check the cable")]
    Line(#[source] std::io::Error),
    /// No offer came within the wait.
    #[error("no board offered itself within {0:?}; a board with an identity offers only just after a reset: reset it (or give a longer --wait)")]
    NoOffer(Duration),
    /// The board has an identity whose key this server does not hold.
    #[error("the board is provisioned as `{0}`, a device this server's database does not know; re-provisioning needs its current key: run this on the server that registered it")]
    UnknownCurrent(String),
    /// The board refused the request.
    #[error("the board refused: {0}")]
    Refused(Refusal),
    /// No answer came after the request.
    #[error("the board did not answer within {0:?}; it may or may not hold the new identity: reset it and look at what it offers")]
    NoAnswer(Duration),
    /// The board's `Accepted` did not prove it holds the new key.
    #[error("the board's answer does not prove it stored the new key (someone else on the line?); the device was not registered")]
    BadProof,
}

impl FromStr for ProvisionTarget {
    type Err = ProvisionError;

    fn from_str(text: &str) -> Result<ProvisionTarget, ProvisionError> {
        let bad = || ProvisionError::BadUrl(text.to_string());
        let rest = text.strip_prefix("serial://").ok_or_else(bad)?;
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let baud = match query {
            None => crate::serial::DEFAULT_BAUD,
            Some(query) => query
                .strip_prefix("baud=")
                .and_then(|baud| baud.parse().ok())
                .filter(|&baud| baud > 0)
                .ok_or_else(bad)?,
        };
        if path.is_empty() {
            return Err(bad());
        }
        Ok(ProvisionTarget {
            path: path.to_string(),
            baud,
        })
    }
}

impl ProvisionTarget {
    /// Opens the port, with reads that wait at most a moment, and drops what
    /// it held: only offers made from now on are answered.
    pub fn open(&self) -> Result<Box<dyn serialport::SerialPort>, ProvisionError> {
        let open_error = |error: serialport::Error| ProvisionError::Open {
            path: self.path.clone(),
            reason: error.to_string(),
        };
        let port = serialport::new(&self.path, self.baud)
            .timeout(READ_POLL)
            .open()
            .map_err(open_error)?;
        port.clear(serialport::ClearBuffer::Input)
            .map_err(open_error)?;
        Ok(port)
    }
}

/// What a board offered: the nonce its request must carry and the device it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The nonce of the offer.
    pub nonce: Nonce,
    /// The board's current device name; `None` without identity.
    pub device: Option<String>,
}

/// A serial line carrying provisioning frames.
pub struct Line<L> {
    line: L,
    frames: SerialAccumulator<Vec<u8>>,
}

impl<L: Read + Write> Line<L> {
    /// Provisioning on `line`, whose reads return `TimedOut` (or 0 bytes) when nothing came.
    pub fn new(line: L) -> Line<L> {
        Line {
            line,
            frames: SerialAccumulator::new(vec![0; Framing::Serial.max_wire_len(MAX_PAYLOAD)]),
        }
    }

    /// Waits up to `wait` for the board's next offer.
    pub fn wait_for_offer(&mut self, wait: Duration) -> Result<Offer, ProvisionError> {
        let deadline = Instant::now() + wait;
        loop {
            let offer = self.next_message(deadline, |message| match message {
                ProvisionMessage::Offer { nonce, device } => Some(Offer {
                    nonce: *nonce,
                    device: device.map(str::to_string),
                }),
                _ => None,
            })?;
            if let Some(offer) = offer {
                return Ok(offer);
            }
            if Instant::now() >= deadline {
                return Err(ProvisionError::NoOffer(wait));
            }
        }
    }

    /// Sends the board that made `offer` the identity `device` and `key`,
    /// signed with `current_key` (the board's key now, `None` without
    /// identity), and checks the board's answer.
    pub fn provision(
        &mut self,
        offer: &Offer,
        current_key: Option<&[u8]>,
        device: &str,
        key: &DeviceKey,
    ) -> Result<(), ProvisionError> {
        let message = request(offer.nonce, current_key, device, key);
        let mut payload = [0u8; MAX_PAYLOAD];
        let payload = message
            .encode(&mut payload)
            .map_err(|_| ProvisionError::BadProof)?;
        let mut wire = vec![0u8; Framing::Serial.max_wire_len(payload.len()) + 1];
        let len = Framing::Serial
            .encode(payload, &mut wire[1..])
            .map_err(|_| ProvisionError::BadProof)?;
        // wire[0] stays 0: a lone delimiter ends whatever noise the line holds.
        self.line
            .write_all(&wire[..len + 1])
            .and_then(|()| self.line.flush())
            .map_err(ProvisionError::Line)?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let answer = self.next_message(deadline, |message| match message {
                ProvisionMessage::Accepted {
                    device: stored,
                    proof,
                } => Some(Ok(*stored == device
                    && tags_equal(proof, &accepted_proof(key, &offer.nonce, device)))),
                ProvisionMessage::Refused { reason } => Some(Err(*reason)),
                _ => None,
            })?;
            match answer {
                Some(Ok(true)) => return Ok(()),
                Some(Ok(false)) => return Err(ProvisionError::BadProof),
                Some(Err(reason)) => return Err(ProvisionError::Refused(reason)),
                None if Instant::now() >= deadline => {
                    return Err(ProvisionError::NoAnswer(ANSWER_TIMEOUT))
                }
                None => {}
            }
        }
    }

    /// Reads until a provisioning message comes that `pick` takes, or the deadline.
    fn next_message<T>(
        &mut self,
        deadline: Instant,
        mut pick: impl FnMut(&ProvisionMessage<'_>) -> Option<T>,
    ) -> Result<Option<T>, ProvisionError> {
        let mut buf = [0u8; 256];
        while Instant::now() < deadline {
            let read = match self.line.read(&mut buf) {
                Ok(read) => read,
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                    ) =>
                {
                    0
                }
                Err(error) => return Err(ProvisionError::Line(error)),
            };
            if read == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let mut input = &buf[..read];
            while !input.is_empty() {
                match self.frames.feed(input) {
                    Feed::Consumed => break,
                    Feed::Frame { payload, remaining } => {
                        let picked = ProvisionMessage::decode(payload)
                            .ok()
                            .and_then(|message| pick(&message));
                        if picked.is_some() {
                            return Ok(picked);
                        }
                        input = remaining;
                    }
                    Feed::Error { remaining, .. } => input = remaining,
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::provision::check_request;
    use std::collections::VecDeque;

    /// A board on a simulated line: it has offered `nonce` as `current`, and
    /// answers one request as the firmware does.
    struct FakeBoard {
        nonce: Nonce,
        current: Option<(String, DeviceKey)>,
        to_host: VecDeque<u8>,
        from_host: Vec<u8>,
        /// What the board stored.
        stored: Option<(String, DeviceKey)>,
    }

    impl FakeBoard {
        fn new(nonce: Nonce, current: Option<(&str, DeviceKey)>) -> FakeBoard {
            let mut board = FakeBoard {
                nonce,
                current: current.map(|(name, key)| (name.to_string(), key)),
                to_host: VecDeque::new(),
                from_host: Vec::new(),
                stored: None,
            };
            let device = board.current.as_ref().map(|(name, _)| name.clone());
            board.send(&ProvisionMessage::Offer {
                nonce,
                device: device.as_deref(),
            });
            board
        }

        fn send(&mut self, message: &ProvisionMessage<'_>) {
            let mut payload = [0u8; MAX_PAYLOAD];
            let payload = message.encode(&mut payload).expect("fits");
            let mut wire = vec![0u8; Framing::Serial.max_wire_len(payload.len())];
            let len = Framing::Serial.encode(payload, &mut wire).expect("fits");
            self.to_host.extend(&wire[..len]);
        }
    }

    impl Read for FakeBoard {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.to_host.len());
            for slot in &mut buf[..n] {
                *slot = self.to_host.pop_front().expect("counted");
            }
            Ok(n)
        }
    }

    impl Write for FakeBoard {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.from_host.extend_from_slice(buf);
            let mut frames = SerialAccumulator::new(vec![0u8; 512]);
            let wire = std::mem::take(&mut self.from_host);
            let mut input = &wire[..];
            while let Feed::Frame { payload, remaining } = frames.feed(input) {
                let payload = payload.to_vec();
                input = remaining;
                let message = ProvisionMessage::decode(&payload).expect("a provisioning frame");
                let current_key = self.current.as_ref().map(|(_, key)| &key[..]);
                match check_request(&message, &self.nonce, current_key) {
                    Some(Ok((device, key))) => {
                        self.stored = Some((device.to_string(), key));
                        let proof = accepted_proof(&key, &self.nonce, device);
                        self.send(&ProvisionMessage::Accepted { device, proof });
                    }
                    Some(Err(reason)) => self.send(&ProvisionMessage::Refused { reason }),
                    None => {}
                }
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const NONCE: Nonce = [5; 16];

    #[test]
    fn a_fresh_board_is_provisioned_with_the_name_and_key() {
        let mut line = Line::new(FakeBoard::new(NONCE, None));
        let offer = line
            .wait_for_offer(Duration::from_secs(1))
            .expect("an offer");
        assert_eq!(offer.device, None);
        line.provision(&offer, None, "board-1", &[4; 32])
            .expect("accepted");
        assert_eq!(line.line.stored, Some(("board-1".to_string(), [4; 32])));
    }

    #[test]
    fn a_provisioned_board_takes_a_new_identity_signed_with_its_key_only() {
        let mut line = Line::new(FakeBoard::new(NONCE, Some(("old", [1; 32]))));
        let offer = line
            .wait_for_offer(Duration::from_secs(1))
            .expect("an offer");
        assert_eq!(offer.device.as_deref(), Some("old"));
        let refused = line.provision(&offer, Some(&[2; 32]), "new", &[3; 32]);
        assert!(
            matches!(
                refused,
                Err(ProvisionError::Refused(Refusal::NotAuthorized))
            ),
            "{refused:?}"
        );
        assert_eq!(line.line.stored, None);
        line.provision(&offer, Some(&[1; 32]), "new", &[3; 32])
            .expect("accepted with the current key");
        assert_eq!(line.line.stored, Some(("new".to_string(), [3; 32])));
    }

    #[test]
    fn serial_urls_give_path_and_baud() {
        assert_eq!(
            "serial:///dev/ttyACM0?baud=921600"
                .parse::<ProvisionTarget>()
                .ok(),
            Some(ProvisionTarget {
                path: "/dev/ttyACM0".into(),
                baud: 921_600
            })
        );
        assert_eq!(
            "serial:///dev/ttyUSB1".parse::<ProvisionTarget>().ok(),
            Some(ProvisionTarget {
                path: "/dev/ttyUSB1".into(),
                baud: 115_200
            })
        );
        for bad in [
            "/dev/ttyUSB0",
            "serial://",
            "serial:///dev/x?baud=0",
            "tcp://a:1",
        ] {
            assert!(bad.parse::<ProvisionTarget>().is_err(), "{bad}");
        }
    }
}
