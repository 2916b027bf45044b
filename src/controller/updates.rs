//! How a status update changes the state: the ledger record, the instance's backoff and the
//! history, written and flushed before the update is acknowledged (durability rule 3).
//!
//! Updates arrive in bursts (a thousand tasks starting, an agent re-sending after a
//! re-subscription). Each is written to the store as it is handled, and its acknowledgement
//! waits in `pending_acks`; [`Controller::flush_and_acknowledge`] then flushes once for the whole
//! burst and sends the acknowledgements together. The rule is unchanged: nothing is acknowledged
//! before it is on disk.

use std::collections::{BTreeMap, VecDeque};

use super::state::{Attempt, Controller};
use crate::model::{TaskRecord, TaskState, TaskUpdate};
use crate::plan::InstanceKey;
use crate::spec::model::SpecId;
use crate::store::Tree;

/// Attempts kept per instance in the history.
const HISTORY_PER_INSTANCE: usize = 10;

impl Controller {
    pub(super) async fn on_update(&mut self, u: TaskUpdate) {
        self.counts.status_updates += 1;
        if let Some(call) = self.reconciliation.answered(&u.task_id) {
            self.send_reconcile(call).await;
        }
        self.asked_stale.remove(&u.task_id);
        if self.ledger.get(&u.task_id).is_none() {
            self.on_unknown_task(u).await;
            return;
        }
        self.update_record(u).await;
    }

    /// Applies an update to the ledger record of its task (which must exist): written, then
    /// acknowledged after the next flush.
    pub(super) async fn update_record(&mut self, u: TaskUpdate) {
        let now = self.clock.now_ms();
        let Some(record) = self.ledger.get(&u.task_id).cloned() else {
            return;
        };
        let was_live = record.is_live();
        let mut r = record;
        let previous_state = r.state;
        r.state = u.state;
        r.updated_at_ms = now;
        if u.agent_id.is_some() {
            r.agent_id.clone_from(&u.agent_id);
        }
        if u.healthy.is_some() {
            r.healthy = u.healthy;
        }
        // The reason and message describe the latest update, so a later update without a reason
        // clears them. A reconciliation answer that only repeats the state the ledger has keeps
        // the reason that state came with ("exit 3" is worth more than "Latest task state").
        let repeats_state =
            u.reason.as_deref() == Some("RECONCILIATION") && u.state == previous_state;
        if !repeats_state {
            r.reason.clone_from(&u.reason);
            r.message.clone_from(&u.message);
        }
        match u.state {
            TaskState::Running => {
                r.unreachable_since_ms = None;
                if r.running_since_ms.is_none() {
                    r.running_since_ms = Some(now);
                }
            }
            // Both mean "Mesos cannot see the task now"; the time it started is kept across
            // repeated answers, for `unreachable_after` and for forgetting UNKNOWN tasks.
            TaskState::Unreachable | TaskState::Unknown => {
                r.unreachable_since_ms.get_or_insert(now);
            }
            _ => {}
        }
        // Health is a property of a running task: a task that is no longer running is neither.
        if u.healthy.is_none() && u.state != TaskState::Running {
            r.healthy = None;
        }
        if r.state.is_terminal() {
            r.cluster_caused = u.cluster_caused();
        }
        if self.ledger.get(&r.task_id).map(|o| (o.state, o.healthy)) != Some((r.state, r.healthy)) {
            tracing::info!(task_id = %r.task_id, spec = %r.spec_id, "{}", transition_line(&r));
            self.emit_transition(&r, Some(previous_state));
        }
        // An answer that changes nothing but the time (a reconciliation of a task known to run,
        // an update sent again) is not written: after a restart with 100,000 tasks, that is
        // 100,000 writes saved. An acknowledgement it needs is still sent after the next flush.
        if self
            .ledger
            .get(&r.task_id)
            .is_some_and(|old| same_but_time(old, &r))
        {
            if u.uuid.is_some() {
                self.pending_acks.push(u);
            }
            return;
        }
        // Durability rule 3: written now, flushed and then acknowledged with the rest of the burst.
        // Written before anything in memory changes: an update that could not be written is
        // forgotten whole, and the agent sends it again (it is not acknowledged).
        if let Err(e) = self.store.put(Tree::Ledger, &r.task_id.0, &r) {
            tracing::error!(error = %e, task_id = %r.task_id, "cannot write the ledger; the update stays unacknowledged");
            return;
        }
        if was_live && r.state.is_terminal() {
            self.record_end(&r);
        }
        self.touch_history(&r);
        self.ledger.put(r.clone());
        if u.uuid.is_some() {
            self.pending_acks.push(u);
        }
        // A kill sent while the task's agent was unreachable could not reach it (the master has
        // no agent to forward it to). Now that the task is heard from again, the kill is sent
        // again at once, not KILL_RETRY_MS after this update.
        let back = matches!(previous_state, TaskState::Unreachable | TaskState::Unknown)
            && r.is_live()
            && !matches!(r.state, TaskState::Unreachable | TaskState::Unknown);
        if back && r.kill_requested {
            tracing::info!(task_id = %r.task_id, "reachable again: sending its kill again");
            let grace = self.kill_grace_of(&r.task_id);
            self.send_kill(&r.task_id, r.agent_id.as_deref(), grace)
                .await;
        }
    }

    /// A task of this framework the ledger does not know (found by implicit reconciliation, or
    /// launched while the ledger that knew it was lost or is older): it is adopted from the
    /// master's list of tasks (`adopt.rs`), and the update applied then. An update that it ended
    /// needs nothing but its acknowledgement.
    pub(super) async fn on_unknown_task(&mut self, u: TaskUpdate) {
        if u.state.is_terminal() {
            self.acknowledge(&u).await;
        } else {
            self.hold_unknown(u);
        }
    }

    /// Bookkeeping when a task reaches a terminal state: the instance's backoff and failure count.
    pub(super) fn record_end(&mut self, r: &TaskRecord) {
        let Some(spec) = SpecId::new(r.spec_id.clone())
            .ok()
            .and_then(|id| self.desired.specs.get(&id))
        else {
            return;
        };
        let key = InstanceKey::new(spec.id.clone(), r.instance);
        let now = self.clock.now_ms();
        let next = crate::plan::instance_after_end(self.instances.get(&key), r, spec, now);
        if next.counts_failure(self.instances.get(&key)) {
            self.counts.failures += 1;
        }
        if let Err(e) = self
            .store
            .put(Tree::Backoff, &key.to_string(), &(&key, &next))
        {
            tracing::error!(error = %e, "cannot record the instance's backoff");
        }
        self.instances.insert(key, next);
    }

    pub(super) fn touch_history(&mut self, r: &TaskRecord) {
        let key = history_key(r);
        let list = self.history.entry(key.clone()).or_default();
        let ended = r.state.is_terminal().then_some(r.updated_at_ms);
        match list.iter_mut().find(|a| a.task_id == r.task_id.0) {
            Some(a) => {
                a.state = r.state;
                a.ended_ms = ended;
                a.reason = describe_outcome(r);
                a.agent_id.clone_from(&r.agent_id);
            }
            None => add_attempt(list, r),
        }
        // History may be lost in a crash (it is not flushed on its own); the ledger is the truth.
        // An attempt is written when it ends. While it lives, its ledger record says all the
        // history would (`restore_live_attempts` rebuilds it at start), which saves a write per
        // launch and per transition.
        if !r.state.is_terminal() {
            return;
        }
        if let Err(e) = self.store.put(Tree::History, &key, list) {
            tracing::warn!(error = %e, "cannot record history");
        }
    }

    /// Writes ledger records and flushes them.
    /// Flushes every update written since the last call, then acknowledges them. If the flush
    /// fails nothing is acknowledged: the agents send the updates again.
    pub(super) async fn flush_and_acknowledge(&mut self) {
        if self.pending_acks.is_empty() {
            return;
        }
        let acks = std::mem::take(&mut self.pending_acks);
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "cannot flush the ledger; status updates stay unacknowledged");
            return;
        }
        crate::failpoint::hit("after-persist-before-ack");
        self.acknowledge_all(&acks).await;
    }

    /// Writes ledger records and flushes them; false if either failed.
    pub(super) async fn persist_records(&mut self, records: &[TaskRecord]) -> bool {
        let write = self.store.put_all(
            Tree::Ledger,
            records.iter().map(|r| (r.task_id.0.as_str(), r)),
        );
        if let Err(e) = write {
            tracing::error!(error = %e, "cannot write the ledger");
            return false;
        }
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "cannot flush the ledger");
            return false;
        }
        true
    }
}

/// The history of one instance: `<spec>#<instance>`.
fn history_key(r: &TaskRecord) -> String {
    format!("{}#{}", r.spec_id, r.instance)
}

/// Adds an attempt for a task the history does not list yet, oldest first, keeping the last
/// [`HISTORY_PER_INSTANCE`].
fn add_attempt(list: &mut VecDeque<Attempt>, r: &TaskRecord) {
    let attempt = Attempt {
        task_id: r.task_id.0.clone(),
        started_ms: r.launched_at_ms,
        ended_ms: r.state.is_terminal().then_some(r.updated_at_ms),
        state: r.state,
        reason: describe_outcome(r),
        agent_id: r.agent_id.clone(),
        hostname: r.hostname.clone(),
    };
    let at = list.partition_point(|a| a.started_ms <= attempt.started_ms);
    // Grown one at a time: most instances have one attempt, and a deque's first growth makes room
    // for four (about 400 bytes per instance, 40 MiB at 100,000).
    list.reserve_exact(1);
    list.insert(at, attempt);
    while list.len() > HISTORY_PER_INSTANCE {
        list.pop_front();
    }
}

/// The history as stored, completed from the ledger: a live attempt is only written when it ends,
/// so every ledger record the stored history does not list is added, and a listed attempt that
/// has not ended takes the ledger's state.
pub(super) fn restore_live_attempts(
    history: &mut BTreeMap<String, VecDeque<Attempt>>,
    ledger: &super::ledger::Ledger,
) {
    for r in ledger.values() {
        let list = history.entry(history_key(r)).or_default();
        match list.iter_mut().find(|a| a.task_id == r.task_id.0) {
            Some(a) if a.ended_ms.is_none() => a.state = r.state,
            Some(_) => {}
            None => add_attempt(list, r),
        }
    }
}

/// Whether two versions of a record differ only in `updated_at_ms`.
fn same_but_time(a: &TaskRecord, b: &TaskRecord) -> bool {
    let mut b = b.clone();
    b.updated_at_ms = a.updated_at_ms;
    *a == b
}

/// The reason and message of a task's latest update as one line for the history
/// (`AGENT_REMOVED: agent lost`, or whichever of the two is present).
fn describe_outcome(r: &TaskRecord) -> Option<String> {
    match (&r.reason, &r.message) {
        (Some(reason), Some(message)) => Some(format!("{reason}: {message}")),
        (Some(one), None) | (None, Some(one)) => Some(one.clone()),
        (None, None) => None,
    }
}

/// One log line per task transition, e.g. `web#0 TASK_RUNNING (healthy)` or
/// `hello#0 TASK_FINISHED: Command exited with status 0`.
fn transition_line(r: &TaskRecord) -> String {
    let mut line = format!("{}#{} {}", r.spec_id, r.instance, r.state);
    match r.healthy {
        Some(true) => line.push_str(" (healthy)"),
        Some(false) => line.push_str(" (unhealthy)"),
        None => {}
    }
    if let Some(outcome) = describe_outcome(r) {
        line.push_str(": ");
        line.push_str(&outcome);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::ledger::Ledger;

    fn record(task: &str, state: TaskState, launched: u64) -> TaskRecord {
        TaskRecord {
            launched_at_ms: launched,
            ..TaskRecord::sample(task, "web", state)
        }
    }

    #[test]
    fn live_attempts_are_restored_from_the_ledger_in_start_order() {
        let ended = {
            let mut list = VecDeque::new();
            add_attempt(&mut list, &record("old", TaskState::Failed, 10));
            list
        };
        let listed_live = record("listed", TaskState::Running, 20);
        let mut history = BTreeMap::from([("web#0".to_owned(), ended)]);
        history
            .get_mut("web#0")
            .unwrap()
            .push_back(add_attempt_of(&record("listed", TaskState::Staging, 20)));
        let ledger = Ledger::from_records([
            record("new", TaskState::Starting, 30),
            listed_live,
            record("old", TaskState::Failed, 10),
        ]);
        restore_live_attempts(&mut history, &ledger);
        let list = &history["web#0"];
        let ids: Vec<&str> = list.iter().map(|a| a.task_id.as_str()).collect();
        assert_eq!(ids, ["old", "listed", "new"]);
        assert_eq!(list[1].state, TaskState::Running, "the ledger's state");
        assert_eq!(list[2].state, TaskState::Starting);
        assert_eq!(list[0].state, TaskState::Failed, "an ended attempt is kept");
    }

    #[test]
    fn history_keeps_the_last_attempts() {
        let mut list = VecDeque::new();
        for i in 0..HISTORY_PER_INSTANCE as u64 + 3 {
            add_attempt(&mut list, &record(&format!("t{i}"), TaskState::Failed, i));
        }
        assert_eq!(list.len(), HISTORY_PER_INSTANCE);
        assert_eq!(list[0].task_id, "t3");
    }

    fn add_attempt_of(r: &TaskRecord) -> Attempt {
        let mut list = VecDeque::new();
        add_attempt(&mut list, r);
        list.pop_front().unwrap()
    }
}
