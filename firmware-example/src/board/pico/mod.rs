//! Raspberry Pi Pico (RP2040, Cortex-M0+, 2 MiB flash, 264 KiB RAM), on
//! embassy-rp.
//!
//! The firmware's async driver runs under embassy-executor here (feature
//! `embassy`, `main.rs`). UART0 on GP0 (TX) and GP1 (RX) carries the protocol
//! through embassy-rp's buffered UART, whose interrupt wakes the driver's
//! task; time is embassy-time over the RP2040's 1 MHz timer (embassy-rp's
//! time driver); the identity page is the last sector of the QSPI flash. Logs
//! go out as defmt over RTT (the debug probe).

mod identity_page;
mod uart;

use core::cell::Cell;

use critical_section::Mutex;
use embassy_rp::clocks::RoscRng;

pub use identity_page::IdentityPage;
pub use uart::PicoUart as Uart;

/// The board's name, for the boot banner.
pub const NAME: &str = "Raspberry Pi Pico";

/// Largest frame payload the board offers (the serial default).
pub const MAX_FRAME: usize = 1024;
/// How many published files the board keeps in RAM at once.
pub const DOWNLOAD_SLOTS: usize = 2;
/// Largest published file kept in RAM (264 KiB of RAM in all).
pub const DOWNLOAD_SLOT_BYTES: usize = 8 * 1024;

/// The line rate of UART0.
pub const BAUD: u32 = 115_200;

/// Random bits gathered from the ring oscillator at boot.
static SEED: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

/// The board's peripherals, brought up.
pub struct Board {
    /// UART0 at 115200 8N1, received bytes buffered by its interrupt.
    pub uart: Uart,
    /// Where the device's identity is kept across resets and power cycles.
    pub identity_page: IdentityPage,
}

/// Brings up clocks (embassy-rp's default: 125 MHz from the 12 MHz crystal),
/// the time driver, UART0 and the flash.
pub fn init() -> Board {
    let peripherals = embassy_rp::init(embassy_rp::config::Config::default());
    // The ring oscillator keeps running after the switch to the crystal; its
    // jitter is the only entropy this chip has.
    let seed = (0..8).fold(0u64, |acc, _| (acc << 8) | u64::from(RoscRng::next_u8()));
    critical_section::with(|cs| SEED.borrow(cs).set(seed));
    Board {
        uart: Uart::new(peripherals.UART0, peripherals.PIN_0, peripherals.PIN_1),
        identity_page: IdentityPage::new(peripherals.FLASH),
    }
}

/// Microseconds since boot.
pub fn now_us() -> u64 {
    embassy_time::Instant::now().as_micros()
}

/// Called by the blocking code (provisioning) when it has nothing to do.
/// Spins: the embassy time driver keeps its alarm to itself, so sleeping here
/// could outlast the deadline the caller waits for. The async driver never
/// calls it: embassy-executor sleeps between wake-ups.
pub fn wait_for_interrupt() {
    core::hint::spin_loop();
}

/// Logs where the firmware panicked, then stops on `udf`: probe-rs sees the
/// fault and prints a backtrace.
///
/// The panic message is not printed: formatting it would link `core::fmt`
/// (about 3 KiB) into an image that otherwise logs through defmt only.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::interrupt::disable();
    match info.location() {
        Some(at) => defmt::error!("panicked at {=str}:{=u32}", at.file(), at.line()),
        None => defmt::error!("panicked"),
    }
    cortex_m::asm::udf()
}

/// Bits for nonces: the ring oscillator's random bits from boot, mixed with the clock.
pub fn entropy() -> u64 {
    critical_section::with(|cs| SEED.borrow(cs).get()) ^ now_us().rotate_left(29)
}
