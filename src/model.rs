//! The crate's own vocabulary for what it observes on Mesos: task ids, task states and the ledger's
//! records. Wire types are converted into these at the `mesos` border, so the store, the plan and the
//! controller never see a prost type.

use serde::{Deserialize, Serialize};

/// The state of a task, as Mesos reports it (`mesos.v1.TaskState`), in the crate's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Recorded in the ledger, ACCEPT sent or about to be; Mesos has not said anything yet.
    Staging,
    Starting,
    Running,
    Killing,
    Finished,
    Failed,
    Killed,
    Error,
    Lost,
    Dropped,
    Unreachable,
    Gone,
    GoneByOperator,
    Unknown,
}

impl TaskState {
    /// Terminal as Mesos' own `isTerminalState` defines it. LOST and GONE_BY_OPERATOR are terminal
    /// yet a task can come back from them when its agent re-registers; the ledger tolerates that.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished
                | TaskState::Failed
                | TaskState::Killed
                | TaskState::Error
                | TaskState::Lost
                | TaskState::Dropped
                | TaskState::Gone
                | TaskState::GoneByOperator
        )
    }

    /// Every state, in the order of Mesos' state machine.
    pub const ALL: [TaskState; 14] = [
        TaskState::Staging,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Killing,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Killed,
        TaskState::Error,
        TaskState::Lost,
        TaskState::Dropped,
        TaskState::Unreachable,
        TaskState::Gone,
        TaskState::GoneByOperator,
        TaskState::Unknown,
    ];

    /// The state Mesos names `name` (`TASK_RUNNING`).
    pub fn from_mesos_name(name: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|s| s.mesos_name() == name)
    }

    /// The name Mesos uses (`TASK_RUNNING`), for logs and the status page.
    pub const fn mesos_name(self) -> &'static str {
        match self {
            TaskState::Staging => "TASK_STAGING",
            TaskState::Starting => "TASK_STARTING",
            TaskState::Running => "TASK_RUNNING",
            TaskState::Killing => "TASK_KILLING",
            TaskState::Finished => "TASK_FINISHED",
            TaskState::Failed => "TASK_FAILED",
            TaskState::Killed => "TASK_KILLED",
            TaskState::Error => "TASK_ERROR",
            TaskState::Lost => "TASK_LOST",
            TaskState::Dropped => "TASK_DROPPED",
            TaskState::Unreachable => "TASK_UNREACHABLE",
            TaskState::Gone => "TASK_GONE",
            TaskState::GoneByOperator => "TASK_GONE_BY_OPERATOR",
            TaskState::Unknown => "TASK_UNKNOWN",
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mesos_name())
    }
}

/// A task id. The controller's own carry the spec id, instance and generation of the task, so an
/// operator reading `/master/state` sees at once which file a task came from (see `task_ids`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub String);

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Scalar and port resources, as offered by an agent or needed by a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub cpus: f64,
    /// MiB.
    pub mem: f64,
    /// MiB.
    pub disk: f64,
    pub gpus: f64,
    /// Inclusive port ranges.
    pub ports: Vec<(u64, u64)>,
}

impl Resources {
    /// How many ports the ranges hold.
    pub fn port_count(&self) -> u64 {
        self.ports
            .iter()
            .map(|(b, e)| e.saturating_sub(*b).saturating_add(1))
            .sum()
    }
}

/// An offer, reduced to what placement needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: String,
    pub agent_id: String,
    pub hostname: String,
    /// The role the offer was allocated to (`Offer.allocation_info.role`); a task of a spec with
    /// another role cannot use it.
    pub role: String,
    /// The offer's resources usable by tasks of `role`.
    pub resources: Resources,
    /// Agent attributes as text (`rack` -> `r1`); scalars and ranges printed as Mesos prints them.
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// Who produced a status update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateSource {
    Master,
    Agent,
    Executor,
}

/// A task status update from Mesos, in the crate's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUpdate {
    pub task_id: TaskId,
    pub state: TaskState,
    pub agent_id: Option<String>,
    pub source: Option<UpdateSource>,
    /// The Mesos reason name without its prefix, e.g. `AGENT_REMOVED`, `RECONCILIATION`.
    pub reason: Option<String>,
    pub message: Option<String>,
    pub healthy: Option<bool>,
    /// Present on updates that must be acknowledged (agent/executor updates).
    pub uuid: Option<Vec<u8>>,
    /// Seconds since the epoch, as Mesos stamps it.
    pub timestamp: Option<f64>,
}

impl TaskUpdate {
    /// The failure was caused by the cluster (agent lost or removed, offers invalid, master
    /// failover) rather than by the task, so it does not count toward `max_failures`.
    pub fn cluster_caused(&self) -> bool {
        matches!(
            self.reason.as_deref(),
            Some(
                "AGENT_DISCONNECTED"
                    | "AGENT_REMOVED"
                    | "AGENT_REMOVED_BY_OPERATOR"
                    | "AGENT_RESTARTED"
                    | "AGENT_UNKNOWN"
                    | "AGENT_DRAINING"
                    | "INVALID_OFFERS"
                    | "MASTER_DISCONNECTED"
                    | "RECONCILIATION"
                    | "RESOURCES_UNKNOWN"
                    | "CONTAINER_PREEMPTED"
                    | "FRAMEWORK_REMOVED"
            )
        ) || matches!(
            self.state,
            TaskState::Lost
                | TaskState::Dropped
                | TaskState::Gone
                | TaskState::GoneByOperator
                | TaskState::Unreachable
                | TaskState::Unknown
        )
    }
}

/// The ledger's record of one task id the controller may have launched.
///
/// The record is flushed before the ACCEPT that launches the task is sent, so after any crash the
/// controller knows every task id it may have on the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub task_id: TaskId,
    pub spec_id: String,
    /// The spec hash of the generation this task runs.
    pub generation: String,
    pub instance: u32,
    pub agent_id: Option<String>,
    pub hostname: Option<String>,
    /// Host ports assigned from the offer.
    pub ports: Vec<u64>,
    pub state: TaskState,
    /// Milliseconds since the epoch.
    pub launched_at_ms: u64,
    /// When the task was first seen RUNNING (for `backoff.reset_after`).
    pub running_since_ms: Option<u64>,
    /// When the task became unreachable (for `unreachable_after`).
    pub unreachable_since_ms: Option<u64>,
    pub updated_at_ms: u64,
    pub healthy: Option<bool>,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The controller asked Mesos to kill this task; its end is expected, not a failure.
    pub kill_requested: bool,
    /// The terminal state was caused by the cluster, not the task.
    pub cluster_caused: bool,
    /// The git commit of the spec version the task was launched from (`<sha>`, or
    /// `<sha>-dirty` for an uncommitted edit); none when the specs are not in git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<std::sync::Arc<str>>,
}

#[cfg(test)]
impl TaskRecord {
    /// A record for unit tests: instance 0, generation `g`, launched and updated at 0.
    pub(crate) fn sample(task_id: &str, spec_id: &str, state: TaskState) -> Self {
        TaskRecord {
            task_id: TaskId(task_id.to_owned()),
            spec_id: spec_id.to_owned(),
            generation: "g".to_owned(),
            instance: 0,
            agent_id: None,
            hostname: None,
            ports: vec![],
            state,
            launched_at_ms: 0,
            running_since_ms: None,
            unreachable_since_ms: None,
            updated_at_ms: 0,
            healthy: None,
            reason: None,
            message: None,
            kill_requested: false,
            cluster_caused: false,
            commit: None,
        }
    }
}

impl TaskRecord {
    /// Still occupies (or may occupy) a slot on the cluster.
    pub fn is_live(&self) -> bool {
        !self.state.is_terminal()
    }
}

/// A framework as the master lists it (`GET /master/frameworks`): what a controller without a
/// framework id needs to find its own, and what it needs to learn the framework's tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MasterFramework {
    pub id: String,
    pub name: String,
    pub principal: Option<String>,
    /// The host the scheduler said it runs on (`FrameworkInfo.hostname`).
    pub hostname: Option<String>,
    /// A scheduler holds its subscription right now.
    pub connected: bool,
    /// Known only from agents after a master failover, no scheduler subscribed since.
    pub recovered: bool,
    /// Removed (torn down, or its failover timeout expired): its id cannot be used again.
    pub completed: bool,
    /// Seconds since the epoch.
    pub registered_time: Option<f64>,
    /// When its scheduler went away, seconds since the epoch.
    pub unregistered_time: Option<f64>,
    /// Its tasks the master tracks: live ones and those on unreachable agents.
    pub tasks: Vec<MasterTask>,
}

/// A task as the master lists it, with the labels status updates do not carry.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterTask {
    pub task_id: TaskId,
    /// The TaskInfo's name (the controller sets it to the spec id).
    pub name: String,
    pub state: TaskState,
    pub agent_id: Option<String>,
    /// The TaskInfo's labels; a key given twice keeps its last value.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Host ports the task holds, in ascending order.
    pub ports: Vec<u64>,
    /// The time of its first status update (ms since the epoch).
    pub first_status_ms: Option<u64>,
    /// The time of its first TASK_RUNNING update.
    pub running_since_ms: Option<u64>,
    /// Since when its agent is unreachable.
    pub unreachable_since_ms: Option<u64>,
    /// The health of its latest update that said.
    pub healthy: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_match_mesos() {
        let terminal: Vec<_> = TaskState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .map(TaskState::mesos_name)
            .collect();
        assert_eq!(
            terminal,
            [
                "TASK_FINISHED",
                "TASK_FAILED",
                "TASK_KILLED",
                "TASK_ERROR",
                "TASK_LOST",
                "TASK_DROPPED",
                "TASK_GONE",
                "TASK_GONE_BY_OPERATOR"
            ]
        );
    }
}
