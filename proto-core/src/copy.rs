//! Copying bytes into a buffer, with one panic path for all copies.
//!
//! `dst[a..b].copy_from_slice(src)` at a call site links a range check and a
//! length check, each a panic call with its own location; an
//! element-by-element `zip` loop instead does not fold into one copy at
//! `opt-level = "z"` and costs more code. Here the room is checked with
//! `get_mut`, so the only panic left is the length check inside core's
//! `copy_from_slice` (out of line, never taken): one location in the image
//! for every copy that goes through this function.

/// Copies `src` to the start of `dst`; false (and nothing copied) when `dst` is shorter.
pub(crate) fn copy_into(dst: &mut [u8], src: &[u8]) -> bool {
    match dst.get_mut(..src.len()) {
        Some(room) => {
            room.copy_from_slice(src);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_what_fits_and_refuses_what_does_not() {
        let mut dst = [0u8; 4];
        assert!(copy_into(&mut dst, &[1, 2, 3]));
        assert_eq!(dst, [1, 2, 3, 0]);
        assert!(!copy_into(&mut dst[1..], &[9; 4]));
        assert_eq!(dst, [1, 2, 3, 0]);
    }
}
