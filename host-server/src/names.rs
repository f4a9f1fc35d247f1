//! Names as the server takes them from peers: proto-core's rules, plus Unicode
//! NFC, which needs tables proto-core (no_std, no alloc) does not carry.
//!
//! A name not in NFC is refused, not rewritten: a device that sent `é` as
//! `e` + U+0301 would otherwise see its own file under another name and could
//! not find it again. Clients normalise (host-cli does).

use proto_core::name::{validate, NameError};
use unicode_normalization::is_nfc;

/// Why the server refuses a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameRefused {
    /// It breaks one of proto-core's name rules.
    #[error("{0}")]
    Rule(#[from] NameError),
    /// It is not in Unicode Normalization Form C.
    #[error("name is not in Unicode NFC; normalise it to NFC (host-cli does) and send it again")]
    NotNfc,
}

/// Checks a file name from a peer: proto-core's rules, then NFC.
pub fn check(name: &str) -> Result<(), NameRefused> {
    validate(name)?;
    if !is_nfc(name) {
        return Err(NameRefused::NotNfc);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decomposed_names_are_refused_and_composed_ones_pass() {
        assert_eq!(check("caf\u{e9}.txt"), Ok(()));
        assert_eq!(check("cafe\u{301}.txt"), Err(NameRefused::NotNfc));
        assert_eq!(check("../x"), Err(NameRefused::Rule(NameError::DotSegment)));
    }
}
