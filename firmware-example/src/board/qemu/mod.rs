//! QEMU `lm3s6965evb`: a Stellaris LM3S6965 (Cortex-M3, 256 KiB flash, 64 KiB RAM).
//!
//! UART0 (a PL011) carries the protocol; semihosting carries log lines (on
//! QEMU's standard output) and the exit code. Time comes from SysTick.

#[path = "../parts/pl011.rs"]
mod pl011;
#[path = "../parts/ram_identity_page.rs"]
mod ram_identity_page;
#[path = "../parts/arm_semihosting.rs"]
mod semihosting;
#[path = "../parts/systick.rs"]
mod systick;

use core::fmt;

pub use cortex_m_rt::entry;
pub use ram_identity_page::IdentityPage;
pub use systick::now_us;

/// The board's name, for the boot banner.
pub const NAME: &str = "QEMU lm3s6965evb";

/// Largest frame payload the board offers (the serial default).
pub const MAX_FRAME: usize = 1024;
/// How many published files the board keeps in RAM at once.
pub const DOWNLOAD_SLOTS: usize = 2;
/// Largest published file kept in RAM (64 KiB of RAM in all).
pub const DOWNLOAD_SLOT_BYTES: usize = 8 * 1024;

/// UART0 of the LM3S6965.
const UART0_BASE: usize = 0x4000_C000;

/// The system clock QEMU gives the LM3S6965 after reset: its 200 MHz PLL
/// divided by the reset value of RCC.SYSDIV (16), i.e. 12.5 MHz.
const SYSTEM_CLOCK_HZ: u32 = 12_500_000;

/// The line rate the UART is set to (and that QEMU's UART is paced to).
pub const BAUD: u32 = 115_200;

/// The UART type the protocol driver runs on.
pub type Uart = pl011::Pl011;

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
    // SAFETY: 0x4000_C000 is UART0, a PL011, on this chip, and this is the
    // only place that creates a driver for it.
    let uart = unsafe { pl011::Pl011::new(UART0_BASE, SYSTEM_CLOCK_HZ, BAUD, now_us) };
    Board {
        uart,
        identity_page: IdentityPage::new(),
    }
}

/// Bits for nonces. QEMU has no random generator: mix the host's wall clock
/// (semihosting `SYS_TIME`) with the microsecond clock, which differ on every
/// boot and every call. Unique, not secret, which is what nonces need here.
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
