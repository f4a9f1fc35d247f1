//! The example firmware on QEMU's `lm3s6965evb` (Cortex-M3, 64 KiB RAM),
//! syncing with a real `host-server` over its UART, checked with `host-cli`
//! (the scenario: `tests::qemu::life`; the fresh board is provisioned over
//! its UART first, and reset in the middle of its large upload).
//!
//! Needs `qemu-system-arm` and the `thumbv7m-none-eabi` target; `.ci/run`
//! installs both. Without QEMU the test fails (it does not skip).

use tests::qemu::{life, Machine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_board_resumes_after_reboot_and_server_crash_and_fetches_published_files() {
    life::resumes_after_reboot_and_server_crash_and_fetches_published_files(Machine::LM3S6965EVB)
        .await;
}
