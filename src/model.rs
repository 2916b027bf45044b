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

    /// The name Mesos uses (`TASK_RUNNING`), for logs and the status page.
    pub fn mesos_name(self) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_match_mesos() {
        let terminal: Vec<_> = [
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
        ]
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
