//! How enums are stored as integers, the same in every backend.
//!
//! The numbers are part of the database format: never renumber, only append.

use proto_core::model::{DownloadState, HistoryKind, LinkKind};
use proto_core::FileKind;

use super::NotificationKind;

/// The stored number of a notification kind.
pub(crate) fn notification_to_sql(kind: NotificationKind) -> i64 {
    match kind {
        NotificationKind::DownloadAvailable => 0,
        NotificationKind::RetryRequested => 1,
    }
}

/// The notification kind a stored number stands for.
pub(crate) fn notification_from_sql(value: i64) -> NotificationKind {
    if value == 1 {
        NotificationKind::RetryRequested
    } else {
        NotificationKind::DownloadAvailable
    }
}

pub(crate) fn kind_to_sql(kind: FileKind) -> i64 {
    match kind {
        FileKind::File => 0,
        FileKind::Directory => 1,
    }
}

pub(crate) fn kind_from_sql(value: i64) -> FileKind {
    if value == 1 {
        FileKind::Directory
    } else {
        FileKind::File
    }
}

pub(crate) fn link_to_sql(link: LinkKind) -> i64 {
    match link {
        LinkKind::None => 0,
        LinkKind::Tcp => 1,
        LinkKind::Serial => 2,
    }
}

pub(crate) fn link_from_sql(value: i64) -> LinkKind {
    match value {
        1 => LinkKind::Tcp,
        2 => LinkKind::Serial,
        _ => LinkKind::None,
    }
}

pub(crate) fn download_to_sql(state: DownloadState) -> i64 {
    match state {
        DownloadState::Pending => 0,
        DownloadState::Done => 1,
        DownloadState::Failed => 2,
        DownloadState::Downloading => 3,
    }
}

pub(crate) fn download_from_sql(value: i64) -> DownloadState {
    match value {
        1 => DownloadState::Done,
        2 => DownloadState::Failed,
        3 => DownloadState::Downloading,
        _ => DownloadState::Pending,
    }
}

const HISTORY_KINDS: [HistoryKind; 12] = [
    HistoryKind::Joined,
    HistoryKind::Left,
    HistoryKind::BatchAnnounced,
    HistoryKind::Uploaded,
    HistoryKind::UploadFailed,
    HistoryKind::Deleted,
    HistoryKind::RetryRequested,
    HistoryKind::Downloaded,
    HistoryKind::Conflict,
    HistoryKind::DeviceAdded,
    HistoryKind::DeviceRemoved,
    HistoryKind::Restored,
];

pub(crate) fn history_to_sql(kind: HistoryKind) -> i64 {
    HISTORY_KINDS.iter().position(|k| *k == kind).unwrap_or(0) as i64
}

pub(crate) fn history_from_sql(value: i64) -> HistoryKind {
    usize::try_from(value)
        .ok()
        .and_then(|i| HISTORY_KINDS.get(i).copied())
        .unwrap_or(HistoryKind::Joined)
}
