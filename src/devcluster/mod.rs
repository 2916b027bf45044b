//! A Mesos-compatible master with in-process agents, for `mesos-reconciler dev` and for tests.
//!
//! The master (`master/`) speaks the v1 scheduler HTTP API exactly as Apache Mesos 1.11+ does; the
//! agents (`agent/`) run tasks as real child processes or as scripted "virtual" tasks, and own the
//! status-update retry loop as a real agent does. They talk through the messages in `agent/mod.rs`.

pub mod agent;
pub mod master;

pub use master::{
    AgentSpec, AgentSpecKind, DEFAULT_AGENT_RESOURCES, DevCluster, DevClusterConfig, FaultError,
    FaultReply, Faults, ParseError, StartError, ZkMasters, parse_attributes, parse_resources,
};
