//! How deep the stack has been: the whole free stack region is painted with a
//! known word early (by cortex-m-rt at reset on the Cortex-M boards, feature
//! `paint-stack`; by [`paint`] at the start of `board::init` on RISC-V), so
//! the lowest word that lost its paint marks the deepest the stack ever went.
//! Reported in the log for the size table.

#[cfg(target_arch = "arm")]
use cortex_m_rt::STACK_PAINT_VALUE;

/// The paint, as cortex-m-rt uses it.
#[cfg(not(target_arch = "arm"))]
const STACK_PAINT_VALUE: u32 = 0xCCCC_CCCC;

#[cfg(target_arch = "arm")]
extern "C" {
    /// Lowest address of the stack region (just above `.bss`), from cortex-m-rt's `link.x`.
    static _stack_end: u32;
    /// Highest address of the stack region (the end of RAM), from cortex-m-rt's `link.x`.
    static _stack_start: u32;
}

#[cfg(target_arch = "riscv32")]
extern "C" {
    /// Lowest address of the stack region (just above `.bss` and the empty heap), from riscv-rt's `link.x`.
    #[link_name = "__estack"]
    static _stack_end: u32;
    /// Highest address of the stack region (the end of RAM), from riscv-rt's `link.x`.
    static _stack_start: u32;
}

/// Paints the stack region below the current frame (leaving 64 bytes of
/// room), for runtimes that do not paint it at reset.
#[cfg(target_arch = "riscv32")]
pub fn paint() {
    let here = 0u32;
    let top = core::ptr::addr_of!(here) as usize - 64;
    let mut address = core::ptr::addr_of!(_stack_end) as usize;
    while address < top {
        // SAFETY: `_stack_end..top` is the free part of the stack region,
        // below every live frame: plain, 4-byte aligned RAM nobody uses yet.
        unsafe { core::ptr::write_volatile(address as *mut u32, STACK_PAINT_VALUE) };
        address += 4;
    }
}

/// Bytes of stack used so far at most.
pub fn high_water_bytes() -> usize {
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut address = bottom;
    while address < top {
        // SAFETY: `bottom..top` is the stack region, plain RAM that is always
        // readable and 4-byte aligned (asserted by link.x). Volatile, because
        // the words below the stack pointer change behind the compiler's back.
        let word = unsafe { core::ptr::read_volatile(address as *const u32) };
        if word != STACK_PAINT_VALUE {
            break;
        }
        address += 4;
    }
    top - address
}
