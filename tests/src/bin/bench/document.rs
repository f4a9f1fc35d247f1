//! The `BENCHMARKS.md` document: one section per bench, each with its own
//! run date, machine, command, method and results, between markers so a later
//! run of some benches replaces only their sections and keeps the others.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the sections of the benches go, in this order, whatever order they ran in.
const ORDER: [&str; 7] = [
    "serial", "tcp", "scale", "cluster", "firmware", "blobs", "tree",
];

/// The results of one bench, ready to go into the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The bench's name on the command line (`tcp`); names the markers.
    pub bench: String,
    /// The section heading.
    pub title: String,
    /// How the figures were obtained (Markdown).
    pub method: String,
    /// The tables (Markdown).
    pub results: String,
}

/// When, where and how a run happened; printed in each section it produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// UTC date and time, `2026-12-01 05:10 UTC`.
    pub date: String,
    /// CPU, cores, memory, kernel and the disk the temporary files were on.
    pub machine: String,
    /// The bench's arguments.
    pub command: String,
}

impl RunInfo {
    /// Describes this run on this machine, with temporary files under `work`.
    pub fn now(work: &std::path::Path) -> RunInfo {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        RunInfo {
            date: utc_date(seconds),
            machine: crate::machine::describe(work),
            command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        }
    }
}

fn begin_marker(bench: &str) -> String {
    format!("<!-- bench:{bench} begin -->")
}

fn end_marker(bench: &str) -> String {
    format!("<!-- bench:{bench} end -->")
}

/// One section as it appears in the document, markers included.
pub fn render(section: &Section, run: &RunInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", begin_marker(&section.bench));
    let _ = writeln!(out, "## {}\n", section.title);
    let _ = writeln!(
        out,
        "Run {} on {}, with `cargo run --release -p tests --bin bench -- {}`.\n",
        run.date, run.machine, run.command
    );
    let _ = writeln!(out, "### Method\n\n{}\n", section.method.trim_end());
    let _ = writeln!(out, "### Results\n\n{}\n", section.results.trim());
    let _ = writeln!(out, "{}", end_marker(&section.bench));
    out
}

const HEADER: &str = "# Benchmarks\n\nEach section below comes from the run it names (date, machine, command): `cargo run --release -p tests --bin bench -- BENCHES --out BENCHMARKS.md` replaces the sections of the benches it runs and keeps the others. Timings are measured, never asserted; compare figures only within one section (one run), since this machine is shared and its disk is noisy.\n";

/// The text between (and including) the markers of `bench` in `document`.
fn span(document: &str, bench: &str) -> Option<std::ops::Range<usize>> {
    let begin = document.find(&begin_marker(bench))?;
    let end_text = end_marker(bench);
    let end = begin + document[begin..].find(&end_text)? + end_text.len();
    let end = if document[end..].starts_with('\n') {
        end + 1
    } else {
        end
    };
    Some(begin..end)
}

/// Puts the rendered `sections` into `existing` (the old document, if any):
/// a bench's old section is replaced in place, a new one goes before the
/// sections of the benches after it in [`ORDER`], and everything else stays,
/// notes written between sections included. A section whose end marker is
/// lost is dropped (up to the next section), and a document without markers
/// is started anew.
pub fn merge(existing: Option<&str>, sections: &[(String, String)]) -> String {
    let mut doc = match existing {
        Some(old) if ORDER.iter().any(|bench| span(old, bench).is_some()) => {
            without_broken_sections(old)
        }
        _ => {
            let mut fresh: Vec<&(String, String)> = sections.iter().collect();
            fresh.sort_by_key(|(bench, _)| rank(bench));
            let mut out = String::from(HEADER);
            for (_, text) in fresh {
                out.push('\n');
                out.push_str(text.trim_end());
                out.push('\n');
            }
            return out;
        }
    };
    for (bench, text) in sections {
        let text = format!("{}\n", text.trim_end());
        if let Some(range) = span(&doc, bench) {
            doc.replace_range(range, &text);
            continue;
        }
        let later = ORDER
            .iter()
            .filter(|other| rank(other) > rank(bench))
            .filter_map(|other| span(&doc, other).map(|range| range.start))
            .min();
        match later {
            Some(at) => doc.insert_str(at, &format!("{text}\n")),
            None => {
                if !doc.ends_with("\n\n") {
                    doc.push('\n');
                }
                doc.push_str(&text);
            }
        }
    }
    doc
}

/// Where `bench` goes among the sections (unknown benches last).
fn rank(bench: &str) -> usize {
    ORDER
        .iter()
        .position(|b| *b == bench)
        .unwrap_or(ORDER.len())
}

/// `doc` without the sections whose begin marker has no end marker after it:
/// each is cut up to the next section's begin marker, or the end.
fn without_broken_sections(doc: &str) -> String {
    let mut out = doc.to_owned();
    for bench in ORDER {
        let begin_text = begin_marker(bench);
        while let Some(begin) = out.find(&begin_text) {
            if span(&out, bench).is_some() {
                break;
            }
            let after = begin + begin_text.len();
            let end = out[after..]
                .find("<!-- bench:")
                .map_or(out.len(), |next| after + next);
            out.replace_range(begin..end, "");
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch.
pub fn utc_date(seconds: u64) -> String {
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    // Days to civil date (H. Hinnant's algorithm), for the proleptic Gregorian calendar.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunInfo {
        RunInfo {
            date: "2026-12-01 05:00 UTC".into(),
            machine: "test machine".into(),
            command: "tcp".into(),
        }
    }

    fn section(bench: &str, results: &str) -> (String, String) {
        let s = Section {
            bench: bench.into(),
            title: format!("{bench} title"),
            method: format!("{bench} method"),
            results: results.into(),
        };
        (bench.into(), render(&s, &run()))
    }

    #[test]
    fn a_new_document_holds_the_sections_in_bench_order() {
        let doc = merge(None, &[section("firmware", "F1"), section("tcp", "T1")]);
        assert!(doc.starts_with("# Benchmarks\n"));
        let tcp = doc.find("## tcp title").unwrap();
        let firmware = doc.find("## firmware title").unwrap();
        assert!(tcp < firmware, "tcp comes before firmware:\n{doc}");
        assert!(doc.contains("Run 2026-12-01 05:00 UTC on test machine"));
        assert!(doc.contains("### Method\n\ntcp method\n"));
    }

    #[test]
    fn a_rerun_replaces_only_its_own_section() {
        let first = merge(
            None,
            &[
                section("serial", "S1"),
                section("tcp", "T1"),
                section("scale", "C1"),
            ],
        );
        let second = merge(Some(&first), &[section("tcp", "T2")]);
        assert!(second.contains("S1") && second.contains("C1"), "{second}");
        assert!(second.contains("T2") && !second.contains("T1"), "{second}");
        assert_eq!(second.matches("<!-- bench:tcp begin -->").count(), 1);
        // Merging the same sections again changes nothing.
        assert_eq!(merge(Some(&second), &[section("tcp", "T2")]), second);
    }

    #[test]
    fn a_section_missing_from_the_old_document_is_added_in_its_place() {
        let first = merge(None, &[section("serial", "S1"), section("firmware", "F1")]);
        let second = merge(Some(&first), &[section("tcp", "T1")]);
        let (s, t, f) = (
            second.find("S1").unwrap(),
            second.find("T1").unwrap(),
            second.find("F1").unwrap(),
        );
        assert!(s < t && t < f, "{second}");
    }

    #[test]
    fn a_document_without_markers_is_started_anew() {
        let doc = merge(
            Some("# Old benchmarks\n\nwhatever\n"),
            &[section("tcp", "T1")],
        );
        assert!(!doc.contains("whatever"));
        assert!(doc.contains("T1"));
    }

    #[test]
    fn a_section_whose_end_marker_is_lost_is_not_kept() {
        let doc = "# Benchmarks\n\n<!-- bench:tcp begin -->\n## tcp\nT0\n";
        let merged = merge(Some(doc), &[section("scale", "C1")]);
        assert!(!merged.contains("T0"));
        assert!(merged.contains("C1"));
    }

    #[test]
    fn notes_between_sections_and_sections_of_every_bench_are_kept() {
        let first = merge(None, &[section("serial", "S1"), section("blobs", "B1")]);
        let with_notes = first.replace(
            "<!-- bench:blobs end -->\n",
            "<!-- bench:blobs end -->\n\n### Notes by hand\n\nN1\n",
        );
        let second = merge(Some(&with_notes), &[section("tree", "R1")]);
        for kept in ["S1", "B1", "### Notes by hand", "N1", "R1"] {
            assert!(second.contains(kept), "{kept} is missing:\n{second}");
        }
        assert!(second.find("N1").unwrap() < second.find("R1").unwrap());
        let third = merge(Some(&second), &[section("blobs", "B2")]);
        assert!(third.contains("B2") && !third.contains("B1"), "{third}");
        assert!(third.contains("N1"), "{third}");
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_798_692_660), "2026-12-31 04:51 UTC");
        assert_eq!(utc_date(1_709_251_199), "2024-02-29 23:59 UTC");
    }
}
