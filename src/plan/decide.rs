//! Per spec and instance: which tasks are surplus or unwanted (kill), which instances need a task
//! (a [`Want`], placed on offers later), and why the others wait (pending). Scaling, rolling and
//! replace updates, restart policies and the reconciliation wait meet here.
//!
//! How a ledger record counts ([`Presence`]):
//! - terminal: gone;
//! - UNREACHABLE for longer than `unreachable_after`, or UNKNOWN once reconciliation is answered
//!   (the master does not know the task): lost. It no longer holds its instance, so a replacement
//!   is launched at once (the cluster caused it: no backoff). It is not killed: it cannot be
//!   reached. If it comes back, its instance has two copies and the surplus one is killed;
//! - `kill_requested`: dying. It holds no instance but still occupies the cluster (a `replace`
//!   rollout waits for it);
//! - anything else: live, it holds its instance.
//!
//! When an instance has two live copies of the same generation, the one kept is the one that is
//! running and healthy, then running, then launched last (normally the replacement); ties go to
//! the greater task id. Surplus kills wait for reconciliation to be answered, since the states
//! they compare may be stale.

use std::collections::BTreeMap;
use std::time::Duration;

use super::backoff::{Readiness, millis, readiness};
use super::rollout::{self, stopped_message};
use super::{
    Desired, InstanceKey, KillReason, Pending, PendingReason, PlanInput, RolloutState,
    short_generation,
};
use crate::model::{TaskRecord, TaskState};
use crate::spec::{Spec, SpecId, UpdateStrategy};

/// What the per-spec pass decided, before the guard and placement.
#[derive(Debug, Default)]
pub(super) struct Decisions<'a> {
    pub kills: Vec<Kill<'a>>,
    /// Instances to launch, in (spec id, instance) order.
    pub wants: Vec<Want<'a>>,
    pub pending: BTreeMap<InstanceKey, Pending>,
    pub rollout_updates: BTreeMap<SpecId, Option<RolloutState>>,
    pub wakeup: Option<u64>,
}

#[derive(Debug)]
pub(super) struct Kill<'a> {
    pub record: &'a TaskRecord,
    pub grace: Duration,
    pub reason: KillReason,
}

/// An instance that needs a task of `generation`, built from `spec`.
#[derive(Debug)]
pub(super) struct Want<'a> {
    pub key: InstanceKey,
    pub spec: &'a Spec,
    pub generation: String,
}

impl<'a> Decisions<'a> {
    pub fn wake_at(&mut self, at_ms: u64) {
        self.wakeup = Some(self.wakeup.map_or(at_ms, |w| w.min(at_ms)));
    }

    pub fn kill(&mut self, record: &'a TaskRecord, grace: Duration, reason: KillReason) {
        self.kills.push(Kill {
            record,
            grace,
            reason,
        });
    }

    pub fn pend(&mut self, key: InstanceKey, reason: PendingReason, message: String) {
        let until_ms = match reason {
            PendingReason::Backoff { until_ms } => Some(until_ms),
            _ => None,
        };
        self.pending.insert(
            key,
            Pending {
                reason,
                message,
                until_ms,
            },
        );
    }
}

/// How a ledger record counts in this pass (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Presence {
    Ended,
    Lost,
    Dying,
    Live,
}

impl Presence {
    /// Still (possibly) holds resources on the cluster.
    pub fn occupies(self) -> bool {
        matches!(self, Presence::Dying | Presence::Live)
    }
}

pub(super) fn presence(r: &TaskRecord, spec: &Spec, now_ms: u64, awaiting: bool) -> Presence {
    if r.state.is_terminal() {
        Presence::Ended
    } else if (r.state == TaskState::Unreachable && unreachable_deadline(r, spec) <= now_ms)
        || (r.state == TaskState::Unknown && !awaiting)
    {
        Presence::Lost
    } else if r.kill_requested {
        Presence::Dying
    } else {
        Presence::Live
    }
}

/// When an unreachable task stops holding its instance.
pub(super) fn unreachable_deadline(r: &TaskRecord, spec: &Spec) -> u64 {
    r.unreachable_since_ms
        .unwrap_or(r.updated_at_ms)
        .saturating_add(millis(spec.unreachable_after))
}

/// RUNNING, and healthy if the spec has a health check: what a rollout waits for.
pub(super) fn ready(r: &TaskRecord, spec: &Spec) -> bool {
    r.state == TaskState::Running && (spec.health.is_none() || r.healthy == Some(true))
}

/// Runs the decisions of one spec in force, given all its ledger records.
pub(super) fn decide_spec<'a>(
    input: &PlanInput<'a>,
    id: &'a SpecId,
    desired: &'a Desired,
    records: &[&'a TaskRecord],
    out: &mut Decisions<'a>,
) {
    SpecPass {
        input,
        id,
        desired,
        records,
    }
    .run(out);
}

/// The pending reason of a new spec file that does not validate: its intent is unknown, so
/// whatever the ledger has under its id is left alone rather than treated as deleted.
pub(super) fn pend_invalid(id: &SpecId, error: &str, out: &mut Decisions<'_>) {
    out.pend(
        InstanceKey::new(id.clone(), 0),
        PendingReason::InvalidSpec,
        format!("invalid spec, nothing is launched until the file is fixed: {error}"),
    );
}

/// The tasks of a deleted spec that a deletion would kill (the guard may hold them).
pub(super) fn deletion_victims<'a>(
    records: impl IntoIterator<Item = &'a TaskRecord>,
) -> Vec<&'a TaskRecord> {
    records
        .into_iter()
        .filter(|r| !r.state.is_terminal() && !r.kill_requested)
        .collect()
}

/// One spec in force and all its ledger records.
struct SpecPass<'p, 'a> {
    input: &'p PlanInput<'a>,
    id: &'a SpecId,
    desired: &'a Desired,
    records: &'p [&'a TaskRecord],
}

impl<'a> SpecPass<'_, 'a> {
    fn run(&self, out: &mut Decisions<'a>) {
        let spec = &self.desired.spec;
        let generation = self.desired.generation.as_str();
        let n = spec.instances;

        for r in self.records {
            if r.instance >= n && !r.state.is_terminal() && !r.kill_requested {
                out.kill(r, spec.kill_grace, KillReason::ScaledDown);
            }
            if r.instance < n && r.state == TaskState::Unreachable && self.at(r) == Presence::Live {
                out.wake_at(unreachable_deadline(r, spec));
            }
        }

        let view = rollout::advance(self.input, self.id, self.desired, self.records, out);
        for r in self.records {
            if view.doomed.contains(&r.task_id) {
                out.kill(r, spec.kill_grace, KillReason::RolloutStopped);
            }
        }
        let old_occupying = self
            .records
            .iter()
            .filter(|r| r.generation != generation && self.at(r).occupies())
            .count();
        // While a rollout is stopped, instances that lost their task run the previous generation
        // again if it is known.
        let previous = match (&view.stopped, &self.desired.previous) {
            (Some(_), Some(p)) => Some((p, p.content_hash().to_string())),
            _ => None,
        };

        let mut by_instance: BTreeMap<u32, Vec<&'a TaskRecord>> = BTreeMap::new();
        for r in self.records.iter().filter(|r| r.instance < n) {
            by_instance.entry(r.instance).or_default().push(r);
        }
        let live_of = |i: u32| -> (Vec<&'a TaskRecord>, Vec<&'a TaskRecord>) {
            by_instance
                .get(&i)
                .into_iter()
                .flatten()
                .copied()
                .filter(|r| self.at(r) == Presence::Live && !view.doomed.contains(&r.task_id))
                .partition(|r| r.generation == generation)
        };
        // Rolling updates move one instance at a time: none starts while another is in flight
        // (an old task waiting for its new one to be ready).
        let mut step_open = !(0..n).any(|i| {
            let (new, old) = live_of(i);
            !old.is_empty() && !new.is_empty() && !new.iter().any(|r| ready(r, spec))
        });

        let wants_before = out.wants.len();
        for i in 0..n {
            let recs = by_instance.get(&i).map_or(&[][..], Vec::as_slice);
            let key = InstanceKey::new(self.id.clone(), i);
            let (new, old) = live_of(i);
            if old.is_empty() {
                if !new.is_empty() {
                    self.keep_one(&new, out);
                    let running = new
                        .iter()
                        .any(|r| matches!(r.state, TaskState::Running | TaskState::Starting));
                    if !running {
                        // Holds its instance, but whether it exists is not known yet.
                        self.pend_if_unreconciled(&key, recs, out);
                    }
                    continue;
                }
                let (target, target_generation) = previous
                    .as_ref()
                    .map_or((spec, generation), |(p, g)| (*p, g.as_str()));
                if target_generation == generation
                    && spec.update.strategy == UpdateStrategy::Replace
                    && view.stopped.is_none()
                    && old_occupying > 0
                {
                    self.pend_replace(key, old_occupying, out);
                    continue;
                }
                self.launch_or_wait(key, recs, target, target_generation, out);
            } else if let Some(reason) = &view.stopped {
                self.keep_one(&old, out);
                for r in new {
                    out.kill(r, spec.kill_grace, KillReason::RolloutStopped);
                }
                out.pend(
                    key,
                    PendingReason::RolloutStopped {
                        generation: generation.to_owned(),
                    },
                    stopped_message(generation, reason),
                );
            } else if spec.update.strategy == UpdateStrategy::Rolling {
                if new.iter().any(|r| ready(r, spec)) {
                    for r in old {
                        out.kill(r, spec.kill_grace, KillReason::Replaced);
                    }
                    self.keep_one(&new, out);
                } else if !new.is_empty() {
                    self.keep_one(&new, out);
                    self.keep_one(&old, out);
                } else {
                    self.keep_one(&old, out);
                    if step_open {
                        step_open = false;
                        self.launch_or_wait(key, recs, spec, generation, out);
                    }
                }
            } else {
                for r in old {
                    out.kill(r, spec.kill_grace, KillReason::Replaced);
                }
                if new.is_empty() {
                    self.pend_replace(key, old_occupying, out);
                } else {
                    self.keep_one(&new, out);
                }
            }
        }
        let launching_new = out.wants[wants_before..]
            .iter()
            .any(|w| w.generation == generation);
        if view.may_complete && !launching_new {
            out.rollout_updates.insert(self.id.clone(), None);
        }
    }

    fn at(&self, r: &TaskRecord) -> Presence {
        presence(
            r,
            &self.desired.spec,
            self.input.now_ms,
            self.input.awaiting_reconciliation,
        )
    }

    /// Keeps the best of several live copies of one instance and kills the others.
    fn keep_one(&self, copies: &[&'a TaskRecord], out: &mut Decisions<'a>) {
        if copies.len() < 2 || self.input.awaiting_reconciliation {
            return;
        }
        let spec = &self.desired.spec;
        let rank = |r: &&&TaskRecord| {
            (
                ready(r, spec),
                r.state == TaskState::Running,
                r.launched_at_ms,
                r.task_id.clone(),
            )
        };
        let Some(keep) = copies.iter().max_by_key(rank) else {
            return;
        };
        for r in copies {
            if r.task_id != keep.task_id {
                out.kill(r, spec.kill_grace, KillReason::Surplus);
            }
        }
    }

    fn pend_replace(&self, key: InstanceKey, tasks: usize, out: &mut Decisions<'a>) {
        out.pend(
            key,
            PendingReason::WaitingForOldGeneration { tasks },
            format!(
                "waiting for {tasks} task(s) of the old generation to end before starting \
                 generation {} (update strategy replace)",
                short_generation(&self.desired.generation)
            ),
        );
    }

    /// While reconciliation is not answered, an instance with a task in any non-terminal state but
    /// RUNNING or STARTING may have a copy Mesos has not told about: it waits, with that reason.
    fn pend_if_unreconciled(
        &self,
        key: &InstanceKey,
        recs: &[&TaskRecord],
        out: &mut Decisions<'a>,
    ) -> bool {
        if !self.input.awaiting_reconciliation {
            return false;
        }
        let unsure = recs.iter().find(|r| {
            !r.state.is_terminal() && !matches!(r.state, TaskState::Running | TaskState::Starting)
        });
        let Some(r) = unsure else {
            return false;
        };
        out.pend(
            key.clone(),
            PendingReason::WaitingForReconciliation,
            format!(
                "waiting for reconciliation: task {} was last known as {}",
                r.task_id, r.state
            ),
        );
        true
    }

    /// The instance has no live task of the generation it wants: launch one unless reconciliation,
    /// its restart policy or its backoff says to wait.
    fn launch_or_wait(
        &self,
        key: InstanceKey,
        recs: &[&TaskRecord],
        spec: &'a Spec,
        generation: &str,
        out: &mut Decisions<'a>,
    ) {
        if self.pend_if_unreconciled(&key, recs, out) {
            return;
        }
        let state = self
            .input
            .instances
            .get(&key)
            .filter(|s| s.generation == generation);
        let last_failure = |s: &super::InstanceState| {
            s.last_failure
                .clone()
                .unwrap_or_else(|| "unknown".to_owned())
        };
        match readiness(state, self.input.now_ms) {
            Readiness::Launch => out.wants.push(Want {
                key,
                spec,
                generation: generation.to_owned(),
            }),
            Readiness::Done => {}
            Readiness::GivenUp(s) => out.pend(
                key,
                PendingReason::GivenUp {
                    failures: s.consecutive_failures,
                },
                format!(
                    "gave up after {} consecutive failures (backoff.max_failures = {}), last \
                     failure: {}; edit the spec to try again",
                    s.consecutive_failures,
                    spec.backoff.max_failures,
                    last_failure(s)
                ),
            ),
            Readiness::Backoff(s, until_ms) => {
                out.wake_at(until_ms);
                out.pend(
                    key,
                    PendingReason::Backoff { until_ms },
                    format!(
                        "waiting for backoff until {}, last failure: {}",
                        crate::timefmt::utc(until_ms),
                        last_failure(s)
                    ),
                );
            }
        }
    }
}
