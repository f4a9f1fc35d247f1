//! The statesync host server: keeps every file's record and upload state,
//! stores blobs safely, and tells every device what changed.
//!
//! Layout: [`server`] starts and stops; [`listener`] and [`serial`] accept
//! links; [`session`] runs the protocol on a link; [`service`] is the state
//! sessions share ([`store`], [`blobs`], [`hub`]); [`cluster`] keeps
//! several servers on one PostgreSQL database in step; [`http`] is the web
//! dashboard on the same state; [`transfer`] holds the
//! per-upload writer and per-download window; [`reconcile`] is the rule for
//! overlapping announcements; [`names`] checks names from peers; [`repair`] deletes and re-requests files for
//! sessions and the dashboard; [`cleanup`] expires stale uploads, unused blobs
//! and old history; [`backup`] copies a data directory and restores it; [`metrics`] counts and [`probes`] serves them with the
//! health probes; [`systemd`] reports readiness; [`cmd`] is the command line.

pub mod admission;
pub mod backup;
pub mod blobs;
pub mod cleanup;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod http;
pub mod hub;
pub mod listener;
pub mod metrics;
pub mod names;
pub mod probes;
pub mod provision;
pub mod reconcile;
pub mod repair;
pub mod serial;
pub mod server;
pub mod service;
pub mod session;
pub mod store;
pub mod systemd;
pub mod transfer;
