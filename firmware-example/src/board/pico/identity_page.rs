//! The identity page of the Pico: the last 4 KiB sector of its 2 MiB QSPI
//! flash, which `memory.x` leaves out of the image, so it survives resets,
//! power cycles and re-flashing the same image.
//!
//! The RP2040 executes from that flash (XIP), so it cannot run code from it
//! while the chip is erased or programmed: embassy-rp's flash driver calls the
//! boot ROM's `flash_range_erase`/`flash_range_program` from a function in RAM
//! with interrupts off, then flushes the XIP cache. Reads go through the XIP
//! window like any flash read. An erase stalls the core (and UART0's
//! interrupt) for tens of milliseconds: bytes arriving meanwhile overflow the
//! UART's FIFO and are lost, which the provisioning exchange tolerates (the
//! host waits for the board's answer, sent after the write).

use embassy_rp::flash::{Blocking, Flash, ERASE_SIZE};
use embassy_rp::peripherals::FLASH;
use embassy_rp::Peri;

use crate::nv_page::{NvError, NvPage};

/// The Pico's flash chip (W25Q16): 2 MiB.
const FLASH_SIZE: usize = 2 * 1024 * 1024;
/// The identity sector: the flash's last erase sector, as an offset into it.
const SECTOR_OFFSET: u32 = (FLASH_SIZE - ERASE_SIZE) as u32;
/// Where the flash appears in the address space (XIP, cached).
const XIP_BASE: usize = 0x1000_0000;

/// The flash sector; one exists, made by `board::init`.
pub struct IdentityPage {
    flash: Flash<'static, FLASH, Blocking, FLASH_SIZE>,
}

impl IdentityPage {
    /// The page. Only `board::init` makes one (it owns the `FLASH` peripheral).
    pub(super) fn new(flash: Peri<'static, FLASH>) -> IdentityPage {
        IdentityPage {
            flash: Flash::new_blocking(flash),
        }
    }
}

impl NvPage for IdentityPage {
    const LEN: usize = 256;
    const WRITE_UNIT: usize = 4;

    fn read(&self, into: &mut [u8]) {
        let base = XIP_BASE + SECTOR_OFFSET as usize;
        for (offset, byte) in into.iter_mut().take(Self::LEN).enumerate() {
            // SAFETY: inside the identity sector, which the image leaves out
            // (memory.x) and only this type writes; volatile, since a write
            // changes it behind the compiler's back.
            *byte = unsafe { core::ptr::read_volatile((base + offset) as *const u8) };
        }
    }

    fn erase_and_write(&mut self, bytes: &[u8]) -> Result<(), NvError> {
        if bytes.len() > Self::LEN || bytes.len() % Self::WRITE_UNIT != 0 {
            return Err(NvError::BadLength);
        }
        // embassy-rp refuses only a range outside the flash or unaligned, or
        // a call from core 1: bugs of this firmware, like a bad length.
        self.flash
            .blocking_erase(SECTOR_OFFSET, SECTOR_OFFSET + ERASE_SIZE as u32)
            .map_err(|_| NvError::BadLength)?;
        self.flash
            .blocking_write(SECTOR_OFFSET, bytes)
            .map_err(|_| NvError::BadLength)?;
        let mut written = [0u8; Self::LEN];
        self.read(&mut written);
        if written.get(..bytes.len()) != Some(bytes) {
            return Err(NvError::VerifyFailed);
        }
        Ok(())
    }
}
