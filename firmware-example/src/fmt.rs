//! Logging for both boards: `defmt` over RTT on the Pico, text lines over
//! semihosting on QEMU (they appear on QEMU's standard output).
//!
//! Shared code uses only `{}` placeholders with arguments that implement both
//! `core::fmt::Display` and `defmt::Format` (integers, `&str`, proto-core types).
#![macro_use]

#[cfg(feature = "board-pico")]
macro_rules! info {
    ($($arg:tt)*) => { ::defmt::info!($($arg)*) };
}
#[cfg(feature = "board-pico")]
macro_rules! warn {
    ($($arg:tt)*) => { ::defmt::warn!($($arg)*) };
}
#[cfg(feature = "board-pico")]
macro_rules! error {
    ($($arg:tt)*) => { ::defmt::error!($($arg)*) };
}

#[cfg(feature = "board-qemu")]
macro_rules! info {
    ($($arg:tt)*) => { $crate::board::log_line("INFO ", format_args!($($arg)*)) };
}
#[cfg(feature = "board-qemu")]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::board::log_line("WARN ", format_args!($($arg)*)) };
}
#[cfg(feature = "board-qemu")]
macro_rules! error {
    ($($arg:tt)*) => { $crate::board::log_line("ERROR", format_args!($($arg)*)) };
}
