//! Unix timestamps as UTC text, without a calendar dependency.

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
}
