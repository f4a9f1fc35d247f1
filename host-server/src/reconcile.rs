//! How an announced file meets the record already stored under its name.
//!
//! One pure rule for manifests and uploads alike (DESIGN.md §1.9): the same
//! content joins the existing record, another device's different content is a
//! conflict that never overwrites, and the owner's new content replaces its own.
//!
//! A file announced without its hash (it comes when the upload closes) is
//! recorded with [`ContentHash::ZERO`] and a size above 0: its content is not
//! known yet, so it matches no other device's announcement, known or not (a
//! conflict), and only its owner joins it again (to resume its upload).

use proto_core::ContentHash;

/// What to do with an announced file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconciliation {
    /// No record of that name: create one.
    Create,
    /// Same content already recorded: use that record.
    Join,
    /// Another device owns the name with other content: flag it, change nothing else.
    Conflict,
    /// The owner announces new content for its own file: reset the record.
    Replace,
}

/// The parts of an existing record that decide the outcome.
#[derive(Clone, Copy, Debug)]
pub struct Existing<'a> {
    /// The record's owner.
    pub owner: &'a str,
    /// Its content hash.
    pub hash: ContentHash,
    /// Its size.
    pub size: u64,
}

/// True for the hash of a file whose content is not known yet: all zero with a
/// size above 0 (a directory entry, all zero too, has size 0; an empty file
/// has the SHA-256 of no bytes).
pub fn hash_pending(hash: &ContentHash, size: u64) -> bool {
    *hash == ContentHash::ZERO && size > 0
}

/// Decides how `device`'s announcement of (`hash`, `size`) meets `existing`.
pub fn reconcile(
    existing: Option<Existing<'_>>,
    device: &str,
    hash: ContentHash,
    size: u64,
) -> Reconciliation {
    match existing {
        None => Reconciliation::Create,
        Some(e)
            if e.hash == hash
                && e.size == size
                && (e.owner == device || !hash_pending(&hash, size)) =>
        {
            Reconciliation::Join
        }
        Some(e) if e.owner == device => Reconciliation::Replace,
        Some(_) => Reconciliation::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ContentHash = ContentHash([1; 32]);
    const B: ContentHash = ContentHash([2; 32]);

    fn existing(owner: &str) -> Option<Existing<'_>> {
        Some(Existing {
            owner,
            hash: A,
            size: 10,
        })
    }

    #[test]
    fn same_name_and_hash_is_one_record_whoever_announces_it() {
        assert_eq!(reconcile(existing("d1"), "d2", A, 10), Reconciliation::Join);
        assert_eq!(reconcile(existing("d1"), "d1", A, 10), Reconciliation::Join);
    }

    #[test]
    fn other_content_from_another_device_is_a_conflict() {
        assert_eq!(
            reconcile(existing("d1"), "d2", B, 10),
            Reconciliation::Conflict
        );
        assert_eq!(
            reconcile(existing("d1"), "d2", A, 11),
            Reconciliation::Conflict
        );
    }

    #[test]
    fn owner_replaces_its_own_content_and_new_names_are_created() {
        assert_eq!(
            reconcile(existing("d1"), "d1", B, 3),
            Reconciliation::Replace
        );
        assert_eq!(reconcile(None, "d1", B, 3), Reconciliation::Create);
    }

    #[test]
    fn content_not_known_yet_is_joined_only_by_its_owner() {
        let pending = Some(Existing {
            owner: "d1",
            hash: ContentHash::ZERO,
            size: 10,
        });
        let z = ContentHash::ZERO;
        assert_eq!(reconcile(pending, "d1", z, 10), Reconciliation::Join);
        assert_eq!(reconcile(pending, "d1", A, 10), Reconciliation::Replace);
        assert_eq!(reconcile(pending, "d1", z, 11), Reconciliation::Replace);
        assert_eq!(reconcile(pending, "d2", z, 10), Reconciliation::Conflict);
        assert_eq!(reconcile(pending, "d2", A, 10), Reconciliation::Conflict);
        // Announced without a hash: another device's known content is no match either.
        assert_eq!(
            reconcile(existing("d1"), "d2", z, 10),
            Reconciliation::Conflict
        );
        assert_eq!(
            reconcile(existing("d1"), "d1", z, 10),
            Reconciliation::Replace
        );
    }
}
