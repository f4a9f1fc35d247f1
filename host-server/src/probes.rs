//! The ops listener (`serve --ops-listen ADDR`): probes for a load balancer or
//! service manager, and Prometheus metrics.
//!
//! - `GET /healthz`: 200 while the process serves (it answers, so it is up).
//! - `GET /readyz`: 200 when the store answers a query and the blob store can
//!   be read within [`READY_WAIT`]; 503 with what failed otherwise.
//! - `GET /metrics`: [`crate::metrics`] in the Prometheus text format.
//!
//! Plain HTTP without authentication, like most exporters: it says how busy
//! the server is, never a name or a key. Keep it on loopback or a private network.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Snapshot;
use crate::service::Service;

/// How long `/readyz` waits for the store before it answers 503.
pub const READY_WAIT: Duration = Duration::from_secs(2);

/// The content type of the Prometheus text format.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the ops listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("ops listener cannot listen on {addr}: {source}; pass --ops-listen with a free HOST:PORT (port 0 picks one)")]
pub struct ProbesError {
    /// The address.
    addr: String,
    /// What failed.
    source: std::io::Error,
}

/// A bound ops listener, ready to run.
pub struct Probes {
    listener: TcpListener,
    service: Arc<Service>,
}

impl Probes {
    /// Binds `listen` for the server whose shared state is `service`.
    pub async fn bind(listen: &str, service: Arc<Service>) -> Result<Probes, ProbesError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProbesError {
                addr: listen.to_string(),
                source,
            })?;
        Ok(Probes { listener, service })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers probes until `stop` completes.
    pub async fn run(self, stop: impl Future<Output = ()> + Send + 'static) {
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.service);
        if let Err(error) = axum::serve(self.listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(%error, "the ops listener stopped");
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(service): State<Arc<Service>>) -> Response {
    let store = tokio::time::timeout(READY_WAIT, service.db(|s| s.revision())).await;
    let store = match store {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("store: {error}")),
        Err(_) => Err(format!(
            "store: no answer within {} s",
            READY_WAIT.as_secs()
        )),
    };
    let blobs = match tokio::time::timeout(READY_WAIT, service.blobs.check_reachable()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("blob store: {error}")),
        Err(_) => Err(format!(
            "blob store: no answer within {} s",
            READY_WAIT.as_secs()
        )),
    };
    match (store, blobs) {
        (Ok(()), Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        (store, blobs) => {
            let problems: Vec<String> = [store.err(), blobs.err()].into_iter().flatten().collect();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {}\n", problems.join("; ")),
            )
                .into_response()
        }
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    let records = tokio::time::timeout(READY_WAIT, service.db(|s| s.record_counts()))
        .await
        .ok()
        .and_then(Result::ok);
    let snapshot = Snapshot {
        sessions: service.hub.sessions_by_link(),
        records,
    };
    (
        [(header::CONTENT_TYPE, METRICS_TYPE)],
        service.metrics.render(&snapshot),
    )
        .into_response()
}
