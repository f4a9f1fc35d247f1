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

    /// The median repetition (of an even count, the slower of the middle two).
    pub fn median(&self) -> Option<Duration> {
        median(&self.times)
    }

    /// Goodput of the median repetition in bytes per second.
    pub fn median_goodput(&self) -> Option<f64> {
        self.median().map(|d| self.bytes as f64 / d.as_secs_f64())
    }
}

/// The median of `values` (of an even count, the larger of the middle two,
/// so it is always a measured value).
pub fn median<T: Copy + PartialOrd>(values: &[T]) -> Option<T> {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    sorted.get(sorted.len() / 2).copied()
}

/// The smallest of `values`.
pub fn min<T: Copy + PartialOrd>(values: &[T]) -> Option<T> {
    values
        .iter()
        .copied()
        .reduce(|a, b| if b < a { b } else { a })
}

/// `part` as a percentage of `whole`; `None` when `whole` is not positive.
pub fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| 100.0 * part / whole)
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
            (Some(g), Some(line)) => percent(g, line)
                .map(|p| format!("{p:.1} %"))
                .unwrap_or_else(|| "—".into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seconds: &[f64]) -> Row {
        Row {
            bench: "b".into(),
            tool: "t".into(),
            condition: "c".into(),
            bytes: 1_000_000,
            times: seconds
                .iter()
                .map(|s| Duration::from_secs_f64(*s))
                .collect(),
            failures: 0,
            line_rate: Some(11_520.0),
            note: String::new(),
        }
    }

    #[test]
    fn min_and_median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(
            median(&[4.0, 1.0, 3.0, 2.0]),
            Some(3.0),
            "the larger middle value"
        );
        assert_eq!(median::<f64>(&[]), None);
        assert_eq!(min(&[3.0, 1.0, 2.0]), Some(1.0));
        assert_eq!(min::<f64>(&[]), None);
        let r = row(&[2.0, 0.5, 1.0]);
        assert_eq!(r.min(), Some(Duration::from_millis(500)));
        assert_eq!(r.median(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn goodput_is_bytes_over_the_median_time() {
        let r = row(&[2.0, 0.5, 1.0]);
        assert_eq!(r.median_goodput(), Some(1_000_000.0));
        assert_eq!(row(&[]).median_goodput(), None);
    }

    #[test]
    fn percentages_and_rates() {
        assert_eq!(
            percent(11_289.6, 11_520.0).map(|p| (p * 10.0).round()),
            Some(980.0)
        );
        assert_eq!(percent(1.0, 0.0), None);
        assert_eq!(rate(999.0), "999.000 B/s");
        assert_eq!(rate(11_520.0), "11.520 KB/s");
        assert_eq!(rate(1.5e9), "1.500 GB/s");
        assert_eq!(rate(2.5e12), "2500.000 GB/s", "no unit past GB/s");
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(size(1 << 30), "1 GiB");
        assert_eq!(size(256 << 20), "256 MiB");
        assert_eq!(size(65_536), "64 KiB");
        assert_eq!(size(1000), "1000 B");
    }

    #[test]
    fn the_table_shows_min_median_goodput_and_share_of_the_line() {
        let mut r = row(&[100.0, 90.0, 95.0]);
        r.bytes = 1_048_576;
        let table = markdown(&[r]);
        let last = table.lines().last().unwrap();
        assert!(
            last.contains("| 1 MiB | 3/0 | 90.000 s | 95.000 s | 11.038 KB/s | 95.8 % |"),
            "{last}"
        );
    }
}
