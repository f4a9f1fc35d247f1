//! The identity page of QEMU's `lm3s6965evb`: a reserved RAM page.
//!
//! QEMU models the LM3S6965's flash as ROM and does not emulate its flash
//! controller (FMA/FMD/FMC at `0x400F_D000`), so a program cannot write
//! flash there. `memory/qemu.x` therefore keeps the last 256 bytes of RAM out
//! of the `RAM` region: no section is ever placed there, so neither QEMU's
//! loader (which re-copies the image's sections at every system reset) nor
//! cortex-m-rt's start-up code (which zeroes `.bss`) touches it, and what
//! the firmware wrote survives a system reset (`SYSRESETREQ`, QEMU's
//! `system_reset`). It does not survive QEMU exiting: a new QEMU starts with
//! zeroed RAM, which reads as "no identity".
//!
//! On a real LM3S6965 the page would be the last 1 KiB flash page, erased and
//! written word by word through FMA/FMD/FMC; it is not implemented here
//! because this board only exists as a QEMU model in this project.

use crate::nv_page::{NvError, NvPage};

extern "C" {
    /// Start of the reserved page ([`IdentityPage::LEN`] bytes), from `memory/qemu.x`.
    static __identity_page_start: u8;
}

/// The reserved RAM page; one exists, made by `board::init`.
pub struct IdentityPage(());

impl IdentityPage {
    /// The page. Only `board::init` makes one, so there is one writer.
    pub(super) fn new() -> IdentityPage {
        IdentityPage(())
    }

    fn base(&self) -> *mut u8 {
        core::ptr::addr_of!(__identity_page_start) as *mut u8
    }
}

impl NvPage for IdentityPage {
    /// The size of `IDENTITY_PAGE` in `memory/qemu.x`.
    const LEN: usize = 256;
    const WRITE_UNIT: usize = 4;

    fn read(&self, into: &mut [u8]) {
        let count = into.len().min(Self::LEN);
        for (offset, byte) in into.iter_mut().take(count).enumerate() {
            // SAFETY: `offset` is inside the reserved page, plain RAM that
            // nothing else references; volatile, since a reset changes it
            // behind the compiler's back.
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
