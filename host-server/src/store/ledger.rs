//! The store logic both SQL backends share, written once over [`Ledger`]:
//! announcing a batch, the life of an upload (open, progress, failed,
//! completed), deleting and retrying a record, and the download gate. A
//! backend provides the steps (find, insert, replace, flag, remove a record,
//! set its state, log history, keep batches, downloads and notifications)
//! inside its own write transaction — SQLite's `Transaction`, PostgreSQL's
//! `Work` — and its [`super::Store`] methods call the functions here.

use proto_core::model::{DownloadState, HistoryKind};
use proto_core::{ContentHash, FileKind, UploadState};

use super::{
    Announced, BatchOutcome, Completion, ContentReuse, Deletion, DeviceQuota, DeviceUsage,
    DownloadGate, DownloadProgress, DownloadStanding, NotificationKind, RecordRow, Restoration,
    Retried, StoreError, StoreResult, UploadOpening,
};
use crate::reconcile::{reconcile, Existing, Reconciliation};

/// The steps on records, batches and history a backend provides inside one
/// write transaction.
pub(crate) trait Ledger {
    /// The record named `name`, if there is one.
    fn record_by_name(&mut self, name: &str) -> StoreResult<Option<RecordRow>>;
    /// Another record whose name differs from `name` only by the case of its
    /// letters (ASCII on SQLite; the database's locale on PostgreSQL).
    fn case_twin(&mut self, name: &str) -> StoreResult<Option<RecordRow>>;
    /// Record `id` (else `NoSuchRecord`).
    fn record_by_id(&mut self, id: u64) -> StoreResult<RecordRow>;
    /// Record `id`, if it still has content `hash` (else `ContentChanged`).
    fn same_content(&mut self, id: u64, hash: &ContentHash) -> StoreResult<RecordRow>;
    /// A new record for `file` in `state`, owned by `owner`, in `batch` (0 for none).
    fn insert_record(
        &mut self,
        file: &Announced,
        state: UploadState,
        owner: &str,
        batch: u64,
        now: u64,
    ) -> StoreResult<RecordRow>;
    /// Record `id` with `file`'s kind, size and hash, in `state`, nothing received.
    fn replace_content(
        &mut self,
        id: u64,
        file: &Announced,
        state: UploadState,
        now: u64,
    ) -> StoreResult<RecordRow>;
    /// Keeps `device`'s announcement of `file` that conflicts with record `record`;
    /// false (and nothing kept) when `device` announced that content for it already.
    fn insert_conflict(
        &mut self,
        record: u64,
        device: &str,
        batch: u64,
        file: &Announced,
        now: u64,
    ) -> StoreResult<bool>;
    /// Flags record `id` as conflicting.
    fn mark_conflict(&mut self, id: u64, now: u64) -> StoreResult<RecordRow>;
    /// Record `id` in `state` with `received` bytes and `reason`.
    fn set_state(
        &mut self,
        id: u64,
        state: UploadState,
        received: u64,
        reason: &str,
        now: u64,
    ) -> StoreResult<RecordRow>;
    /// Appends a history entry and returns its sequence number.
    fn history(
        &mut self,
        device: &str,
        kind: HistoryKind,
        subject: &str,
        detail: &str,
        now: u64,
    ) -> StoreResult<u64>;
    /// A new batch named `name` of `expected` files; its id.
    fn insert_batch(
        &mut self,
        name: &str,
        owner: &str,
        expected: u64,
        now: u64,
    ) -> StoreResult<u64>;
    /// Makes `record` a member of `batch` (once).
    fn add_batch_member(&mut self, batch: u64, record: u64) -> StoreResult<()>;
    /// Removes `record` and everything that refers to it, and keeps it as a
    /// deleted version by `actor` (with its bytes if `keep_bytes`); the revision of the removal.
    fn remove_record(
        &mut self,
        record: &RecordRow,
        actor: &str,
        keep_bytes: bool,
        now: u64,
    ) -> StoreResult<u64>;
    /// The version of `name` a restore brings back (see [`super::Store::restorable`]).
    fn restorable(&mut self, name: &str, at: Option<u64>) -> StoreResult<Option<RecordRow>>;
    /// Inserts `version` again, under its old id, in `state` with `received` bytes.
    fn insert_restored(
        &mut self,
        version: &RecordRow,
        state: UploadState,
        received: u64,
        now: u64,
    ) -> StoreResult<RecordRow>;
    /// True when no uploaded record has content `hash` any more.
    fn blob_unused(&mut self, hash: &ContentHash) -> StoreResult<bool>;
    /// Sets `device`'s download of `record` to `standing`.
    fn set_download(
        &mut self,
        device: &str,
        record: u64,
        standing: &DownloadStanding<'_>,
        now: u64,
    ) -> StoreResult<()>;
    /// The devices waiting (`Pending`) for `record`, by name.
    fn waiting_devices(&mut self, record: u64) -> StoreResult<Vec<String>>;
    /// How many records, batches and unfinished uploads `device` has.
    fn device_usage(&mut self, device: &str) -> StoreResult<DeviceUsage>;
    /// Removes `owner`'s batches that no record belongs to any more.
    fn remove_empty_batches(&mut self, owner: &str) -> StoreResult<()>;
    /// Queues a notification of `kind` about `record` for `device` (once: a notice
    /// already pending for the same device, kind and record is not queued again).
    fn notify(
        &mut self,
        device: &str,
        kind: NotificationKind,
        record: u64,
        now: u64,
    ) -> StoreResult<()>;
    /// Removes `device`'s queued notifications of `kind` about `record`.
    fn settle_notices(
        &mut self,
        device: &str,
        record: u64,
        kind: NotificationKind,
    ) -> StoreResult<()>;
    /// A record in `11` with content `hash` and `size`, owned by `owner` (by any
    /// device when `None`): its blob holds those bytes.
    fn uploaded_with_content(
        &mut self,
        hash: &ContentHash,
        size: u64,
        owner: Option<&str>,
    ) -> StoreResult<Option<u64>>;
}

/// The record named `name` (else `NoSuchRecord`).
fn named(ledger: &mut impl Ledger, name: &str) -> StoreResult<RecordRow> {
    ledger
        .record_by_name(name)?
        .ok_or_else(|| StoreError::NoSuchRecord(name.to_string()))
}

/// What an announcement finds for one file.
fn decide(ledger: &mut impl Ledger, owner: &str, file: &Announced) -> StoreResult<Decision> {
    let existing = ledger.record_by_name(&file.name)?;
    if existing.is_none() {
        if let Some(twin) = ledger.case_twin(&file.name)? {
            // `Photo.jpg` beside `photo.jpg` would overwrite one with the other on
            // Windows and macOS: a conflict with the record already there, whoever owns it.
            return Ok(Decision(Reconciliation::Conflict, Some(twin)));
        }
    }
    let decision = reconcile(
        existing.as_ref().map(|r| Existing {
            owner: &r.owner,
            hash: r.hash,
            size: r.size,
        }),
        owner,
        file.hash,
        file.size,
    );
    Ok(Decision(decision, existing))
}

/// A reconciliation and the record it was made against.
struct Decision(Reconciliation, Option<RecordRow>);

/// Keeps `device`'s announcement of `file` that conflicts with `record`,
/// logs it (once per device and content: announcing it again, as a manifest
/// and then its upload do, adds no second line), and flags the record; the
/// record if it was not flagged already.
fn flag_conflict(
    ledger: &mut impl Ledger,
    record: &RecordRow,
    device: &str,
    batch: u64,
    file: &Announced,
    now: u64,
) -> StoreResult<Option<RecordRow>> {
    if ledger.insert_conflict(record.id, device, batch, file, now)? {
        log_conflict(ledger, record, device, file, now)?;
    }
    if record.conflict {
        return Ok(None);
    }
    ledger.mark_conflict(record.id, now).map(Some)
}

/// The history line of a new conflict: another content under the same name, or a
/// name that differs from the record's only by case.
fn log_conflict(
    ledger: &mut impl Ledger,
    record: &RecordRow,
    device: &str,
    file: &Announced,
    now: u64,
) -> StoreResult<()> {
    let detail = if file.name == record.name {
        format!(
            "announced with hash {} ({} bytes); kept {}'s hash {}",
            file.hash, file.size, record.owner, record.hash
        )
    } else {
        format!(
            "{:?} announced, which differs only by case; kept {}'s {:?}",
            file.name, record.owner, record.name
        )
    };
    ledger.history(device, HistoryKind::Conflict, &record.name, &detail, now)?;
    Ok(())
}

/// The error for `device` at `limit` of `what`.
fn quota_reached(device: &str, what: &'static str, flag: &'static str, limit: u64) -> StoreError {
    StoreError::QuotaReached {
        device: device.to_string(),
        what,
        flag,
        limit,
    }
}

/// Makes `record` (just created or reset for `file`) `11` when the server already
/// holds `file`'s content in another finished record `reuse` allows; the record
/// then, else `None`.
fn finish_if_held(
    ledger: &mut impl Ledger,
    record: &RecordRow,
    file: &Announced,
    reuse: ContentReuse,
    now: u64,
) -> StoreResult<Option<RecordRow>> {
    let owner = match reuse {
        ContentReuse::OwnDevice => Some(record.owner.as_str()),
        ContentReuse::AnyDevice => None,
    };
    if crate::reconcile::hash_pending(&file.hash, file.size) {
        // Announced without its hash: nothing to compare with yet.
        return Ok(None);
    }
    let Some(source) = ledger.uploaded_with_content(&file.hash, file.size, owner)? else {
        return Ok(None);
    };
    let held = ledger.set_state(record.id, UploadState::Uploaded, file.size, "", now)?;
    ledger.history(
        &record.owner,
        HistoryKind::Uploaded,
        &held.name,
        &format!(
            "{} bytes, sha256 {}: already on the server (record {source})",
            held.size, held.hash
        ),
        now,
    )?;
    Ok(Some(held))
}

/// [`super::Store::announce_batch`].
pub(crate) fn announce_batch(
    ledger: &mut impl Ledger,
    owner: &str,
    batch: &str,
    entries: &[Announced],
    quota: &DeviceQuota,
    reuse: ContentReuse,
    now: u64,
) -> StoreResult<BatchOutcome> {
    let mut usage = ledger.device_usage(owner)?;
    if usage.batches >= quota.batches {
        ledger.remove_empty_batches(owner)?;
        usage = ledger.device_usage(owner)?;
        if usage.batches >= quota.batches {
            return Err(quota_reached(owner, "batches", "batches", quota.batches));
        }
    }
    let batch_id = ledger.insert_batch(batch, owner, entries.len() as u64, now)?;
    ledger.history(
        owner,
        HistoryKind::BatchAnnounced,
        batch,
        &format!("{} files", entries.len()),
        now,
    )?;
    let mut outcome = BatchOutcome {
        batch: batch_id,
        records: 0,
        conflicts: 0,
        held: Vec::new(),
        changed: Vec::new(),
        replaced: Vec::new(),
    };
    for (index, file) in (0u32..).zip(entries) {
        let member = match decide(ledger, owner, file)? {
            Decision(Reconciliation::Create, _) | Decision(_, None) => {
                if usage.records >= quota.records {
                    // The transaction is dropped: nothing of this manifest is kept.
                    return Err(quota_reached(owner, "records", "records", quota.records));
                }
                usage.records += 1;
                let record =
                    ledger.insert_record(file, UploadState::Needed, owner, batch_id, now)?;
                let record = match finish_if_held(ledger, &record, file, reuse, now)? {
                    Some(held) => {
                        outcome.held.push((index, held.id));
                        held
                    }
                    None => record,
                };
                let id = record.id;
                outcome.changed.push(record);
                Some(id)
            }
            Decision(Reconciliation::Join, Some(record)) => {
                if record.state.is_uploaded() {
                    outcome.held.push((index, record.id));
                }
                Some(record.id)
            }
            Decision(Reconciliation::Replace, Some(record)) => {
                outcome.replaced.push((record.id, record.hash));
                let record = ledger.replace_content(record.id, file, UploadState::Needed, now)?;
                let record = match finish_if_held(ledger, &record, file, reuse, now)? {
                    Some(held) => {
                        outcome.held.push((index, held.id));
                        held
                    }
                    None => record,
                };
                let id = record.id;
                outcome.changed.push(record);
                Some(id)
            }
            Decision(Reconciliation::Conflict, Some(record)) => {
                outcome.conflicts += 1;
                if let Some(flagged) = flag_conflict(ledger, &record, owner, batch_id, file, now)? {
                    outcome.changed.push(flagged);
                }
                None
            }
        };
        if let Some(record) = member {
            outcome.records += 1;
            ledger.add_batch_member(batch_id, record)?;
        }
    }
    // A name listed twice in one manifest yields one record: publish its last state once.
    outcome.changed.reverse();
    let mut seen = std::collections::HashSet::new();
    outcome.changed.retain(|r| seen.insert(r.id));
    outcome.changed.reverse();
    Ok(outcome)
}

/// Refuses an upload that would take `device` past its quota: a new record, or
/// a new unfinished upload (a partial file) of a record it owns.
fn check_upload_quota(
    ledger: &mut impl Ledger,
    device: &str,
    quota: &DeviceQuota,
    decision: &Decision,
) -> StoreResult<()> {
    let (new_record, new_partial) = match decision {
        Decision(Reconciliation::Create, _) | Decision(_, None) => (true, true),
        Decision(Reconciliation::Conflict, _) => (false, false),
        Decision(how, Some(record)) => {
            // `01` starts an upload; `11` only when replaced (joining it uploads nothing);
            // `10` and `00` already have their partial file.
            let starts = match record.state {
                UploadState::Needed => true,
                UploadState::Uploaded => matches!(how, Reconciliation::Replace),
                UploadState::Uploading | UploadState::Failed => false,
            };
            (false, record.owner == device && starts)
        }
    };
    if !new_record && !new_partial {
        return Ok(());
    }
    let usage = ledger.device_usage(device)?;
    if new_record && usage.records >= quota.records {
        return Err(quota_reached(device, "records", "records", quota.records));
    }
    if new_partial && usage.partial_uploads >= quota.partial_uploads {
        return Err(quota_reached(
            device,
            "unfinished uploads",
            "partial-uploads",
            quota.partial_uploads,
        ));
    }
    Ok(())
}

/// [`super::Store::open_upload`].
pub(crate) fn open_upload(
    ledger: &mut impl Ledger,
    device: &str,
    file: &Announced,
    quota: &DeviceQuota,
    now: u64,
) -> StoreResult<UploadOpening> {
    let decision = decide(ledger, device, file)?;
    check_upload_quota(ledger, device, quota, &decision)?;
    if let Decision(_, Some(record)) = &decision {
        if record.owner == device {
            // The owner is uploading: a request to upload again is answered.
            ledger.settle_notices(device, record.id, NotificationKind::RetryRequested)?;
        }
    }
    Ok(match decision {
        Decision(Reconciliation::Create, _) | Decision(_, None) => UploadOpening::Ready {
            record: ledger.insert_record(file, UploadState::Uploading, device, 0, now)?,
            changed: true,
            replaced: None,
        },
        Decision(Reconciliation::Join, Some(record)) if record.state.is_uploaded() => {
            UploadOpening::AlreadyUploaded(record)
        }
        Decision(Reconciliation::Join, Some(record)) => UploadOpening::Ready {
            record,
            changed: false,
            replaced: None,
        },
        Decision(Reconciliation::Replace, Some(record)) => UploadOpening::Ready {
            record: ledger.replace_content(record.id, file, UploadState::Uploading, now)?,
            changed: true,
            replaced: Some(record.hash),
        },
        Decision(Reconciliation::Conflict, Some(record)) => {
            let flagged = flag_conflict(ledger, &record, device, 0, file, now)?;
            UploadOpening::Conflict(flagged.unwrap_or(record))
        }
    })
}

/// [`super::Store::upload_progress`].
pub(crate) fn upload_progress(
    ledger: &mut impl Ledger,
    id: u64,
    hash: &ContentHash,
    received: u64,
    now: u64,
) -> StoreResult<RecordRow> {
    let record = ledger.same_content(id, hash)?;
    if record.state.is_uploaded() {
        // Another device's joined upload finished it first: `11` stays.
        return Ok(record);
    }
    ledger.set_state(id, UploadState::Uploading, received, "", now)
}

/// [`super::Store::upload_failed`].
pub(crate) fn upload_failed(
    ledger: &mut impl Ledger,
    id: u64,
    hash: &ContentHash,
    device: &str,
    received: u64,
    reason: &str,
    now: u64,
) -> StoreResult<RecordRow> {
    let record = ledger.same_content(id, hash)?;
    if record.state.is_uploaded() {
        // Another device's joined upload finished it first: `11` stays.
        return Ok(record);
    }
    let record = ledger.set_state(id, UploadState::Failed, received, reason, now)?;
    ledger.history(
        device,
        HistoryKind::UploadFailed,
        &record.name,
        &format!("{reason} at {received} of {} bytes", record.size),
        now,
    )?;
    Ok(record)
}

/// [`super::Store::expire_partial_upload`].
pub(crate) fn expire_partial_upload(
    ledger: &mut impl Ledger,
    id: u64,
    hash: &ContentHash,
    untouched_before: u64,
    reason: &str,
    now: u64,
) -> StoreResult<Option<RecordRow>> {
    let record = match ledger.same_content(id, hash) {
        Ok(record) => record,
        Err(StoreError::NoSuchRecord(_) | StoreError::ContentChanged(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    let unfinished = match record.state {
        UploadState::Uploading => true,
        UploadState::Failed => record.received > 0,
        UploadState::Needed | UploadState::Uploaded => false,
    };
    if !unfinished || record.updated_at >= untouched_before {
        return Ok(None);
    }
    let expired = ledger.set_state(id, UploadState::Failed, 0, reason, now)?;
    ledger.history(
        &record.owner,
        HistoryKind::UploadFailed,
        &record.name,
        &format!(
            "{reason}; {} of {} bytes freed",
            record.received, record.size
        ),
        now,
    )?;
    Ok(Some(expired))
}

/// [`super::Store::upload_completed`].
pub(crate) fn upload_completed(
    ledger: &mut impl Ledger,
    id: u64,
    hash: &ContentHash,
    verified: &ContentHash,
    device: &str,
    now: u64,
) -> StoreResult<Completion> {
    let before = ledger.same_content(id, hash)?;
    if before.hash != *verified {
        // Opened without its hash: the record learns it now, keeping its flags.
        let file = Announced {
            name: before.name.clone(),
            kind: before.kind,
            size: before.size,
            hash: *verified,
        };
        ledger.replace_content(id, &file, UploadState::Uploading, now)?;
    }
    let record = ledger.set_state(id, UploadState::Uploaded, before.size, "", now)?;
    ledger.history(
        device,
        HistoryKind::Uploaded,
        &record.name,
        &format!("{} bytes, sha256 {}", record.size, record.hash),
        now,
    )?;
    let notified = ledger.waiting_devices(id)?;
    for waiting in &notified {
        ledger.notify(waiting, NotificationKind::DownloadAvailable, id, now)?;
    }
    Ok(Completion { record, notified })
}

/// [`super::Store::delete_record`].
pub(crate) fn delete_record(
    ledger: &mut impl Ledger,
    device: &str,
    name: &str,
    allow_foreign: bool,
    keep_bytes: bool,
    now: u64,
) -> StoreResult<Deletion> {
    let record = named(ledger, name)?;
    if record.owner != device && !allow_foreign {
        return Err(StoreError::NotOwner {
            name: record.name,
            owner: record.owner,
        });
    }
    let revision = ledger.remove_record(&record, device, keep_bytes, now)?;
    ledger.history(
        device,
        HistoryKind::Deleted,
        &record.name,
        &format!("owner {}", record.owner),
        now,
    )?;
    let blob_unused = ledger.blob_unused(&record.hash)?;
    Ok(Deletion {
        record,
        revision,
        blob_unused,
    })
}

/// [`super::Store::restore_record`].
pub(crate) fn restore_record(
    ledger: &mut impl Ledger,
    device: &str,
    name: &str,
    at: Option<u64>,
    held: Option<ContentHash>,
    now: u64,
) -> StoreResult<Restoration> {
    if let Some(live) = ledger.record_by_name(name)? {
        return Err(StoreError::NameTaken {
            name: live.name,
            owner: live.owner,
        });
    }
    if let Some(twin) = ledger.case_twin(name)? {
        return Err(StoreError::NameTaken {
            name: twin.name,
            owner: twin.owner,
        });
    }
    let version = ledger
        .restorable(name, at)?
        .ok_or_else(|| nothing_to_restore(name, at))?;
    let uploaded = version.kind == FileKind::Directory
        || (version.state.is_uploaded() && held == Some(version.hash));
    let (state, received) = if uploaded {
        (UploadState::Uploaded, version.size)
    } else {
        (UploadState::Needed, 0)
    };
    let record = ledger.insert_restored(&version, state, received, now)?;
    if !uploaded {
        ledger.notify(
            &record.owner,
            NotificationKind::RetryRequested,
            record.id,
            now,
        )?;
    }
    let detail = if uploaded {
        format!("owner {}, bytes kept: back as 11", record.owner)
    } else {
        format!(
            "owner {}, bytes no longer kept: back as 01, owner asked to upload again",
            record.owner
        )
    };
    ledger.history(device, HistoryKind::Restored, &record.name, &detail, now)?;
    Ok(Restoration {
        record,
        owner_asked: !uploaded,
    })
}

/// The error for a restore that found no version of `name`.
pub(crate) fn nothing_to_restore(name: &str, at: Option<u64>) -> StoreError {
    StoreError::NothingToRestore {
        name: name.to_string(),
        at: at.map(|r| format!(" at revision {r}")).unwrap_or_default(),
    }
}

/// [`super::Store::retry_record`].
pub(crate) fn retry_record(
    ledger: &mut impl Ledger,
    device: &str,
    name: &str,
    now: u64,
) -> StoreResult<Retried> {
    let before = named(ledger, name)?;
    let record = ledger.set_state(before.id, UploadState::Needed, 0, "", now)?;
    ledger.notify(
        &record.owner,
        NotificationKind::RetryRequested,
        record.id,
        now,
    )?;
    ledger.history(
        device,
        HistoryKind::RetryRequested,
        &record.name,
        &format!("owner {} asked to upload again", record.owner),
        now,
    )?;
    let blob_unused = ledger.blob_unused(&before.hash)?;
    Ok(Retried {
        record,
        old_hash: before.hash,
        blob_unused,
    })
}

/// [`super::Store::request_download`].
pub(crate) fn request_download(
    ledger: &mut impl Ledger,
    device: &str,
    name: &str,
    notify: bool,
    now: u64,
) -> StoreResult<DownloadGate> {
    let record = named(ledger, name)?;
    if record.state.is_uploaded() {
        return Ok(DownloadGate::Ready(record));
    }
    if notify {
        let pending = DownloadStanding {
            state: DownloadState::Pending,
            acknowledged: Some(0),
            detail: "",
        };
        ledger.set_download(device, record.id, &pending, now)?;
    }
    Ok(DownloadGate::Rejected { record, notify })
}

/// [`super::Store::report_download`].
///
/// The report is what settles a `DownloadAvailable` notice: until the device
/// says how its download ended, the notice stays queued and every new session
/// of the device is told again (a notice written to a session that was
/// already dying never reached the device).
pub(crate) fn report_download(
    ledger: &mut impl Ledger,
    device: &str,
    record: u64,
    state: DownloadState,
    now: u64,
) -> StoreResult<()> {
    let row = ledger.record_by_id(record)?;
    let standing = match state {
        DownloadState::Done => DownloadStanding {
            state,
            acknowledged: Some(row.size),
            detail: "",
        },
        _ => DownloadStanding {
            state,
            acknowledged: None,
            detail: "the device reported it failed: the hash did not match, or it gave up",
        },
    };
    ledger.set_download(device, record, &standing, now)?;
    ledger.settle_notices(device, record, NotificationKind::DownloadAvailable)?;
    ledger.history(
        device,
        HistoryKind::Downloaded,
        &row.name,
        state.word(),
        now,
    )?;
    Ok(())
}

/// [`super::Store::download_progress`].
pub(crate) fn download_progress(
    ledger: &mut impl Ledger,
    device: &str,
    record: u64,
    progress: DownloadProgress,
    now: u64,
) -> StoreResult<()> {
    match progress {
        DownloadProgress::Receiving { acknowledged } => {
            let standing = DownloadStanding {
                state: DownloadState::Downloading,
                acknowledged: Some(acknowledged),
                detail: "",
            };
            ledger.set_download(device, record, &standing, now)
        }
        DownloadProgress::BrokeOff {
            acknowledged,
            reason,
        } => {
            let row = ledger.record_by_id(record)?;
            let detail = format!("{reason} after {acknowledged} of {} bytes", row.size);
            let standing = DownloadStanding {
                state: DownloadState::Failed,
                acknowledged: Some(acknowledged),
                detail: &detail,
            };
            ledger.set_download(device, record, &standing, now)?;
            let line = format!("failed: {detail}");
            ledger.history(device, HistoryKind::Downloaded, &row.name, &line, now)?;
            Ok(())
        }
    }
}
