//! statesync example firmware: a board that uploads its built-in files and
//! downloads what the host publishes for it, over a UART.
//!
//! Board-specific code lives in `board/` (UART, clocks, time, logging, the
//! identity page); the protocol is proto-core's `embedded-io` driver.
//! At boot the board reads its identity from its identity page, or waits to be
//! provisioned over its UART (`provisioning.rs`), then syncs (`app.rs`).
#![no_std]
#![no_main]

mod fmt;

mod app;
#[cfg(feature = "async-driver")]
mod async_uart;
mod board;
mod buffers;
#[cfg(feature = "async-driver")]
mod executor;
mod identity;
mod nonces;
mod nv_page;
mod provisioning;
mod samples;
mod stack;
mod store;

use nonces::Nonces;

#[cfg(feature = "log-defmt")]
use defmt_rtt as _;

#[board::entry]
fn main() -> ! {
    let mut board = board::init();
    info!("statesync firmware on {}", board::NAME);
    let mut nonces = Nonces::new();
    let identity = provisioning::run(&mut board.uart, &mut board.identity_page, &mut nonces);
    let Some(buffers) = buffers::take() else {
        panic!("buffers taken twice");
    };
    app::run(identity, nonces, board.uart, buffers)
}
