//! `sync DIR`: push what is new or changed here, pull what is missing here,
//! and report conflicts (same name, different content, another owner) without
//! overwriting either side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::Args;
use proto_core::ListFilter;
use serde::Serialize;

use crate::cmd::pull::{self, PullReport};
use crate::cmd::push::{self, PushReport};
use crate::config::Settings;
use crate::dry_run::{self, Planned};
use crate::error::{CliError, CliResult};
use crate::filter::{Filter, FilterArgs};
use crate::local::{self, LocalFile};
use crate::progress::TransferBar;
use crate::quick_check::{QuickCheck, QuickCheckCounts};
use crate::resilient::Reconnecting;
use crate::view::{print_json, RecordView};

/// Arguments of `sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The shared directory; server names are relative to it.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Read and hash every file, not trusting the quick-check index (size, mtime, inode).
    #[arg(long, short = 'c')]
    pub checksum: bool,
    /// Name of the batch for pushed files [default: the directory's name]
    #[arg(long, value_name = "NAME")]
    pub batch: Option<String>,
    /// Send and take in at most RATE bytes per second each way (suffixes K, M, G).
    #[arg(long, value_name = "RATE", value_parser = crate::cmd::push::parse_rate)]
    pub limit_rate: Option<u64>,
    /// Which names to sync, on both sides.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print what would be pushed and pulled; change nothing on either side.
    #[arg(long, short = 'n', conflicts_with = "watch")]
    pub dry_run: bool,
    /// Keep DIR in sync until SIGINT/SIGTERM: follow local changes and the
    /// server's events, reconnect by itself, log one line per action.
    #[arg(long)]
    pub watch: bool,
}

/// A name that exists on both sides with different content.
#[derive(Debug, Serialize)]
pub struct Conflict {
    /// The name.
    pub name: String,
    /// Hash of the local file.
    pub local_hash: String,
    /// Hash on the server; `None` while the server does not know it yet.
    pub server_hash: Option<String>,
    /// Who owns the server's version.
    pub owner: String,
}

/// The outcome of a sync, for `--json`.
#[derive(Debug, Serialize)]
pub struct SyncReport {
    /// Files pushed (or found already uploaded).
    pub pushed: Vec<PushReport>,
    /// Files pulled (or skipped).
    pub pulled: Vec<PullReport>,
    /// Files that differ from another device's version of the same name.
    pub conflicts: Vec<Conflict>,
    /// Server files that are not uploaded yet (nothing to pull now).
    pub unfinished: Vec<RecordView>,
    /// Local files taken unread from the quick-check index, and files read.
    pub quick_check: QuickCheckCounts,
}

/// What a two-way sync has to do, from the local tree and the server's records.
#[derive(Debug, Default)]
pub struct Plan {
    /// Local files the server lacks, or holds in another version of ours, or
    /// holds unfinished (ours, same content: the upload resumes).
    pub to_push: Vec<LocalFile>,
    /// Names whose local content differs from another device's version.
    pub conflicts: Vec<Conflict>,
    /// Uploaded server files that are not here.
    pub to_pull: Vec<RecordView>,
    /// Server files that are not here and not uploaded yet.
    pub unfinished: Vec<RecordView>,
}

/// Compares the local tree with the server's records (by name) as device `me`.
pub fn plan(local_files: &[LocalFile], remote: &BTreeMap<String, RecordView>, me: &str) -> Plan {
    let mut plan = Plan::default();
    for file in local_files {
        match remote.get(&file.name) {
            None => plan.to_push.push(file.clone()),
            Some(r) if r.content_hash == file.hash => {
                if !r.upload_state.is_uploaded() && r.owner == me {
                    plan.to_push.push(file.clone());
                }
            }
            Some(r) if r.owner == me => plan.to_push.push(file.clone()),
            Some(r) => plan.conflicts.push(Conflict {
                name: file.name.clone(),
                local_hash: file.hash.to_string(),
                server_hash: r.hash.clone(),
                owner: r.owner.clone(),
            }),
        }
    }
    let here: BTreeSet<&str> = local_files.iter().map(|f| f.name.as_str()).collect();
    (plan.to_pull, plan.unfinished) = remote
        .values()
        .filter(|r| !here.contains(r.name.as_str()))
        .cloned()
        .partition(|r| r.upload_state.is_uploaded());
    plan
}

/// Plans and runs the two-way sync.
pub fn run(settings: &Settings, args: SyncArgs) -> CliResult<()> {
    if !args.dir.is_dir() {
        return Err(CliError::Usage(format!(
            "`{}` is not a directory; give the folder to sync",
            args.dir.display()
        )));
    }
    if args.watch {
        return crate::daemon::run(settings, &args);
    }
    let mut check = if args.checksum {
        QuickCheck::without_index()
    } else {
        QuickCheck::open(&settings.server.to_string(), settings.require_device()?)
    };
    let names = Filter::from_args(&args.filter);
    let local_files = local::collect_tree(&args.dir, &names, &mut check)?;
    check.save();
    let mut link = Reconnecting::connect(settings)?;
    let me = link.device().to_owned();
    let remote: BTreeMap<String, RecordView> = link
        .attempt(|session| session.list(ListFilter::All))?
        .into_iter()
        .filter(|r| names.keeps(&r.name))
        .map(|r| (r.name.clone(), r))
        .collect();

    let Plan {
        to_push,
        conflicts,
        to_pull,
        unfinished,
    } = plan(&local_files, &remote, &me);

    let json = settings.json;
    let quiet = settings.quiet();
    if args.dry_run {
        link.close();
        let planned: Vec<Planned> = to_push
            .iter()
            .map(|f| Planned::new("push", &f.name, f.size))
            .chain(conflicts.iter().map(|c| {
                Planned::new("conflict", &c.name, 0)
                    .because(format!("differs from {}'s version on the server", c.owner))
            }))
            .chain(
                to_pull
                    .iter()
                    .map(|r| Planned::new("pull", &r.name, r.size)),
            )
            .chain(unfinished.iter().map(|r| {
                Planned::new("wait", &r.name, r.size)
                    .because(format!("{} ({}) on the server", r.state, r.bits))
            }))
            .collect();
        dry_run::print(&planned, json);
        return Ok(());
    }
    let mut pushed = Vec::new();
    if !to_push.is_empty() {
        let batch = args.batch.clone().unwrap_or_else(|| dir_name(&args.dir));
        let created = link.attempt(|session| session.announce(&batch, &to_push))?;
        pushed = push::upload_all(&mut link, &to_push, &created.held, quiet, args.limit_rate)?;
    }
    let bar = TransferBar::new(to_pull.iter().map(|r| r.size).sum(), quiet);
    let mut pulled = Vec::new();
    for record in &to_pull {
        pulled.push(pull::fetch(
            &mut link,
            record,
            &args.dir,
            false,
            args.limit_rate,
            &bar,
            quiet,
        )?);
    }
    bar.finish();
    let reconnects = link.reconnects();
    link.close();

    let failed = pushed.iter().filter(|r| r.result == "failed").count()
        + pulled
            .iter()
            .filter(|r| r.result != "fetched" && r.result != "skipped")
            .count();
    let report = SyncReport {
        pushed,
        pulled,
        conflicts,
        unfinished,
        quick_check: check.counts(),
    };
    if json {
        print_json(&report);
    } else if !quiet {
        for c in &report.conflicts {
            outln!(
                "{}: CONFLICT: differs from {}'s version on the server; rename one of them",
                c.name,
                c.owner
            );
        }
        for r in &report.unfinished {
            outln!(
                "{}: on the server but not uploaded yet ({} {}); sync again later",
                r.name,
                r.state,
                r.bits
            );
        }
        outln!(
            "sync: {} pushed, {} pulled, {} conflicts, {} unfinished elsewhere",
            report.pushed.len(),
            report
                .pulled
                .iter()
                .filter(|r| r.result == "fetched")
                .count(),
            report.conflicts.len(),
            report.unfinished.len()
        );
        if settings.verbose() {
            outln!("{}", push::quick_check_line(report.quick_check));
            outln!("{reconnects} reconnection(s)");
        }
    }
    if !report.conflicts.is_empty() || failed > 0 {
        return Err(CliError::Failed(format!(
            "sync incomplete: {} conflict(s), {failed} failed transfer(s); see above",
            report.conflicts.len()
        )));
    }
    Ok(())
}

/// The directory's own name, the default batch name of what a sync pushes.
pub fn dir_name(dir: &std::path::Path) -> String {
    std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "sync".to_owned())
}
