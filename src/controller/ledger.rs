//! The task ledger in memory, with the two indexes that keep the loop's work proportional to what
//! changed rather than to the number of tasks:
//! - by spec: the records of one spec id, so that deciding a spec reads only its own tasks;
//! - attention: the live tasks that are not plainly running (staging, starting, unreachable,
//!   unknown, or being killed), which is all the periodic upkeep has to look at. In the steady state
//!   of a large cluster this set is empty.
//!
//! Every change goes through [`Ledger::put`] or [`Ledger::remove`], which keep the indexes and note
//! the spec id as changed; the pass takes the changed ids and decides those specs again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{TaskId, TaskRecord, TaskState};

#[derive(Debug, Default)]
pub(super) struct Ledger {
    records: BTreeMap<TaskId, TaskRecord>,
    /// Each spec's task ids, sorted. A vector rather than a set: most specs have a task or two,
    /// and a set's first node costs about 300 bytes, 30 MiB at 100,000 specs.
    by_spec: HashMap<String, Vec<TaskId>>,
    attention: BTreeSet<TaskId>,
    /// Spec ids (as the ledger spells them) whose records changed since [`Ledger::take_changed`].
    changed: BTreeSet<String>,
}

/// Whether the periodic upkeep must look at a record: live, and not simply running.
fn needs_attention(r: &TaskRecord) -> bool {
    r.is_live() && (r.state != TaskState::Running || r.kill_requested)
}

impl Ledger {
    pub fn from_records(records: impl IntoIterator<Item = TaskRecord>) -> Self {
        let mut ledger = Ledger::default();
        for r in records {
            ledger.put(r);
        }
        ledger
    }

    pub fn get(&self, id: &TaskId) -> Option<&TaskRecord> {
        self.records.get(id)
    }

    /// Every record, in task id order. For work done once per subscription or on request, never
    /// per pass.
    pub fn values(&self) -> impl Iterator<Item = &TaskRecord> {
        self.records.values()
    }

    pub fn map(&self) -> &BTreeMap<TaskId, TaskRecord> {
        &self.records
    }

    /// Inserts or replaces a record.
    pub fn put(&mut self, r: TaskRecord) {
        if needs_attention(&r) {
            self.attention.insert(r.task_id.clone());
        } else {
            self.attention.remove(&r.task_id);
        }
        let ids = self.by_spec.entry(r.spec_id.clone()).or_default();
        if let Err(at) = ids.binary_search(&r.task_id) {
            ids.reserve_exact(1);
            ids.insert(at, r.task_id.clone());
        }
        self.changed.insert(r.spec_id.clone());
        if let Some(old) = self.records.insert(r.task_id.clone(), r) {
            let new_spec = &self.records[&old.task_id].spec_id;
            if *new_spec != old.spec_id {
                self.unindex(&old.spec_id, &old.task_id);
                self.changed.insert(old.spec_id);
            }
        }
    }

    pub fn remove(&mut self, id: &TaskId) -> Option<TaskRecord> {
        let old = self.records.remove(id)?;
        self.attention.remove(id);
        self.unindex(&old.spec_id, id);
        self.changed.insert(old.spec_id.clone());
        Some(old)
    }

    fn unindex(&mut self, spec: &str, id: &TaskId) {
        if let Some(set) = self.by_spec.get_mut(spec) {
            if let Ok(at) = set.binary_search(id) {
                set.remove(at);
            }
            if set.is_empty() {
                self.by_spec.remove(spec);
            }
        }
    }

    /// The records of one spec id, in task id order.
    pub fn of_spec(&self, spec: &str) -> Vec<&TaskRecord> {
        self.by_spec
            .get(spec)
            .into_iter()
            .flatten()
            .filter_map(|id| self.records.get(id))
            .collect()
    }

    /// Whether any record of the spec id is live.
    pub fn has_live(&self, spec: &str) -> bool {
        self.by_spec
            .get(spec)
            .into_iter()
            .flatten()
            .filter_map(|id| self.records.get(id))
            .any(TaskRecord::is_live)
    }

    /// Live records that are not simply running (see the module documentation).
    pub fn attention(&self) -> impl Iterator<Item = &TaskRecord> {
        self.attention.iter().filter_map(|id| self.records.get(id))
    }

    /// Every spec id that has records.
    pub fn spec_ids(&self) -> impl Iterator<Item = &String> {
        self.by_spec.keys()
    }

    /// The spec ids whose records changed since the last call.
    pub fn take_changed(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, spec: &str, state: TaskState) -> TaskRecord {
        TaskRecord::sample(id, spec, state)
    }

    #[test]
    fn indexes_follow_puts_and_removes() {
        let mut l = Ledger::from_records([
            record("a.0.1", "a", TaskState::Staging),
            record("b.0.1", "b", TaskState::Running),
        ]);
        assert_eq!(l.take_changed().len(), 2);
        assert_eq!(l.attention().count(), 1, "staging needs attention");
        l.put(record("a.0.1", "a", TaskState::Running));
        assert_eq!(l.attention().count(), 0, "running does not");
        assert_eq!(l.take_changed(), BTreeSet::from(["a".to_owned()]));
        let mut dying = record("b.0.1", "b", TaskState::Running);
        dying.kill_requested = true;
        l.put(dying);
        assert_eq!(l.attention().count(), 1, "a kill in flight does");
        l.put(record("b.0.1", "b", TaskState::Killed));
        assert_eq!(l.attention().count(), 0, "terminal does not");
        assert_eq!(l.of_spec("b").len(), 1);
        assert!(!l.has_live("b"));
        l.remove(&TaskId("b.0.1".to_owned()));
        assert!(l.of_spec("b").is_empty());
        assert_eq!(l.spec_ids().count(), 1);
        assert_eq!(l.take_changed(), BTreeSet::from(["b".to_owned()]));
    }
}
