//! QEMU `sifive_e`: a SiFive FE310 (HiFive1; RISC-V rv32imac, 16 KiB data
//! RAM, code in memory-mapped SPI flash).
//!
//! UART0 (polled) carries the protocol; semihosting carries log lines (on
//! QEMU's standard output) and the exit code. Time comes from the CLINT's
//! `mtime`. The runtime is riscv-rt; interrupts stay off (the timer only
//! wakes `wfi`). The last 256 bytes of RAM are the identity page.
//!
//! Sizing for 16 KiB: the serial default of 1024-byte frames and one 2 KiB
//! RAM slot for published files (larger ones are verified as they stream).

mod clint;
#[path = "../parts/line_pacer.rs"]
mod line_pacer;
#[path = "../parts/ram_identity_page.rs"]
mod ram_identity_page;
mod semihosting;
mod uart;

use core::fmt;

pub use clint::now_us;
pub use ram_identity_page::IdentityPage;
pub use riscv_rt::entry;

/// The board's name, for the boot banner.
pub const NAME: &str = "QEMU sifive_e (FE310, RISC-V)";

/// Largest frame payload the board offers (the serial default).
pub const MAX_FRAME: usize = 1024;
/// How many published files the board keeps in RAM at once.
pub const DOWNLOAD_SLOTS: usize = 1;
/// Largest published file kept in RAM.
pub const DOWNLOAD_SLOT_BYTES: usize = 2 * 1024;

/// The FE310's bus clock after reset, which feeds the UART divisor.
const BUS_CLOCK_HZ: u32 = 16_000_000;

/// The line rate of UART0.
pub const BAUD: u32 = 115_200;

/// The UART type the protocol driver runs on.
pub type Uart = uart::SifiveUart;

/// The board's peripherals, brought up.
pub struct Board {
    /// UART0 at 115200 8N1.
    pub uart: Uart,
    /// Where the device's identity is kept across resets (read and written
    /// by run-time provisioning, `provisioning.rs`).
    pub identity_page: IdentityPage,
}

/// Paints the stack for the high-water mark, then brings up UART0.
pub fn init() -> Board {
    crate::stack::paint();
    // SAFETY: this is the only place that creates a driver for UART0.
    let uart = unsafe { uart::SifiveUart::new(BUS_CLOCK_HZ, BAUD, now_us) };
    Board {
        uart,
        identity_page: IdentityPage::new(),
    }
}

/// Bits for nonces: the host's wall clock (semihosting `SYS_TIME`) mixed with
/// the microsecond clock, which differ on every boot and every call. Unique,
/// not secret, which is what nonces need here.
pub fn entropy() -> u64 {
    (semihosting::host_seconds() << 32) ^ now_us().rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15
}

/// Sleeps until the next millisecond tick of the CLINT timer.
pub fn wait_for_interrupt() {
    clint::sleep_a_millisecond();
}

/// Prints one log line through semihosting (QEMU's standard output).
pub fn log_line(level: &str, args: fmt::Arguments<'_>) {
    semihosting::log_line(now_us(), level, args);
}
