//! The board support: everything that differs between boards (UART, clocks,
//! time, logging). The rest of the firmware sees only this interface:
//!
//! * [`init`] brings up clocks and the UART and returns a [`Board`];
//! * [`Board::uart`] implements `embedded_io::{Read, Write, ReadReady}` at
//!   115200 8N1;
//! * `Board::identity_page` is the board's [`IdentityPage`], one page of
//!   non-volatile memory that implements [`crate::nv_page::NvPage`] (read it;
//!   erase and write it) and keeps the device's identity across resets;
//! * [`now_us`] is a monotonic clock in microseconds since boot;
//! * [`entropy`] returns bits for nonces (as random as the board can make them);
//! * `log_line` (QEMU only) backs the logging macros in `fmt.rs`.

#[cfg(feature = "board-qemu")]
mod qemu;
#[cfg(feature = "board-qemu")]
pub use qemu::*;

#[cfg(feature = "board-pico")]
mod pico;
#[cfg(feature = "board-pico")]
pub use pico::*;
