//! Repair commands: delete a record with its bytes, ask the owner for a re-upload.

use std::time::Duration;

use proto_core::message::RequestId;
use proto_core::name::validate;
use proto_core::{ErrorCode, ServerMessage};
use tokio::io::AsyncWrite;

use super::active::Session;
use crate::hub::HubEvent;
use crate::service::unix_now;

/// How long a repair waits for an upload of the same file to let go.
const LOCK_WAIT: Duration = Duration::from_secs(2);

impl<W: AsyncWrite + Unpin + Send> Session<'_, W> {
    fn check_name(&mut self, id: RequestId, name: &str) -> bool {
        match validate(name) {
            Ok(()) => true,
            Err(error) => {
                let message = format!("`{}`: {error}", name.escape_debug());
                self.error(id, ErrorCode::BadName, &message);
                false
            }
        }
    }

    pub(super) async fn delete(&mut self, id: RequestId, name: &str) {
        if !self.check_name(id, name) {
            return;
        }
        let Some(_lock) = self.service.lock_name(name, LOCK_WAIT).await else {
            let message =
                format!("`{name}` is being uploaded right now; try again when the upload ends");
            return self.error(id, ErrorCode::Busy, &message);
        };
        let (device, owned, now) = (self.device.clone(), name.to_string(), unix_now());
        let allow = self.service.limits.allow_foreign_delete;
        let deletion = match self
            .service
            .db(move |s| s.delete_record(&device, &owned, allow, now))
            .await
        {
            Ok(deletion) => deletion,
            Err(error) => return self.store_error(id, error),
        };
        let record = &deletion.record;
        if let Err(error) = self.service.blobs.remove_partial(record.id, &record.hash) {
            tracing::warn!(%error, name, "could not remove partial bytes of a deleted record");
        }
        {
            let _blobs = self.service.blob_lock().await;
            self.service.remove_blob_if_unused(record.hash).await;
        }
        tracing::info!(session = self.id, device = %self.device, name, "record deleted");
        self.service.hub.publish(HubEvent::RecordDeleted {
            id: record.id,
            name: record.name.clone(),
            revision: deletion.revision,
        });
        self.push(id, ServerMessage::Ok);
    }

    pub(super) async fn retry(&mut self, id: RequestId, name: &str) {
        if !self.check_name(id, name) {
            return;
        }
        let Some(_lock) = self.service.lock_name(name, LOCK_WAIT).await else {
            let message =
                format!("`{name}` is being uploaded right now; try again when the upload ends");
            return self.error(id, ErrorCode::Busy, &message);
        };
        let (device, owned, now) = (self.device.clone(), name.to_string(), unix_now());
        let retried = match self
            .service
            .db(move |s| s.retry_record(&device, &owned, now))
            .await
        {
            Ok(retried) => retried,
            Err(error) => return self.store_error(id, error),
        };
        let record = retried.record;
        let _ = self.service.take_hash(record.id, &retried.old_hash);
        if let Err(error) = self
            .service
            .blobs
            .remove_partial(record.id, &retried.old_hash)
        {
            tracing::warn!(%error, name, "could not remove partial bytes of a retried record");
        }
        {
            let _blobs = self.service.blob_lock().await;
            self.service.remove_blob_if_unused(retried.old_hash).await;
        }
        tracing::info!(session = self.id, device = %self.device, name, owner = %record.owner, "re-upload requested");
        self.service.hub.wake([record.owner.as_str()]);
        self.service.publish_records([record], true);
        self.push(id, ServerMessage::Ok);
    }
}
