//! `GET /metrics/snapshot`: a flat JSON object of numbers under upstream's master metric names
//! (`src/master/metrics.cpp`, `docs/monitoring.md`), limited to what this master can count
//! honestly.
//!
//! Gauges are read from the state when asked, each in O(agents + frameworks + states): task
//! gauges come from the per-state counts the task tables keep, never from a scan of tasks.
//! Counters are bumped where upstream bumps them (`Master::subscribe`, `accept`, `decline`,
//! `revive`, `suppress`, `kill`, `acknowledge`, `reconcile`, `message`, `request`,
//! `statusUpdate`, `updateTask`, slave (re)registration). A master restart is a fresh master
//! process: its metrics start from zero.

use serde_json::{Map, Value};

use super::state::{AgentState, Master, now_secs};
use super::tasks::StateCounts;
use crate::mesos::proto::v1 as pb;
use pb::TaskState as S;

/// The counters upstream keeps as `Counter`s, where the dev master can count them.
#[derive(Debug, Default)]
pub(super) struct Metrics {
    /// Transitions of tasks into each terminal state (`master/tasks_finished`, ...), including
    /// tasks refused at launch (TASK_ERROR, and TASK_DROPPED/TASK_LOST for invalid offers).
    pub tasks_ended: StateCounts,
    pub messages_register_framework: u64,
    pub messages_reregister_framework: u64,
    pub messages_launch_tasks: u64,
    pub messages_decline_offers: u64,
    pub messages_revive_offers: u64,
    pub messages_suppress_offers: u64,
    pub messages_kill_task: u64,
    pub messages_status_update_acknowledgement: u64,
    pub valid_status_update_acknowledgements: u64,
    pub invalid_status_update_acknowledgements: u64,
    pub messages_reconcile_tasks: u64,
    pub messages_reconcile_operations: u64,
    pub messages_framework_to_executor: u64,
    pub valid_framework_to_executor_messages: u64,
    pub invalid_framework_to_executor_messages: u64,
    pub messages_resource_request: u64,
    pub messages_status_update: u64,
    pub valid_status_updates: u64,
    pub invalid_status_updates: u64,
    pub slave_registrations: u64,
    pub slave_reregistrations: u64,
}

impl Metrics {
    fn counters(&self) -> [(&'static str, u64); 21] {
        [
            (
                "messages_register_framework",
                self.messages_register_framework,
            ),
            (
                "messages_reregister_framework",
                self.messages_reregister_framework,
            ),
            ("messages_launch_tasks", self.messages_launch_tasks),
            ("messages_decline_offers", self.messages_decline_offers),
            ("messages_revive_offers", self.messages_revive_offers),
            ("messages_suppress_offers", self.messages_suppress_offers),
            ("messages_kill_task", self.messages_kill_task),
            (
                "messages_status_update_acknowledgement",
                self.messages_status_update_acknowledgement,
            ),
            (
                "valid_status_update_acknowledgements",
                self.valid_status_update_acknowledgements,
            ),
            (
                "invalid_status_update_acknowledgements",
                self.invalid_status_update_acknowledgements,
            ),
            ("messages_reconcile_tasks", self.messages_reconcile_tasks),
            (
                "messages_reconcile_operations",
                self.messages_reconcile_operations,
            ),
            (
                "messages_framework_to_executor",
                self.messages_framework_to_executor,
            ),
            (
                "valid_framework_to_executor_messages",
                self.valid_framework_to_executor_messages,
            ),
            (
                "invalid_framework_to_executor_messages",
                self.invalid_framework_to_executor_messages,
            ),
            ("messages_resource_request", self.messages_resource_request),
            ("messages_status_update", self.messages_status_update),
            ("valid_status_updates", self.valid_status_updates),
            ("invalid_status_updates", self.invalid_status_updates),
            ("slave_registrations", self.slave_registrations),
            ("slave_reregistrations", self.slave_reregistrations),
        ]
    }
}

/// Precision-safe for any count this master reaches.
fn number(n: u64) -> Value {
    Value::from(n as f64)
}

impl Master {
    /// The snapshot: every value a number, keys sorted, as upstream's `/metrics/snapshot`.
    pub(super) fn metrics_snapshot(&self) -> Value {
        let mut m = Map::new();
        let mut put = |name: &str, value: Value| {
            m.insert(format!("master/{name}"), value);
        };
        put("uptime_secs", Value::from(now_secs() - self.start_time));
        put("elected", number(1));

        let registered = self.agents.values().filter(|a| a.is_registered()).count() as u64;
        let unreachable = self
            .agents
            .values()
            .filter(|a| matches!(a.state, AgentState::Unreachable { .. }))
            .count() as u64;
        // A registered agent here is always connected and active; recovered agents (after a
        // master restart) are not registered yet, as upstream's `slaves.recovered`.
        put("slaves_connected", number(registered));
        put("slaves_disconnected", number(0));
        put("slaves_active", number(registered));
        put("slaves_inactive", number(0));
        put("slaves_unreachable", number(unreachable));

        let frameworks = self.frameworks.len() as u64;
        let connected = self
            .frameworks
            .values()
            .filter(|f| f.stream().is_some())
            .count() as u64;
        // Connected and active coincide: a framework is active exactly while its stream is open.
        put("frameworks_connected", number(connected));
        put("frameworks_disconnected", number(frameworks - connected));
        put("frameworks_active", number(connected));
        put("frameworks_inactive", number(frameworks - connected));
        put("outstanding_offers", number(self.offers.len() as u64));

        let live = self.tasks.by_state();
        put("tasks_staging", number(live.get(S::TaskStaging)));
        put("tasks_starting", number(live.get(S::TaskStarting)));
        put("tasks_running", number(live.get(S::TaskRunning)));
        put("tasks_killing", number(live.get(S::TaskKilling)));
        let unreachable_tasks: u64 = self
            .frameworks
            .values()
            .map(|f| f.unreachable_tasks.by_state().get(S::TaskUnreachable))
            .sum();
        put("tasks_unreachable", number(unreachable_tasks));
        let ended = &self.metrics.tasks_ended;
        for (name, state) in [
            ("tasks_finished", S::TaskFinished),
            ("tasks_failed", S::TaskFailed),
            ("tasks_killed", S::TaskKilled),
            ("tasks_lost", S::TaskLost),
            ("tasks_error", S::TaskError),
            ("tasks_dropped", S::TaskDropped),
            ("tasks_gone", S::TaskGone),
            ("tasks_gone_by_operator", S::TaskGoneByOperator),
        ] {
            put(name, number(ended.get(state)));
        }
        for (name, value) in self.metrics.counters() {
            put(name, number(value));
        }

        // Scalar resources of registered agents (upstream `_resources_total`/`_used`/`_percent`;
        // the dev cluster has no revocable resources, so those are honestly zero).
        for resource in ["cpus", "gpus", "mem", "disk"] {
            let (mut total, mut used) = (0.0, 0.0);
            for agent in self.agents.values().filter(|a| a.is_registered()) {
                total += agent.total.scalar(resource);
                used += agent.used.scalar(resource);
            }
            let percent = if total > 0.0 { used / total } else { 0.0 };
            put(&format!("{resource}_total"), Value::from(total));
            put(&format!("{resource}_used"), Value::from(used));
            put(&format!("{resource}_percent"), Value::from(percent));
            for kind in ["total", "used", "percent"] {
                put(&format!("{resource}_revocable_{kind}"), Value::from(0.0));
            }
        }
        Value::Object(m)
    }
}
