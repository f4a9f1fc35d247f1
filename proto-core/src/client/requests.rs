//! The requests an application makes: each is queued at once (or refused with
//! a [`ClientError`]) and returns the id its replies and events carry.

#[cfg(feature = "download")]
use super::download::Download;
use super::manifest::Manifest;
use super::store::{FileId, FileStore};
use super::upload::Upload;
use super::{Client, ClientError};
use crate::message::{ClientFrame, ClientMessage, RequestId};
#[cfg(feature = "host-lists")]
use crate::model::At;
#[cfg(any(feature = "lists", feature = "subscribe"))]
use crate::model::ListFilter;
use crate::name::{validate, validate_label, MAX_BATCH_NAME_LEN};

/// Most files one manifest may announce: each attempt takes one request id
/// per file, and three attempts' ids must stay distinct within the 65,535
/// ids. Announce larger folders as several batches.
pub const MAX_MANIFEST_FILES: u16 = 16_000;

impl<S: FileStore, B: AsMut<[u8]>> Client<'_, S, B> {
    /// Queues a simple request and returns its id.
    fn request(&mut self, message: ClientMessage<'_>) -> Result<RequestId, ClientError> {
        self.core.require_ready()?;
        let id = self.core.session.next_id();
        self.core.tx.push_frame(&ClientFrame { id, message })?;
        Ok(id)
    }

    /// Announces the files `files` (store ids, in order) as batch `batch`:
    /// `ManifestBegin`, one entry per file (name, kind, size and hash from the
    /// store), `ManifestEnd`, sent as the queue drains. Returns the id
    /// [`super::Event::BatchCreated`] (or `RequestFailed` for any entry)
    /// carries. On serial lines a manifest hit by a lost frame is sent again.
    pub fn send_manifest(
        &mut self,
        batch: &str,
        files: core::ops::Range<u16>,
    ) -> Result<RequestId, ClientError> {
        self.core.require_ready()?;
        if self.core.manifest.is_some() {
            return Err(ClientError::Busy);
        }
        validate_label(batch, MAX_BATCH_NAME_LEN)?;
        let count = files.end.saturating_sub(files.start);
        if count > MAX_MANIFEST_FILES {
            return Err(ClientError::TooLarge);
        }
        for file in files.clone() {
            validate(self.core.store.meta(FileId(file))?.name)?;
        }
        let first_id = self
            .core
            .session
            .reserve_ids(Manifest::ids_needed(u32::from(count)));
        let retry = !self.core.config.framing.is_length();
        let manifest = Manifest::new(first_id, batch, files, retry);
        let handle = manifest.handle;
        self.core.manifest = Some(manifest);
        Ok(handle)
    }

    /// Opens (or resumes) the upload of `file`. The server answers with the
    /// offset it holds ([`super::Event::UploadStarted`]); chunks stream from
    /// there, never below it, until [`super::Event::UploadDone`].
    pub fn upload(&mut self, file: FileId) -> Result<RequestId, ClientError> {
        self.core.require_ready()?;
        if self.core.upload.is_some() {
            return Err(ClientError::Busy);
        }
        let meta = self.core.store.meta(file)?;
        validate(meta.name)?;
        let id = self.core.session.next_id();
        let message = ClientMessage::UploadOpen {
            name: meta.name,
            kind: meta.kind,
            size: meta.size,
            hash: meta.announced_hash(),
        };
        let size = meta.size;
        self.core.tx.push_frame(&ClientFrame { id, message })?;
        let mut upload = Upload::new(id, file, size, self.core.now_ms);
        upload.lossy = !self.core.config.framing.is_length();
        self.core.upload = Some(upload);
        Ok(id)
    }

    /// Gives up the running upload (`UploadAbort`); the server keeps what it
    /// received, so a later [`Client::upload`] resumes.
    pub fn cancel_upload(&mut self) -> Result<(), ClientError> {
        self.core.require_ready()?;
        let Some(upload) = self.core.upload.take() else {
            return Ok(());
        };
        if upload.phase() != super::UploadPhase::Opening {
            let message = ClientMessage::UploadAbort {
                upload: upload.transfer,
            };
            self.core.tx.push_frame(&ClientFrame {
                id: upload.id,
                message,
            })?;
        }
        Ok(())
    }

    /// Downloads `file` (its name from the store) from the start. With
    /// `notify`, a file that is not uploaded yet is remembered by the server,
    /// which sends [`super::Event::DownloadAvailable`] once it is: call
    /// `download(file, true)` again then. Needs the `download` feature.
    #[cfg(feature = "download")]
    pub fn download(&mut self, file: FileId, notify: bool) -> Result<RequestId, ClientError> {
        self.download_from(file, 0, notify)
    }

    /// Downloads `file` from `offset`: the store holds bytes `0..offset`
    /// already (an interrupted download); they are read back for the hash check.
    #[cfg(feature = "download")]
    pub fn download_from(
        &mut self,
        file: FileId,
        offset: u64,
        notify: bool,
    ) -> Result<RequestId, ClientError> {
        self.core.require_ready()?;
        if self.core.download.is_some() {
            return Err(ClientError::Busy);
        }
        let name = self.core.store.meta(file)?.name;
        validate(name)?;
        let id = self.core.session.next_id();
        let window = self.core.config.download_window;
        let message = ClientMessage::DownloadOpen {
            name,
            offset,
            window,
            notify,
        };
        self.core.tx.push_frame(&ClientFrame { id, message })?;
        let mut download = Download::new(id, file, offset, window, notify, self.core.now_ms);
        download.lossy = !self.core.config.framing.is_length();
        self.core.download = Some(download);
        Ok(id)
    }

    /// Stops the running download (`DownloadCancel`); the store is told to discard it.
    pub fn cancel_download(&mut self) -> Result<(), ClientError> {
        self.core.require_ready()?;
        let Some(download) = self.core.download.take() else {
            return Ok(());
        };
        if download.writing {
            self.core.store.finish_write(download.file, None)?;
        }
        if download.phase() != super::DownloadPhase::Opening {
            let message = ClientMessage::DownloadCancel {
                download: download.transfer,
            };
            self.core.tx.push_frame(&ClientFrame {
                id: download.id,
                message,
            })?;
        }
        Ok(())
    }

    /// Subscribes to record changes (`filter`), presence and, every
    /// `full_list_every_secs` (0: never), the full list. Needs the `subscribe` feature.
    #[cfg(feature = "subscribe")]
    pub fn subscribe(
        &mut self,
        filter: ListFilter,
        full_list_every_secs: u32,
    ) -> Result<RequestId, ClientError> {
        self.request(ClientMessage::Subscribe {
            filter,
            full_list_every_secs,
        })
    }

    /// Stops pushed record changes and presence (notifications still come).
    #[cfg(feature = "subscribe")]
    pub fn unsubscribe(&mut self) -> Result<RequestId, ClientError> {
        self.request(ClientMessage::Unsubscribe)
    }

    /// Lists records changed after revision `since` (0: all) that pass `filter`.
    #[cfg(feature = "lists")]
    pub fn list(&mut self, since: u64, filter: ListFilter) -> Result<RequestId, ClientError> {
        self.request(ClientMessage::List { since, filter })
    }

    /// Lists every batch summary.
    #[cfg(feature = "lists")]
    pub fn batches(&mut self) -> Result<RequestId, ClientError> {
        self.request(ClientMessage::Batches)
    }

    /// Lists every device (active or silent).
    #[cfg(feature = "lists")]
    pub fn devices(&mut self) -> Result<RequestId, ClientError> {
        self.request(ClientMessage::Devices)
    }

    /// Lists at most `limit` history entries after sequence `since`.
    #[cfg(feature = "lists")]
    pub fn history(&mut self, since: u64, limit: u32) -> Result<RequestId, ClientError> {
        self.request(ClientMessage::History { since, limit })
    }

    /// Lists every device's download states.
    #[cfg(feature = "lists")]
    pub fn downloads(&mut self) -> Result<RequestId, ClientError> {
        self.request(ClientMessage::Downloads)
    }

    /// Deletes the record `name` and its blob.
    pub fn delete(&mut self, name: &str) -> Result<RequestId, ClientError> {
        validate(name)?;
        self.request(ClientMessage::Delete { name })
    }

    /// Asks the owner of `name` to upload it again.
    pub fn retry(&mut self, name: &str) -> Result<RequestId, ClientError> {
        validate(name)?;
        self.request(ClientMessage::Retry { name })
    }

    /// Lists the directory as it was at `at`: [`super::Event::Item`]s, then
    /// [`super::Event::ListEnd`] with the revision listed.
    #[cfg(feature = "host-lists")]
    pub fn list_at(&mut self, at: At) -> Result<RequestId, ClientError> {
        self.request(ClientMessage::ListAt { at })
    }

    /// Brings back the deleted record `name` (as it was at revision `at`, if
    /// given); [`super::Event::Restored`] answers.
    #[cfg(feature = "host-lists")]
    pub fn restore(&mut self, name: &str, at: Option<u64>) -> Result<RequestId, ClientError> {
        validate(name)?;
        self.request(ClientMessage::Restore { name, at })
    }

    /// Pings the server; [`super::Event::Pong`] answers. (Keepalive pings are automatic.)
    pub fn ping(&mut self) -> Result<RequestId, ClientError> {
        self.request(ClientMessage::Ping)
    }

    /// Ends the session politely: queues `Bye` and closes. Transfers stop; the
    /// server marks an unfinished upload `00` and keeps what it received.
    pub fn close(&mut self, now: u64) -> Result<(), ClientError> {
        self.core.require_ready()?;
        let id = self.core.session.next_id();
        self.core.tx.push_frame(&ClientFrame {
            id,
            message: ClientMessage::Bye,
        })?;
        self.core.session.set_state(super::LinkState::Closed, now);
        Ok(())
    }
}
