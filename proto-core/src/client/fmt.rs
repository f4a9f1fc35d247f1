//! Logging shim: state transitions and link trouble go to `defmt` when the
//! `defmt` feature is on (boards), to the `log` crate when the `log` feature
//! is on (hosts), and nowhere otherwise.
//!
//! Format strings use `{}` only, which `defmt`, `log` and `core::fmt` all accept.

#[cfg(feature = "defmt")]
macro_rules! debug {
    ($($arg:tt)*) => { defmt::debug!($($arg)*) };
}

#[cfg(all(feature = "log", not(feature = "defmt")))]
macro_rules! debug {
    ($($arg:tt)*) => { log::debug!($($arg)*) };
}

#[cfg(not(any(feature = "defmt", feature = "log")))]
macro_rules! debug {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{ $( let _ = &$arg; )* }};
}

#[cfg(feature = "defmt")]
macro_rules! warning {
    ($($arg:tt)*) => { defmt::warn!($($arg)*) };
}

#[cfg(all(feature = "log", not(feature = "defmt")))]
macro_rules! warning {
    ($($arg:tt)*) => { log::warn!($($arg)*) };
}

#[cfg(not(any(feature = "defmt", feature = "log")))]
macro_rules! warning {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{ $( let _ = &$arg; )* }};
}

pub(crate) use debug;
pub(crate) use warning;

/// The states the log lines name are shown as their variant names.
#[cfg(all(feature = "log", not(feature = "defmt")))]
mod names {
    use super::super::{DownloadPhase, LinkState, UploadPhase};

    macro_rules! display_as_debug {
        ($($state:ty),*) => {$(
            impl core::fmt::Display for $state {
                fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    core::fmt::Debug::fmt(self, f)
                }
            }
        )*};
    }

    display_as_debug!(DownloadPhase, LinkState, UploadPhase);
}
