//! Repair commands on a session: delete a record, ask the owner for a
//! re-upload, restore a deleted record. The work itself is in
//! [`crate::repair`], shared with the dashboard.

use proto_core::message::RequestId;
use proto_core::{ErrorCode, ServerMessage};
use tokio::io::AsyncWrite;

use super::active::Session;
use crate::repair::{self, RepairError};

impl<W: AsyncWrite + Unpin + Send> Session<'_, W> {
    fn check_name(&mut self, id: RequestId, name: &str) -> bool {
        match crate::names::check(name) {
            Ok(()) => true,
            Err(error) => {
                let message = format!("`{}`: {error}", name.escape_debug());
                self.error(id, ErrorCode::BadName, &message);
                false
            }
        }
    }

    /// True (and the error queued) when this very session is uploading `name`: waiting
    /// for the name lock would only wait for ourselves.
    fn own_upload_open(&mut self, id: RequestId, name: &str) -> bool {
        let open = self
            .uploads
            .iter()
            .any(|u| u.is_open() && u.record.name == name);
        if open {
            let message = format!(
                "`{name}` is being uploaded on this session; finish or abort that upload first"
            );
            self.error(id, ErrorCode::Busy, &message);
        }
        open
    }

    fn repair_error(&mut self, id: RequestId, error: RepairError) {
        match error {
            RepairError::Busy(_) => self.error(id, ErrorCode::Busy, &error.to_string()),
            RepairError::Store(error) => self.store_error(id, error),
        }
    }

    pub(super) async fn delete(&mut self, id: RequestId, name: &str) {
        if !self.check_name(id, name) || self.own_upload_open(id, name) {
            return;
        }
        let allow = self.service.limits.allow_foreign_delete;
        match repair::delete(&self.service, &self.device, name, allow).await {
            Ok(_) => {
                tracing::info!(session = self.id, device = ?self.device, name, "record deleted");
                self.push(id, ServerMessage::Ok);
            }
            Err(error) => self.repair_error(id, error),
        }
    }

    pub(super) async fn retry(&mut self, id: RequestId, name: &str) {
        if !self.check_name(id, name) || self.own_upload_open(id, name) {
            return;
        }
        if !self.service.limits.allow_foreign_retry {
            let owned = name.to_string();
            match self.service.db(move |s| s.record(&owned)).await {
                Ok(Some(record)) if record.owner != self.device => {
                    let message = format!(
                        "`{name}` belongs to device `{}`; this server lets only the owner ask for a re-upload",
                        record.owner
                    );
                    return self.error(id, ErrorCode::PermissionDenied, &message);
                }
                Ok(_) => {}
                Err(error) => return self.store_error(id, error),
            }
        }
        match repair::retry(&self.service, &self.device, name).await {
            Ok(retried) => {
                tracing::info!(session = self.id, device = ?self.device, name, owner = ?retried.record.owner, "re-upload requested");
                self.push(id, ServerMessage::Ok);
            }
            Err(error) => self.repair_error(id, error),
        }
    }

    pub(super) async fn restore(&mut self, id: RequestId, name: &str, at: Option<u64>) {
        if !self.check_name(id, name) {
            return;
        }
        match repair::restore(&self.service, &self.device, name, at).await {
            Ok(restored) => {
                let record = &restored.record;
                tracing::info!(session = self.id, device = ?self.device, name, state = ?record.state, "record restored");
                self.push(id, ServerMessage::Restored(record.as_wire()));
            }
            Err(error) => self.repair_error(id, error),
        }
    }
}
