//! Sessions: one per TCP connection or serial port, from handshake to goodbye.
//!
//! [`serve_link`] runs handshakes and sessions on one link until it closes.
//! A serial line outlives sessions (a device that says `Bye`, fails to log in
//! or sends a new `Hello` is simply served again); a TCP link does not.

mod active;
mod downloads;
pub mod handshake;
pub mod io;
mod lists;
mod repair;
mod uploads;

use std::sync::Arc;
use std::time::Instant;

use proto_core::framing::Framing;
use proto_core::model::{HistoryKind, LinkKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;

use crate::hub::HubEvent;
use crate::service::{unix_now, Service};
use active::Session;
use handshake::{handshake, Refusal};
use io::{FrameReader, FrameWriter, WriteBound};

/// Why an authenticated session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The device said `Bye`.
    Bye,
    /// The link closed or failed.
    LinkLost,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// The server is shutting down.
    Shutdown,
    /// A new `Hello` arrived (device rebooted or cable re-plugged); it starts the next handshake.
    Restart(Vec<u8>),
    /// The device was removed or given a new key while the session ran.
    Revoked,
    /// A TCP frame above the negotiated size: the peer does not follow the protocol.
    FrameTooLarge,
    /// A TCP frame failed authentication: someone on the path forged or replayed it.
    Unauthentic,
}

impl SessionEnd {
    /// The reason recorded on uploads the session leaves unfinished.
    pub fn upload_reason(&self) -> &'static str {
        match self {
            SessionEnd::Bye => "session ended before the upload finished",
            SessionEnd::LinkLost => "connection lost",
            SessionEnd::Idle => "idle timeout",
            SessionEnd::Shutdown => "server shutting down",
            SessionEnd::Restart(_) => "device restarted the session",
            SessionEnd::Revoked => "device removed or its key changed",
            SessionEnd::FrameTooLarge => "frame larger than negotiated",
            SessionEnd::Unauthentic => "a frame failed authentication",
        }
    }
}

/// Where a link comes from, for presence and logs.
#[derive(Clone, Debug)]
pub struct LinkInfo {
    /// TCP or serial.
    pub kind: LinkKind,
    /// Peer address or port path.
    pub peer: String,
}

impl LinkInfo {
    fn framing(&self) -> Framing {
        match self.kind {
            LinkKind::Serial => Framing::Serial,
            _ => Framing::Length,
        }
    }
}

/// Serves one link until it closes or the server shuts down.
pub async fn serve_link<R, W>(
    service: Arc<Service>,
    read: R,
    write: W,
    link: LinkInfo,
    mut shutdown: broadcast::Receiver<()>,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let framing = link.framing();
    let mut reader = FrameReader::new(read, framing);
    // The handshake sets its own deadline; this only bounds a write before it starts.
    let bound = WriteBound::Stall(service.limits.handshake_timeout);
    let mut writer = FrameWriter::new(write, framing, bound);
    let persistent = link.kind == LinkKind::Serial;
    let mut first = None;
    loop {
        let identity = match handshake(
            &service,
            &mut reader,
            &mut writer,
            first.take(),
            &link.peer,
            &mut shutdown,
        )
        .await
        {
            Ok(identity) => identity,
            Err(Refusal::Refused(why)) if persistent => {
                tracing::info!(peer = %link.peer, why, "handshake refused; waiting for the next Hello");
                continue;
            }
            Err(Refusal::TimedOut) if persistent => continue,
            Err(refusal) => {
                tracing::debug!(peer = %link.peer, ?refusal, "link closed before a session started");
                break;
            }
        };
        let end = run_session(
            &service,
            &mut reader,
            &mut writer,
            &link,
            identity,
            &mut shutdown,
        )
        .await;
        match end {
            SessionEnd::Restart(hello) => first = Some(hello),
            SessionEnd::Bye | SessionEnd::Idle | SessionEnd::Revoked if persistent => {}
            _ => break,
        }
        reader.shrink();
        writer.shrink();
    }
    writer.shutdown().await;
}

async fn run_session<R, W>(
    service: &Arc<Service>,
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    link: &LinkInfo,
    identity: handshake::Identity,
    shutdown: &mut broadcast::Receiver<()>,
) -> SessionEnd
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let started = Instant::now();
    let session_id = service.next_session_id();
    let device = identity.device.clone();
    let (wake_tx, wake_rx) = tokio::sync::mpsc::channel(1);
    let first = service.hub.join(&device, session_id, link.kind, wake_tx);
    announce_presence(service, &device, session_id, link, true, first).await;
    tracing::info!(session = session_id, device = ?device, peer = %link.peer, link = ?link.kind, "session started");

    let revoked = service
        .hub
        .watch_credential(session_id, &device, identity.key_digest);
    let session = Session::new(
        service.clone(),
        identity,
        session_id,
        writer,
        wake_rx,
        revoked,
    );
    let (end, stats) = session.run(reader, shutdown).await;
    service.hub.forget_credential(session_id);

    let last = service.hub.leave(&device, session_id);
    announce_presence(service, &device, session_id, link, false, last).await;
    tracing::info!(
        session = session_id,
        device = ?device,
        peer = %link.peer,
        reason = end.label(),
        seconds = started.elapsed().as_secs_f64(),
        requests = stats.requests,
        unauthentic = stats.unauthentic,
        "session ended"
    );
    end
}

impl SessionEnd {
    /// A short word for logs.
    fn label(&self) -> &'static str {
        match self {
            SessionEnd::Bye => "bye",
            SessionEnd::LinkLost => "connection lost",
            SessionEnd::Idle => "idle timeout",
            SessionEnd::Shutdown => "shutdown",
            SessionEnd::Restart(_) => "new hello",
            SessionEnd::Revoked => "device removed or re-keyed",
            SessionEnd::FrameTooLarge => "frame too large",
            SessionEnd::Unauthentic => "unauthentic frame",
        }
    }
}

/// Records a join or leave: last seen, history, and a presence event when the
/// device's state changes (its first session starts or its last one ends).
async fn announce_presence(
    service: &Service,
    device: &str,
    session: u64,
    link: &LinkInfo,
    active: bool,
    changed: bool,
) {
    let now = unix_now();
    let name = device.to_string();
    let kind = link.kind;
    if service.is_shared() {
        // Other servers on the same database show this device active while it has a session here.
        let name = device.to_string();
        let registered = service
            .db(move |s| match s.shared() {
                Some(shared) if active => shared.session_opened(&name, kind, session),
                Some(shared) => shared.session_closed(&name, session),
                None => Ok(()),
            })
            .await;
        if let Err(error) = registered {
            tracing::warn!(device, %error, "could not share this session's presence with other servers");
        }
    }
    let row = match service.db(move |s| s.device_seen(&name, kind, now)).await {
        Ok(row) => row,
        Err(error) => {
            tracing::warn!(device, %error, "could not record presence");
            return;
        }
    };
    if !changed {
        return;
    }
    let (history, detail) = if active {
        (
            HistoryKind::Joined,
            format!("{} {}", link_word(kind), link.peer),
        )
    } else {
        (
            HistoryKind::Left,
            format!("{} {}", link_word(kind), link.peer),
        )
    };
    let name = device.to_string();
    if let Err(error) = service
        .db(move |s| s.add_history(&name, history, "", &detail, now))
        .await
    {
        tracing::warn!(device, %error, "could not write history");
    }
    service.hub.publish(HubEvent::Presence {
        device: row,
        active,
    });
}

fn link_word(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::Tcp => "tcp",
        LinkKind::Serial => "serial",
        LinkKind::None => "unknown",
    }
}
