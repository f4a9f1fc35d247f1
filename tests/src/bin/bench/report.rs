//! Collects measurements and prints them as a table and as Markdown.

use std::fmt::Write as _;
use std::time::Duration;

/// Repeated timings of one tool doing one thing under one condition.
#[derive(Clone, Debug)]
pub struct Row {
    /// Which bench (e.g. "serial 115200").
    pub bench: String,
    /// What was measured (e.g. "statesync push").
    pub tool: String,
    /// Link condition or variant (e.g. "BER 1e-5").
    pub condition: String,
    /// Payload bytes per repetition.
    pub bytes: u64,
    /// Durations of the repetitions that succeeded.
    pub times: Vec<Duration>,
    /// Repetitions that failed (timed out, wrong content).
    pub failures: usize,
    /// The line rate in bytes/s, where a percentage of it means something.
    pub line_rate: Option<f64>,
    /// Anything else worth saying (bytes re-sent, ratio, ...).
    pub note: String,
}

impl Row {
    /// The fastest repetition.
    pub fn min(&self) -> Option<Duration> {
        self.times.iter().min().copied()
    }

    /// The median repetition.
    pub fn median(&self) -> Option<Duration> {
        let mut sorted = self.times.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied()
    }

    /// Goodput of the median repetition in bytes per second.
    pub fn median_goodput(&self) -> Option<f64> {
        self.median().map(|d| self.bytes as f64 / d.as_secs_f64())
    }
}

/// Human rate: `12.3 KB/s`, `1.23 GB/s` (decimal units).
pub fn rate(bytes_per_sec: f64) -> String {
    let units = ["B/s", "KB/s", "MB/s", "GB/s"];
    let mut value = bytes_per_sec;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.3} {}", units[unit])
}

/// Renders rows as a Markdown table (also readable in a terminal).
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| bench | tool | condition | size | reps (ok/failed) | min time | median time | goodput (median) | % of line | note |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let fmt_time = |d: Option<Duration>| {
            d.map(|d| format!("{:.3} s", d.as_secs_f64()))
                .unwrap_or_else(|| "—".into())
        };
        let goodput = row.median_goodput().map(rate).unwrap_or_else(|| "—".into());
        let pct = match (row.median_goodput(), row.line_rate) {
            (Some(g), Some(line)) => format!("{:.1} %", 100.0 * g / line),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {}/{} | {} | {} | {} | {} | {} |",
            row.bench,
            row.tool,
            row.condition,
            size(row.bytes),
            row.times.len(),
            row.failures,
            fmt_time(row.min()),
            fmt_time(row.median()),
            goodput,
            pct,
            row.note
        );
    }
    out
}

/// Human size in binary units.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}
