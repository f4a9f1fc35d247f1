//! statesync example firmware: a board that uploads its built-in files and
//! downloads what the host publishes for it, over a UART.
//!
//! Board-specific code lives in `board/` (UART, clocks, time, logging); the
//! protocol is proto-core's blocking `embedded-io` driver.
#![no_std]
#![no_main]

mod fmt;
mod identity;

mod app;
#[cfg(feature = "async-driver")]
mod async_uart;
mod board;
mod buffers;
#[cfg(feature = "async-driver")]
mod executor;
// Read and written by run-time provisioning (issue 18), which builds on it.
#[allow(dead_code)]
mod nv_page;
mod samples;
mod stack;
mod store;

#[cfg(feature = "log-defmt")]
use defmt_rtt as _;

#[board::entry]
fn main() -> ! {
    let board = board::init();
    info!(
        "statesync firmware on {}: device `{}`",
        board::NAME,
        identity::DEVICE_NAME
    );
    if identity::USES_DEMO_KEY {
        warn!("using the public demo key: set STATESYNC_DEVICE_KEY for anything but a demo");
    }
    let Some(buffers) = buffers::take() else {
        panic!("buffers taken twice");
    };
    app::run(board.uart, buffers)
}
