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
    /// A segment is a name Windows reserves (`CON`, `NUL.txt`, `COM1`, `LPT²`, ...).
    Reserved,
    /// The name holds an invisible or direction-changing character (a bidi control,
    /// a zero-width or non-breaking space, a variation selector, ...): it could pass
    /// for another name.
    Invisible,
    /// A segment ends with `.` or a space, which Windows drops (`a.` would become `a`).
    TrailingDotOrSpace,
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
                "name holds a control character, NUL, `\\` or one of `<>:\"|?*`; use other characters and `/`"
            ),
            NameError::Reserved => text!(
                "reserved name",
                "name uses a reserved device name (CON, NUL, COM1, LPT², ...), with or without an extension; rename it"
            ),
            NameError::Invisible => text!(
                "invisible character in name",
                "name holds an invisible or direction-changing character (bidi control, zero-width or unusual space); remove it"
            ),
            NameError::TrailingDotOrSpace => text!(
                "name part ends with dot or space",
                "a part of the name ends with `.` or a space, which Windows drops; remove it"
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
/// outside the folder it is stored in, on any common file system, and that
/// cannot pass for another name (no invisible or bidi characters).
///
/// Unicode normalisation (NFC) needs tables this crate does not carry: hosts
/// check it on top (the server refuses names not in NFC).
pub fn validate(name: &str) -> Result<(), NameError> {
    check_length(name, MAX_NAME_LEN)?;
    if name.starts_with('/') || has_drive_prefix(name) {
        return Err(NameError::Absolute);
    }
    check_characters(name)?;
    for segment in name.split('/') {
        check_segment(segment)?;
    }
    Ok(())
}

/// Checks a device or batch name: one segment, printable, at most `max_len` bytes.
pub fn validate_label(name: &str, max_len: usize) -> Result<(), NameError> {
    check_length(name, max_len)?;
    check_characters(name)?;
    if name.contains('/') {
        return Err(NameError::BadCharacter);
    }
    check_segment(name)
}

fn check_length(name: &str, max_len: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > max_len {
        return Err(NameError::TooLong);
    }
    Ok(())
}

fn check_characters(name: &str) -> Result<(), NameError> {
    for c in name.chars() {
        if c.is_control() || matches!(c, '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*') {
            return Err(NameError::BadCharacter);
        }
        if is_invisible(c) {
            return Err(NameError::Invisible);
        }
    }
    Ok(())
}

/// Characters that show as nothing, as a plain space, or that reorder the text
/// around them: bidi controls, zero-width characters, spaces other than U+0020,
/// fillers, variation selectors and tags (Unicode's default-ignorable and
/// space-separator sets, plus the specials block).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00A0}' | '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}'
        | '\u{1680}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{2000}'..='\u{200F}' | '\u{2028}'..='\u{202F}' | '\u{205F}'..='\u{206F}'
        | '\u{2800}' | '\u{3000}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFF}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
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
    if segment.ends_with('.') || segment.ends_with(' ') {
        return Err(NameError::TrailingDotOrSpace);
    }
    if is_reserved(segment) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// Windows reserves these stems in any case, with any extension, and with
/// spaces before the extension: `nul`, `NUL.txt`, `Nul .tar.gz`, `COM¹`, `lpt0.log`.
fn is_reserved(segment: &str) -> bool {
    let stem = segment.split('.').next().unwrap_or(segment);
    let stem = stem.trim_end_matches(' ');
    const RESERVED: [&str; 6] = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"];
    if RESERVED.iter().any(|r| stem.eq_ignore_ascii_case(r)) {
        return true;
    }
    // Compare bytes: slicing the `str` at 3 panics when a multi-byte character straddles it.
    let Some((prefix, number)) = stem.as_bytes().split_first_chunk::<3>() else {
        return false;
    };
    let port = prefix.eq_ignore_ascii_case(b"COM") || prefix.eq_ignore_ascii_case(b"LPT");
    // A digit, or a superscript ¹ ² ³ (UTF-8 `C2 B9`, `C2 B2`, `C2 B3`).
    port && match number {
        [digit] => digit.is_ascii_digit(),
        [0xC2, sup] => matches!(sup, 0xB9 | 0xB2 | 0xB3),
        _ => false,
    }
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
    fn windows_reserved_names_are_refused_in_every_form() {
        for reserved in [
            "CON",
            "con",
            "Con.txt",
            "NUL.tar.gz",
            "nul .txt",
            "a/PRN",
            "aux.",
            "COM1",
            "com9.log",
            "COM0",
            "LPT0",
            "COM¹",
            "com².txt",
            "LPT³",
            "lpt²",
            "CONIN$",
            "conout$.x",
        ] {
            assert!(validate(reserved).is_err(), "{reserved:?} must be refused");
        }
        assert_eq!(validate("COM¹"), Err(NameError::Reserved));
        assert_eq!(validate("dir/nul .txt"), Err(NameError::Reserved));
        for fine in [
            "COM10",
            "LPT",
            "company.txt",
            "com½",
            "nullable",
            "a/console.log",
            "CONIN",
        ] {
            assert_eq!(validate(fine), Ok(()), "{fine:?}");
        }
    }

    #[test]
    fn trailing_dots_and_spaces_are_refused_in_every_part() {
        for name in ["a.", "a ", "dir./x", "dir /x", "x/y...", "x/y. "] {
            assert_eq!(
                validate(name),
                Err(NameError::TrailingDotOrSpace),
                "{name:?}"
            );
        }
        assert_eq!(validate(".hidden/a.b c.txt"), Ok(()));
    }

    #[test]
    fn invisible_and_direction_changing_characters_are_refused() {
        for name in [
            "invoice\u{202E}fdp.exe",
            "a\u{200B}b",
            "a\u{200D}b",
            "a\u{2066}b\u{2069}",
            "\u{FEFF}a",
            "a\u{00A0}b",
            "soft\u{00AD}hyphen",
            "a\u{3000}b",
            "a\u{FE0F}",
            "tag\u{E0041}",
            "a\u{2028}b",
            "a\u{061C}b",
        ] {
            assert_eq!(validate(name), Err(NameError::Invisible), "{name:?}");
        }
        assert_eq!(
            validate_label("dev\u{200B}", MAX_DEVICE_NAME_LEN),
            Err(NameError::Invisible)
        );
    }

    #[test]
    fn characters_windows_forbids_are_refused() {
        for name in [
            "ab:c",
            "a<b",
            "a>b",
            "a\"b",
            "a|b",
            "a?b",
            "a*b",
            "dir/x:stream",
        ] {
            assert_eq!(validate(name), Err(NameError::BadCharacter), "{name:?}");
        }
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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const INVISIBLE: [char; 10] = [
            '\u{200B}',
            '\u{200E}',
            '\u{202A}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{FEFF}',
            '\u{00A0}',
            '\u{2060}',
            '\u{E0001}',
        ];

        /// A name of plain segments, all of which pass.
        fn plain_name() -> impl Strategy<Value = String> {
            proptest::collection::vec("[a-z0-9_][a-z0-9_ .-]{0,6}[a-z0-9_]", 1..4)
                .prop_map(|segments| segments.join("/"))
        }

        proptest! {
            #[test]
            fn validation_never_panics(name in "\\PC*") {
                let _ = validate(&name);
                let _ = validate_label(&name, MAX_DEVICE_NAME_LEN);
            }

            #[test]
            fn plain_names_pass(name in plain_name()) {
                prop_assume!(!name.split('/').any(is_reserved));
                prop_assert_eq!(validate(&name), Ok(()));
            }

            #[test]
            fn one_invisible_character_anywhere_is_refused(
                name in plain_name(),
                at in any::<prop::sample::Index>(),
                which in 0..INVISIBLE.len(),
            ) {
                let cut = name.char_indices().map(|(i, _)| i).nth(at.index(name.chars().count())).unwrap_or(0);
                let mut bad = name.clone();
                bad.insert(cut, INVISIBLE[which]);
                prop_assert!(validate(&bad).is_err(), "{:?}", bad);
            }

            #[test]
            fn reserved_stems_are_refused_in_any_case_and_with_any_extension(
                stem in prop::sample::select(vec!["con", "prn", "aux", "nul", "com1", "lpt9", "com\u{b9}", "lpt\u{b3}"]),
                upper in proptest::collection::vec(any::<bool>(), 8),
                spaces in 0usize..3,
                extension in "(\\.[a-z]{1,4}){0,2}",
                dir in "([a-z]{1,5}/)?",
            ) {
                let cased: String = stem
                    .chars()
                    .zip(upper.iter().cycle())
                    .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                    .collect();
                let name = format!("{dir}{cased}{}{extension}", " ".repeat(spaces));
                prop_assert!(validate(&name).is_err(), "{:?}", name);
            }

            #[test]
            fn a_trailing_dot_or_space_on_any_part_is_refused(
                name in plain_name(),
                part in any::<prop::sample::Index>(),
                ending in prop::sample::select(vec![".", " ", "..", ". "]),
            ) {
                let mut segments: Vec<String> = name.split('/').map(str::to_owned).collect();
                let i = part.index(segments.len());
                segments[i].push_str(ending);
                let bad = segments.join("/");
                prop_assert!(validate(&bad).is_err(), "{:?}", bad);
            }
        }
    }
}
