//! The firmware's large buffers, as statics that are zero at reset (`.bss`)
//! and handed out once, in place. Building them as values (as
//! `cortex_m::singleton!` or a local variable would) costs their size again in
//! stack for a moment, and LTO-inlined moves can keep several copies alive.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::app::FRAME_BUFFER;
use crate::store::{RAM_SLOTS, RAM_SLOT_BYTES};

/// The client's receive and send buffers, one frame each.
pub type FrameBuffer = [u8; FRAME_BUFFER];

/// One RAM slot for downloads.
pub type SlotBuffer = [u8; RAM_SLOT_BYTES];

/// Every large buffer of the firmware.
pub struct Buffers {
    /// The client's receive accumulator.
    pub rx: &'static mut FrameBuffer,
    /// The client's send queue.
    pub tx: &'static mut FrameBuffer,
    /// The store's RAM slots.
    pub slots: &'static mut [SlotBuffer; RAM_SLOTS],
}

static mut RX: FrameBuffer = [0; FRAME_BUFFER];
static mut TX: FrameBuffer = [0; FRAME_BUFFER];
static mut SLOTS: [SlotBuffer; RAM_SLOTS] = [[0; RAM_SLOT_BYTES]; RAM_SLOTS];
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The buffers; `None` after the first call.
pub fn take() -> Option<Buffers> {
    // Load and store under a critical section: thumbv6m and rv32imc have no atomic swap.
    let first = critical_section::with(|_| {
        let taken = TAKEN.load(Ordering::Relaxed);
        TAKEN.store(true, Ordering::Relaxed);
        !taken
    });
    // SAFETY: `first` is true exactly once (tested and set with interrupts off
    // on a single core), so these are the only references ever made to the statics.
    first.then(|| unsafe {
        Buffers {
            rx: &mut *core::ptr::addr_of_mut!(RX),
            tx: &mut *core::ptr::addr_of_mut!(TX),
            slots: &mut *core::ptr::addr_of_mut!(SLOTS),
        }
    })
}
