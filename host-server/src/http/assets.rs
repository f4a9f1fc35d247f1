//! The pages: plain HTML, CSS and JavaScript compiled into the binary, so the
//! dashboard needs no files and no build step at run time.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const STYLE_CSS: &str = include_str!("../../assets/style.css");
const FAVICON_SVG: &str = include_str!("../../assets/favicon.svg");

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard (it shows the login form when nobody is logged in).
pub(super) async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /assets/{file}`.
pub(super) async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    match file.as_str() {
        "app.js" => Ok(page("text/javascript; charset=utf-8", APP_JS)),
        "style.css" => Ok(page("text/css; charset=utf-8", STYLE_CSS)),
        "favicon.svg" => Ok(page("image/svg+xml", FAVICON_SVG)),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no asset `{file}`"),
        )),
    }
}
