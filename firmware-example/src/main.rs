//! statesync example firmware: a board that uploads its built-in files and
//! downloads what the host publishes for it, over a UART.
//!
//! Board-specific code lives in `board/` (UART, clocks, time, logging, the
//! identity page); the protocol is proto-core's `embedded-io` driver, or its
//! async driver (feature `async-driver`) under the minimal executor of
//! `executor.rs` or, on a board with an embassy HAL, embassy-executor
//! (feature `embassy`).
//! At boot the board reads its identity from its identity page, or waits to be
//! provisioned over its UART (`provisioning.rs`), then syncs (`app.rs`).
#![no_std]
#![no_main]

mod fmt;

mod app;
#[cfg(all(feature = "async-driver", not(feature = "embassy")))]
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

/// The blocking driver's boot: it runs on this stack for good.
#[cfg(not(feature = "async-driver"))]
#[board::entry]
fn main() -> ! {
    let (identity, nonces, uart, buffers) = boot();
    app::run(identity, nonces, uart, buffers)
}

/// The async driver's boot under the firmware's own executor.
#[cfg(all(feature = "async-driver", not(feature = "embassy")))]
#[board::entry]
fn main() -> ! {
    let (identity, nonces, uart, buffers) = boot();
    executor::block_on(app::run(identity, nonces, uart, buffers))
}

/// The async driver's boot under embassy-executor: `main` is its one task.
#[cfg(feature = "embassy")]
#[embassy_executor::main]
async fn main(_spawner: embassy_executor::Spawner) {
    let (identity, nonces, uart, buffers) = boot();
    app::run(identity, nonces, uart, buffers).await
}

/// Brings the board up and gets its identity, from its identity page or by
/// being provisioned over its UART.
fn boot() -> (
    &'static identity::Identity,
    Nonces,
    board::Uart,
    buffers::Buffers,
) {
    let mut board = board::init();
    info!("statesync firmware on {}", board::NAME);
    let mut nonces = Nonces::new();
    let identity = provisioning::run(&mut board.uart, &mut board.identity_page, &mut nonces);
    let Some(buffers) = buffers::take() else {
        panic!("buffers taken twice");
    };
    (identity, nonces, board.uart, buffers)
}
