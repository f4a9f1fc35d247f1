//! The example firmware on QEMU's `sifive_e` (SiFive FE310: RISC-V rv32imac,
//! 16 KiB RAM; riscv-rt, its UART0 polled), syncing with a real `host-server`
//! over its UART, checked with `host-cli` (the scenario: `tests::qemu::life`).
//!
//! Needs `qemu-system-riscv32` (Debian: `qemu-system-misc`) and the
//! `riscv32imac-unknown-none-elf` target; `.ci/run` installs both. Without
//! QEMU the test fails (it does not skip).

use tests::qemu::{life, Machine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sifive_e_board_resumes_after_reboot_and_server_crash_and_fetches_published_files() {
    life::resumes_after_reboot_and_server_crash_and_fetches_published_files(Machine::SIFIVE_E)
        .await;
}
