//! The master's record of a task ([`Task`]) and the table that holds them ([`TaskTable`]).
//!
//! A task's state changes only through its table, which keeps how many of its tasks are in each
//! state: `/metrics/snapshot` reads its gauges (`master/tasks_running`, ...) in O(states), never
//! by scanning tasks. A change of state also has to name the counters of transitions into a
//! terminal state (`master/tasks_finished`, ..., counted as upstream's `Master::updateTask` does),
//! so no state change can miss them.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::resources::Resources;
use super::state::is_terminal;
use crate::mesos::proto::v1 as pb;

/// Tasks are indexed by (framework id, task id): task ids are unique per framework only.
pub(super) type TaskKey = (String, String);

/// `TaskState` values are small non-negative numbers (0..=13 in Mesos 1.11).
const STATES: usize = 16;

fn slot(state: i32) -> Option<usize> {
    usize::try_from(state).ok().filter(|s| *s < STATES)
}

/// How many tasks are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct StateCounts([u64; STATES]);

impl StateCounts {
    pub fn get(&self, state: pb::TaskState) -> u64 {
        slot(state as i32).map_or(0, |s| self.0[s])
    }

    pub fn add(&mut self, state: i32) {
        if let Some(s) = slot(state) {
            self.0[s] += 1;
        }
    }

    fn sub(&mut self, state: i32) {
        if let Some(s) = slot(state) {
            self.0[s] = self.0[s].saturating_sub(1);
        }
    }
}

/// One entry of a task's `statuses` in `/master/state`: what the state document shows of an
/// update, and no more (a whole decoded `TaskStatus` is several hundred bytes).
#[derive(Debug, Clone)]
pub(super) struct StatusRecord {
    pub state: i32,
    pub timestamp: f64,
    pub healthy: Option<bool>,
    /// When the update has a container status: the whole update, protobuf-encoded (shared with
    /// the agent's copy and the task's latest update, so it costs nothing of its own).
    with_container_status: Option<Bytes>,
}

/// A `TaskStatus` read for its `container_status` (field 13) only; decoding skips the rest.
#[derive(Clone, PartialEq, Message)]
struct ContainerStatusOnly {
    #[prost(message, optional, tag = "13")]
    container_status: Option<pb::ContainerStatus>,
}

impl StatusRecord {
    /// The record of `status`; `encoded` is its encoding, if at hand.
    pub fn of(status: &pb::TaskStatus, encoded: Option<&Bytes>) -> Self {
        StatusRecord {
            state: status.state,
            timestamp: status.timestamp.unwrap_or(0.0),
            healthy: status.healthy,
            with_container_status: status.container_status.as_ref().map(|_| {
                encoded
                    .cloned()
                    .unwrap_or_else(|| Bytes::from(status.encode_to_vec()))
            }),
        }
    }

    pub fn container_status(&self) -> Option<pb::ContainerStatus> {
        // Encoded from a valid message, so decoding cannot fail.
        self.with_container_status
            .as_deref()
            .and_then(|bytes| ContainerStatusOnly::decode(bytes).ok())
            .and_then(|only| only.container_status)
    }
}

/// What few tasks have, boxed together so that a plain task does not carry the room for it.
#[derive(Debug, Clone, Default)]
pub(super) struct TaskExtras {
    /// `TaskInfo.labels`.
    pub labels: Option<pb::Labels>,
    /// `TaskInfo.kill_policy.grace_period`.
    pub kill_grace: Option<pb::DurationInfo>,
    /// The executor the task runs under, when it is not the command executor.
    pub executor_id: Option<String>,
    /// Tasks launched together by one LAUNCH_GROUP share this number.
    pub group: Option<u64>,
    /// When its agent became unreachable (seconds since the epoch).
    pub unreachable_time: Option<f64>,
}

static NO_EXTRAS: TaskExtras = TaskExtras {
    labels: None,
    kill_grace: None,
    executor_id: None,
    group: None,
    unreachable_time: None,
};

/// The master's record of a task. It keeps what the master reads back (for `/master/state`,
/// KILL and reconciliation), not the TaskInfo: the agent running the task keeps that. There can
/// be 100,000 of them, so every field counts.
#[derive(Debug, Clone)]
pub(super) struct Task {
    /// `TaskInfo.name`.
    pub name: Box<str>,
    /// Shared with the agent's record.
    pub agent_id: Arc<str>,
    /// The latest state the master knows; changed only by [`TaskTable::set_state`].
    state: i32,
    /// State and uuid of the latest update received from the agent (upstream
    /// `status_update_state`/`status_update_uuid`).
    pub status_update_state: Option<i32>,
    pub status_update_uuid: Option<Box<[u8]>>,
    /// The latest update received from the agent, protobuf-encoded: the agent's own bytes.
    latest: Option<Bytes>,
    /// One entry per state, as upstream's `Master::updateTask` keeps them: an update in the
    /// same state as the last entry replaces it.
    pub statuses: Vec<StatusRecord>,
    pub resources: Resources,
    /// Shared by the tasks of the role.
    pub role: Arc<str>,
    extras: Option<Box<TaskExtras>>,
}

/// What a [`Task`] starts with; the rest starts empty.
#[derive(Debug)]
pub(super) struct NewTask<'a> {
    pub info: &'a pb::TaskInfo,
    pub agent_id: Arc<str>,
    pub state: i32,
    pub resources: Resources,
    pub executor_id: Option<String>,
    pub group: Option<u64>,
    pub role: Arc<str>,
}

impl Task {
    pub fn new(new: NewTask<'_>) -> Self {
        let extras = TaskExtras {
            labels: new.info.labels.clone(),
            kill_grace: new.info.kill_policy.as_ref().and_then(|p| p.grace_period),
            executor_id: new.executor_id,
            group: new.group,
            unreachable_time: None,
        };
        let plain = extras.labels.is_none()
            && extras.kill_grace.is_none()
            && extras.executor_id.is_none()
            && extras.group.is_none();
        Task {
            name: new.info.name.as_str().into(),
            agent_id: new.agent_id,
            state: new.state,
            status_update_state: None,
            status_update_uuid: None,
            latest: None,
            statuses: Vec::new(),
            resources: new.resources,
            role: new.role,
            extras: (!plain).then(|| Box::new(extras)),
        }
    }

    /// Labels, kill grace period, executor, group, unreachable time.
    pub fn extras(&self) -> &TaskExtras {
        self.extras.as_deref().unwrap_or(&NO_EXTRAS)
    }

    pub fn extras_mut(&mut self) -> &mut TaskExtras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// The latest state the master knows.
    pub fn state(&self) -> i32 {
        self.state
    }

    /// The state reconciliation reports: the latest forwarded update's, else the master's.
    pub fn reported_state(&self) -> i32 {
        self.status_update_state.unwrap_or(self.state)
    }

    /// The latest update received from the agent.
    pub fn latest(&self) -> Option<pb::TaskStatus> {
        // Encoded here from a valid message, so decoding cannot fail.
        self.latest
            .as_deref()
            .and_then(|bytes| pb::TaskStatus::decode(bytes).ok())
    }

    /// Keeps `encoded`, the encoding of the latest update received from the agent.
    pub fn set_latest(&mut self, encoded: Bytes) {
        self.latest = Some(encoded);
    }

    /// Adds an update to `statuses` (replacing the last entry when the state is the same);
    /// `encoded` is its encoding, if at hand.
    pub fn push_status(&mut self, status: &pb::TaskStatus, encoded: Option<&Bytes>) {
        let record = StatusRecord::of(status, encoded);
        match self.statuses.last_mut() {
            Some(last) if last.state == record.state => *last = record,
            _ => {
                // Tasks have a handful of states in their life: no room for more.
                self.statuses.reserve_exact(1);
                self.statuses.push(record);
            }
        }
    }
}

/// Tasks by key, with their count per state.
#[derive(Debug)]
pub(super) struct TaskTable<K> {
    tasks: BTreeMap<K, Task>,
    by_state: StateCounts,
}

impl<K> Default for TaskTable<K> {
    fn default() -> Self {
        TaskTable {
            tasks: BTreeMap::new(),
            by_state: StateCounts::default(),
        }
    }
}

impl<K: Ord> TaskTable<K> {
    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&Task>
    where
        K: Borrow<Q>,
    {
        self.tasks.get(key)
    }

    /// A task to change anything but its state.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut Task>
    where
        K: Borrow<Q>,
    {
        self.tasks.get_mut(key)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.tasks.contains_key(key)
    }

    pub fn insert(&mut self, key: K, task: Task) {
        self.by_state.add(task.state);
        if let Some(old) = self.tasks.insert(key, task) {
            self.by_state.sub(old.state);
        }
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<Task>
    where
        K: Borrow<Q>,
    {
        let task = self.tasks.remove(key)?;
        self.by_state.sub(task.state);
        Some(task)
    }

    /// Sets a task's state; returns the previous one. A move from a live state into a terminal
    /// one is counted in `ended`.
    pub fn set_state<Q: Ord + ?Sized>(
        &mut self,
        key: &Q,
        state: i32,
        ended: &mut StateCounts,
    ) -> Option<i32>
    where
        K: Borrow<Q>,
    {
        let task = self.tasks.get_mut(key)?;
        let old = std::mem::replace(&mut task.state, state);
        self.by_state.sub(old);
        self.by_state.add(state);
        if !is_terminal(old) && is_terminal(state) {
            ended.add(state);
        }
        Some(old)
    }

    pub fn clear(&mut self) {
        self.tasks.clear();
        self.by_state = StateCounts::default();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &Task)> {
        self.tasks.iter()
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// How many tasks of the table are in each state now.
    pub fn by_state(&self) -> &StateCounts {
        &self.by_state
    }
}

impl TaskTable<TaskKey> {
    /// The tasks of one framework, in task id order.
    pub fn of_framework<'a>(
        &'a self,
        framework_id: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Task)> + 'a {
        let from = (framework_id.to_owned(), String::new());
        self.tasks
            .range((Bound::Included(from), Bound::Unbounded))
            .take_while(move |((f, _), _)| f == framework_id)
            .map(|((_, t), task)| (t.as_str(), task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::TaskState as S;

    fn task(state: S) -> Task {
        Task::new(NewTask {
            info: &pb::TaskInfo::default(),
            agent_id: "a".into(),
            state: state as i32,
            resources: Resources::default(),
            executor_id: None,
            group: None,
            role: "*".into(),
        })
    }

    #[test]
    fn counts_follow_every_change() {
        let mut table: TaskTable<String> = TaskTable::default();
        let mut ended = StateCounts::default();
        table.insert("a".into(), task(S::TaskStaging));
        table.insert("b".into(), task(S::TaskStaging));
        assert_eq!(table.by_state().get(S::TaskStaging), 2);
        table.set_state("a", S::TaskRunning as i32, &mut ended);
        table.set_state("b", S::TaskRunning as i32, &mut ended);
        table.set_state("b", S::TaskFinished as i32, &mut ended);
        // Terminal twice counts once.
        table.set_state("b", S::TaskFailed as i32, &mut ended);
        assert_eq!(table.by_state().get(S::TaskRunning), 1);
        assert_eq!(table.by_state().get(S::TaskFailed), 1);
        assert_eq!(ended.get(S::TaskFinished), 1);
        assert_eq!(ended.get(S::TaskFailed), 0);
        table.remove("b");
        assert_eq!(table.by_state().get(S::TaskFailed), 0);
        table.insert("a".into(), task(S::TaskKilled));
        assert_eq!(table.by_state().get(S::TaskRunning), 0);
        assert_eq!(table.by_state().get(S::TaskKilled), 1);
        table.clear();
        assert_eq!(table.by_state(), &StateCounts::default());
    }
}
