//! The web dashboard (`serve --http`): pages, a read-only JSON API, live
//! events from the notification hub, and the repair actions, behind an admin token.
//!
//! [`token`] keeps the admin token's digest; [`auth`] lets requests in;
//! [`api`] answers the lists; [`events`] streams hub events; [`actions`]
//! deletes, re-requests, restores and serves finished files; [`assets`] holds the
//! pages; [`views`] are the JSON shapes. The routes are listed in [`router`]
//! and documented in `docs/DASHBOARD.md`.

pub mod actions;
pub mod api;
mod assets;
pub mod auth;
pub mod error;
mod events;
mod login;
pub mod token;
pub mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::auth::{AuthError, Logins};
use crate::service::Service;

/// Where the dashboard listens when `--http` names no address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// What every page and answer may load: only this server's own files.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The `--http` address cannot be bound.
    #[error("dashboard cannot listen on {addr}: {source}; {hint}")]
    Bind {
        /// The address.
        addr: String,
        /// What failed.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The server's shared state (store, blobs, hub).
    pub service: Arc<Service>,
    /// Logins and the admin token.
    pub logins: Arc<Logins>,
    /// Becomes true when the server stops; open event streams end then.
    pub stop: watch::Receiver<bool>,
    /// Browsers reach the dashboard over HTTPS (a TLS proxy in front): the login
    /// cookie is marked `Secure`.
    pub secure_cookies: bool,
}

/// Reads `--http`'s value: `HOST:PORT`, or a bare `PORT` on loopback.
pub fn parse_listen(arg: &str) -> Result<String, String> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Err(format!("give an address such as {DEFAULT_ADDR}"));
    }
    if arg.bytes().all(|b| b.is_ascii_digit()) {
        return arg
            .parse::<u16>()
            .map(|port| format!("127.0.0.1:{port}"))
            .map_err(|_| format!("port {arg} is not between 0 and 65535"));
    }
    Ok(arg.to_string())
}

/// A dashboard that has bound its address and is ready to run.
pub struct Dashboard {
    listener: TcpListener,
    state: AppState,
    stop: watch::Sender<bool>,
}

impl Dashboard {
    /// Binds `listen` for a server whose shared state (with the store that
    /// keeps the admin token's digest) is `service`; `behind_tls_proxy` says
    /// browsers reach it over HTTPS, so its login cookie is `Secure`.
    pub async fn bind(
        listen: &str,
        service: Arc<Service>,
        behind_tls_proxy: bool,
    ) -> Result<Dashboard, DashboardError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| DashboardError::Bind {
                addr: listen.to_string(),
                hint: match source.kind() {
                    std::io::ErrorKind::AddrInUse => {
                        "another program uses that port; pass --http with another port (0 picks a free one)"
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        "ports below 1024 need privileges; use a higher port"
                    }
                    _ => "check the address (HOST:PORT, or PORT for 127.0.0.1:PORT)",
                },
                source,
            })?;
        let logins = Arc::new(Logins::new(
            service.store(),
            service.limits.auth_failure_delay,
        ));
        let (stop, stopped) = watch::channel(false);
        Ok(Dashboard {
            listener,
            state: AppState {
                service,
                logins,
                stop: stopped,
                secure_cookies: behind_tls_proxy,
            },
            stop,
        })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Logs what a person should know before using it: no token yet, or an
    /// address other machines can reach over plain HTTP.
    pub async fn warn_about_setup(&self) {
        if let Ok(addr) = self.local_addr() {
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    %addr,
                    "the dashboard is reachable from other machines over plain HTTP: the admin token and every page travel unencrypted; bind it to 127.0.0.1 and use an SSH tunnel or a TLS proxy"
                );
            }
        }
        match self.state.logins.token_digest().await {
            Ok(_) => {}
            Err(AuthError::NoToken) => tracing::warn!(
                "no admin token yet, so nobody can log in to the dashboard; run `host-server admin token` (with this server's --data or --database)"
            ),
            Err(error) => tracing::warn!(%error, "the admin token cannot be read"),
        }
    }

    /// Serves until `stop` completes; then open event streams end and the
    /// dashboard waits for requests in progress.
    pub async fn run(self, stop: impl Future<Output = ()> + Send + 'static) {
        let Dashboard {
            listener,
            state,
            stop: stop_tx,
        } = self;
        let mut stopped = state.stop.clone();
        tokio::spawn(async move {
            stop.await;
            let _ = stop_tx.send(true);
        });
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "the dashboard stopped serving");
        }
    }
}

/// Every route of the dashboard.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .route("/login", post(login::login))
        .route("/logout", post(login::logout))
        .route("/api/session", get(api::session))
        .route("/api/devices", get(api::devices))
        .route("/api/records", get(api::records))
        .route("/api/batches", get(api::batches))
        .route("/api/downloads", get(api::downloads))
        .route("/api/history", get(api::history))
        .route("/api/events", get(events::events))
        .route("/api/content/{*name}", get(actions::content))
        .route("/api/delete", post(actions::delete))
        .route("/api/retry", post(actions::retry))
        .route("/api/restore", post(actions::restore))
        .route("/api/deleted", get(api::deleted))
        .fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "no such page; the dashboard is at / and its API under /api/ (see docs/DASHBOARD.md)",
            )
        })
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers that keep pages and downloads from being framed, sniffed or mixed with other sites.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_listens_on_loopback() {
        assert_eq!(parse_listen("8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(parse_listen("0.0.0.0:80").unwrap(), "0.0.0.0:80");
        assert!(parse_listen("99999").is_err());
        assert!(parse_listen(" ").is_err());
    }
}
