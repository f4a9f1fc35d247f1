//! Validation of file and device names that come from peers.

use crate::text::text;

/// Longest file name (relative path) in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest device name in bytes.
pub const MAX_DEVICE_NAME_LEN: usize = 32;
/// Longest batch name in bytes.
pub const MAX_BATCH_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than allowed.
    TooLong,
    /// The name starts with `/` (absolute) or a drive letter.
    Absolute,
    /// A path segment is empty (`a//b`, trailing `/`).
    EmptySegment,
    /// A segment is `.` or `..`.
    DotSegment,
    /// The name holds a NUL, a control character or a backslash.
    BadCharacter,
    /// A segment is a name Windows reserves (`CON`, `NUL`, `COM1`, ...).
    Reserved,
}

impl NameError {
    /// What is wrong and how to fix it.
    pub const fn message(self) -> &'static str {
        match self {
            NameError::Empty => text!("empty name", "name is empty; give a file name"),
            NameError::TooLong => text!(
                "name too long",
                "name is too long; use at most 255 bytes (32 for devices)"
            ),
            NameError::Absolute => text!(
                "absolute name",
                "name is absolute; use a path relative to the shared folder"
            ),
            NameError::EmptySegment => text!(
                "empty path part",
                "name has an empty path part (`//` or a trailing `/`); remove it"
            ),
            NameError::DotSegment => text!(
                "dot path part",
                "name has a `.` or `..` part; name the file directly"
            ),
            NameError::BadCharacter => text!(
                "bad character in name",
                "name holds a control character, NUL or `\\`; use printable characters and `/`"
            ),
            NameError::Reserved => text!(
                "reserved name",
                "name uses a reserved device name (CON, NUL, COM1, ...); rename it"
            ),
        }
    }
}

impl core::fmt::Display for NameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for NameError {}

/// Checks a file name: a relative `/`-separated path that can never reach
/// outside the folder it is stored in, on any common file system.
pub fn validate(name: &str) -> Result<(), NameError> {
    check_common(name, MAX_NAME_LEN)?;
    if name.starts_with('/') || has_drive_prefix(name) {
        return Err(NameError::Absolute);
    }
    for segment in name.split('/') {
        check_segment(segment)?;
    }
    Ok(())
}

/// Checks a device or batch name: one segment, printable, at most `max_len` bytes.
pub fn validate_label(name: &str, max_len: usize) -> Result<(), NameError> {
    check_common(name, max_len)?;
    if name.contains('/') {
        return Err(NameError::BadCharacter);
    }
    check_segment(name)
}

fn check_common(name: &str, max_len: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > max_len {
        return Err(NameError::TooLong);
    }
    if name.chars().any(|c| c.is_control() || c == '\\') {
        return Err(NameError::BadCharacter);
    }
    Ok(())
}

fn has_drive_prefix(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

fn check_segment(segment: &str) -> Result<(), NameError> {
    if segment.is_empty() {
        return Err(NameError::EmptySegment);
    }
    if segment == "." || segment == ".." {
        return Err(NameError::DotSegment);
    }
    if is_reserved(segment) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

fn is_reserved(segment: &str) -> bool {
    let stem = segment.split('.').next().unwrap_or(segment);
    const RESERVED: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];
    if RESERVED.iter().any(|r| stem.eq_ignore_ascii_case(r)) {
        return true;
    }
    // Compare bytes: slicing the `str` at 3 panics when a multi-byte character straddles it.
    let b = stem.as_bytes();
    b.len() == 4
        && (b[..3].eq_ignore_ascii_case(b"COM") || b[..3].eq_ignore_ascii_case(b"LPT"))
        && (b'1'..=b'9').contains(&b[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_relative_paths_pass() {
        for ok in [
            "a.bin",
            "photos/2026/cat.jpg",
            "x y/ü.txt",
            "console/con1.txt",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        let long = "a".repeat(10_000);
        let cases: [(&str, NameError); 11] = [
            ("", NameError::Empty),
            ("/etc/passwd", NameError::Absolute),
            ("C:/x", NameError::Absolute),
            ("../x", NameError::DotSegment),
            ("a/../../x", NameError::DotSegment),
            ("a//b", NameError::EmptySegment),
            ("a/", NameError::EmptySegment),
            ("a\0b", NameError::BadCharacter),
            ("a\\b", NameError::BadCharacter),
            ("dir/NUL.txt", NameError::Reserved),
            (&long, NameError::TooLong),
        ];
        for (name, err) in cases {
            assert_eq!(validate(name), Err(err), "{name:?}");
        }
        assert_eq!(validate("com7"), Err(NameError::Reserved));
    }

    #[test]
    fn labels_are_single_segments() {
        assert_eq!(validate_label("board-1", MAX_DEVICE_NAME_LEN), Ok(()));
        assert_eq!(
            validate_label("a/b", MAX_DEVICE_NAME_LEN),
            Err(NameError::BadCharacter)
        );
        assert_eq!(
            validate_label(&"d".repeat(33), MAX_DEVICE_NAME_LEN),
            Err(NameError::TooLong)
        );
    }
}
