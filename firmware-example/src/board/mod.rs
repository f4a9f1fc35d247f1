//! The board support: everything that differs between boards (UART, clocks,
//! time, logging, memory). One folder per board, chosen by its cargo feature
//! `board-NAME`; the folder holds its `board.toml` (target, default device
//! name, linker scripts: read by `build.rs` and `build.sh`), its `memory.x`
//! and `mod.rs`, which picks the drivers it shares with other boards from
//! `parts/` (`#[path]` modules). The rest of the firmware sees only this
//! interface:
//!
//! * `entry`, the attribute of `main` (from the board's runtime crate; a
//!   board run by embassy-executor, feature `embassy`, has none: its `main`
//!   is `#[embassy_executor::main]`);
//! * [`init`] brings up clocks and the UART and returns a [`Board`];
//! * [`Board::uart`] implements `embedded_io::{Read, Write, ReadReady}` at
//!   115200 8N1 (with `embassy`, `embedded_io_async::{Read, Write}` too,
//!   waking the task when bytes arrive);
//! * `Board::identity_page` is the board's [`IdentityPage`], one page of
//!   non-volatile memory that implements [`crate::nv_page::NvPage`] (read it;
//!   erase and write it) and keeps the device's identity across resets;
//! * [`now_us`] is a monotonic clock in microseconds since boot;
//! * [`entropy`] returns bits for nonces (as random as the board can make them);
//! * [`wait_for_interrupt`] is called when the firmware has nothing to do;
//! * `log_line` backs the logging macros in `fmt.rs` (boards without defmt);
//! * its sizing, chosen to fit its RAM: [`MAX_FRAME`] (largest frame payload
//!   it offers), [`DOWNLOAD_SLOTS`] and [`DOWNLOAD_SLOT_BYTES`] (published
//!   files kept in RAM);
//! * [`NAME`], for the boot banner.
//!
//! Adding a board: a folder here, its feature in `Cargo.toml`, its two lines
//! below, its name in `build.sh`'s list and its budgets in `budget.toml`.

#[cfg(feature = "board-qemu")]
mod qemu;
#[cfg(feature = "board-qemu")]
pub use qemu::*;

#[cfg(feature = "board-lm3s811")]
mod lm3s811;
#[cfg(feature = "board-lm3s811")]
pub use lm3s811::*;

#[cfg(feature = "board-microbit")]
mod microbit;
#[cfg(feature = "board-microbit")]
pub use microbit::*;

#[cfg(feature = "board-sifive_e")]
mod sifive_e;
#[cfg(feature = "board-sifive_e")]
pub use sifive_e::*;

#[cfg(feature = "board-pico")]
mod pico;
#[cfg(feature = "board-pico")]
pub use pico::*;
