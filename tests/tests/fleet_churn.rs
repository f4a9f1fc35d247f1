//! A fleet of 200 simulated devices against the real server on 2 cores, each
//! behind its own simulated line, hanging up at random: at the end every
//! promise still holds (see `tests::fleet_sim` and `tests::invariants`).

use std::time::{Duration, Instant};

use tests::fleet_sim::{self, FleetPlan};
use tests::rig::Rig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_devices_hanging_up_at_random_keep_every_promise() {
    let rig = Rig::start(&[], &[]);
    let plan = FleetPlan {
        devices: 200,
        never_finish: 4,
        wants: 2,
        file_size: (2 * 1024, 12 * 1024),
        baud: (500_000, 2_000_000),
        latency: (Duration::from_millis(1), Duration::from_millis(5)),
        hang_up_chance: 0.3,
        seed: 2026,
        deadline: Duration::from_secs(50),
    };
    let started = Instant::now();
    let outcome = fleet_sim::run(&rig, &plan).await;
    let ran = started.elapsed();
    let mut observer = rig.observer("fleet-observer").await;
    let violations = outcome.violations(&rig, &mut observer).await;
    eprintln!(
        "fleet: {} devices in {:.1} s, {} hang-ups, {} uploads resumed above 0",
        plan.devices,
        ran.as_secs_f64(),
        outcome.hang_ups(),
        outcome.resumed_uploads()
    );
    assert!(
        violations.is_empty(),
        "{} violations: {violations:#?}",
        violations.len()
    );
    assert!(outcome.hang_ups() >= 20, "the devices did hang up");
    assert!(
        outcome.resumed_uploads() > 0,
        "some uploads resumed after a hang-up"
    );
}
