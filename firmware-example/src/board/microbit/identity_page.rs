//! The identity page of the micro:bit: the last 1 KiB page of the nRF51's
//! flash, erased and written through its NVMC (non-volatile memory
//! controller), which QEMU's `microbit` emulates. `memory.x` keeps the page
//! out of `FLASH`, so no section is ever placed there.
//!
//! Under QEMU the page survives a system reset; a new QEMU process starts
//! from the loaded image, where the page is erased (or zero): "no identity".

use core::ptr;

use crate::nv_page::{NvError, NvPage};

extern "C" {
    /// Start of the reserved flash page, from `memory.x`.
    static __identity_page_start: u32;
}

/// The NVMC's registers.
const NVMC_BASE: usize = 0x4001_E000;
const NVMC_READY: usize = 0x400;
const NVMC_CONFIG: usize = 0x504;
const NVMC_ERASEPAGE: usize = 0x508;

/// `CONFIG` values: read only, write enabled, erase enabled.
const CONFIG_READ: u32 = 0;
const CONFIG_WRITE: u32 = 1;
const CONFIG_ERASE: u32 = 2;

/// The reserved flash page; one exists, made by `board::init`.
pub struct IdentityPage(());

impl IdentityPage {
    /// The page. Only `board::init` makes one, so there is one writer.
    pub(super) fn new() -> IdentityPage {
        IdentityPage(())
    }

    fn base(&self) -> usize {
        ptr::addr_of!(__identity_page_start) as usize
    }

    fn set_config(&self, config: u32) {
        // SAFETY: NVMC registers of the nRF51; this page is the only user of
        // the NVMC. Volatile: device registers.
        unsafe {
            ptr::write_volatile((NVMC_BASE + NVMC_CONFIG) as *mut u32, config);
        }
        self.wait_ready();
    }

    fn wait_ready(&self) {
        // SAFETY: as in `set_config`.
        while unsafe { ptr::read_volatile((NVMC_BASE + NVMC_READY) as *const u32) } & 1 == 0 {
            core::hint::spin_loop();
        }
    }
}

impl NvPage for IdentityPage {
    /// One nRF51 flash page.
    const LEN: usize = 1024;
    const WRITE_UNIT: usize = 4;

    fn read(&self, into: &mut [u8]) {
        let count = into.len().min(Self::LEN);
        for (offset, byte) in into.iter_mut().take(count).enumerate() {
            // SAFETY: `offset` is inside the reserved page, flash that is
            // always readable; volatile, since the NVMC changes it.
            *byte = unsafe { ptr::read_volatile((self.base() + offset) as *const u8) };
        }
    }

    fn erase_and_write(&mut self, bytes: &[u8]) -> Result<(), NvError> {
        if bytes.len() > Self::LEN || bytes.len() % Self::WRITE_UNIT != 0 {
            return Err(NvError::BadLength);
        }
        self.set_config(CONFIG_ERASE);
        // SAFETY: as in `set_config`; the page address is the reserved page.
        unsafe {
            ptr::write_volatile((NVMC_BASE + NVMC_ERASEPAGE) as *mut u32, self.base() as u32)
        };
        self.wait_ready();
        self.set_config(CONFIG_WRITE);
        for (index, word) in bytes.chunks_exact(4).enumerate() {
            let value = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            // SAFETY: a 4-byte aligned word inside the reserved page, written
            // while the NVMC has writes enabled.
            unsafe { ptr::write_volatile((self.base() + 4 * index) as *mut u32, value) };
            self.wait_ready();
        }
        self.set_config(CONFIG_READ);
        let mut back = [0u8; 4];
        for (index, word) in bytes.chunks_exact(4).enumerate() {
            for (offset, byte) in back.iter_mut().enumerate() {
                // SAFETY: as in `read`.
                *byte =
                    unsafe { ptr::read_volatile((self.base() + 4 * index + offset) as *const u8) };
            }
            if back != word {
                return Err(NvError::VerifyFailed);
            }
        }
        Ok(())
    }
}
