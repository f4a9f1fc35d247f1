//! Logging for every board: `defmt` where the board logs through it (the
//! Pico, over RTT; feature `log-defmt`), otherwise text lines through the
//! board's `log_line` (semihosting under QEMU: QEMU's standard output).
//!
//! Shared code uses only `{}` placeholders with arguments that implement both
//! `core::fmt::Display` and `defmt::Format` (integers, `&str`, proto-core types).
#![macro_use]

#[cfg(feature = "log-defmt")]
macro_rules! info {
    ($($arg:tt)*) => { ::defmt::info!($($arg)*) };
}
#[cfg(feature = "log-defmt")]
macro_rules! warn {
    ($($arg:tt)*) => { ::defmt::warn!($($arg)*) };
}
#[cfg(feature = "log-defmt")]
macro_rules! error {
    ($($arg:tt)*) => { ::defmt::error!($($arg)*) };
}

#[cfg(not(feature = "log-defmt"))]
macro_rules! info {
    ($($arg:tt)*) => { $crate::board::log_line("INFO ", format_args!($($arg)*)) };
}
#[cfg(not(feature = "log-defmt"))]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::board::log_line("WARN ", format_args!($($arg)*)) };
}
#[cfg(not(feature = "log-defmt"))]
macro_rules! error {
    ($($arg:tt)*) => { $crate::board::log_line("ERROR", format_args!($($arg)*)) };
}
