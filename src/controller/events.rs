//! Task transitions for the status server's event stream (`GET /api/v1/events`): the loop sends
//! each one on a broadcast channel and never waits; with no reader it costs a counter check.

use super::state::Controller;
use crate::model::{TaskRecord, TaskState};
use crate::status::TaskEvent;

impl Controller {
    /// Announces that `r` is now in its state (`previous` is None for a launch).
    pub(super) fn emit_transition(&self, r: &TaskRecord, previous: Option<TaskState>) {
        if self.task_events.receiver_count() == 0 {
            return;
        }
        let _ = self.task_events.send(TaskEvent {
            task_id: r.task_id.0.clone(),
            spec: r.spec_id.clone(),
            instance: r.instance,
            generation: crate::plan::short_generation(&r.generation).to_owned(),
            state: r.state.mesos_name().to_owned(),
            previous: previous.map(|s| s.mesos_name().to_owned()),
            healthy: r.healthy,
            agent_id: r.agent_id.clone(),
            hostname: r.hostname.clone(),
            reason: r.reason.clone(),
            message: r.message.clone(),
            at_ms: r.updated_at_ms,
        });
    }
}
