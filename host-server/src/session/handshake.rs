//! The handshake: `Hello` → `Challenge` → `Authenticate` → `Welcome`.
//!
//! Nothing but the handshake is served before it completes. A wrong key or an
//! unknown device get the same answer, after a short delay that slows down
//! guessing; an address with too many failed logins is refused unchecked for a
//! while ([`super::logins`]). The handshake has its own short deadline, and a
//! TCP frame above [`MIN_FRAME`] before `Welcome` closes the link at once.

use proto_core::auth::{client_tag, server_tag, tags_equal, ContentHasher};
use proto_core::framing::mac::{Direction, Opener, Sealer, SessionKey, TRAILER_LEN};
use proto_core::framing::{negotiate_max_frame, FrameError, Framing};
use proto_core::message::{Nonce, MIN_FRAME};
use proto_core::name::{validate_label, MAX_DEVICE_NAME_LEN};
use proto_core::provision::is_provisioning;
use proto_core::{
    ClientFrame, ClientMessage, ContentHash, ErrorCode, ServerMessage, PROTOCOL_VERSION,
};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::io::{leading_request_id, Frame, FrameReader, FrameWriter, WriteBound};
use crate::admission::device_slots::DeviceSlot;
use crate::admission::failed_logins::FailedLogins;
use crate::service::Service;

/// An authenticated device.
#[derive(Debug)]
pub struct Identity {
    /// The device's name.
    pub device: String,
    /// The negotiated largest frame payload.
    pub max_frame: u32,
    /// SHA-256 of the key it logged in with, to notice when the key is removed or replaced.
    pub key_digest: ContentHash,
    /// One of the device's session slots, held until the session ends.
    pub slot: DeviceSlot,
    /// Checks the device's frames from now on (the writer seals the server's).
    pub opener: Opener,
}

/// Why a handshake did not complete.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The link closed or failed.
    LinkLost,
    /// Nothing arrived in time.
    TimedOut,
    /// The peer was told why (version, auth, order) and should be disconnected.
    Refused(&'static str),
    /// The server is stopping.
    ShuttingDown,
    /// A TCP frame larger than allowed before `Welcome` (not yet answered).
    Oversized,
}

/// Reads the next frame payload (copied: handshake frames are small), skipping damaged frames.
async fn next_payload<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    deadline: Instant,
) -> Result<Vec<u8>, Refusal> {
    let framing = reader.framing();
    loop {
        while let Some(frame) = reader.next_frame() {
            match frame {
                // A board offering itself for provisioning is not saying Hello: leave
                // it to `host-server device add --provision` (docs/PROTOCOL.md).
                Frame::Payload(payload) if is_provisioning(payload) => {
                    tracing::debug!("a board's provisioning offer before the handshake: ignored")
                }
                Frame::Payload(payload) if !payload.is_empty() => return Ok(payload.to_vec()),
                Frame::Payload(_) => {}
                // On TCP nothing damages frames: an oversized one is a peer to drop, not to
                // read gigabytes from.
                Frame::Damaged(FrameError::Overrun) if framing == Framing::Length => {
                    return Err(Refusal::Oversized)
                }
                Frame::Damaged(error) => {
                    tracing::debug!(%error, "damaged frame before the handshake")
                }
            }
        }
        match tokio::time::timeout_at(deadline, reader.fill()).await {
            Err(_) => return Err(Refusal::TimedOut),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(Refusal::LinkLost),
            Ok(Ok(_)) => {}
        }
    }
}

async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    id: u16,
    code: ErrorCode,
    message: &str,
    why: &'static str,
) -> Refusal {
    let _ = writer.push(id, ServerMessage::Error { code, message });
    let _ = writer.flush().await;
    Refusal::Refused(why)
}

/// Tells the peer its frame was too large when that is why the handshake stopped.
async fn answer_oversized<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    refusal: Refusal,
) -> Refusal {
    if refusal != Refusal::Oversized {
        return refusal;
    }
    let message = format!("frames before Welcome may hold at most {MIN_FRAME} bytes");
    refuse(
        writer,
        0,
        ErrorCode::FrameTooLarge,
        &message,
        "oversized frame",
    )
    .await
}

/// Runs the handshake. `first` is a `Hello` payload already read (a session
/// restarted by a new `Hello` on a serial line); `peer` is the link's address,
/// by which failed logins are counted.
pub async fn handshake<R, W>(
    service: &Service,
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    mut first: Option<Vec<u8>>,
    peer: &str,
    shutdown: &mut tokio::sync::broadcast::Receiver<()>,
) -> Result<Identity, Refusal>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    reader.set_limit(MIN_FRAME);
    writer.set_limit(MIN_FRAME);
    writer.set_sealer(None);
    let deadline = Instant::now() + service.limits.handshake_timeout;
    // A peer that does not read its Challenge cannot keep the link past the deadline.
    writer.set_bound(WriteBound::Until(deadline));
    let address = FailedLogins::address_of(peer);
    let mut payload = match first.take() {
        Some(payload) => payload,
        None => tokio::select! {
            payload = next_payload(reader, deadline) => match payload {
                Ok(payload) => payload,
                Err(refusal) => return Err(answer_oversized(writer, refusal).await),
            },
            _ = shutdown.recv() => return Err(Refusal::ShuttingDown),
        },
    };
    loop {
        // A sealed frame of a session this server does not know (it restarted behind an
        // open serial line) is read without its trailer, to be answered `NotAuthenticated`.
        let decoded = ClientFrame::decode(&payload).or_else(|error| {
            let message = payload.len().checked_sub(TRAILER_LEN).ok_or(error)?;
            ClientFrame::decode(&payload[..message])
        });
        let Ok(frame) = decoded else {
            return Err(refuse(
                writer,
                leading_request_id(&payload),
                ErrorCode::BadMessage,
                "expected Hello",
                "undecodable frame",
            )
            .await);
        };
        let ClientMessage::Hello {
            version,
            max_frame,
            device,
            nonce: client_nonce,
        } = frame.message
        else {
            return Err(refuse(
                writer,
                frame.id,
                ErrorCode::NotAuthenticated,
                "send Hello and Authenticate before any request",
                "request before authentication",
            )
            .await);
        };
        if version != PROTOCOL_VERSION {
            let message = format!(
                "server speaks protocol version {PROTOCOL_VERSION}, client sent {version}; update one of them"
            );
            return Err(refuse(
                writer,
                frame.id,
                ErrorCode::VersionUnsupported,
                &message,
                "version",
            )
            .await);
        }
        let Some(agreed) = negotiate_max_frame(service.limits.max_frame, max_frame) else {
            let message =
                format!("frames must be at least {MIN_FRAME} bytes; client offered {max_frame}");
            return Err(refuse(
                writer,
                frame.id,
                ErrorCode::FrameTooLarge,
                &message,
                "frame size",
            )
            .await);
        };
        if let Some(wait) = service
            .failed_logins
            .blocked_for(&address, std::time::Instant::now())
        {
            tracing::warn!(%address, "login refused unchecked: too many failed logins from this address");
            let message = format!(
                "too many failed logins from {address}; try again in {} s",
                wait.as_secs().max(1)
            );
            return Err(refuse(
                writer,
                frame.id,
                ErrorCode::Busy,
                &message,
                "too many failed logins",
            )
            .await);
        }
        let device = device.to_string();
        let mut server_nonce: Nonce = [0; 16];
        rand::thread_rng().fill_bytes(&mut server_nonce);
        let _ = writer.push(
            frame.id,
            ServerMessage::Challenge {
                version: PROTOCOL_VERSION,
                max_frame: service.limits.max_frame,
                nonce: server_nonce,
            },
        );
        writer.flush().await.map_err(|_| Refusal::LinkLost)?;

        let answer = tokio::select! {
            answer = next_payload(reader, deadline) => match answer {
                Ok(answer) => answer,
                Err(refusal) => return Err(answer_oversized(writer, refusal).await),
            },
            _ = shutdown.recv() => return Err(Refusal::ShuttingDown),
        };
        let Ok(reply) = ClientFrame::decode(&answer) else {
            return Err(refuse(
                writer,
                leading_request_id(&answer),
                ErrorCode::BadMessage,
                "expected Authenticate",
                "undecodable frame",
            )
            .await);
        };
        let mac = match reply.message {
            ClientMessage::Authenticate { mac } => mac,
            ClientMessage::Hello { .. } => {
                payload = answer;
                continue;
            }
            _ => {
                return Err(refuse(
                    writer,
                    reply.id,
                    ErrorCode::NotAuthenticated,
                    "send Authenticate before any request",
                    "request before authentication",
                )
                .await)
            }
        };
        let key = if validate_label(&device, MAX_DEVICE_NAME_LEN).is_ok() {
            let name = device.clone();
            service
                .db(move |s| s.device_key(&name))
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let verified = key.as_deref().is_some_and(|key| {
            tags_equal(
                &mac,
                &client_tag(key, &server_nonce, &client_nonce, &device),
            )
        });
        let Some(key) = key.filter(|_| verified) else {
            tracing::warn!(device = ?device, %address, "authentication failed (unknown device or wrong key)");
            service
                .failed_logins
                .failed(&address, std::time::Instant::now());
            tokio::time::sleep(service.limits.auth_failure_delay).await;
            return Err(refuse(
                writer,
                reply.id,
                ErrorCode::AuthFailed,
                "unknown device or wrong key; register it with `host-server device add NAME` and use that key",
                "authentication failed",
            )
            .await);
        };
        let Some(slot) = service.device_slots.claim(&device) else {
            tracing::warn!(device = %device, %address, "login refused: the device has all its sessions");
            let message = format!(
                "device `{device}` already has {} sessions (the server's --max-sessions-per-device); end one and log in again",
                service.device_slots.limit()
            );
            return Err(refuse(
                writer,
                reply.id,
                ErrorCode::Busy,
                &message,
                "too many sessions of one device",
            )
            .await);
        };
        let revision = service.db(|s| s.revision()).await.unwrap_or(0);
        let _ = writer.push(
            reply.id,
            ServerMessage::Welcome {
                device: &device,
                revision,
                max_frame: agreed,
                mac: server_tag(&key, &server_nonce, &client_nonce, &device),
            },
        );
        let session_key =
            |direction| SessionKey::derive(&key, &client_nonce, &server_nonce, &device, direction);
        writer.set_sealer(Some(Sealer::new(session_key(Direction::ServerToClient))));
        let opener = Opener::new(session_key(Direction::ClientToServer));
        writer.flush().await.map_err(|_| Refusal::LinkLost)?;
        reader.set_limit(agreed);
        writer.set_limit(agreed);
        // From now on a write may stall as long as the peer may stay silent, no longer.
        writer.set_bound(WriteBound::Stall(service.limits.idle_timeout));
        return Ok(Identity {
            device,
            max_frame: agreed,
            key_digest: ContentHasher::digest(&key),
            slot,
            opener,
        });
    }
}
