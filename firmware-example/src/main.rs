//! statesync example firmware: a board that uploads its built-in files and
//! downloads what the host publishes for it, over a UART.
//!
//! Board-specific code lives in `board/` (UART, clocks, time, logging, the
//! identity page); the protocol is proto-core's blocking `embedded-io` driver.
//! At boot the board reads its identity from its identity page, or waits to be
//! provisioned over its UART (`provisioning.rs`), then syncs (`app.rs`).
#![no_std]
#![no_main]

mod fmt;

mod app;
mod board;
mod buffers;
mod identity;
mod nonces;
mod nv_page;
mod provisioning;
mod samples;
mod stack;
mod store;

use nonces::Nonces;
use proto_core::client::{FileId, FileStore};
use store::BoardStore;

#[cfg(feature = "board-pico")]
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
    let store = BoardStore::new(identity.name(), buffers.slots);
    for file in store.samples() {
        if let Ok(meta) = store.meta(FileId(file)) {
            info!(
                "holds {} ({} bytes) sha256 {}",
                meta.name, meta.size, meta.hash
            );
        }
    }
    app::run(
        &identity,
        &mut nonces,
        board.uart,
        store,
        buffers.rx,
        buffers.tx,
    )
}
