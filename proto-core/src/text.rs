//! Error texts: a sentence that says what happened and what to do with the
//! `error-texts` feature (on by default and with `std`), a short phrase without
//! it. A board logs its errors as defmt variant names or short phrases and
//! saves the 2.5 KiB of flash the sentences take.

/// `text!("short phrase", "Full sentence; what to do.")`: one of the two, by feature.
macro_rules! text {
    ($short:literal, $full:literal $(,)?) => {{
        #[cfg(feature = "error-texts")]
        let text = $full;
        #[cfg(not(feature = "error-texts"))]
        let text = $short;
        text
    }};
}

pub(crate) use text;
