//! Generated wire types (prost) for packages `mesos.v1` and `mesos.v1.scheduler`, and the
//! compiled descriptor set that the JSON mapping walks.

#[allow(clippy::all, clippy::pedantic, reason = "generated code")]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/mesos.v1.rs"));

    pub mod scheduler {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.scheduler.rs"));
    }
}

/// The serialized `FileDescriptorSet` of both `.proto` files.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mesos_descriptor.bin"));

/// Mesos' own `isTerminalState` over a wire `TaskState` number (API notes §10): FINISHED, FAILED,
/// KILLED, ERROR, LOST, DROPPED, GONE and GONE_BY_OPERATOR.
pub fn is_terminal_state(state: i32) -> bool {
    use v1::TaskState as S;
    matches!(
        S::try_from(state),
        Ok(S::TaskFinished
            | S::TaskFailed
            | S::TaskKilled
            | S::TaskError
            | S::TaskLost
            | S::TaskDropped
            | S::TaskGone
            | S::TaskGoneByOperator)
    )
}
