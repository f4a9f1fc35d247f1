//! Time since boot from SysTick: an interrupt every millisecond counts whole
//! milliseconds, the down-counter gives the microseconds in between.

use core::cell::Cell;

use cortex_m::interrupt::{self, Mutex};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::exception;

/// Milliseconds counted by the SysTick interrupt.
static MILLIS: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

/// Core clock ticks per microsecond, set once by [`start`].
static TICKS_PER_US: Mutex<Cell<u32>> = Mutex::new(Cell::new(1));

/// Starts SysTick from the core clock, one interrupt per millisecond.
pub fn start(mut syst: SYST, core_clock_hz: u32) {
    interrupt::free(|cs| TICKS_PER_US.borrow(cs).set(core_clock_hz / 1_000_000));
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(core_clock_hz / 1_000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Microseconds since [`start`].
pub fn now_us() -> u64 {
    interrupt::free(|cs| {
        let ticks_per_us = u64::from(TICKS_PER_US.borrow(cs).get());
        let reload = u64::from(SYST::get_reload());
        let mut millis = MILLIS.borrow(cs).get();
        let mut current = u64::from(SYST::get_current());
        // Interrupts are off: a wrap since the last interrupt shows as a
        // pending SysTick. Count it, and re-read the counter after the wrap.
        if SCB::is_pendst_pending() {
            millis += 1;
            current = u64::from(SYST::get_current());
        }
        millis * 1_000 + (reload - current) / ticks_per_us
    })
}

#[exception]
fn SysTick() {
    interrupt::free(|cs| {
        let millis = MILLIS.borrow(cs);
        millis.set(millis.get() + 1);
    });
}
