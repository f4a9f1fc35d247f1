//! The example firmware on QEMU's `lm3s811evb` (Cortex-M3 with 8 KiB RAM and
//! 64 KiB flash: 512-byte frames, one 512-byte RAM slot), syncing with a real
//! `host-server` over its UART, checked with `host-cli` (the scenario:
//! `tests::qemu::life`).
//!
//! Needs `qemu-system-arm` and the `thumbv7m-none-eabi` target; `.ci/run`
//! installs both. Without QEMU the test fails (it does not skip).

use tests::qemu::{life, Machine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lm3s811_board_resumes_after_reboot_and_server_crash_and_fetches_published_files() {
    life::resumes_after_reboot_and_server_crash_and_fetches_published_files(Machine::LM3S811EVB)
        .await;
}
