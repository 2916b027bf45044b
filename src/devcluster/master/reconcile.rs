//! RECONCILE (§11): implicit (every task the master tracks for the framework) and explicit
//! (per task, six cases depending on what the master knows of the task and its agent). All
//! answers are master-generated: REASON_RECONCILIATION, SOURCE_MASTER, no uuid.

use super::state::{AgentState, Master, Task, master_status, time_info};
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::call;
use pb::task_status::Reason;

const LATEST: &str = "Reconciliation: Latest task state";

impl Master {
    pub(super) fn reconcile_tasks(&mut self, framework_id: &str, tasks: &[call::reconcile::Task]) {
        // Also for the reconciliation a KILL of an unknown task starts, as upstream.
        self.metrics.messages_reconcile_tasks += 1;
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let partition_aware = framework.partition_aware();
        let mut answers = Vec::new();
        if tasks.is_empty() {
            for (task_id, task) in self.tasks.of_framework(framework_id) {
                answers.push(latest_state(task_id, task));
            }
        } else {
            for wanted in tasks {
                if let Some(status) = self.explicit_answer(framework_id, partition_aware, wanted) {
                    answers.push(status);
                }
            }
        }
        tracing::debug!(
            framework_id,
            asked = tasks.len(),
            answers = answers.len(),
            "reconciliation"
        );
        for status in answers {
            self.send_master_update(framework_id, status);
        }
    }

    /// The explicit cases of §11, in upstream's order; `None` means no answer (an agent that
    /// may still know the task has not re-registered since the master restarted).
    fn explicit_answer(
        &self,
        framework_id: &str,
        partition_aware: bool,
        wanted: &call::reconcile::Task,
    ) -> Option<pb::TaskStatus> {
        let task_id = wanted.task_id.value.as_str();
        if let Some(task) = self
            .tasks
            .get(&(framework_id.to_owned(), task_id.to_owned()))
        {
            return Some(latest_state(task_id, task));
        }
        let agent_id = wanted.agent_id.as_ref().map(|a| a.value.as_str());
        let agent_state = agent_id.and_then(|id| self.agents.get(id)).map(|a| a.state);
        let any_recovering = self
            .agents
            .values()
            .any(|a| a.state == AgentState::Recovered);
        let pick = |aware: pb::TaskState| {
            if partition_aware {
                aware
            } else {
                pb::TaskState::TaskLost
            }
        };
        let (state, message, unreachable) = match (agent_id, agent_state) {
            (Some(_), Some(AgentState::Recovered)) => return None,
            (Some(_), Some(AgentState::Registered)) => (
                pick(pb::TaskState::TaskGone),
                "Reconciliation: Task is unknown to the agent",
                None,
            ),
            (Some(_), Some(AgentState::Unreachable { since })) => (
                pick(pb::TaskState::TaskUnreachable),
                "Reconciliation: Task is unreachable",
                Some(since),
            ),
            (Some(_), Some(AgentState::Gone)) => (
                pick(pb::TaskState::TaskGoneByOperator),
                "Reconciliation: Task is gone",
                None,
            ),
            (None, _) if any_recovering => return None,
            _ => (
                pick(pb::TaskState::TaskUnknown),
                "Reconciliation: Task is unknown",
                None,
            ),
        };
        let mut status = master_status(task_id, agent_id, state, Reason::Reconciliation, message);
        status.unreachable_time = unreachable.map(time_info);
        Some(status)
    }
}

/// A known task's latest state, with health, check and container status when known.
fn latest_state(task_id: &str, task: &Task) -> pb::TaskStatus {
    let state =
        pb::TaskState::try_from(task.reported_state()).unwrap_or(pb::TaskState::TaskStaging);
    let mut status = master_status(
        task_id,
        Some(&task.agent_id),
        state,
        Reason::Reconciliation,
        LATEST,
    );
    if let Some(latest) = task.latest() {
        status.healthy = latest.healthy;
        status.check_status = latest.check_status;
        status.container_status = latest.container_status;
        status.executor_id = latest.executor_id;
    }
    status
}
