//! Repair commands, shared by device sessions and the dashboard: delete a
//! record (its bytes are kept for `--keep-deleted`), ask the owner for a
//! re-upload, restore a deleted record.
//!
//! Each runs under the record's name lock (so it never races an upload of
//! the same file), removes bytes nobody uses any more, and publishes the
//! change to the hub. The caller has validated the name and logs the outcome.

use std::time::Duration;

use crate::blobs::PartialKey;
use crate::hub::HubEvent;
use crate::service::{unix_now, Service};
use crate::store::{Deletion, Restoration, Retried, StoreError};

/// How long a repair waits for an upload of the same file to let go.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Why a repair command did nothing.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// An upload of the file holds its name lock.
    #[error("`{0}` is being uploaded right now; try again when the upload ends")]
    Busy(String),
    /// The store refused (no such record, not the owner, database error).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Deletes record `name` on behalf of `actor` (a device name, or the
/// dashboard's), who must own it unless `allow_foreign`. Its bytes stay for
/// `--keep-deleted` (a restore then brings it back `11`), else they go now.
pub async fn delete(
    service: &Service,
    actor: &str,
    name: &str,
    allow_foreign: bool,
) -> Result<Deletion, RepairError> {
    let Some(_lock) = service.lock_name(name, LOCK_WAIT).await else {
        return Err(RepairError::Busy(name.to_string()));
    };
    let (actor, owned, now) = (actor.to_string(), name.to_string(), unix_now());
    let keep_bytes = !service.limits.keep_deleted.is_zero();
    let deletion = service
        .db(move |s| s.delete_record(&actor, &owned, allow_foreign, keep_bytes, now))
        .await?;
    let record = &deletion.record;
    if let Err(error) = service
        .blobs
        .remove_partial(&PartialKey::owner(record.id, &record.hash))
        .await
    {
        tracing::warn!(%error, name, "could not remove partial bytes of a deleted record");
    }
    {
        let _blobs = service.blob_lock().await;
        service.remove_blob_if_unused(record.hash).await;
    }
    service.hub.publish(HubEvent::RecordDeleted {
        id: record.id,
        name: record.name.clone(),
        revision: deletion.revision,
    });
    Ok(deletion)
}

/// Puts record `name` back to `01` on behalf of `actor`, drops its bytes,
/// and tells the owner (now if it is connected, at its next connect otherwise).
pub async fn retry(service: &Service, actor: &str, name: &str) -> Result<Retried, RepairError> {
    let Some(_lock) = service.lock_name(name, LOCK_WAIT).await else {
        return Err(RepairError::Busy(name.to_string()));
    };
    let (actor, owned, now) = (actor.to_string(), name.to_string(), unix_now());
    let retried = service
        .db(move |s| s.retry_record(&actor, &owned, now))
        .await?;
    let record = &retried.record;
    let _ = service.take_hash(record.id, &retried.old_hash);
    if let Err(error) = service
        .blobs
        .remove_partial(&PartialKey::owner(record.id, &retried.old_hash))
        .await
    {
        tracing::warn!(%error, name, "could not remove partial bytes of a retried record");
    }
    {
        let _blobs = service.blob_lock().await;
        service.remove_blob_if_unused(retried.old_hash).await;
    }
    service.hub.wake([record.owner.as_str()]);
    service.publish_records([record.clone()], true);
    Ok(retried)
}

/// Brings back the deleted record `name` (its newest deletion, or as it stood
/// at revision `at`) on behalf of `actor`: `11` when its bytes are still kept,
/// else `01`, and its owner is asked for them (now if it is connected, at its
/// next connect otherwise).
pub async fn restore(
    service: &Service,
    actor: &str,
    name: &str,
    at: Option<u64>,
) -> Result<Restoration, RepairError> {
    let Some(_lock) = service.lock_name(name, LOCK_WAIT).await else {
        return Err(RepairError::Busy(name.to_string()));
    };
    let owned = name.to_string();
    let version = service.db(move |s| s.restorable(&owned, at)).await?;
    // Held across the check and the commit: clean-up cannot take the bytes in between.
    let _blobs = service.blob_lock().await;
    let held = match service.blobs.holds_blob(&version.hash).await {
        Ok(true) => Some(version.hash),
        Ok(false) => None,
        Err(error) => {
            tracing::warn!(%error, name, "could not check a restored record's bytes; asking its owner");
            None
        }
    };
    let (actor, owned, now) = (actor.to_string(), name.to_string(), unix_now());
    let restoration = service
        .db(move |s| s.restore_record(&actor, &owned, at, held, now))
        .await?;
    let record = &restoration.record;
    if restoration.owner_asked {
        service.hub.wake([record.owner.as_str()]);
    }
    service.publish_records([record.clone()], false);
    Ok(restoration)
}
