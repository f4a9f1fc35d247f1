//! Provisioning: the exchange on a serial line, before any `Hello`, in which a
//! host gives a board its identity (device name and key), so that one firmware
//! image serves a whole fleet.
//!
//! ```text
//! board → host   Offer { nonce, device }          device: None on a board without identity
//! host  → board  Provision { nonce, device, key, proof }
//! board → host   Accepted { device, proof }  or  Refused { reason }
//! ```
//!
//! Frames are serial frames (COBS + CRC-32 + `0x00`) whose payload is
//! [`MAGIC`] followed by the postcard encoding of a [`ProvisionMessage`], so
//! neither side mistakes one for a protocol frame. A board that already has an
//! identity accepts a new one only with a `proof` made with its current key
//! over its fresh nonce ([`request_proof`]), and the new key then travels
//! encrypted under the current one ([`wrap_key`]): nobody on the line can take
//! a board over, replay an old request or read the new key. See
//! docs/PROTOCOL.md, *Provisioning*.

use serde::{Deserialize, Serialize};

use crate::auth::{tags_equal, DEVICE_KEY_LEN};
use crate::framing::mac::hmac_sha256;
use crate::message::{CodecError, Mac, Nonce};
use crate::name::{validate_label, MAX_DEVICE_NAME_LEN};
use crate::text::text;

/// The first bytes of every provisioning payload (`"SSPV"`).
pub const MAGIC: [u8; 4] = *b"SSPV";

/// Largest provisioning payload (a `Provision` with a 32-byte name and a proof
/// takes 119 bytes); receivers need a buffer for its serial frame only.
pub const MAX_PAYLOAD: usize = 128;

/// A device key as provisioning carries it.
pub type DeviceKey = [u8; DEVICE_KEY_LEN];

const REQUEST_CONTEXT: &[u8] = b"statesync-provision-v1";
const WRAP_CONTEXT: &[u8] = b"statesync-provision-wrap-v1";
const ACCEPTED_CONTEXT: &[u8] = b"statesync-provisioned-v1";

/// One provisioning message, either direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ProvisionMessage<'a> {
    /// Board → host: the board's current device name (`None`: it has no
    /// identity and waits for one) and the nonce the next request must carry.
    Offer {
        /// Fresh for every offer that follows a request.
        nonce: Nonce,
        /// The name the board holds now.
        device: Option<&'a str>,
    },
    /// Host → board: take this identity.
    Provision {
        /// The nonce of the board's latest `Offer`.
        nonce: Nonce,
        /// The new device name.
        device: &'a str,
        /// The new key: as is for a board without identity, else [`wrap_key`]ped
        /// under the current key.
        key: DeviceKey,
        /// [`request_proof`] under the current key; `None` for a board without identity.
        proof: Option<Mac>,
    },
    /// Board → host: the identity is stored.
    Accepted {
        /// The name the board holds now.
        device: &'a str,
        /// [`accepted_proof`] under the new key: the board holds it.
        proof: Mac,
    },
    /// Board → host: the request was refused; the board keeps what it had.
    Refused {
        /// Why.
        reason: Refusal,
    },
}

/// Why a board refused a provisioning request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Refusal {
    /// The board has an identity and the request's proof is missing or not
    /// made with its current key.
    NotAuthorized,
    /// The request's nonce is not that of the board's latest offer (a replay,
    /// or an offer the host missed).
    StaleNonce,
    /// The device name is not acceptable.
    BadName,
    /// The board could not write its non-volatile page.
    StoreFailed,
}

impl Refusal {
    /// What happened and what to do.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotAuthorized => text!(
                "not authorized",
                "the board already has an identity and the request was not signed with its current key; provision it from the server that holds that key"
            ),
            Refusal::StaleNonce => text!(
                "stale nonce",
                "the request did not carry the nonce of the board's latest offer; try again"
            ),
            Refusal::BadName => text!(
                "bad device name",
                "the board refused the device name; use 1 to 32 bytes, one part, no control characters"
            ),
            Refusal::StoreFailed => text!(
                "store failed",
                "the board could not write its non-volatile page; try again, or check the board"
            ),
        }
    }
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl<'a> ProvisionMessage<'a> {
    /// Writes [`MAGIC`] and the message into `out`, returning the used prefix.
    ///
    /// The bytes serde's `Serialize` writes through postcard after the magic,
    /// by the hand-written encoder of `encode.rs`, a fraction of its size on a board.
    pub fn encode<'b>(&self, out: &'b mut [u8]) -> Result<&'b mut [u8], CodecError> {
        crate::encode::provision_payload(self, out)
    }

    /// Decodes a whole payload: [`MAGIC`], then exactly one message.
    ///
    /// The wire form of serde's `Deserialize` after the magic, read by the
    /// hand-written decoder of `decode.rs`.
    pub fn decode(bytes: &'a [u8]) -> Result<ProvisionMessage<'a>, CodecError> {
        crate::decode::provision_payload(bytes)
    }
}

/// True when `payload` is a provisioning payload (starts with [`MAGIC`]), so a
/// server can leave it to the provisioning tool instead of answering it.
pub fn is_provisioning(payload: &[u8]) -> bool {
    payload.starts_with(&MAGIC)
}

/// `HMAC-SHA256(current key, "statesync-provision-v1" ‖ nonce ‖ new key ‖ device)`:
/// proves the request comes from someone who holds the board's current key.
pub fn request_proof(current_key: &[u8], nonce: &Nonce, device: &str, new_key: &DeviceKey) -> Mac {
    hmac_sha256(
        current_key,
        &[REQUEST_CONTEXT, nonce, new_key, device.as_bytes()],
    )
}

/// The new key XOR `HMAC-SHA256(current key, "statesync-provision-wrap-v1" ‖ nonce)`;
/// wrapping twice gives the key back.
pub fn wrap_key(current_key: &[u8], nonce: &Nonce, key: &DeviceKey) -> DeviceKey {
    let pad = hmac_sha256(current_key, &[WRAP_CONTEXT, nonce]);
    let mut wrapped = *key;
    for (byte, pad) in wrapped.iter_mut().zip(pad) {
        *byte ^= pad;
    }
    wrapped
}

/// `HMAC-SHA256(new key, "statesync-provisioned-v1" ‖ nonce ‖ device)`: the
/// board's proof, in `Accepted`, that it stored the new key.
pub fn accepted_proof(new_key: &DeviceKey, nonce: &Nonce, device: &str) -> Mac {
    hmac_sha256(new_key, &[ACCEPTED_CONTEXT, nonce, device.as_bytes()])
}

/// The host's request for a board that offered `nonce`: `current_key` is the
/// board's key now (`None` for a board without identity).
pub fn request<'a>(
    nonce: Nonce,
    current_key: Option<&[u8]>,
    device: &'a str,
    new_key: &DeviceKey,
) -> ProvisionMessage<'a> {
    let (key, proof) = match current_key {
        Some(current) => (
            wrap_key(current, &nonce, new_key),
            Some(request_proof(current, &nonce, device, new_key)),
        ),
        None => (*new_key, None),
    };
    ProvisionMessage::Provision {
        nonce,
        device,
        key,
        proof,
    }
}

/// What a board makes of a request: the new name and key to store, or why it
/// refuses. `nonce` is that of the board's latest offer, `current_key` its key
/// now (`None` without identity). Anything but a `Provision` is not a request
/// and gives `None`.
pub fn check_request<'a>(
    message: &ProvisionMessage<'a>,
    nonce: &Nonce,
    current_key: Option<&[u8]>,
) -> Option<Result<(&'a str, DeviceKey), Refusal>> {
    let ProvisionMessage::Provision {
        nonce: request_nonce,
        device,
        key,
        proof,
    } = *message
    else {
        return None;
    };
    Some(check(request_nonce, device, key, proof, nonce, current_key))
}

fn check<'a>(
    request_nonce: Nonce,
    device: &'a str,
    key: DeviceKey,
    proof: Option<Mac>,
    nonce: &Nonce,
    current_key: Option<&[u8]>,
) -> Result<(&'a str, DeviceKey), Refusal> {
    if request_nonce != *nonce {
        return Err(Refusal::StaleNonce);
    }
    let key = match current_key {
        None => key,
        Some(current) => {
            let key = wrap_key(current, nonce, &key);
            let expected = request_proof(current, nonce, device, &key);
            match proof {
                Some(proof) if tags_equal(&proof, &expected) => key,
                _ => return Err(Refusal::NotAuthorized),
            }
        }
    };
    validate_label(device, MAX_DEVICE_NAME_LEN).map_err(|_| Refusal::BadName)?;
    Ok((device, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: Nonce = [7; 16];
    const OTHER_NONCE: Nonce = [8; 16];
    const OLD_KEY: DeviceKey = [1; 32];
    const NEW_KEY: DeviceKey = [2; 32];

    fn round_trip(message: ProvisionMessage<'_>) {
        let mut out = [0u8; MAX_PAYLOAD];
        let bytes = message.encode(&mut out).expect("fits MAX_PAYLOAD");
        assert!(is_provisioning(bytes));
        assert_eq!(ProvisionMessage::decode(bytes), Ok(message));
    }

    #[test]
    fn every_message_round_trips_and_the_largest_fits_max_payload() {
        let longest = "d".repeat(MAX_DEVICE_NAME_LEN);
        round_trip(ProvisionMessage::Offer {
            nonce: NONCE,
            device: Some(&longest),
        });
        round_trip(request(NONCE, Some(&OLD_KEY), &longest, &NEW_KEY));
        round_trip(ProvisionMessage::Accepted {
            device: &longest,
            proof: [3; 32],
        });
        round_trip(ProvisionMessage::Refused {
            reason: Refusal::StoreFailed,
        });
    }

    #[test]
    fn a_board_without_identity_takes_any_request_with_its_nonce() {
        let message = request(NONCE, None, "board-7", &NEW_KEY);
        assert_eq!(
            check_request(&message, &NONCE, None),
            Some(Ok(("board-7", NEW_KEY)))
        );
    }

    #[test]
    fn a_board_with_identity_takes_a_request_signed_with_its_key_and_unwraps_the_new_key() {
        let message = request(NONCE, Some(&OLD_KEY), "board-8", &NEW_KEY);
        let ProvisionMessage::Provision { key, .. } = message else {
            panic!("a request");
        };
        assert_ne!(key, NEW_KEY, "the new key travels wrapped");
        assert_eq!(
            check_request(&message, &NONCE, Some(&OLD_KEY)),
            Some(Ok(("board-8", NEW_KEY)))
        );
    }

    #[test]
    fn a_board_with_identity_refuses_an_unsigned_or_wrongly_signed_request() {
        let unsigned = request(NONCE, None, "thief", &NEW_KEY);
        assert_eq!(
            check_request(&unsigned, &NONCE, Some(&OLD_KEY)),
            Some(Err(Refusal::NotAuthorized))
        );
        let wrong_key = request(NONCE, Some(&[9; 32]), "thief", &NEW_KEY);
        assert_eq!(
            check_request(&wrong_key, &NONCE, Some(&OLD_KEY)),
            Some(Err(Refusal::NotAuthorized))
        );
    }

    #[test]
    fn a_request_for_an_older_nonce_is_refused_as_stale() {
        let replayed = request(OTHER_NONCE, Some(&OLD_KEY), "board-8", &NEW_KEY);
        assert_eq!(
            check_request(&replayed, &NONCE, Some(&OLD_KEY)),
            Some(Err(Refusal::StaleNonce))
        );
    }

    #[test]
    fn a_bad_device_name_is_refused_and_other_messages_are_no_request() {
        let message = request(NONCE, None, "a/b", &NEW_KEY);
        assert_eq!(
            check_request(&message, &NONCE, None),
            Some(Err(Refusal::BadName))
        );
        let offer = ProvisionMessage::Offer {
            nonce: NONCE,
            device: None,
        };
        assert_eq!(check_request(&offer, &NONCE, None), None);
    }

    #[test]
    fn a_payload_without_the_magic_or_with_trailing_bytes_is_malformed() {
        let mut out = [0u8; MAX_PAYLOAD];
        let offer = ProvisionMessage::Offer {
            nonce: NONCE,
            device: None,
        };
        let len = offer.encode(&mut out).expect("fits").len();
        assert_eq!(
            ProvisionMessage::decode(&out[1..len]),
            Err(CodecError::Malformed)
        );
        assert_eq!(
            ProvisionMessage::decode(&out[..len + 1]),
            Err(CodecError::Malformed)
        );
    }

    #[test]
    fn wrapping_twice_gives_the_key_back() {
        let wrapped = wrap_key(&OLD_KEY, &NONCE, &NEW_KEY);
        assert_eq!(wrap_key(&OLD_KEY, &NONCE, &wrapped), NEW_KEY);
    }
}
