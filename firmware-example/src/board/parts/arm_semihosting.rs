//! Semihosting for the Cortex-M boards under QEMU: log lines on QEMU's
//! standard output, the exit code, the host's clock for nonces, and the panic
//! and hard-fault handlers that print and stop the emulation.
//!
//! Needs QEMU's `-semihosting-config enable=on,target=native`.

use core::fmt;

use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln, syscall};

/// Seconds since 1970 on the host (semihosting `SYS_TIME`).
pub fn host_seconds() -> u64 {
    // SAFETY: SYS_TIME takes no argument block and returns seconds since 1970.
    unsafe { syscall!(TIME) as u64 }
}

/// Prints one log line, stamped with `now_us`, through semihosting.
pub fn log_line(now_us: u64, level: &str, args: fmt::Arguments<'_>) {
    let millis = now_us / 1_000;
    hprintln!(
        "[{:>5}.{:03}] {} {}",
        millis / 1_000,
        millis % 1_000,
        level,
        args
    );
}

/// Ends the emulation with an exit code: 0 if `success`, 1 otherwise.
pub fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a debugger/QEMU to take the request.
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::interrupt::disable();
    hprintln!("PANIC {}", info);
    exit(false)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("HARD FAULT at pc={:#010x}", frame.pc());
    exit(false)
}
