//! The example firmware on QEMU's `microbit` (nRF51822: Cortex-M0, thumbv6m,
//! 16 KiB RAM; its own UART, polled), syncing with a real `host-server` over
//! its UART, checked with `host-cli` (the scenario: `tests::qemu::life`).
//!
//! Needs `qemu-system-arm` and the `thumbv6m-none-eabi` target; `.ci/run`
//! installs both. Without QEMU the test fails (it does not skip).

use tests::qemu::{life, Machine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microbit_board_resumes_after_reboot_and_server_crash_and_fetches_published_files() {
    life::resumes_after_reboot_and_server_crash_and_fetches_published_files(Machine::MICROBIT)
        .await;
}
