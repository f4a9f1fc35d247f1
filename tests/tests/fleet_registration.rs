//! Registering a fleet: `host-server device add` run by many provisioning
//! scripts at the same moment, on one data directory, adds every device.

use tests::process::{Profile, ServerProcess};

#[test]
fn devices_added_at_the_same_moment_are_all_registered() {
    let server = ServerProcess::start(Profile::Debug, &[]);
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let server = &server;
            scope.spawn(move || {
                for n in 0..6 {
                    // Panics with the command's error output when an add fails.
                    server.add_device(&format!("board-{worker}-{n}"));
                }
            });
        }
    });
}
