//! The server's counters, gauges and histograms, and their Prometheus text form.
//!
//! Sessions, transfers and the store thread update these with relaxed atomics
//! (a scrape may see one counter a few increments behind another, which
//! Prometheus tolerates); [`Metrics::render`] writes them in the Prometheus text
//! exposition format (version 0.0.4) for `GET /metrics` on the ops listener
//! ([`crate::probes`]). Hand-written rather than through a metrics crate: a
//! dozen series need no registry, and the format is a few lines of text.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto_core::model::LinkKind;
use proto_core::state::StateCounts;

/// Completions remembered for the notification latency, at most.
const PENDING_COMPLETIONS: usize = 4096;

/// A completion older than this is forgotten: nobody waited for it.
const COMPLETION_MEMORY: Duration = Duration::from_secs(600);

/// Bucket bounds of the store latency histogram, in seconds.
const STORE_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Bucket bounds of the notification latency histogram, in seconds.
const NOTIFICATION_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A latency histogram with fixed buckets (cumulative when rendered).
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, plus one for `+Inf`.
    buckets: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// A transfer counted as in progress until this is dropped.
pub struct InProgress(Arc<AtomicI64>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a scrape reads from elsewhere (the hub, the store) at the moment it runs.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Authenticated sessions on this server, by link.
    pub sessions: Vec<(LinkKind, usize)>,
    /// Records in the store, by upload state (`None` when the store did not answer).
    pub records: Option<StateCounts>,
}

/// Every counter of one server.
pub struct Metrics {
    upload_bytes: AtomicU64,
    download_bytes: AtomicU64,
    uploads: Arc<AtomicI64>,
    downloads: Arc<AtomicI64>,
    /// How long each store call took, queueing on the store thread included.
    pub store_latency: Histogram,
    /// From an upload's completion to a waiting device's `DownloadAvailable`
    /// leaving this server (completions on this server only).
    pub notification_latency: Histogram,
    completed: Mutex<HashMap<u64, Instant>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            upload_bytes: AtomicU64::new(0),
            download_bytes: AtomicU64::new(0),
            uploads: Arc::new(AtomicI64::new(0)),
            downloads: Arc::new(AtomicI64::new(0)),
            store_latency: Histogram::new(&STORE_BUCKETS),
            notification_latency: Histogram::new(&NOTIFICATION_BUCKETS),
            completed: Mutex::new(HashMap::new()),
        }
    }
}

impl Metrics {
    /// Counts file bytes received from uploaders.
    pub fn bytes_in(&self, bytes: usize) {
        self.upload_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts file bytes sent to downloaders.
    pub fn bytes_out(&self, bytes: usize) {
        self.download_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts an upload as in progress until the returned guard is dropped.
    pub fn upload_started(&self) -> InProgress {
        self.uploads.fetch_add(1, Ordering::Relaxed);
        InProgress(Arc::clone(&self.uploads))
    }

    /// Counts a download as in progress until the returned guard is dropped.
    pub fn download_started(&self) -> InProgress {
        self.downloads.fetch_add(1, Ordering::Relaxed);
        InProgress(Arc::clone(&self.downloads))
    }

    /// Notes that record `record` completed and devices were waiting for it.
    pub fn completed_with_waiters(&self, record: u64) {
        let mut completed = self.completed.lock().unwrap_or_else(|p| p.into_inner());
        if completed.len() >= PENDING_COMPLETIONS {
            completed.retain(|_, at| at.elapsed() < COMPLETION_MEMORY);
        }
        if completed.len() < PENDING_COMPLETIONS {
            completed.insert(record, Instant::now());
        }
    }

    /// Notes that a `DownloadAvailable` for `record` left for a device.
    pub fn download_available_sent(&self, record: u64) {
        let completed = self.completed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = completed.get(&record) {
            self.notification_latency.observe(at.elapsed());
        }
    }

    /// The metrics in the Prometheus text format, with `snapshot`'s values.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP statesync_sessions Authenticated sessions on this server, by link.\n");
        out.push_str("# TYPE statesync_sessions gauge\n");
        for link in [LinkKind::Tcp, LinkKind::Serial] {
            let count = snapshot
                .sessions
                .iter()
                .filter(|(kind, _)| *kind == link)
                .map(|(_, count)| count)
                .sum::<usize>();
            let _ = writeln!(
                out,
                "statesync_sessions{{link=\"{}\"}} {count}",
                link_label(link)
            );
        }
        gauge(
            &mut out,
            "statesync_uploads_in_progress",
            "Uploads open on this server's sessions.",
            self.uploads.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "statesync_downloads_in_progress",
            "Downloads sending data on this server's sessions.",
            self.downloads.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "statesync_upload_bytes_total",
            "File bytes received from uploading devices.",
            self.upload_bytes.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "statesync_download_bytes_total",
            "File bytes sent to downloading devices.",
            self.download_bytes.load(Ordering::Relaxed),
        );
        if let Some(records) = snapshot.records {
            out.push_str("# HELP statesync_records Records in the store, by upload state (01 needed, 10 uploading, 11 uploaded, 00 failed).\n");
            out.push_str("# TYPE statesync_records gauge\n");
            for (state, count) in [
                ("needed", records.needed),
                ("uploading", records.uploading),
                ("uploaded", records.uploaded),
                ("failed", records.failed),
            ] {
                let _ = writeln!(out, "statesync_records{{state=\"{state}\"}} {count}");
            }
        }
        self.notification_latency.render(
            &mut out,
            "statesync_notification_latency_seconds",
            "From an upload's completion to a waiting device's DownloadAvailable leaving this server.",
        );
        self.store_latency.render(
            &mut out,
            "statesync_store_latency_seconds",
            "Duration of store calls, queueing on the store thread included.",
        );
        out
    }
}

fn link_label(link: LinkKind) -> &'static str {
    match link {
        LinkKind::Tcp => "tcp",
        LinkKind::Serial => "serial",
        LinkKind::None => "unknown",
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_everything() {
        let metrics = Metrics::default();
        metrics.store_latency.observe(Duration::from_micros(50));
        metrics.store_latency.observe(Duration::from_millis(3));
        metrics.store_latency.observe(Duration::from_secs(10));
        let text = metrics.render(&Snapshot::default());
        assert!(
            text.contains("statesync_store_latency_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("statesync_store_latency_seconds_bucket{le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("statesync_store_latency_seconds_bucket{le=\"2.5\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("statesync_store_latency_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("statesync_store_latency_seconds_count 3\n"),
            "{text}"
        );
    }

    #[test]
    fn transfers_in_progress_end_with_their_guard() {
        let metrics = Metrics::default();
        let first = metrics.download_started();
        let second = metrics.download_started();
        drop(first);
        let text = metrics.render(&Snapshot::default());
        assert!(
            text.contains("statesync_downloads_in_progress 1\n"),
            "{text}"
        );
        drop(second);
        let text = metrics.render(&Snapshot::default());
        assert!(
            text.contains("statesync_downloads_in_progress 0\n"),
            "{text}"
        );
    }
}
