//! Clean-up: what a long-running server removes by itself, one function per rule.
//!
//! - [`expire_partial_uploads`]: an unfinished upload untouched for longer than
//!   `--partial-ttl` is failed (`00`, `received` 0) with a history line, and its
//!   partial bytes are removed.
//! - [`release_deleted_bytes`]: records deleted more than `--keep-deleted` ago
//!   stop keeping their bytes (a restore then gives `01`), and their blobs go
//!   unless something else uses them.
//! - [`collect_unused_blobs`]: a blob that no uploaded (`11`) record uses, and
//!   no deleted record keeps for a restore, is removed.
//! - [`trim_history`]: history lines older than `--history-days` are removed,
//!   and so are record versions superseded before then (the directory's past
//!   then reaches back `--history-days`; a deleted record's last version stays
//!   while it keeps its bytes).
//!
//! [`run`] applies all of them every `--cleanup-every`; [`sweep`] applies them
//! once at a given time, which is how the tests move the clock.

use std::sync::Arc;
use std::time::Duration;

use crate::blobs::PartialKey;
use crate::service::{unix_now, Service};

/// Stale uploads handled per pass, at most (the next pass takes the rest).
const STALE_PER_PASS: u32 = 1000;

/// How long expiry waits for an upload's name lock before it leaves the record for the next pass.
const NAME_LOCK_WAIT: Duration = Duration::from_millis(100);

/// Seconds in a day.
const DAY: u64 = 24 * 60 * 60;

/// What clean-up removes, and how often it looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Unfinished uploads untouched this long are failed and their bytes freed.
    pub partial_ttl: Duration,
    /// History lines are kept this many days.
    pub history_days: u64,
    /// Time between passes.
    pub every: Duration,
}

impl Default for CleanupPolicy {
    fn default() -> CleanupPolicy {
        CleanupPolicy {
            partial_ttl: Duration::from_secs(7 * DAY),
            history_days: 90,
            every: Duration::from_secs(60 * 60),
        }
    }
}

/// What one pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Unfinished uploads failed for being untouched too long.
    pub expired_uploads: usize,
    /// Blobs removed because no record used them.
    pub unused_blobs: usize,
    /// Deleted records whose bytes stopped being kept (past `--keep-deleted`).
    pub released_deleted: usize,
    /// History lines removed for their age.
    pub history_lines: u64,
    /// Record versions removed for their age.
    pub record_versions: u64,
}

/// Reads a duration such as `7d`, `12h`, `30m`, `45s` or `45` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; give e.g. 7d, 12h, 30m or 45s"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => DAY,
        other => {
            return Err(format!(
                "unit `{other}` in `{text}` is unknown; use s, m, h or d"
            ))
        }
    };
    count
        .checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// Applies every rule every `policy.every` (the first time one period after
/// the start) until `stop` fires.
pub async fn run(
    service: Arc<Service>,
    policy: CleanupPolicy,
    mut stop: tokio::sync::broadcast::Receiver<()>,
) {
    let first = tokio::time::Instant::now() + policy.every;
    let mut ticks = tokio::time::interval_at(first, policy.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.recv() => return,
        }
        let swept = sweep(&service, &policy, unix_now()).await;
        if swept != Swept::default() {
            tracing::info!(
                expired_uploads = swept.expired_uploads,
                unused_blobs = swept.unused_blobs,
                released_deleted = swept.released_deleted,
                history_lines = swept.history_lines,
                record_versions = swept.record_versions,
                "clean-up"
            );
        }
    }
}

/// Applies every rule once, as if the time were `now` (Unix seconds).
pub async fn sweep(service: &Service, policy: &CleanupPolicy, now: u64) -> Swept {
    let keep_deleted = service.limits.keep_deleted;
    let expired_uploads = expire_partial_uploads(service, policy.partial_ttl, now).await;
    let released_deleted = release_deleted_bytes(service, keep_deleted, now).await;
    Swept {
        expired_uploads,
        released_deleted,
        unused_blobs: collect_unused_blobs(service).await,
        history_lines: trim_history(service, policy.history_days, now).await,
        record_versions: trim_versions(service, policy.history_days, keep_deleted, now).await,
    }
}

/// Stops keeping the bytes of records deleted more than `keep` before `now`
/// and removes those blobs nothing else uses; returns how many contents were released.
pub async fn release_deleted_bytes(service: &Service, keep: Duration, now: u64) -> usize {
    let before = now.saturating_sub(keep.as_secs());
    let released = match service.db(move |s| s.release_deleted_bytes(before)).await {
        Ok(released) => released,
        Err(error) => {
            tracing::warn!(%error, "clean-up cannot release deleted records' bytes");
            return 0;
        }
    };
    for hash in &released {
        let _guard = service.blob_lock().await;
        service.remove_blob_if_unused(*hash).await;
    }
    released.len()
}

/// Removes record versions superseded more than `days` before `now`, and the
/// last versions of records deleted before both that and `keep_deleted`; returns how many.
pub async fn trim_versions(service: &Service, days: u64, keep_deleted: Duration, now: u64) -> u64 {
    let history_before = now.saturating_sub(days.saturating_mul(DAY));
    let deleted_before = now.saturating_sub(keep_deleted.as_secs());
    match service
        .db(move |s| s.trim_versions(history_before, deleted_before))
        .await
    {
        Ok(removed) => removed,
        Err(error) => {
            tracing::warn!(%error, "clean-up cannot trim the record versions");
            0
        }
    }
}

/// Fails unfinished uploads last changed more than `ttl` before `now` and
/// removes their partial bytes; returns how many. An upload running on this
/// server is left alone whatever its age.
pub async fn expire_partial_uploads(service: &Service, ttl: Duration, now: u64) -> usize {
    let cutoff = now.saturating_sub(ttl.as_secs());
    let stale = match service
        .db(move |s| s.stale_partial_uploads(cutoff, STALE_PER_PASS))
        .await
    {
        Ok(stale) => stale,
        Err(error) => {
            tracing::warn!(%error, "clean-up cannot list unfinished uploads");
            return 0;
        }
    };
    let reason = format!(
        "upload untouched for more than {}; its bytes were freed, upload it again",
        describe(ttl)
    );
    let mut expired = 0;
    for record in stale {
        if service.live_received(record.id).is_some() {
            continue;
        }
        let Some(_name) = service.lock_name(&record.name, NAME_LOCK_WAIT).await else {
            continue;
        };
        let (id, hash, reason) = (record.id, record.hash, reason.clone());
        match service
            .db(move |s| s.expire_partial_upload(id, &hash, cutoff, &reason, now))
            .await
        {
            Ok(Some(failed)) => {
                let _ = service.take_hash(id, &hash);
                if let Err(error) = service
                    .blobs
                    .remove_partial(&PartialKey::owner(id, &hash))
                    .await
                {
                    tracing::warn!(%error, record = id, "could not remove an expired upload's bytes");
                }
                service.publish_records([failed], false);
                expired += 1;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, record = id, "could not expire an upload"),
        }
    }
    expired
}

/// Removes blobs no uploaded record uses and no deleted record keeps; returns how many.
pub async fn collect_unused_blobs(service: &Service) -> usize {
    let stored = match service.blobs.stored_blobs().await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!(%error, "clean-up cannot list the blobs");
            return 0;
        }
    };
    let mut removed = 0;
    for hash in stored {
        // Cheap look first; the removal checks again under the blob lock.
        if !matches!(service.db(move |s| s.blob_in_use(&hash)).await, Ok(false)) {
            continue;
        }
        let _guard = service.blob_lock().await;
        service.remove_blob_if_unused(hash).await;
        if matches!(service.blobs.holds_blob(&hash).await, Ok(false)) {
            removed += 1;
        }
    }
    removed
}

/// Removes history lines older than `days` before `now`; returns how many.
pub async fn trim_history(service: &Service, days: u64, now: u64) -> u64 {
    let before = now.saturating_sub(days.saturating_mul(DAY));
    match service.db(move |s| s.trim_history(before)).await {
        Ok(removed) => removed,
        Err(error) => {
            tracing::warn!(%error, "clean-up cannot trim the history");
            0
        }
    }
}

/// `ttl` in the largest whole unit.
fn describe(ttl: Duration) -> String {
    let secs = ttl.as_secs();
    match secs {
        s if s >= DAY && s % DAY == 0 => format!("{} days", s / DAY),
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_and_without_units() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * DAY)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("7w").unwrap_err().contains("unknown"));
        assert!(parse_duration("soon").is_err());
        assert_eq!(describe(Duration::from_secs(7 * DAY)), "7 days");
        assert_eq!(describe(Duration::from_secs(90)), "90 seconds");
    }
}
