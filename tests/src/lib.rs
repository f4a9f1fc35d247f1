//! Link and fleet simulators shared by the end-to-end tests and benches.

pub mod bit_flipper;
pub mod browser;
pub mod cut_proxy;
pub mod dashboard;
pub mod device;
pub mod fleet_sim;
pub mod frame_filter;
pub mod invariants;
pub mod link;
pub mod process;
pub mod pty;
pub mod qemu;
pub mod rig;
pub mod scale_fleet;
