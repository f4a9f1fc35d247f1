//! Who may look and who may act: the admin token, and browser logins made with it.
//!
//! Two ways in, both checked against the admin token digest in the store on every request:
//! - `Authorization: Bearer TOKEN` (scripts, curl): may read and act.
//! - A login: `POST /login` with the token sets an `HttpOnly`,
//!   `SameSite=Strict` session cookie and answers a CSRF value. The cookie
//!   alone may read (pages, JSON, events, file downloads); an action also
//!   needs the CSRF value in the `X-CSRF-Token` header, which another site can
//!   neither read nor send, so a forged cross-site form cannot act.
//!
//! Logins live in memory: a restart, a logout, their expiry after
//! [`LOGIN_LIFETIME`] or a new admin token ends them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use proto_core::ContentHash;
use rand::RngCore;

use super::error::ApiError;
use super::token::{digest, same_digest};
use super::AppState;
use crate::store::{Store, StoreError};

/// Name of the login cookie.
pub const SESSION_COOKIE: &str = "statesync_session";
/// Header that carries the CSRF value on actions made with a login.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a login lasts.
pub const LOGIN_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Most logins kept at once; the oldest goes first.
const MAX_LOGINS: usize = 256;

/// Why a request was not let in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No admin token was made for this server's database yet.
    #[error("no admin token exists yet; run `host-server admin token` on the server (with its --data or --database) and log in with what it prints")]
    NoToken,
    /// The request carries no credentials.
    #[error("log in with the admin token (`host-server admin token` prints a new one)")]
    NotLoggedIn,
    /// The token does not match.
    #[error("wrong admin token; `host-server admin token` prints a new one (and ends every login made with the old one)")]
    WrongToken,
    /// The login ended (expired, logged out, server restarted, or a new token).
    #[error("your login has ended (it expired, the server restarted, or a new admin token was made); log in again")]
    LoginEnded,
    /// An action with a login cookie but without the CSRF header.
    #[error("actions need the `X-CSRF-Token` header from the login answer, or `Authorization: Bearer TOKEN`")]
    MissingCsrf,
    /// The store holding the token's digest cannot be read.
    #[error("the admin token cannot be checked: {0}")]
    Store(#[from] StoreError),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        let status = match error {
            AuthError::MissingCsrf => StatusCode::FORBIDDEN,
            AuthError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        };
        let login = !matches!(error, AuthError::MissingCsrf | AuthError::Store(_));
        ApiError::new(status, error.to_string()).with("login_required", login)
    }
}

/// How a request got in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// With the admin token in an `Authorization` header.
    Token,
    /// With a login cookie; `csrf` is the value actions must send.
    Login {
        /// The login's CSRF value.
        csrf: String,
    },
}

/// A login just made: what to set in the cookie and tell the page.
#[derive(Debug)]
pub struct NewLogin {
    /// The cookie's value (secret; only its digest is kept).
    pub cookie: String,
    /// The CSRF value for actions.
    pub csrf: String,
}

struct Login {
    csrf: String,
    token: ContentHash,
    expires: Instant,
}

/// The logins of a running dashboard.
pub struct Logins {
    store: Arc<dyn Store + Send + Sync>,
    failure_delay: Duration,
    sessions: Mutex<HashMap<ContentHash, Login>>,
}

impl Logins {
    /// Logins checked against the admin token digest in `store`; a failed
    /// attempt is answered after `failure_delay`.
    pub fn new(store: Arc<dyn Store + Send + Sync>, failure_delay: Duration) -> Logins {
        Logins {
            store,
            failure_delay,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<ContentHash, Login>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks `token` and makes a login.
    pub async fn login(&self, token: &str) -> Result<NewLogin, AuthError> {
        let current = self.token_digest().await?;
        if !same_digest(&current, &digest(token)) {
            tokio::time::sleep(self.failure_delay).await;
            return Err(AuthError::WrongToken);
        }
        let cookie = random_hex();
        let csrf = random_hex();
        let now = Instant::now();
        let mut sessions = self.sessions();
        sessions.retain(|_, login| login.expires > now);
        if sessions.len() >= MAX_LOGINS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, login)| login.expires)
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            digest(&cookie),
            Login {
                csrf: csrf.clone(),
                token: current,
                expires: now + LOGIN_LIFETIME,
            },
        );
        Ok(NewLogin { cookie, csrf })
    }

    /// Ends the login of this cookie value, if any.
    pub fn logout(&self, cookie: &str) {
        self.sessions().remove(&digest(cookie));
    }

    /// Lets a request in or says why not; `acting` asks for the right to
    /// change things (a login then needs the CSRF header too).
    pub async fn authorize(&self, parts: &Parts, acting: bool) -> Result<Access, AuthError> {
        if let Some(token) = bearer(parts) {
            let current = self.token_digest().await?;
            if same_digest(&current, &digest(token)) {
                return Ok(Access::Token);
            }
            tokio::time::sleep(self.failure_delay).await;
            return Err(AuthError::WrongToken);
        }
        let Some(cookie) = session_cookie(&parts.headers) else {
            // Say so when nobody can log in yet, so the page can tell the user.
            self.token_digest().await?;
            return Err(AuthError::NotLoggedIn);
        };
        let current = self.token_digest().await?;
        let key = digest(cookie);
        let csrf = {
            let mut sessions = self.sessions();
            let valid = sessions.get(&key).is_some_and(|login| {
                login.expires > Instant::now() && same_digest(&login.token, &current)
            });
            if !valid {
                sessions.remove(&key);
                return Err(AuthError::LoginEnded);
            }
            sessions.get(&key).map(|login| login.csrf.clone())
        };
        let csrf = csrf.ok_or(AuthError::LoginEnded)?;
        if acting {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .ok_or(AuthError::MissingCsrf)?;
            if !same_digest(&digest(sent), &digest(&csrf)) {
                return Err(AuthError::MissingCsrf);
            }
        }
        Ok(Access::Login { csrf })
    }

    /// The current token's digest; reading the small file is cheap, and reading
    /// it every time makes a new token take effect at once.
    /// The current admin token's digest; [`AuthError::NoToken`] before one was made.
    pub async fn token_digest(&self) -> Result<ContentHash, AuthError> {
        let store = Arc::clone(&self.store);
        let current = tokio::task::spawn_blocking(move || store.admin_token())
            .await
            .map_err(|_| AuthError::LoginEnded)??;
        current.ok_or(AuthError::NoToken)
    }
}

/// The `Set-Cookie` value for a new login; `secure` (the dashboard is reached over
/// HTTPS) keeps browsers from ever sending it over plain HTTP.
pub fn login_cookie(value: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LOGIN_LIFETIME.as_secs(),
        secure_attribute(secure)
    )
}

/// The `Set-Cookie` value that removes the login cookie.
pub fn logout_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_attribute(secure)
    )
}

fn secure_attribute(secure: bool) -> &'static str {
    if secure {
        "; Secure"
    } else {
        ""
    }
}

/// The login cookie's value, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A request that may read: logged in, or with the token.
pub struct Viewer(pub Access);

/// A request that may act (delete, ask for a re-upload): the token, or a login plus its CSRF header.
pub struct Admin(pub Access);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Viewer(state.logins.authorize(parts, false).await?))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Admin(state.logins.authorize(parts, true).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::token;
    use crate::store::sqlite::DATABASE_FILE;
    use crate::store::SqliteStore;
    use axum::http::Request;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder().uri("/api/records");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join(DATABASE_FILE)).unwrap();
        (dir, Arc::new(store))
    }

    fn new_token(store: &SqliteStore) -> String {
        let token = token::new_token();
        store.set_admin_token(&digest(&token)).unwrap();
        token
    }

    fn logins() -> (tempfile::TempDir, Arc<SqliteStore>, Logins, String) {
        let (dir, store) = store();
        let token = new_token(&store);
        let logins = Logins::new(store.clone(), Duration::ZERO);
        (dir, store, logins, token)
    }

    #[tokio::test]
    async fn a_login_reads_with_its_cookie_and_acts_only_with_its_csrf_header() {
        let (_dir, _store, logins, token) = logins();
        assert!(matches!(
            logins.login("nope").await,
            Err(AuthError::WrongToken)
        ));
        let login = logins.login(&token).await.unwrap();
        let cookie = format!("other=1; {SESSION_COOKIE}={}", login.cookie);
        let reading = parts(&[("cookie", &cookie)]);
        assert_eq!(
            logins.authorize(&reading, false).await.unwrap(),
            Access::Login {
                csrf: login.csrf.clone()
            }
        );
        assert!(matches!(
            logins.authorize(&reading, true).await,
            Err(AuthError::MissingCsrf)
        ));
        let forged = parts(&[("cookie", &cookie), (CSRF_HEADER, "guess")]);
        assert!(matches!(
            logins.authorize(&forged, true).await,
            Err(AuthError::MissingCsrf)
        ));
        let acting = parts(&[("cookie", &cookie), (CSRF_HEADER, &login.csrf)]);
        assert!(logins.authorize(&acting, true).await.is_ok());
        logins.logout(&login.cookie);
        assert!(matches!(
            logins.authorize(&reading, false).await,
            Err(AuthError::LoginEnded)
        ));
    }

    #[tokio::test]
    async fn the_bearer_token_reads_and_acts_and_a_new_token_ends_logins() {
        let (_dir, store, logins, token) = logins();
        let auth = format!("Bearer {token}");
        assert_eq!(
            logins
                .authorize(&parts(&[("authorization", &auth)]), true)
                .await
                .unwrap(),
            Access::Token
        );
        assert!(matches!(
            logins
                .authorize(&parts(&[("authorization", "Bearer 00")]), false)
                .await,
            Err(AuthError::WrongToken)
        ));
        assert!(matches!(
            logins.authorize(&parts(&[]), false).await,
            Err(AuthError::NotLoggedIn)
        ));
        let login = logins.login(&token).await.unwrap();
        let cookie = format!("{SESSION_COOKIE}={}", login.cookie);
        new_token(&store);
        assert!(matches!(
            logins
                .authorize(&parts(&[("cookie", &cookie)]), false)
                .await,
            Err(AuthError::LoginEnded)
        ));
    }

    #[tokio::test]
    async fn without_a_token_nobody_gets_in_and_is_told_how_to_make_one() {
        let (_dir, store) = store();
        let logins = Logins::new(store, Duration::ZERO);
        assert!(matches!(logins.login("x").await, Err(AuthError::NoToken)));
        assert!(matches!(
            logins.authorize(&parts(&[]), false).await,
            Err(AuthError::NoToken)
        ));
    }
}
