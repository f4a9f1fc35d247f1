//! The example firmware on QEMU's `lm3s6965evb` with proto-core's async driver
//! (`AsyncDriver` over `embedded-io-async`, run by the firmware's minimal
//! executor: feature `async-driver`), through the same life as the blocking
//! driver's test (the scenario: `tests::qemu::life`).
//!
//! Needs `qemu-system-arm` and the `thumbv7m-none-eabi` target; `.ci/run`
//! installs both. Without QEMU the test fails (it does not skip).

use tests::qemu::{life, Machine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_driver_board_resumes_after_reboot_and_server_crash_and_fetches_published_files() {
    life::async_driver_board_resumes_after_reboot_and_server_crash_and_fetches_published_files(
        Machine::LM3S6965EVB,
    )
    .await;
}
