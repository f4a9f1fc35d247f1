//! How deep the stack has been: cortex-m-rt paints the whole stack region at
//! reset (feature `paint-stack`), so the lowest word that lost its paint marks
//! the deepest the stack ever went. Reported in the log for the size table.

use cortex_m_rt::STACK_PAINT_VALUE;

extern "C" {
    /// Lowest address of the stack region (just above `.bss`), from cortex-m-rt's `link.x`.
    static _stack_end: u32;
    /// Highest address of the stack region (the end of RAM), from cortex-m-rt's `link.x`.
    static _stack_start: u32;
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
