//! What a person can do on the dashboard: delete a record, ask its owner for a
//! re-upload, restore a deleted record (`POST`, admin only), and download a
//! finished file.
//!
//! A download is served only from `blobs/`, only for a record in `11`; any
//! other state is refused with the state, `received` and `size`, so nothing
//! half-uploaded ever leaves the server.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use proto_core::name::validate;
use proto_core::{FileKind, UploadState};
use serde::{Deserialize, Serialize};

use super::auth::{Admin, Viewer};
use super::error::ApiError;
use super::views::RecordView;
use super::AppState;
use crate::repair;
use crate::store::RecordRow;

/// The name history shows for actions taken on the dashboard.
pub const DASHBOARD_ACTOR: &str = "(dashboard)";

/// Bytes read from a blob per chunk of a download.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Body of `POST /api/delete` and `POST /api/retry`.
#[derive(Debug, Deserialize)]
pub struct NameBody {
    /// The record's name.
    pub name: String,
}

/// Answer of `POST /api/delete`.
#[derive(Debug, Serialize)]
pub struct Deleted {
    /// The deleted record's name.
    pub deleted: String,
    /// The revision of the deletion.
    pub revision: u64,
}

/// Answer of `POST /api/retry`.
#[derive(Debug, Serialize)]
pub struct Retried {
    /// The record, back in `01`; its owner is asked to upload it again.
    pub record: RecordView,
}

/// Body of `POST /api/restore`.
#[derive(Debug, Deserialize)]
pub struct RestoreBody {
    /// The deleted record's name.
    pub name: String,
    /// Restore it as it stood at this revision (absent: as it was when last deleted).
    #[serde(default)]
    pub at: Option<u64>,
}

/// Answer of `POST /api/restore`.
#[derive(Debug, Serialize)]
pub struct Restored {
    /// The record back: `11` when its bytes were kept, else `01`.
    pub record: RecordView,
    /// True when it came back `01` and its owner was asked to upload it.
    pub owner_asked: bool,
}

fn checked_name(body: Result<Json<NameBody>, JsonRejection>) -> Result<String, ApiError> {
    let Json(NameBody { name }) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; send {{\"name\": \"path/of/file\"}}",
            e.body_text()
        ))
    })?;
    validate(&name)
        .map_err(|error| ApiError::bad_request(format!("`{}`: {error}", name.escape_debug())))?;
    Ok(name)
}

pub(super) async fn delete(
    _: Admin,
    State(state): State<AppState>,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<Json<Deleted>, ApiError> {
    let name = checked_name(body)?;
    let deletion = repair::delete(&state.service, DASHBOARD_ACTOR, &name, true).await?;
    tracing::info!(name, owner = ?deletion.record.owner, "record deleted on the dashboard");
    Ok(Json(Deleted {
        deleted: name,
        revision: deletion.revision,
    }))
}

pub(super) async fn retry(
    _: Admin,
    State(state): State<AppState>,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<Json<Retried>, ApiError> {
    let name = checked_name(body)?;
    let retried = repair::retry(&state.service, DASHBOARD_ACTOR, &name).await?;
    tracing::info!(name, owner = ?retried.record.owner, "re-upload requested on the dashboard");
    Ok(Json(Retried {
        record: RecordView::new(&retried.record, &state.service),
    }))
}

pub(super) async fn restore(
    _: Admin,
    State(state): State<AppState>,
    body: Result<Json<RestoreBody>, JsonRejection>,
) -> Result<Json<Restored>, ApiError> {
    let Json(RestoreBody { name, at }) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; send {{\"name\": \"path/of/file\"}} and optionally \"at\": REVISION",
            e.body_text()
        ))
    })?;
    validate(&name)
        .map_err(|error| ApiError::bad_request(format!("`{}`: {error}", name.escape_debug())))?;
    let restored = repair::restore(&state.service, DASHBOARD_ACTOR, &name, at).await?;
    tracing::info!(name, state = ?restored.record.state, "record restored on the dashboard");
    Ok(Json(Restored {
        record: RecordView::new(&restored.record, &state.service),
        owner_asked: restored.owner_asked,
    }))
}

/// `GET /api/content/{*name}`: the bytes of an uploaded file, as an attachment.
pub(super) async fn content(
    _: Viewer,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    validate(&name)
        .map_err(|error| ApiError::bad_request(format!("`{}`: {error}", name.escape_debug())))?;
    let lookup = name.clone();
    let record = state
        .service
        .db(move |s| s.record(&lookup))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no record named `{name}`")))?;
    if record.kind == FileKind::Directory {
        return Err(ApiError::bad_request(format!(
            "`{name}` is a directory entry; it has no content to download"
        )));
    }
    if record.state != UploadState::Uploaded {
        let view = RecordView::new(&record, &state.service);
        return Err(
            ApiError::new(StatusCode::CONFLICT, not_ready(&record, &view))
                .with("state", view.state)
                .with("bits", view.bits)
                .with("received", view.received)
                .with("size", view.size),
        );
    }
    let file = state.service.blobs.open_blob(&record.hash).await.map_err(|error| {
        tracing::warn!(%error, name, hash = %record.hash, "an uploaded file's blob cannot be opened");
        ApiError::internal(format!(
            "`{name}` is uploaded but its content cannot be read ({error}); see the server log"
        ))
    })?;
    let size = record.size;
    let stream = futures::stream::unfold(Some((Arc::new(file), 0u64)), move |open| async move {
        let (file, offset) = open?;
        if offset >= size {
            return None;
        }
        let len = (size - offset).min(DOWNLOAD_CHUNK as u64) as usize;
        let reader = file.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; len];
            reader.read_exact_at(&mut buffer, offset).map(|()| buffer)
        })
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the server is stopping")));
        match read {
            Ok(buffer) => Some((Ok(Bytes::from(buffer)), Some((file, offset + len as u64)))),
            Err(error) => Some((Err::<Bytes, _>(error), None)),
        }
    });
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        ),
        (header::CONTENT_LENGTH, HeaderValue::from(record.size)),
        (header::CONTENT_DISPOSITION, attachment(&record.name)),
        (header::ETAG, header_value(&format!("\"{}\"", record.hash))),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        ),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// Why a record cannot be downloaded yet, in words.
fn not_ready(record: &RecordRow, view: &RecordView) -> String {
    let name = &record.name;
    let percent = view
        .received
        .saturating_mul(100)
        .checked_div(view.size)
        .unwrap_or(0);
    let why = match record.state {
        UploadState::Needed => format!("`{name}` is not uploaded yet (01: announced, no byte received)"),
        UploadState::Uploading => format!(
            "`{name}` is still uploading (10: {} of {} bytes, {percent} %)",
            view.received, view.size
        ),
        UploadState::Failed => format!(
            "the upload of `{name}` broke off (00: {}) at {} of {} bytes; it resumes when `{}` sends it again",
            if record.reason.is_empty() { "no reason given" } else { &record.reason },
            view.received,
            view.size,
            record.owner
        ),
        UploadState::Uploaded => format!("`{name}` is uploaded"),
    };
    format!("{why}; only uploaded (11) files can be downloaded, and the dashboard offers it the moment it is")
}

/// `attachment; filename="..."` with the file's last path segment, plain
/// (quotes and non-ASCII replaced) and exact (`filename*`, percent-encoded UTF-8).
fn attachment(name: &str) -> HeaderValue {
    let file = name.rsplit('/').next().unwrap_or(name);
    let plain: String = file
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let exact: String = file
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    header_value(&format!(
        "attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}"
    ))
}

/// A header value from text that is visible ASCII by construction.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_keep_the_last_segment_and_escape_the_rest() {
        assert_eq!(
            attachment("photos/2024/a b\"c.jpg"),
            "attachment; filename=\"a b_c.jpg\"; filename*=UTF-8''a%20b%22c.jpg"
        );
        assert_eq!(
            attachment("été.txt"),
            "attachment; filename=\"_t_.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"
        );
    }
}
