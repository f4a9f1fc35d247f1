//! The upload-only firmware profile on QEMU's `lm3s6965evb` against a real
//! `host-server` (the scenario: `tests::qemu::life`).
//!
//! Needs `qemu-system-arm` and the `thumbv7m-none-eabi` target; `.ci/run`
//! installs both. Without QEMU the test fails (it does not skip).

use tests::qemu::{life, Machine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_only_board_uploads_its_batch_and_never_subscribes_or_downloads() {
    life::upload_only_board_uploads_its_batch_and_never_subscribes_or_downloads(
        Machine::LM3S6965EVB,
    )
    .await;
}
