//! QEMU `microbit`: a BBC micro:bit v1, nRF51822 (Cortex-M0, thumbv6m,
//! 256 KiB flash, 16 KiB RAM).
//!
//! UART0 (the nRF51's own UART, polled) carries the protocol; semihosting
//! carries log lines (on QEMU's standard output) and the exit code. Time
//! comes from SysTick on the 16 MHz core clock. The identity page is the last
//! flash page, written through the NVMC.
//!
//! Sizing for 16 KiB: the serial default of 1024-byte frames and one 2 KiB
//! RAM slot for published files (larger ones are verified as they stream).

mod identity_page;
#[path = "../parts/line_pacer.rs"]
mod line_pacer;
#[path = "../parts/arm_semihosting.rs"]
mod semihosting;
#[path = "../parts/systick.rs"]
mod systick;
mod uart;

use core::fmt;

pub use cortex_m_rt::entry;
pub use identity_page::IdentityPage;
pub use systick::now_us;

/// The board's name, for the boot banner.
pub const NAME: &str = "QEMU microbit (nRF51822)";

/// Largest frame payload the board offers (the serial default).
pub const MAX_FRAME: usize = 1024;
/// How many published files the board keeps in RAM at once.
pub const DOWNLOAD_SLOTS: usize = 1;
/// Largest published file kept in RAM.
pub const DOWNLOAD_SLOT_BYTES: usize = 2 * 1024;

/// The nRF51's core clock (its 16 MHz high-frequency clock).
const SYSTEM_CLOCK_HZ: u32 = 16_000_000;

/// The UART type the protocol driver runs on.
pub type Uart = uart::Nrf51Uart;

/// The board's peripherals, brought up.
pub struct Board {
    /// UART0 at 115200 8N1.
    pub uart: Uart,
    /// Where the device's identity is kept across resets (read and written
    /// by run-time provisioning, `provisioning.rs`).
    pub identity_page: IdentityPage,
}

/// Brings up SysTick and UART0.
pub fn init() -> Board {
    // `init` runs once, at the start of `main`, so the core peripherals are still there.
    let Some(core) = cortex_m::Peripherals::take() else {
        panic!("board::init called twice");
    };
    systick::start(core.SYST, SYSTEM_CLOCK_HZ);
    // SAFETY: this is the only place that creates a driver for UART0.
    let uart = unsafe { uart::Nrf51Uart::new(now_us) };
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

/// Sleeps until the next interrupt (SysTick wakes the core every millisecond).
pub fn wait_for_interrupt() {
    cortex_m::asm::wfi();
}

/// Prints one log line through semihosting (QEMU's standard output).
pub fn log_line(level: &str, args: fmt::Arguments<'_>) {
    semihosting::log_line(now_us(), level, args);
}
