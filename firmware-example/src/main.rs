//! statesync example firmware: a board that uploads its built-in files and
//! downloads what the host publishes for it, over a UART.
//!
//! Board-specific code lives in `board/` (UART, clocks, time, logging); the
//! protocol is proto-core's blocking `embedded-io` driver.
#![no_std]
#![no_main]

mod fmt;
mod identity;

mod board;
mod samples;

use embedded_io::{Read, Write};
use proto_core::auth::ContentHasher;

#[cfg(feature = "board-pico")]
use {defmt_rtt as _, panic_probe as _};

#[board::entry]
fn main() -> ! {
    let mut board = board::init();
    info!(
        "statesync firmware on {}: device `{}`",
        board::NAME,
        identity::DEVICE_NAME
    );
    if identity::USES_DEMO_KEY {
        warn!("using the public demo key: set STATESYNC_DEVICE_KEY for anything but a demo");
    }
    for file in &samples::FILES {
        let hash = ContentHasher::digest(file.content);
        info!(
            "file {} ({} bytes) sha256 {}",
            file.name,
            file.content.len(),
            hash
        );
    }

    // Bring-up: echo the UART and tick.
    let mut next_tick = board::now_us();
    let mut buf = [0u8; 64];
    loop {
        if embedded_io::ReadReady::read_ready(&mut board.uart).unwrap_or(false) {
            match board.uart.read(&mut buf) {
                Ok(n) => {
                    let _ = board.uart.write_all(&buf[..n]);
                }
                Err(_) => warn!("uart read error"),
            }
        }
        let now = board::now_us();
        if now >= next_tick {
            info!("uptime {} ms", now / 1000);
            next_tick += 2_000_000;
        }
    }
}
