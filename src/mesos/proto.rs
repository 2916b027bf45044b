//! Generated wire types (prost) for packages `mesos.v1`, `mesos.v1.scheduler`, and
//! `mesos.v1.master` and `mesos.v1.agent` (the operator APIs), and the
//! compiled descriptor set that the JSON mapping walks.

#[allow(clippy::all, clippy::pedantic, reason = "generated code")]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/mesos.v1.rs"));

    pub mod scheduler {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.scheduler.rs"));
    }

    pub mod master {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.master.rs"));
    }

    pub mod agent {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.agent.rs"));
    }
}

impl v1::Resource {
    /// An unreserved SCALAR resource (`cpus`, `mem`, `disk`, `gpus`) with nothing else set.
    pub fn scalar(name: &str, value: f64) -> Self {
        v1::Resource {
            name: name.to_owned(),
            r#type: v1::value::Type::Scalar as i32,
            scalar: Some(v1::value::Scalar { value }),
            ..Default::default()
        }
    }
}

impl v1::Labels {
    /// Labels from `(key, value)` pairs, in their order (Mesos keeps labels as a list).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        v1::Labels {
            labels: pairs
                .into_iter()
                .map(|(key, value)| v1::Label {
                    key: key.into(),
                    value: Some(value.into()),
                })
                .collect(),
        }
    }
}

/// The serialized `FileDescriptorSet` of the `.proto` files.
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
