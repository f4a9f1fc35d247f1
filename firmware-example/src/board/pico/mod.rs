//! Raspberry Pi Pico (RP2040, Cortex-M0+, 2 MiB flash, 264 KiB RAM).
//!
//! UART0 on GP0 (TX) and GP1 (RX) carries the protocol; logs go out as defmt
//! over RTT (the debug probe). Time is the RP2040's 1 MHz timer.

mod identity_page;
mod ring;
mod uart;

use core::cell::Cell;

use critical_section::Mutex;
use rp2040_hal::clocks::{init_clocks_and_plls, Clock};
use rp2040_hal::fugit::RateExtU32;
use rp2040_hal::gpio::{FunctionUart, Pins, PullNone, PullUp};
use rp2040_hal::rosc::RingOscillator;
use rp2040_hal::uart::{DataBits, StopBits, UartConfig, UartPeripheral};
use rp2040_hal::{pac, Sio, Timer, Watchdog};

pub use identity_page::IdentityPage;
pub use rp2040_hal::entry;
pub use uart::PicoUart as Uart;

/// The second-stage bootloader for the Pico's W25Q16 flash, at the start of flash.
#[link_section = ".boot2"]
#[used]
pub static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The board's name, for the boot banner.
pub const NAME: &str = "Raspberry Pi Pico";

/// Largest frame payload the board offers (the serial default).
pub const MAX_FRAME: usize = 1024;
/// How many published files the board keeps in RAM at once.
pub const DOWNLOAD_SLOTS: usize = 2;
/// Largest published file kept in RAM (264 KiB of RAM in all).
pub const DOWNLOAD_SLOT_BYTES: usize = 8 * 1024;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;

/// The line rate of UART0.
pub const BAUD: u32 = 115_200;

/// The timer, once [`init`] started it (it is `Copy`: reads only).
static TIMER: Mutex<Cell<Option<Timer>>> = Mutex::new(Cell::new(None));

/// Random bits gathered from the ring oscillator at boot.
static SEED: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

/// The board's peripherals, brought up.
pub struct Board {
    /// UART0 at 115200 8N1, received bytes buffered by its interrupt.
    pub uart: Uart,
    /// Where the device's identity is kept across resets.
    pub identity_page: IdentityPage,
}

/// Brings up clocks (125 MHz from the 12 MHz crystal), the timer and UART0.
pub fn init() -> Board {
    // `init` runs once, at the start of `main`, so the peripherals are still there.
    let Some(mut pac) = pac::Peripherals::take() else {
        panic!("board::init called twice");
    };
    let mut watchdog = Watchdog::new(pac.WATCHDOG);
    let Ok(clocks) = init_clocks_and_plls(
        XOSC_HZ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    ) else {
        panic!("clocks did not start: is the 12 MHz crystal there?");
    };
    let timer = Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);
    critical_section::with(|cs| TIMER.borrow(cs).set(Some(timer)));

    // The ring oscillator keeps running after the switch to the crystal; its
    // jitter is the only entropy this chip has.
    let rosc = RingOscillator::new(pac.ROSC).initialize();
    let seed = (0..64).fold(0u64, |acc, _| (acc << 1) | u64::from(rosc.get_random_bit()));
    critical_section::with(|cs| SEED.borrow(cs).set(seed));

    let sio = Sio::new(pac.SIO);
    let pins = Pins::new(
        pac.IO_BANK0,
        pac.PADS_BANK0,
        sio.gpio_bank0,
        &mut pac.RESETS,
    );
    // RX pulled up: an unconnected line then idles high instead of reading as a break.
    let uart_pins = (
        pins.gpio0.reconfigure::<FunctionUart, PullNone>(),
        pins.gpio1.reconfigure::<FunctionUart, PullUp>(),
    );
    let config = UartConfig::new(BAUD.Hz(), DataBits::Eight, None, StopBits::One);
    let Ok(mut peripheral) = UartPeripheral::new(pac.UART0, uart_pins, &mut pac.RESETS)
        .enable(config, clocks.peripheral_clock.freq())
    else {
        panic!(
            "UART0 cannot run at {} baud from the peripheral clock",
            BAUD
        );
    };
    peripheral.set_fifos(true);
    Board {
        uart: Uart::new(peripheral),
        identity_page: IdentityPage::new(),
    }
}

/// Microseconds since boot.
pub fn now_us() -> u64 {
    critical_section::with(|cs| TIMER.borrow(cs).get())
        .map_or(0, |timer| timer.get_counter().ticks())
}

/// Called when the firmware has nothing to do. Spins: no timer interrupt is
/// set up on this board, so sleeping until the next UART byte could delay the
/// driver's timers (retransmission, keepalive) for as long as the line is quiet.
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
