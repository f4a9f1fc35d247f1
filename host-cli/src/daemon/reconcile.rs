//! What the daemon does about a server event or a changed tree: the sync
//! decisions, one function per kind of action, each logged once.

use std::collections::BTreeMap;

use proto_core::model::FileKind;
use proto_core::{ContentHash, ListFilter};

use crate::cmd::pull::{self, PullReport};
use crate::cmd::push::{self, PushReport};
use crate::cmd::sync::{plan, Conflict};
use crate::error::{CliError, CliResult};
use crate::local::{self, LocalFile};
use crate::progress::TransferBar;
use crate::resilient::{is_transient, Reconnecting};
use crate::session::SessionEvent;
use crate::view::{human_bytes, RecordView};

use super::Daemon;

impl Daemon<'_> {
    /// Acts on one event the server pushed.
    pub(super) fn on_event(
        &mut self,
        link: &mut Reconnecting,
        event: SessionEvent,
    ) -> CliResult<()> {
        match event {
            SessionEvent::RecordChanged(record) if !self.names.keeps(&record.name) => {}
            SessionEvent::RecordDeleted { name, .. }
            | SessionEvent::RetryRequested { name, .. }
                if !self.names.keeps(&name) => {}
            SessionEvent::RecordChanged(record) => {
                let wanted = record.owner != self.me && record.upload_state.is_uploaded();
                self.remote.insert(record.name.clone(), record.clone());
                if wanted {
                    self.pull_one(link, &record)?;
                }
            }
            SessionEvent::DownloadAvailable { name, .. } => {
                if let Some(record) = self.remote.get(&name).cloned() {
                    self.pull_one(link, &record)?;
                } else {
                    // Not listed yet: the catch-up's list will bring it.
                    self.dirty = true;
                }
            }
            SessionEvent::RecordDeleted { name, .. } => {
                let gone = self.remote.remove(&name);
                self.delete_here(&name, gone.as_ref())?;
            }
            SessionEvent::RetryRequested { name, .. } => self.upload_again(link, &name)?,
            SessionEvent::Presence(_) | SessionEvent::Goodbye(_) => {}
        }
        Ok(())
    }

    /// Compares the tree with the server's records: deletes on the server
    /// what was deleted here, pushes what is new or edited here, pulls what is
    /// missing here, reports conflicts.
    pub(super) fn reconcile(&mut self, link: &mut Reconnecting) -> CliResult<()> {
        let files = local::collect_tree(&self.dir, &self.names, &mut self.check)?;
        self.check.save();
        self.log.verbose(
            "scanned",
            &format!(
                "{} entries here; {}",
                files.len(),
                push::quick_check_line(self.check.counts())
            ),
        );
        let now: BTreeMap<String, ContentHash> =
            files.iter().map(|f| (f.name.clone(), f.hash)).collect();
        let deleted: Vec<(String, ContentHash)> = self
            .known_local
            .iter()
            .filter(|(name, _)| !now.contains_key(*name))
            .map(|(name, hash)| (name.clone(), *hash))
            .collect();
        if !deleted.is_empty() {
            // Deletions act on the server's word, not on events that may
            // still be on their way (e.g. the record of our own last push).
            let records = link.attempt(|session| session.list(ListFilter::All))?;
            self.set_remote(records);
        }
        for (name, hash) in deleted {
            self.delete_on_server(link, &name, hash)?;
        }
        self.known_local = now;

        let plan = plan(&files, &self.remote, &self.me);
        for conflict in &plan.conflicts {
            self.report_conflict(conflict);
        }
        if !plan.to_push.is_empty() {
            self.push_files(link, &plan.to_push)?;
        }
        for record in &plan.to_pull {
            self.pull_one(link, record)?;
        }
        Ok(())
    }

    /// Takes the server's records as listed, leaving out the names the filter skips.
    pub(super) fn set_remote(&mut self, records: Vec<RecordView>) {
        self.remote = records
            .into_iter()
            .filter(|r| self.names.keeps(&r.name))
            .map(|r| (r.name.clone(), r))
            .collect();
    }

    /// Announces `files` as one batch and uploads them (each resuming at the
    /// server's offset).
    fn push_files(&mut self, link: &mut Reconnecting, files: &[LocalFile]) -> CliResult<()> {
        let batch = self.batch.clone();
        let created = link.attempt(|session| session.announce(&batch, files));
        let Some(created) = self.tolerate("announce", &batch, created)? else {
            return Ok(());
        };
        let reports = push::upload_all(link, files, &created.held, true, self.limit_rate)?;
        for report in &reports {
            self.log_push(report);
        }
        Ok(())
    }

    /// Uploads `name` again, as its owner was asked to (`retry`).
    fn upload_again(&mut self, link: &mut Reconnecting, name: &str) -> CliResult<()> {
        let path = match local::local_path(&self.dir, name) {
            Ok(path) if path.is_file() => path,
            _ => {
                self.log.file(
                    "retry-requested",
                    name,
                    "asked to upload it again, but it is not here",
                );
                return Ok(());
            }
        };
        let hash = self.check.hash(&path)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| CliError::io("cannot read", &path, e))?
            .len();
        let file = LocalFile {
            name: name.to_owned(),
            path,
            kind: FileKind::File,
            size,
            hash,
        };
        self.log.file("retry-requested", name, "uploading it again");
        let reports = push::upload_all(
            link,
            std::slice::from_ref(&file),
            &[],
            true,
            self.limit_rate,
        )?;
        for report in &reports {
            self.log_push(report);
        }
        Ok(())
    }

    /// Fetches `record` unless it is here already; a different local file of
    /// that name is a conflict and is left alone.
    fn pull_one(&mut self, link: &mut Reconnecting, record: &RecordView) -> CliResult<()> {
        let Ok(target) = local::local_path(&self.dir, &record.name) else {
            self.log.file(
                "failed",
                &record.name.escape_debug().to_string(),
                "the server sent an unsafe name; nothing was written",
            );
            return Ok(());
        };
        if record.is_directory() && target.is_dir() {
            return Ok(());
        }
        if !target.exists() && self.known_local.get(&record.name) == Some(&record.content_hash) {
            // This very content was here and is gone: it was deleted here (maybe
            // while the daemon was stopped). The next look at the tree deletes
            // it on the server rather than fetching it back.
            self.dirty = true;
            return Ok(());
        }
        if target.exists() {
            let local_hash = match self.check.hash(&target) {
                Ok(hash) => hash,
                // A directory or unreadable file stands where the record would go.
                Err(_) => ContentHash::ZERO,
            };
            if local_hash != record.content_hash {
                self.report_conflict(&Conflict {
                    name: record.name.clone(),
                    local_hash: local_hash.to_string(),
                    server_hash: record.hash.clone(),
                    owner: record.owner.clone(),
                });
            }
            self.known_local.insert(record.name.clone(), local_hash);
            return Ok(());
        }
        let bar = TransferBar::new(record.size, true);
        let report = pull::fetch(link, record, &self.dir, false, self.limit_rate, &bar, true)?;
        if report.result == "fetched" || report.result == "skipped" {
            self.known_local
                .insert(record.name.clone(), record.content_hash);
        }
        self.log_pull(&report);
        Ok(())
    }

    /// The server deleted `name`: delete the local copy if it is the content
    /// that was deleted; a copy changed here is kept (and pushed as new).
    fn delete_here(&mut self, name: &str, gone: Option<&RecordView>) -> CliResult<()> {
        let Ok(path) = local::local_path(&self.dir, name) else {
            return Ok(());
        };
        self.known_local.remove(name);
        let Some(gone) = gone else { return Ok(()) };
        if gone.is_directory() {
            // Only an empty directory goes; one with files keeps them.
            if std::fs::remove_dir(&path).is_ok() {
                self.log.file("deleted-here", name, "deleted on the server");
            }
            return Ok(());
        }
        if !path.is_file() {
            return Ok(());
        }
        if self.check.hash(&path)? == gone.content_hash {
            std::fs::remove_file(&path).map_err(|e| CliError::io("cannot delete", &path, e))?;
            self.log.file("deleted-here", name, "deleted on the server");
        } else {
            self.log.file(
                "kept",
                name,
                "deleted on the server, but changed here; pushing it as new",
            );
            self.dirty = true;
        }
        Ok(())
    }

    /// `name` was deleted here: delete it on the server too if the server
    /// holds the very content that was deleted.
    fn delete_on_server(
        &mut self,
        link: &mut Reconnecting,
        name: &str,
        hash: ContentHash,
    ) -> CliResult<()> {
        // An empty directory has no content: its entry here hashed as zero.
        let same = self.remote.get(name).is_some_and(|r| {
            r.content_hash == hash || (r.is_directory() && hash == ContentHash::ZERO)
        });
        if !same {
            return Ok(());
        }
        let result = link.attempt(|session| session.delete(name));
        if self.tolerate("delete", name, result)?.is_some() {
            self.remote.remove(name);
            self.log.file("deleted-on-server", name, "deleted here");
        }
        Ok(())
    }

    fn report_conflict(&mut self, conflict: &Conflict) {
        if self
            .reported
            .insert((conflict.name.clone(), conflict.local_hash.clone()))
        {
            self.log.file(
                "conflict",
                &conflict.name,
                &format!(
                    "differs from {}'s version on the server; both kept, rename one of them",
                    conflict.owner
                ),
            );
        }
    }

    /// Passes on failures that end the session (a lost link, a stop,
    /// credentials); logs any other as a failed action and carries on.
    pub(super) fn tolerate<T>(
        &self,
        what: &str,
        name: &str,
        result: CliResult<T>,
    ) -> CliResult<Option<T>> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(error @ (CliError::Stopped | CliError::Auth { .. } | CliError::Config { .. })) => {
                Err(error)
            }
            Err(error) if is_transient(&error) => Err(error),
            Err(error) => {
                let detail = format!("cannot {what}: {error}");
                if name.is_empty() {
                    self.log.note("failed", &detail);
                } else {
                    self.log.file("failed", name, &detail);
                }
                Ok(None)
            }
        }
    }

    fn log_push(&self, report: &PushReport) {
        match report.result {
            "uploaded" if report.resumed_from > 0 => self.log.file(
                "pushed",
                &report.name,
                &format!(
                    "{}, resumed at {}",
                    human_bytes(report.size),
                    human_bytes(report.resumed_from)
                ),
            ),
            "uploaded" => self
                .log
                .file("pushed", &report.name, &human_bytes(report.size)),
            "already-uploaded" => self
                .log
                .file("pushed", &report.name, "already on the server"),
            _ => self.log.file("failed", &report.name, &report.error),
        }
    }

    fn log_pull(&self, report: &PullReport) {
        match report.result {
            "fetched" => self
                .log
                .file("pulled", &report.name, &human_bytes(report.size)),
            "skipped" => {}
            "rejected" => self.log.file(
                "waiting",
                &report.name,
                &format!("not uploaded yet ({} {})", report.state, report.bits),
            ),
            _ => self.log.file("failed", &report.name, &report.error),
        }
    }
}
