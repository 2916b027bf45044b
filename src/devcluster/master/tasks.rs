//! The master's record of a task ([`Task`]) and the table that holds them ([`TaskTable`]).
//!
//! A task's state changes only through its table, which keeps how many of its tasks are in each
//! state: `/metrics/snapshot` reads its gauges (`master/tasks_running`, ...) in O(states), never
//! by scanning tasks. A change of state also has to name the counters of transitions into a
//! terminal state (`master/tasks_finished`, ..., counted as upstream's `Master::updateTask` does),
//! so no state change can miss them.

use std::borrow::Borrow;
use std::collections::BTreeMap;

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

#[derive(Debug, Clone)]
pub(super) struct Task {
    /// The TaskInfo as launched (with the group executor copied in for LAUNCH_GROUP).
    pub info: pb::TaskInfo,
    pub framework_id: String,
    pub agent_id: String,
    /// The latest state the master knows; changed only by [`TaskTable::set_state`].
    state: i32,
    /// State and uuid of the latest update received from the agent (upstream
    /// `status_update_state`/`status_update_uuid`).
    pub status_update_state: Option<i32>,
    pub status_update_uuid: Option<Vec<u8>>,
    pub latest: Option<pb::TaskStatus>,
    pub statuses: Vec<pb::TaskStatus>,
    pub resources: Resources,
    /// The executor the task runs under, when it is not the command executor.
    pub executor_id: Option<String>,
    /// Tasks launched together by one LAUNCH_GROUP share this number.
    pub group: Option<u64>,
    pub role: String,
    pub unreachable_time: Option<f64>,
}

/// What a [`Task`] starts with; the rest starts empty.
#[derive(Debug)]
pub(super) struct NewTask {
    pub info: pb::TaskInfo,
    pub framework_id: String,
    pub agent_id: String,
    pub state: i32,
    pub resources: Resources,
    pub executor_id: Option<String>,
    pub group: Option<u64>,
    pub role: String,
}

impl Task {
    pub fn new(new: NewTask) -> Self {
        Task {
            info: new.info,
            framework_id: new.framework_id,
            agent_id: new.agent_id,
            state: new.state,
            status_update_state: None,
            status_update_uuid: None,
            latest: None,
            statuses: Vec::new(),
            resources: new.resources,
            executor_id: new.executor_id,
            group: new.group,
            role: new.role,
            unreachable_time: None,
        }
    }

    /// The latest state the master knows.
    pub fn state(&self) -> i32 {
        self.state
    }

    /// The state reconciliation reports: the latest forwarded update's, else the master's.
    pub fn reported_state(&self) -> i32 {
        self.status_update_state.unwrap_or(self.state)
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

    pub fn values(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &Task)> {
        self.tasks.iter()
    }

    /// How many tasks of the table are in each state now.
    pub fn by_state(&self) -> &StateCounts {
        &self.by_state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::TaskState as S;

    fn task(state: S) -> Task {
        Task::new(NewTask {
            info: pb::TaskInfo::default(),
            framework_id: "f".into(),
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
