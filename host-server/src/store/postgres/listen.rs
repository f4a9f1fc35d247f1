//! The `LISTEN` side of PostgreSQL: one async connection per server that turns
//! the other servers' `NOTIFY` payloads into [`ClusterSignal`]s.
//!
//! Payloads are `KIND ORIGIN [DEVICE]`: `r` records changed, `w` wake a
//! device, `p` presence changed; ORIGIN is the sending server's id, so a
//! server ignores its own. `NOTIFY` is lost while the connection is down, so
//! every (re)connect sends [`ClusterSignal::Connected`] and the receiver
//! catches up by revision.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::ClusterSignal;

/// The channel every server notifies and listens on.
pub(super) const CHANNEL: &str = "statesync";

/// How often an idle listener checks that its connection still works.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Longest wait between reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Signals buffered for a slow receiver (a burst beyond this waits).
const SIGNAL_BUFFER: usize = 1024;

/// Why one listening connection ended.
enum ListenEnd {
    /// The receiver is gone: stop for good.
    Stopped,
    /// The connection failed or broke: reconnect.
    Lost(String),
}

/// Starts the listener task on the current runtime.
pub(super) fn spawn(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    me: String,
) -> mpsc::Receiver<ClusterSignal> {
    let (out, signals) = mpsc::channel(SIGNAL_BUFFER);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match listen_once(&config, &tls, &me, &out).await {
                ListenEnd::Stopped => return,
                ListenEnd::Lost(why) => {
                    tracing::warn!(reason = %why, retry_in = ?delay, "PostgreSQL listener lost its connection; other servers' changes are caught up after it reconnects");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = out.closed() => return,
            }
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
        }
    });
    signals
}

async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    me: &str,
    out: &mpsc::Sender<ClusterSignal>,
) -> ListenEnd {
    let (client, mut connection) = match config.connect(tls.clone()).await {
        Ok(pair) => pair,
        Err(error) => return ListenEnd::Lost(super::describe(&error)),
    };
    let (messages_tx, mut messages) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if messages_tx.send(Ok(note.payload().to_string())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = messages_tx.send(Err(super::describe(&error)));
                    return;
                }
            }
        }
        let _ = messages_tx.send(Err("the server closed the connection".into()));
    });
    let end = async {
        if let Err(error) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            return ListenEnd::Lost(super::describe(&error));
        }
        tracing::info!("listening for other servers' changes");
        if out.send(ClusterSignal::Connected).await.is_err() {
            return ListenEnd::Stopped;
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.recv() => match message {
                    Some(Ok(payload)) => {
                        if let Some(signal) = parse(&payload, me) {
                            if out.send(signal).await.is_err() {
                                return ListenEnd::Stopped;
                            }
                        }
                    }
                    Some(Err(why)) => return ListenEnd::Lost(why),
                    None => return ListenEnd::Lost("the connection task ended".into()),
                },
                _ = ping.tick() => {
                    if let Err(error) = client.simple_query("SELECT 1").await {
                        return ListenEnd::Lost(super::describe(&error));
                    }
                }
                _ = out.closed() => return ListenEnd::Stopped,
            }
        }
    }
    .await;
    driver.abort();
    end
}

/// The signal a payload carries, `None` for this server's own or an unknown one.
fn parse(payload: &str, me: &str) -> Option<ClusterSignal> {
    let mut parts = payload.splitn(3, ' ');
    let kind = parts.next()?;
    let origin = parts.next()?;
    if origin == me {
        return None;
    }
    match (kind, parts.next()) {
        ("r", _) => Some(ClusterSignal::RecordsChanged),
        ("p", _) => Some(ClusterSignal::Presence),
        ("w", Some(device)) if !device.is_empty() => Some(ClusterSignal::Wake(device.to_string())),
        _ => {
            tracing::debug!(payload, "ignoring an unknown notification");
            None
        }
    }
}

/// The payload telling other servers that `origin` changed records.
pub(super) fn records_changed(origin: &str) -> String {
    format!("r {origin}")
}

/// The payload telling other servers to wake `device`'s sessions.
pub(super) fn wake(origin: &str, device: &str) -> String {
    format!("w {origin} {device}")
}

/// The payload telling other servers that presence changed.
pub(super) fn presence(origin: &str) -> String {
    format!("p {origin}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_own_ones_are_ignored() {
        assert_eq!(
            parse(&records_changed("a"), "b"),
            Some(ClusterSignal::RecordsChanged)
        );
        assert_eq!(
            parse(&wake("a", "dev 1"), "b"),
            Some(ClusterSignal::Wake("dev 1".into()))
        );
        assert_eq!(parse(&presence("a"), "b"), Some(ClusterSignal::Presence));
        assert_eq!(parse(&records_changed("a"), "a"), None);
        assert_eq!(parse("w a", "b"), None);
        assert_eq!(parse("x a", "b"), None);
        assert_eq!(parse("", "b"), None);
    }
}
