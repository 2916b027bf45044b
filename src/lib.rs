//! mesos-reconciler: makes an Apache Mesos cluster match a directory of TOML task specs.
//!
//! See ARCHITECTURE.md for the bird's-eye view and the invariants each module keeps.

pub mod bench;
pub mod cli;
pub mod commands;
pub mod controller;
pub mod devcluster;
pub mod failpoint;
pub mod http;
pub mod mesos;
pub mod model;
pub mod plan;
pub mod sandbox;
pub mod shell;
pub mod spec;
pub mod state_dir;
pub mod status;
pub mod store;
pub mod sync;
pub mod task_ids;
pub mod timefmt;
pub mod watch;
pub mod zk;
