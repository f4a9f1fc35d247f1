//! `sync DIR --watch`: the sync daemon. It keeps DIR and the server in step
//! until SIGINT or SIGTERM:
//!
//! - local changes (debounced file notifications, [`local_changes`]) make it
//!   look at the tree again: new and edited files are pushed, files deleted
//!   here whose server copy is the one we had are deleted there, also those
//!   deleted while the daemon was stopped ([`known_files`]);
//! - the server's live events (it subscribes) make it pull new uploads of
//!   other devices, delete local copies of records deleted on the server
//!   (only when unchanged here), and upload again what a `retry` asks for;
//! - a lost link or server is reconnected with back-off (`resilient`); after
//!   every new session it subscribes again and lists the records, so nothing
//!   that happened meanwhile is missed, and transfers resume at the byte the
//!   other side holds;
//! - a name that differs from another device's version is reported once as a
//!   conflict and never overwritten, on either side;
//! - a signal stops it after the chunk in flight ([`crate::shutdown`]), exit 0.
//!
//! Every action is one line of [`action_log`].

mod action_log;
mod known_files;
mod local_changes;
mod reconcile;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use proto_core::{ContentHash, ListFilter};

use crate::cmd::sync::SyncArgs;
use crate::config::Settings;
use crate::error::{CliError, CliResult};
use crate::filter::Filter;
use crate::quick_check::QuickCheck;
use crate::resilient::{is_transient, Reconnecting, RetryPolicy};
use crate::shutdown;
use crate::view::RecordView;

use action_log::ActionLog;
use local_changes::LocalChanges;

/// Longest wait for a server event before local changes and the stop flag
/// are looked at again.
const TICK: Duration = Duration::from_millis(100);

/// Runs the daemon until a signal stops it (then `Ok`) or a failure that no
/// reconnection cures (authentication, configuration).
pub fn run(settings: &Settings, args: &SyncArgs) -> CliResult<()> {
    shutdown::install()?;
    let device = settings.require_device()?.to_owned();
    let check = if args.checksum {
        QuickCheck::without_index()
    } else {
        QuickCheck::open(&settings.server.to_string(), &device)
    };
    let names = Filter::from_args(&args.filter);
    let known_at = known_files::location(&settings.server.to_string(), &device, &args.dir);
    let known_local = known_files::load(known_at.as_deref(), &names);
    let mut daemon = Daemon {
        settings,
        dir: args.dir.clone(),
        batch: args
            .batch
            .clone()
            .unwrap_or_else(|| crate::cmd::sync::dir_name(&args.dir)),
        me: device,
        limit_rate: args.limit_rate,
        names,
        log: ActionLog::new(settings.json, settings.verbosity),
        changes: LocalChanges::watch(&args.dir)?,
        check,
        remote: BTreeMap::new(),
        known_local,
        known_at,
        known_unsaved: false,
        known_changed: false,
        reported: BTreeSet::new(),
        dirty: true,
        catch_ups: 0,
    };
    let served = daemon.serve();
    daemon.keep_known();
    match served {
        Ok(()) | Err(CliError::Stopped) => {
            daemon
                .log
                .note("stopped", "on a signal; transfers resume at the next start");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// The daemon's state between two actions.
struct Daemon<'s> {
    settings: &'s Settings,
    /// The synced directory.
    dir: PathBuf,
    /// Batch name for announced files.
    batch: String,
    /// This device's name.
    me: String,
    /// `--limit-rate`, each way.
    limit_rate: Option<u64>,
    /// `--exclude`/`--include`: names outside it are neither looked at nor touched.
    names: Filter,
    log: ActionLog,
    changes: LocalChanges,
    check: QuickCheck,
    /// The server's records by name, as listed at the last catch-up and kept
    /// current by events since.
    remote: BTreeMap<String, RecordView>,
    /// Local files (name → hash) as last seen: a name that disappears from
    /// the tree was deleted here.
    known_local: BTreeMap<String, ContentHash>,
    /// Where `known_local` is kept between runs ([`known_files`]).
    known_at: Option<PathBuf>,
    /// Keeping `known_local` failed once (said once).
    known_unsaved: bool,
    /// Events were handled since `known_local` was last written.
    known_changed: bool,
    /// Conflicts already reported (name, local hash), so each is said once.
    reported: BTreeSet<(String, String)>,
    /// The tree must be compared with the server again.
    dirty: bool,
    /// Catch-ups so far: the first starts the watch, later ones follow reconnections.
    catch_ups: u64,
}

impl Daemon<'_> {
    /// Follows the server session after session; between sessions that could
    /// not be kept, waits with back-off. Returns on a stop or a lasting failure.
    fn serve(&mut self) -> CliResult<()> {
        let mut failures = 0;
        loop {
            shutdown::check()?;
            let catch_ups_before = self.catch_ups;
            let error = match Reconnecting::connect(self.settings) {
                Ok(mut link) => {
                    let result = self.follow(&mut link);
                    match result {
                        Err(error) if is_transient(&error) => error,
                        other => {
                            link.close();
                            return other;
                        }
                    }
                }
                Err(error) if is_transient(&error) => error,
                Err(error) => return Err(error),
            };
            // A link that carried a whole catch-up was healthy: start the back-off again.
            failures = if self.catch_ups > catch_ups_before {
                1
            } else {
                failures + 1
            };
            let pause = RetryPolicy::backoff(failures);
            self.log.note(
                "offline",
                &format!(
                    "{}; trying again in {:.1} s",
                    offline_reason(&error),
                    pause.as_secs_f64()
                ),
            );
            shutdown::sleep(pause);
        }
    }

    /// Handles server events and local changes on one (reconnecting) link,
    /// until a stop or a failure that reconnecting did not cure.
    fn follow(&mut self, link: &mut Reconnecting) -> CliResult<()> {
        let mut subscribed_at: Option<u32> = None;
        loop {
            shutdown::check()?;
            if subscribed_at != Some(link.reconnects()) {
                let before = link.reconnects();
                self.catch_up(link)?;
                // A reconnection during the catch-up lost the subscription: again.
                if link.reconnects() == before {
                    subscribed_at = Some(before);
                }
                continue;
            }
            // Take every event that is there (waiting a tick only when idle),
            // then act on the tree once for all of them.
            let wait = if self.dirty { Duration::ZERO } else { TICK };
            match link.session()?.next_event(Some(wait)) {
                Ok(Some(event)) => {
                    let done = self.on_event(link, event);
                    self.known_changed = true;
                    self.tolerate("act on a server event", "", done)?;
                    continue;
                }
                // Written once the events are drained, not once per event.
                Ok(None) if self.known_changed => self.keep_known(),
                Ok(None) => {}
                Err(error) if is_transient(&error) => {
                    link.lost(error)?;
                    continue;
                }
                Err(error) => return Err(error),
            }
            if self.changes.settled() {
                self.dirty = true;
            }
            if self.dirty {
                self.dirty = false;
                // A file that vanished or turned unreadable mid-scan fails
                // this look only; its next change brings another.
                let done = self.reconcile(link);
                self.keep_known();
                let dir = self.dir.display().to_string();
                self.tolerate("sync", &dir, done)?;
            }
        }
    }

    /// Writes the files known in the tree to disk, for the next start.
    fn keep_known(&mut self) {
        self.known_changed = false;
        known_files::save(
            self.known_at.as_deref(),
            &self.known_local,
            &mut self.known_unsaved,
        );
    }

    /// Subscribes on the current session and lists every record, so events
    /// missed while offline are made up for; then compares the tree again.
    fn catch_up(&mut self, link: &mut Reconnecting) -> CliResult<()> {
        let revision = link.attempt(|session| session.subscribe(ListFilter::All))?;
        let records = link.attempt(|session| session.list(ListFilter::All))?;
        self.set_remote(records);
        self.dirty = true;
        self.catch_ups += 1;
        if self.catch_ups > 1 {
            self.log.note(
                "online",
                &format!(
                    "back on {} at revision {revision} (reconnection {})",
                    self.settings.server,
                    link.reconnects()
                ),
            );
        } else {
            self.log.note(
                "watching",
                &format!(
                    "`{}` with {} from revision {revision}; SIGINT or SIGTERM stops",
                    self.dir.display(),
                    self.settings.server
                ),
            );
        }
        Ok(())
    }
}

/// Why the server is out of reach, without the advice to run the command
/// again that a one-shot command gives (the daemon does that by itself).
fn offline_reason(error: &CliError) -> String {
    match error {
        CliError::Link(detail) => format!("connection to the server lost: {detail}"),
        CliError::Unreachable { server, source } => format!("cannot reach `{server}`: {source}"),
        other => other.to_string(),
    }
}
