//! Semihosting for the RISC-V board under QEMU: log lines on QEMU's standard
//! output, the exit code, the host's clock for nonces, and the panic handler
//! that prints and stops the emulation.
//!
//! Needs QEMU's `-semihosting-config enable=on,target=native`.

use core::fmt;

use riscv_semihosting::{debug, hprintln, syscall};

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
        riscv::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("PANIC {}", info);
    exit(false)
}

/// A trap the firmware does not expect (an illegal instruction, a bad
/// address): print where, and stop.
#[export_name = "ExceptionHandler"]
fn exception(frame: &riscv_rt::TrapFrame) -> ! {
    let cause = riscv::register::mcause::read().bits();
    let at = riscv::register::mepc::read();
    hprintln!(
        "TRAP cause={:#x} at pc={:#010x} (ra={:#010x})",
        cause,
        at,
        frame.ra
    );
    exit(false)
}
