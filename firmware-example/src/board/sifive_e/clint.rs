//! Time from the core-local interruptor (CLINT): `mtime` counts at a fixed
//! rate since reset, and `mtimecmp` wakes a `wfi` when `mtime` reaches it.
//!
//! QEMU's `sifive_e` runs `mtime` at 10 MHz (its default ACLINT timebase; a
//! real FE310 counts its 32.768 kHz real-time clock instead).

use core::ptr;

/// `mtimecmp` of hart 0 (64 bits).
const MTIMECMP: usize = 0x0200_4000;
/// `mtime` (64 bits).
const MTIME: usize = 0x0200_BFF8;
/// `mtime` ticks per microsecond under QEMU.
const TICKS_PER_US: u64 = 10;

fn read_word(address: usize) -> u32 {
    // SAFETY: `address` is one of the CLINT's registers above, always
    // readable; volatile, since the hardware changes them.
    unsafe { ptr::read_volatile(address as *const u32) }
}

fn write_word(address: usize, value: u32) {
    // SAFETY: as in `read_word`; only `mtimecmp` is written, by this module.
    unsafe { ptr::write_volatile(address as *mut u32, value) }
}

fn mtime() -> u64 {
    // The high word may tick between the two reads: read it again until it holds.
    loop {
        let high = read_word(MTIME + 4);
        let low = read_word(MTIME);
        if read_word(MTIME + 4) == high {
            return (u64::from(high) << 32) | u64::from(low);
        }
    }
}

/// Microseconds since reset.
pub fn now_us() -> u64 {
    mtime() / TICKS_PER_US
}

/// Sleeps until the next millisecond tick. Interrupts stay globally off
/// (`mstatus.MIE` is clear): a pending timer with `mie.MTIE` set ends `wfi`
/// without taking a trap.
pub fn sleep_a_millisecond() {
    let wake_at = mtime() + 1_000 * TICKS_PER_US;
    // High word to its maximum first, so no moment has an early compare value.
    write_word(MTIMECMP + 4, u32::MAX);
    write_word(MTIMECMP, wake_at as u32);
    write_word(MTIMECMP + 4, (wake_at >> 32) as u32);
    // SAFETY: setting MTIE only lets the pending timer wake `wfi`; with
    // mstatus.MIE clear no trap is taken.
    unsafe { riscv::register::mie::set_mtimer() };
    riscv::asm::wfi();
}
