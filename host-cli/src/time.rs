//! Unix timestamps as UTC text and back, without a calendar dependency.

use proto_core::model::At;

/// `YYYY-MM-DD hh:mm:ssZ` for a Unix time in seconds, or `never` for 0.
pub fn describe(unix_seconds: u64) -> String {
    if unix_seconds == 0 {
        return "never".to_owned();
    }
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Reads a point in the directory's past for `--at`: a revision (`117`), a
/// Unix time (`@1796086140`), or an RFC 3339 time (`2026-12-01T00:49:00Z`,
/// `2026-12-01 01:49:00+01:00`; fractions of a second are dropped).
pub fn parse_at(text: &str) -> Result<At, String> {
    let text = text.trim();
    if let Ok(revision) = text.parse::<u64>() {
        return Ok(At::Revision { revision });
    }
    if let Some(seconds) = text.strip_prefix('@') {
        return seconds
            .parse::<u64>()
            .map(|seconds| At::UnixTime { seconds })
            .map_err(|_| format!("`{text}` is not a Unix time; give e.g. @1796086140"));
    }
    parse_rfc3339(text)
        .map(|seconds| At::UnixTime { seconds })
        .ok_or_else(|| {
            format!(
                "`{text}` is neither a revision (117), a Unix time (@1796086140) nor an RFC 3339 time (2026-12-01T00:49:00Z)"
            )
        })
}

/// Seconds since the epoch of `YYYY-MM-DD[T ]hh:mm:ss[.frac](Z|±hh:mm)`; `None` when malformed or before 1970.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, c)| bytes[at] != c) {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month as u32, day as u32) * 86_400
        + hour * 3600
        + minute * 60
        + second
        - offset;
    u64::try_from(seconds).ok()
}

/// Howard Hinnant's `days_from_civil`: a date to days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a date.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(describe(0), "never");
        assert_eq!(describe(1), "1970-01-01 00:00:01Z");
        assert_eq!(describe(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(describe(1_796_086_140), "2026-12-01 00:49:00Z");
    }

    #[test]
    fn at_reads_revisions_unix_times_and_rfc_3339_times() {
        assert_eq!(parse_at("117"), Ok(At::Revision { revision: 117 }));
        let december = At::UnixTime {
            seconds: 1_796_086_140,
        };
        assert_eq!(parse_at("@1796086140"), Ok(december));
        assert_eq!(parse_at("2026-12-01T00:49:00Z"), Ok(december));
        assert_eq!(parse_at("2026-12-01 01:49:00.25+01:00"), Ok(december));
        assert_eq!(
            parse_at("2000-02-29T00:00:00Z"),
            Ok(At::UnixTime {
                seconds: 951_782_400
            })
        );
        for bad in [
            "yesterday",
            "@soon",
            "2026-13-01T00:00:00Z",
            "2026-12-01T00:49:00",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(parse_at(bad).is_err(), "{bad}");
        }
    }
}
