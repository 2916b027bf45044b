//! Upkeep driven by time and by the end of a pass: periodic and stale-launch reconciliation,
//! unconfirmed kills sent again, the ledger and instance states pruned, rollout changes recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::reconcile::ReconcileCall;
use super::state::Controller;
use crate::model::{TaskId, TaskRecord, TaskState};
use crate::plan::{InstanceKey, RolloutState};
use crate::spec::model::SpecId;
use crate::store::Tree;

/// A launch with no word from Mesos after this long is asked about explicitly.
const STALE_STAGING_MS: u64 = 30_000;
/// Periodic reconciliation, as the Mesos reconciliation guide recommends.
const RECONCILE_EVERY_MS: u64 = 15 * 60_000;
/// A kill with no end after this long is sent again.
const KILL_RETRY_MS: u64 = 60_000;
/// Terminal ledger records kept per instance (for backoff, history and the status page).
const KEEP_TERMINAL_PER_INSTANCE: usize = 5;

/// A task the master has answered TASK_UNKNOWN for this long (its agent unknown to the master) is
/// taken as gone: Mesos' own agent re-registration timeout is 10 minutes, after which such an agent
/// can no longer bring its tasks back.
const FORGET_UNKNOWN_MS: u64 = 10 * 60_000;

impl Controller {
    pub(super) async fn on_timer(&mut self) {
        self.refresh_sync(None).await;
        let now = Instant::now();
        if !self.acting {
            // A standby keeps its view of the directory; everything else talks to Mesos.
            if now >= self.next_rescan {
                self.reread().await;
            }
            return;
        }
        if self.resubscribe_at.is_some_and(|at| now >= at) && self.subscription.is_none() {
            self.connect();
        }
        self.adoption_tick(now);
        self.probe_store(now).await;
        if now >= self.next_rescan {
            self.reread().await;
        }
        let now_ms = self.clock.now_ms();
        if let Some(call) = self.reconciliation.tick(now_ms) {
            self.send_reconcile(call).await;
        }
        if self.connected {
            self.check_stale_launches(now_ms).await;
            self.forget_unknown_tasks(now_ms).await;
            self.retry_kills(now_ms).await;
            if now_ms.saturating_sub(self.last_reconcile_ms) >= RECONCILE_EVERY_MS
                && !self.reconciliation.awaiting()
            {
                self.last_reconcile_ms = now_ms;
                let tasks: Vec<_> = self
                    .ledger
                    .values()
                    .filter(|r| r.is_live())
                    .map(|r| (r.task_id.clone(), r.agent_id.clone()))
                    .collect();
                let call = self.reconciliation.start(tasks, now_ms);
                self.send_reconcile(call).await;
            }
        }
    }

    /// Launches Mesos never answered (the ACCEPT may have been lost with a connection) are asked
    /// about explicitly; the answer (TASK_LOST/GONE/UNKNOWN for a task the master never saw) makes
    /// them terminal and the plan relaunches them.
    pub(super) async fn check_stale_launches(&mut self, now_ms: u64) {
        let stale: Vec<(TaskId, Option<String>)> = self
            .ledger
            .attention()
            .filter(|r| {
                r.state == TaskState::Staging
                    && now_ms.saturating_sub(r.updated_at_ms) >= STALE_STAGING_MS
                    && !self.asked_stale.contains(&r.task_id)
            })
            .map(|r| (r.task_id.clone(), r.agent_id.clone()))
            .collect();
        if stale.is_empty() {
            return;
        }
        tracing::info!(
            tasks = stale.len(),
            "asking mesos about launches it has not answered"
        );
        self.asked_stale
            .extend(stale.iter().map(|(t, _)| t.clone()));
        self.send_reconcile(ReconcileCall::Explicit(stale)).await;
    }

    /// Tasks the master has not known for [`FORGET_UNKNOWN_MS`] become TASK_GONE in the ledger (the
    /// plan replaced them long ago), so they stop being reconciled and listed forever.
    pub(super) async fn forget_unknown_tasks(&mut self, now_ms: u64) {
        let expired: Vec<TaskRecord> = self
            .ledger
            .attention()
            .filter(|r| unknown_for_too_long(r, now_ms))
            .cloned()
            .collect();
        if expired.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        for mut r in expired {
            tracing::info!(task_id = %r.task_id, "the master has not known this task for 10 minutes: taking it as gone");
            r.state = TaskState::Gone;
            r.cluster_caused = true;
            r.updated_at_ms = now_ms;
            r.message = Some("unknown to the master for 10 minutes".to_owned());
            self.record_end(&r);
            self.touch_history(&r);
            self.ledger.put(r.clone());
            gone.push(r);
        }
        self.persist_records(&gone).await;
    }

    /// Forgets terminal records beyond the few kept per instance, and every terminal record of a
    /// spec that no longer exists; for the spec ids decided in this pass (the others did not change).
    pub(super) fn prune_ledger(&mut self, specs: &BTreeSet<String>) {
        let mut forget = Vec::new();
        for spec in specs {
            let mut by_instance: BTreeMap<u32, Vec<(u64, TaskId)>> = BTreeMap::new();
            for r in self
                .ledger
                .of_spec(spec)
                .into_iter()
                .filter(|r| !r.is_live())
            {
                by_instance
                    .entry(r.instance)
                    .or_default()
                    .push((r.updated_at_ms, r.task_id.clone()));
            }
            let spec_exists = SpecId::new(spec.as_str())
                .ok()
                .is_some_and(|id| self.desired.specs.contains_key(&id));
            let keep = if spec_exists {
                KEEP_TERMINAL_PER_INSTANCE
            } else {
                0
            };
            for mut list in by_instance.into_values() {
                list.sort();
                let drop_n = list.len().saturating_sub(keep);
                forget.extend(list.into_iter().take(drop_n).map(|(_, id)| id));
            }
        }
        for id in forget {
            self.ledger.remove(&id);
            if let Err(e) = self.store.remove(Tree::Ledger, &id.0) {
                tracing::warn!(error = %e, "cannot prune the ledger");
            }
        }
    }

    /// Records a rollout change from the plan (`None` = the rollout is over).
    pub(super) fn set_rollout(&mut self, id: &SpecId, rollout: Option<RolloutState>) {
        self.planned.mark(id.as_str());
        let result = match &rollout {
            Some(r) => {
                if let Some(stop) = &r.stopped {
                    if self
                        .rollouts
                        .get(id)
                        .is_none_or(|old| old.stopped.is_none())
                    {
                        tracing::error!(spec = %id.as_str(), reason = %stop.reason, "rollout stopped; the previous generation keeps running");
                    }
                }
                self.rollouts.insert(id.clone(), r.clone());
                self.store.put(Tree::Rollouts, id.as_str(), &(id, r))
            }
            None => {
                self.rollouts.remove(id);
                self.store.remove(Tree::Rollouts, id.as_str())
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot record the rollout state");
        }
    }

    /// Drops the backoff state of instances no spec wants any more (scaled down or deleted), so a
    /// later scale-up starts them fresh, and retired specs whose tasks are all gone; for the spec
    /// ids decided in this pass.
    pub(super) fn forget_unwanted_instances(&mut self, specs: &BTreeSet<String>) {
        let mut unwanted: Vec<InstanceKey> = Vec::new();
        for spec in specs {
            let Ok(id) = SpecId::new(spec.as_str()) else {
                continue;
            };
            let wanted = self.desired.specs.get(&id).map_or(0, |s| s.instances);
            unwanted.extend(
                self.instances
                    .range(InstanceKey::new(id.clone(), wanted)..)
                    .take_while(|(k, _)| k.spec == id)
                    .map(|(k, _)| k.clone()),
            );
            if self.retired.contains_key(&id) && !self.ledger.has_live(spec) {
                self.retired.remove(&id);
            }
        }
        for k in unwanted {
            self.instances.remove(&k);
            if let Err(e) = self.store.remove(Tree::Backoff, &k.to_string()) {
                tracing::warn!(error = %e, "cannot forget an instance's backoff");
            }
        }
    }

    /// Kills that did not take effect (a lost call, an agent that was away) are sent again.
    pub(super) async fn retry_kills(&mut self, now_ms: u64) {
        let stuck: Vec<(TaskId, Option<String>)> = self
            .ledger
            .attention()
            .filter(|r| {
                r.kill_requested
                    && r.is_live()
                    && now_ms.saturating_sub(r.updated_at_ms) >= KILL_RETRY_MS
            })
            .map(|r| (r.task_id.clone(), r.agent_id.clone()))
            .collect();
        for (task_id, agent) in stuck {
            tracing::info!(%task_id, "kill not confirmed yet: sending it again");
            if let Some(r) = self.ledger.get(&task_id) {
                let mut r = r.clone();
                r.updated_at_ms = now_ms;
                self.ledger.put(r);
            }
            let grace = self.kill_grace_of(&task_id);
            self.send_kill(&task_id, agent.as_deref(), grace).await;
        }
    }

    pub(super) fn kill_grace_of(&self, task_id: &TaskId) -> Duration {
        self.ledger
            .get(task_id)
            .and_then(|r| SpecId::new(r.spec_id.clone()).ok())
            .and_then(|id| {
                self.desired
                    .specs
                    .get(&id)
                    .or_else(|| self.retired.get(&id))
            })
            .map_or(crate::plan::DEFAULT_KILL_GRACE, |s| s.kill_grace)
    }
}

/// TASK_UNKNOWN since at least [`FORGET_UNKNOWN_MS`] ago.
fn unknown_for_too_long(r: &TaskRecord, now_ms: u64) -> bool {
    r.state == TaskState::Unknown
        && r.unreachable_since_ms
            .is_some_and(|since| now_ms.saturating_sub(since) >= FORGET_UNKNOWN_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: TaskState, since: Option<u64>) -> TaskRecord {
        TaskRecord {
            unreachable_since_ms: since,
            ..TaskRecord::sample("a.0.x", "a", state)
        }
    }

    #[test]
    fn unknown_tasks_are_forgotten_after_ten_minutes_only() {
        let t0 = 1_000_000;
        let unknown = record(TaskState::Unknown, Some(t0));
        assert!(!unknown_for_too_long(&unknown, t0 + FORGET_UNKNOWN_MS - 1));
        assert!(unknown_for_too_long(&unknown, t0 + FORGET_UNKNOWN_MS));
        // Unreachable tasks follow the spec's `unreachable_after` (the plan), not this rule.
        let unreachable = record(TaskState::Unreachable, Some(t0));
        assert!(!unknown_for_too_long(
            &unreachable,
            t0 + 2 * FORGET_UNKNOWN_MS
        ));
        let running = record(TaskState::Running, None);
        assert!(!unknown_for_too_long(&running, t0 + 2 * FORGET_UNKNOWN_MS));
    }
}
