//! The read-only JSON API behind the pages: devices, records, deleted
//! records, batches, download states, history, and who is logged in. See
//! `docs/DASHBOARD.md`.

use std::collections::VecDeque;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use proto_core::{ListFilter, UploadState};
use serde::{Deserialize, Serialize};

use super::auth::{Access, Viewer};
use super::error::ApiError;
use super::views::{BatchView, DeviceView, DownloadView, HistoryView, RecordView};
use super::AppState;

/// Records read from the store per page.
const RECORD_PAGE: usize = 1000;
/// History entries read from the store per page.
const HISTORY_PAGE: u32 = 1000;
/// History entries answered when the request names no limit.
const DEFAULT_HISTORY: u32 = 200;
/// Most history entries in one answer.
const MAX_HISTORY: u32 = 5000;

/// `GET /api/session`: how this request got in, and the CSRF value a login's actions need.
#[derive(Debug, Serialize)]
pub struct SessionAnswer {
    /// `login` (cookie) or `token` (`Authorization` header).
    pub access: &'static str,
    /// For a login: the value to send in `X-CSRF-Token` with actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    /// The server's version.
    pub version: &'static str,
}

pub(super) async fn session(Viewer(access): Viewer) -> Json<SessionAnswer> {
    let (access, csrf) = match access {
        Access::Token => ("token", None),
        Access::Login { csrf } => ("login", Some(csrf)),
    };
    Json(SessionAnswer {
        access,
        csrf,
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /api/devices`.
#[derive(Debug, Serialize)]
pub struct DevicesAnswer {
    /// Every registered device, by name.
    pub devices: Vec<DeviceView>,
}

pub(super) async fn devices(
    _: Viewer,
    State(state): State<AppState>,
) -> Result<Json<DevicesAnswer>, ApiError> {
    let rows = state.service.db(|s| s.devices()).await?;
    let devices = rows
        .iter()
        .map(|row| DeviceView::new(row, &state.service))
        .collect();
    Ok(Json(DevicesAnswer { devices }))
}

/// Query of `GET /api/records`.
#[derive(Debug, Default, Deserialize)]
pub struct RecordsQuery {
    /// Only records changed after this revision (0: all).
    #[serde(default)]
    pub since: u64,
    /// Only records in this state (`needed`, `uploading`, `uploaded`, `failed`).
    pub state: Option<String>,
    /// Only records owned by this device.
    pub owner: Option<String>,
}

/// `GET /api/records`.
#[derive(Debug, Serialize)]
pub struct RecordsAnswer {
    /// The server revision the list is complete up to; ask `since` it next time.
    pub revision: u64,
    /// The records, in revision order.
    pub records: Vec<RecordView>,
}

pub(super) async fn records(
    _: Viewer,
    State(state): State<AppState>,
    query: Result<Query<RecordsQuery>, QueryRejection>,
) -> Result<Json<RecordsAnswer>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let wanted = match query.state.as_deref() {
        None | Some("") => None,
        Some(word) => Some(UploadState::from_word(word).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown state `{word}`; use needed, uploading, uploaded or failed"
            ))
        })?),
    };
    let mut after = query.since;
    let mut records = Vec::new();
    let revision = loop {
        let page = state
            .service
            .db(move |s| s.records_page(after, ListFilter::All, RECORD_PAGE))
            .await?;
        let full = page.records.len() >= RECORD_PAGE;
        if let Some(last) = page.records.last() {
            after = last.revision;
        }
        records.extend(
            page.records
                .iter()
                .filter(|r| wanted.is_none_or(|s| r.state == s))
                .filter(|r| query.owner.as_ref().is_none_or(|o| &r.owner == o))
                .map(|r| RecordView::new(r, &state.service)),
        );
        if !full {
            break page.revision;
        }
    };
    Ok(Json(RecordsAnswer { revision, records }))
}

/// Deleted records listed at most.
const MAX_DELETED: u32 = 1000;

/// One deleted record, as `GET /api/deleted` lists it.
#[derive(Debug, Serialize)]
pub struct DeletedView {
    /// The record as it was; `revision` and `updated_at` are those of the deletion.
    pub record: RecordView,
    /// Who deleted it: a device's name, or `(dashboard)`.
    pub deleted_by: String,
    /// True while the server keeps its bytes (`--keep-deleted`): a restore gives `11`.
    pub bytes_kept: bool,
}

/// `GET /api/deleted`.
#[derive(Debug, Serialize)]
pub struct DeletedAnswer {
    /// Deleted records that nothing of the same name replaced, newest deletion first.
    pub deleted: Vec<DeletedView>,
}

pub(super) async fn deleted(
    _: Viewer,
    State(state): State<AppState>,
) -> Result<Json<DeletedAnswer>, ApiError> {
    let rows = state.service.db(|s| s.deleted_records(MAX_DELETED)).await?;
    let deleted = rows
        .iter()
        .map(|row| DeletedView {
            record: RecordView::new(&row.record, &state.service),
            deleted_by: row.deleted_by.clone(),
            bytes_kept: row.bytes_kept,
        })
        .collect();
    Ok(Json(DeletedAnswer { deleted }))
}

/// `GET /api/batches`.
#[derive(Debug, Serialize)]
pub struct BatchesAnswer {
    /// Every batch with its files by state, oldest first.
    pub batches: Vec<BatchView>,
}

pub(super) async fn batches(
    _: Viewer,
    State(state): State<AppState>,
) -> Result<Json<BatchesAnswer>, ApiError> {
    let rows = state.service.db(|s| s.batches()).await?;
    Ok(Json(BatchesAnswer {
        batches: rows.iter().map(BatchView::from).collect(),
    }))
}

/// `GET /api/downloads`.
#[derive(Debug, Serialize)]
pub struct DownloadsAnswer {
    /// Every device's download state of every file it asked for.
    pub downloads: Vec<DownloadView>,
}

pub(super) async fn downloads(
    _: Viewer,
    State(state): State<AppState>,
) -> Result<Json<DownloadsAnswer>, ApiError> {
    let rows = state.service.db(|s| s.downloads()).await?;
    Ok(Json(DownloadsAnswer {
        downloads: rows.iter().map(DownloadView::from).collect(),
    }))
}

/// Query of `GET /api/history`.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    /// Only entries after this sequence number; without it, the latest entries.
    pub since: Option<u64>,
    /// At most this many entries (default 200, at most 5000).
    pub limit: Option<u32>,
}

/// `GET /api/history`.
#[derive(Debug, Serialize)]
pub struct HistoryAnswer {
    /// Entries, oldest first.
    pub entries: Vec<HistoryView>,
}

pub(super) async fn history(
    _: Viewer,
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY).clamp(1, MAX_HISTORY);
    let rows = match query.since {
        Some(since) => state.service.db(move |s| s.history(since, limit)).await?,
        None => {
            // The store reads forward only: page through and keep the tail.
            state
                .service
                .db(move |s| {
                    let mut tail = VecDeque::with_capacity(limit as usize);
                    let mut since = 0;
                    loop {
                        let page = s.history(since, HISTORY_PAGE)?;
                        let full = page.len() >= HISTORY_PAGE as usize;
                        for row in page {
                            since = row.seq;
                            if tail.len() == limit as usize {
                                tail.pop_front();
                            }
                            tail.push_back(row);
                        }
                        if !full {
                            return Ok(Vec::from(tail));
                        }
                    }
                })
                .await?
        }
    };
    Ok(Json(HistoryAnswer {
        entries: rows.iter().map(HistoryView::from).collect(),
    }))
}
