//! `POST /login` and `POST /logout`: a browser login made with the admin token.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::{login_cookie, logout_cookie, session_cookie};
use super::error::ApiError;
use super::AppState;

/// Body of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    /// The admin token, as `host-server admin token` printed it.
    pub token: String,
}

/// Answer of `POST /login` (the login itself is in the `Set-Cookie` header).
#[derive(Debug, Serialize)]
pub struct LoginAnswer {
    /// The value actions must send in the `X-CSRF-Token` header.
    pub csrf: String,
}

pub(super) async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!("{}; send {{\"token\": \"...\"}}", e.body_text()))
    })?;
    let login = state.logins.login(&body.token).await.inspect_err(|error| {
        tracing::info!(%error, "dashboard login refused");
    })?;
    tracing::info!("dashboard login");
    Ok((
        [(
            SET_COOKIE,
            login_cookie(&login.cookie, state.secure_cookies),
        )],
        Json(LoginAnswer { csrf: login.csrf }),
    )
        .into_response())
}

pub(super) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(cookie) = session_cookie(&headers) {
        state.logins.logout(cookie);
    }
    (
        StatusCode::NO_CONTENT,
        [(SET_COOKIE, logout_cookie(state.secure_cookies))],
    )
        .into_response()
}
