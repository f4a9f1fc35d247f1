//! The TCP listener: accepts connections, enforces the session cap, and
//! starts a session task per connection.

use std::sync::Arc;

use proto_core::framing::Framing;
use proto_core::model::LinkKind;
use proto_core::{ErrorCode, ServerFrame, ServerMessage};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};

use crate::service::Service;
use crate::session::{serve_link, LinkInfo};

/// Accepts connections until shutdown. `done` is held by every session task,
/// so the caller knows all sessions ended when its receiver yields `None`.
pub async fn run(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: broadcast::Sender<()>,
    done: mpsc::Sender<()>,
) {
    let sessions = Arc::new(Semaphore::new(service.limits.max_sessions));
    let mut stop = shutdown.subscribe();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: wait a little instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = service.limits.max_sessions, "session limit reached; refusing a connection");
            tokio::spawn(refuse_busy(stream, service.limits.max_sessions));
            continue;
        };
        let service = service.clone();
        let stop = shutdown.subscribe();
        let done = done.clone();
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            let link = LinkInfo {
                kind: LinkKind::Tcp,
                peer: peer.to_string(),
            };
            serve_link(service, read, write, link, stop).await;
            drop(permit);
            drop(done);
        });
    }
}

/// Tells a client over the limit why it is turned away.
async fn refuse_busy(mut stream: TcpStream, limit: usize) {
    let message =
        format!("server has {limit} sessions (its --max-sessions limit); try again later");
    let frame = ServerFrame {
        id: 0,
        message: ServerMessage::Error {
            code: ErrorCode::Busy,
            message: &message,
        },
    };
    let mut payload = [0u8; 256];
    let Ok(payload) = frame.encode(&mut payload) else {
        return;
    };
    let mut wire = vec![0u8; Framing::Length.max_wire_len(payload.len())];
    if let Ok(n) = Framing::Length.encode(payload, &mut wire) {
        let _ = stream.write_all(&wire[..n]).await;
    }
    let _ = stream.shutdown().await;
}
