//! The session with the server. Interim: proto-core's client state machine
//! has not landed yet, so every call reports that it is unavailable.
#![allow(missing_docs, unused)]
use crate::config::Settings;
use crate::error::{CliError, CliResult};
use crate::local::LocalFile;
use crate::view::*;
use proto_core::{ContentHash, ListFilter, UploadState};
use std::path::Path;
use std::time::Duration;
pub struct Session;
pub struct BatchCreated {
    pub batch: u64,
    pub records: u32,
    pub conflicts: u32,
}
pub enum UploadOutcome {
    Uploaded {
        record: RecordView,
        resumed_from: u64,
        sent: u64,
    },
    AlreadyUploaded {
        record: RecordView,
    },
    Refused(CliError),
}
pub enum DownloadOutcome {
    Fetched {
        resumed_from: u64,
    },
    Rejected {
        state: UploadState,
        received: u64,
        size: u64,
        notify: bool,
    },
    Refused(CliError),
}
pub enum SessionEvent {
    RecordChanged(RecordView),
    RecordDeleted {
        id: u64,
        name: String,
        revision: u64,
    },
    Presence(DeviceView),
    DownloadAvailable {
        record: u64,
        name: String,
        size: u64,
        hash: String,
    },
    RetryRequested {
        record: u64,
        name: String,
    },
    Goodbye(String),
}
impl Session {
    pub fn connect(settings: &Settings) -> CliResult<Session> {
        Err(unavailable())
    }
    pub fn device(&self) -> &str {
        ""
    }
    pub fn list(&mut self, filter: ListFilter) -> CliResult<Vec<RecordView>> {
        Err(unavailable())
    }
    pub fn batches(&mut self) -> CliResult<Vec<BatchView>> {
        Err(unavailable())
    }
    pub fn devices(&mut self) -> CliResult<Vec<DeviceView>> {
        Err(unavailable())
    }
    pub fn history(&mut self, since: u64, limit: u32) -> CliResult<Vec<HistoryView>> {
        Err(unavailable())
    }
    pub fn delete(&mut self, name: &str) -> CliResult<()> {
        Err(unavailable())
    }
    pub fn retry(&mut self, name: &str) -> CliResult<()> {
        Err(unavailable())
    }
    pub fn announce(&mut self, batch: &str, files: &[LocalFile]) -> CliResult<BatchCreated> {
        Err(unavailable())
    }
    pub fn upload(
        &mut self,
        file: &LocalFile,
        limit_rate: Option<u64>,
        progress: &mut dyn FnMut(u64),
    ) -> CliResult<UploadOutcome> {
        Err(unavailable())
    }
    pub fn download(
        &mut self,
        record: &RecordView,
        target: &Path,
        notify: bool,
        progress: &mut dyn FnMut(u64),
    ) -> CliResult<DownloadOutcome> {
        Err(unavailable())
    }
    pub fn subscribe(&mut self, filter: ListFilter) -> CliResult<u64> {
        Err(unavailable())
    }
    pub fn next_event(&mut self, timeout: Option<Duration>) -> CliResult<Option<SessionEvent>> {
        Err(unavailable())
    }
    pub fn close(self) {}
}

fn unavailable() -> CliError {
    CliError::Link(
        "this build has no protocol client yet (proto-core::client has not landed)".into(),
    )
}
