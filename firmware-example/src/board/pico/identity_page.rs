//! The identity page of the Pico: for now a RAM page in `.uninit`, which
//! cortex-m-rt never zeroes, so it survives a reset (the RUN pin, the
//! watchdog, a probe's reset) but not a power cycle: the board then asks to be
//! provisioned again.
//!
//! The RP2040's flash is an external QSPI chip: writing a page means leaving
//! execute-in-place with code running from RAM (the boot ROM's
//! `flash_range_erase`/`flash_range_program`); that write path is not done
//! yet (see firmware-example/README.md, *Provisioning*).

use core::mem::MaybeUninit;

use crate::nv_page::{NvError, NvPage};

/// The page's bytes; `.uninit` is never touched by the start-up code.
#[link_section = ".uninit.identity_page"]
static mut PAGE: MaybeUninit<[u8; 256]> = MaybeUninit::uninit();

/// The RAM page; one exists, made by `board::init`.
pub struct IdentityPage(());

impl IdentityPage {
    /// The page. Only `board::init` makes one, so there is one writer.
    pub(super) fn new() -> IdentityPage {
        IdentityPage(())
    }

    fn base(&self) -> *mut u8 {
        core::ptr::addr_of_mut!(PAGE).cast::<u8>()
    }
}

impl NvPage for IdentityPage {
    const LEN: usize = 256;
    const WRITE_UNIT: usize = 4;

    fn read(&self, into: &mut [u8]) {
        for (offset, byte) in into.iter_mut().take(Self::LEN).enumerate() {
            // SAFETY: `offset` is inside PAGE, which only this type touches;
            // volatile, since a reset changes it behind the compiler's back.
            *byte = unsafe { core::ptr::read_volatile(self.base().add(offset)) };
        }
    }

    fn erase_and_write(&mut self, bytes: &[u8]) -> Result<(), NvError> {
        if bytes.len() > Self::LEN || bytes.len() % Self::WRITE_UNIT != 0 {
            return Err(NvError::BadLength);
        }
        for offset in 0..Self::LEN {
            let byte = bytes.get(offset).copied().unwrap_or(0xFF);
            // SAFETY: as in `read`; `&mut self` makes this the only writer.
            unsafe { core::ptr::write_volatile(self.base().add(offset), byte) };
        }
        for (offset, &byte) in bytes.iter().enumerate() {
            // SAFETY: as in `read`.
            if unsafe { core::ptr::read_volatile(self.base().add(offset)) } != byte {
                return Err(NvError::VerifyFailed);
            }
        }
        Ok(())
    }
}
