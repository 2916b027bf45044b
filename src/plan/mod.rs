//! `plan`: the pure core of the controller. One call compares the whole desired state (the specs in
//! force) with the whole observed state (the task ledger and the per-instance and per-rollout
//! bookkeeping) and the offers held now, and says what to do: which tasks to launch on which offer,
//! which tasks to kill and why, which offers to decline and for how long, whether to suppress or
//! revive offers, and, for every wanted instance that is not running, a reason a person understands.
//!
//! It does no IO, reads no clock (time comes in as `now_ms`), and knows nothing of tokio, sled or
//! prost, so every behaviour is tested as a table of (state) -> (actions, pending).
//!
//! Code map:
//! - this file: the public types and [`plan`], which runs the steps below in order;
//! - `decide`: per spec and instance, what is missing, surplus or unwanted (scaling, surplus copies,
//!   rolling and replace updates, restart policies, reconciliation waits);
//! - `rollout`: when a rollout starts, stops (failure, deadline) or completes;
//! - `backoff`: the restart bookkeeping when a task ends ([`instance_after_end`]);
//! - `guard`: the mass-deletion guard;
//! - `placement`: fitting tasks onto offers (resources, ports, roles, constraints, packing);
//! - `reasons`: why an instance that could not be placed is pending.

mod backoff;
mod decide;
mod guard;
mod placement;
pub mod preview;
mod reasons;
mod rollout;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Offer, Resources, TaskId, TaskRecord};
use crate::spec::{Spec, SpecId};

pub use backoff::{backoff_delay, instance_after_end};

/// Refuse filter for unused offers while something is pending for want of an offer: short, so that
/// resources freed elsewhere (or by a kill this pass) are offered again soon.
pub const SHORT_REFUSE_SECONDS: f64 = 5.0;
/// Refuse filter for unused offers when nothing needs one. A later need revives offers, which
/// clears every filter, so a long filter never delays a launch.
pub const LONG_REFUSE_SECONDS: f64 = 120.0;
/// The kill grace of a deleted spec whose last applied version is not known any more (the spec
/// default).
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

/// A spec in force and its generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Shared with the set in force (`DesiredSet::specs`): one copy of each spec in memory.
    pub spec: Arc<Spec>,
    /// `spec.content_hash()` as text: tasks launched from this spec carry it in the ledger.
    pub generation: String,
    /// The spec that was in force before the last change of generation, if the controller still
    /// has it. Only used while a rollout is stopped: an instance whose old-generation task ends is
    /// then relaunched from this spec rather than from the generation that failed. Without it such
    /// an instance is relaunched from `spec` (there is nothing else to run).
    pub previous: Option<Arc<Spec>>,
}

impl Desired {
    /// The desired state of `spec`, its generation computed from its content.
    pub fn new(spec: impl Into<Arc<Spec>>) -> Self {
        let spec = spec.into();
        Desired {
            generation: spec.content_hash().to_string(),
            spec,
            previous: None,
        }
    }

    /// Remembers the spec in force before this one (see [`Desired::previous`]).
    pub fn with_previous(mut self, previous: impl Into<Arc<Spec>>) -> Self {
        self.previous = Some(previous.into());
        self
    }
}

/// One instance of one spec: `team-a/web#2`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceKey {
    pub spec: SpecId,
    pub instance: u32,
}

impl InstanceKey {
    pub fn new(spec: SpecId, instance: u32) -> Self {
        InstanceKey { spec, instance }
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.spec, self.instance)
    }
}

/// Text that is not `<spec id>#<instance>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an instance key (`<spec id>#<instance>`)")]
pub struct ParseInstanceKeyError(String);

impl FromStr for InstanceKey {
    type Err = ParseInstanceKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseInstanceKeyError(s.to_owned());
        let (spec, instance) = s.rsplit_once('#').ok_or_else(bad)?;
        Ok(InstanceKey {
            spec: SpecId::new(spec).map_err(|_| bad())?,
            instance: instance.parse().map_err(|_| bad())?,
        })
    }
}

/// The restart bookkeeping of one instance, for the generation it last ran. Changed only by
/// [`instance_after_end`] (which the controller calls when a task of the instance ends) and
/// persisted by the controller. A state for another generation than the one being launched is
/// ignored: a new generation starts afresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceState {
    /// The generation of the task whose end was recorded last.
    pub generation: String,
    /// Ends counted by the restart policy since the last reset (`backoff.reset_after` of running).
    pub consecutive_failures: u32,
    pub last_task: Option<TaskId>,
    pub last_end_ms: Option<u64>,
    /// How the last counted failure ended, e.g. `TASK_FAILED (COMMAND_EXECUTOR_FAILED): exit 1`.
    pub last_failure: Option<String>,
    /// Whether the last end was counted as a failure (for the failure counter).
    pub last_end_counted: bool,
    /// No relaunch before this time (ms since the epoch).
    pub backoff_until_ms: Option<u64>,
    /// `on-failure` with `max_failures` reached: not relaunched until the generation changes.
    pub given_up: bool,
    /// Finished for good (FINISHED under `on-failure`, any end under `never`) until the generation
    /// changes.
    pub done: bool,
}

impl InstanceState {
    /// Whether going from `prev` to this state counted one more failure.
    pub fn counts_failure(&self, prev: Option<&InstanceState>) -> bool {
        self.last_end_counted && prev != Some(self)
    }
}

/// A rollout of a new generation of a spec, in progress or stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutState {
    /// The generation being rolled out.
    pub generation: String,
    pub started_at_ms: u64,
    /// Set when the new generation failed or missed its deadline; the old generation keeps
    /// running until a newer edit.
    pub stopped: Option<RolloutStop>,
}

/// Why and when a rollout stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStop {
    pub at_ms: u64,
    pub reason: String,
}

impl RolloutState {
    /// One line for the status page.
    pub fn describe(&self) -> String {
        let generation = short_generation(&self.generation);
        match &self.stopped {
            None => format!(
                "rolling out generation {generation} since {}",
                crate::timefmt::utc(self.started_at_ms)
            ),
            Some(stop) => format!(
                "rollout of generation {generation} stopped at {}: {}; the old generation keeps running",
                crate::timefmt::utc(stop.at_ms),
                stop.reason
            ),
        }
    }
}

/// What recent offers told the controller, for pending reasons and attribute constraints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfferStats {
    /// How many offers the figures below come from (0: none seen in the window).
    pub offers: u64,
    /// The largest amount of each resource seen in one offer in the window (the last minute).
    pub cpus: f64,
    pub mem: f64,
    pub disk: f64,
    pub gpus: f64,
    pub ports: u64,
    /// Every agent seen in an offer, by agent id. Keep an agent at least while a task runs there:
    /// `unique`/`max_per` constraints on an attribute read the attribute of the agents that run
    /// the spec's tasks from here (the ledger keeps only the hostname).
    pub agents: BTreeMap<String, AgentInfo>,
}

impl OfferStats {
    /// The largest of each resource over `offers` (the resources of the offers in the window).
    pub fn from_offers<'a>(offers: impl IntoIterator<Item = &'a Resources>) -> Self {
        let mut stats = OfferStats::default();
        for r in offers {
            stats.observe(r);
        }
        stats
    }

    /// Counts one more offer's resources.
    pub fn observe(&mut self, r: &Resources) {
        self.offers += 1;
        self.cpus = self.cpus.max(r.cpus);
        self.mem = self.mem.max(r.mem);
        self.disk = self.disk.max(r.disk);
        self.gpus = self.gpus.max(r.gpus);
        self.ports = self.ports.max(r.port_count());
    }

    /// Adds the agents of `offers` (hostname and attributes) to [`OfferStats::agents`].
    pub fn with_agents<'a>(mut self, offers: impl IntoIterator<Item = &'a Offer>) -> Self {
        for offer in offers {
            self.agents
                .insert(offer.agent_id.clone(), AgentInfo::of(offer));
        }
        self
    }
}

/// An agent as its offers describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub hostname: String,
    pub attributes: BTreeMap<String, String>,
}

impl AgentInfo {
    pub fn of(offer: &Offer) -> Self {
        AgentInfo {
            hostname: offer.hostname.clone(),
            attributes: offer.attributes.clone(),
        }
    }
}

/// Everything one pass looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub now_ms: u64,
    /// The specs in force; for a file that is currently invalid, its last valid version.
    pub desired: &'a BTreeMap<SpecId, Desired>,
    /// Spec ids whose file is invalid and that have no valid version in force -> a short error.
    /// Their instances are pending with the error; tasks the ledger has for them are left alone.
    pub invalid: &'a BTreeMap<SpecId, String>,
    /// The last applied spec of ids the controller still remembers, including ids whose file is
    /// gone. Only read for the `kill_grace` of deleted specs ([`DEFAULT_KILL_GRACE`] when absent).
    pub applied: &'a BTreeMap<SpecId, Arc<Spec>>,
    /// Every task the controller may have launched; terminal ones are kept a while.
    pub ledger: &'a BTreeMap<TaskId, TaskRecord>,
    pub instances: &'a BTreeMap<InstanceKey, InstanceState>,
    pub rollouts: &'a BTreeMap<SpecId, RolloutState>,
    /// The offers held now, in the order they should be tried (first fit).
    pub offers: &'a [Offer],
    pub offer_stats: &'a OfferStats,
    /// The role of tasks whose spec names none; an offer is used only for tasks of its role.
    pub framework_role: &'a str,
    /// Explicit reconciliation is not answered yet: launch nothing for an instance that may still
    /// have a task in an unknown state.
    pub awaiting_reconciliation: bool,
    /// The operator released the mass-deletion guard.
    pub deletions_approved: bool,
    /// Offers are suppressed now (set after applying [`Action::Suppress`], cleared after
    /// [`Action::Revive`] and on every (re)subscription).
    pub suppressed: bool,
}

/// What one pass decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Kills first (in spec, instance order), then one launch per offer used (in offer order), then
    /// at most one decline, then revive or suppress.
    pub actions: Vec<Action>,
    /// Every wanted instance that is not running and was not launched this pass, with why.
    pub pending: BTreeMap<InstanceKey, Pending>,
    /// Rollout states to persist: `Some` to write, `None` to delete.
    pub rollout_updates: BTreeMap<SpecId, Option<RolloutState>>,
    /// Kills held by the mass-deletion guard.
    pub guard: Option<GuardHold>,
    /// The earliest time (ms since the epoch) at which a pass would decide something else by the
    /// passing of time alone: a backoff expiring, a rollout deadline, an unreachable timeout.
    pub next_wakeup_ms: Option<u64>,
}

/// One thing for the controller to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Accept one offer, launching all of `tasks` on it.
    Launch {
        offer_id: String,
        agent_id: String,
        hostname: String,
        tasks: Vec<Launch>,
    },
    Decline {
        offer_ids: Vec<String>,
        refuse_seconds: f64,
    },
    /// Mark the record `kill_requested` (so its end is expected), then send KILL.
    Kill {
        task_id: TaskId,
        agent_id: Option<String>,
        grace: Duration,
        reason: KillReason,
    },
    Suppress,
    Revive,
}

/// One task to launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub task_id: TaskId,
    pub spec_id: SpecId,
    pub instance: u32,
    /// The generation of `spec`; normally the one in force, the previous one while a rollout is
    /// stopped.
    pub generation: String,
    /// The spec to build the task from (it is not always the one in force, see `generation`).
    pub spec: Spec,
    /// The scalars of the spec and the exact port ranges chosen from the offer.
    pub resources: Resources,
    /// The chosen ports in order: `PORT0`, `PORT1`, ...
    pub ports: Vec<u64>,
}

/// Why a task is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillReason {
    /// Its spec file was deleted.
    SpecDeleted,
    /// `instances` was lowered below its instance number.
    ScaledDown,
    /// A rollout replaced it with the new generation.
    Replaced,
    /// It belongs to a rollout that stopped (failed or missed its deadline).
    RolloutStopped,
    /// Its instance has another copy of the same generation (e.g. an unreachable task came back
    /// after its replacement started).
    Surplus,
}

impl fmt::Display for KillReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KillReason::SpecDeleted => "spec deleted",
            KillReason::ScaledDown => "scaled down",
            KillReason::Replaced => "replaced by the new generation",
            KillReason::RolloutStopped => "rollout stopped",
            KillReason::Surplus => "surplus copy of its instance",
        })
    }
}

/// Why a wanted instance is not running.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub reason: PendingReason,
    /// One sentence for a person, e.g. `needs 8 cpus; the largest offer in the last minute had 4`.
    pub message: String,
    /// When the instance will be tried again by time alone (the end of its backoff).
    pub until_ms: Option<u64>,
}

/// The kind of [`Pending`], for metrics and for code that must tell them apart.
#[derive(Debug, Clone, PartialEq)]
pub enum PendingReason {
    /// A new spec file that is invalid: nothing runs.
    InvalidSpec,
    /// Explicit reconciliation is not answered and the instance may still have a task.
    WaitingForReconciliation,
    /// Relaunch after the backoff.
    Backoff { until_ms: u64 },
    /// `on-failure` gave up after `max_failures` consecutive failures.
    GivenUp { failures: u32 },
    /// The rollout of `generation` stopped; the instance keeps its old generation.
    RolloutStopped { generation: String },
    /// `replace` rollout: old-generation tasks must end before new ones start.
    WaitingForOldGeneration { tasks: usize },
    /// A deleted spec's task kept by the mass-deletion guard.
    DeletionHeld,
    /// No offer seen in the last minute had enough of a resource.
    InsufficientResources {
        resource: ResourceKind,
        needed: f64,
        largest: f64,
    },
    /// No agent seen meets the spec's constraints.
    Constraint,
    /// Offers are held but none fits now (too little free, other role, constraints).
    NoOfferFits,
    /// No offer is held.
    WaitingForOffer,
}

/// A resource a task needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Cpus,
    Mem,
    Disk,
    Gpus,
    Ports,
}

/// Kills the mass-deletion guard holds back: one pass would kill the instances of more than half of
/// all specs known, and of at least three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardHold {
    /// The deleted specs whose tasks are kept.
    pub specs: Vec<SpecId>,
    /// How many tasks the held kills concern.
    pub tasks: usize,
    /// All specs known: in force, invalid, and deleted with tasks left.
    pub total_specs: usize,
}

impl GuardHold {
    /// One sentence for logs and the status page.
    pub fn message(&self) -> String {
        format!(
            "mass-deletion guard: holding the kills of {} tasks of {} of {} specs ({}) until an \
             operator approves the deletions or the files come back",
            self.tasks,
            self.specs.len(),
            self.total_specs,
            self.specs
                .iter()
                .map(SpecId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// What `plan` decided about one spec in force, owned, so that a caller that plans incrementally
/// (the controller) can keep it until something about the spec changes: its spec, its ledger
/// records, its instances' backoff, its rollout, or the time passing [`SpecDecision::wakeup_ms`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecDecision {
    /// Kills, in the order the per-spec step decided them (sorted again by [`finish`]).
    pub kills: Vec<KillOrder>,
    /// Instances to launch, in instance order.
    pub wants: Vec<WantOrder>,
    /// Instances that wait, and why (placement adds its own reasons for wants it cannot place).
    pub pending: Vec<(InstanceKey, Pending)>,
    /// `Some(Some(state))`: write this rollout state; `Some(None)`: the rollout is over.
    pub rollout_update: Option<Option<RolloutState>>,
    /// The earliest time at which the passing of time alone changes this decision.
    pub wakeup_ms: Option<u64>,
}

/// One kill a per-spec decision asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct KillOrder {
    pub task_id: TaskId,
    pub agent_id: Option<String>,
    /// The spec id as the ledger spells it, and the instance: the order kills are sent in.
    pub spec_id: String,
    pub instance: u32,
    pub grace: Duration,
    pub reason: KillReason,
}

/// One instance to launch.
#[derive(Debug, Clone, PartialEq)]
pub struct WantOrder {
    pub key: InstanceKey,
    pub generation: String,
    /// Launch from [`Desired::previous`] (a stopped rollout) rather than the spec in force.
    pub previous: bool,
}

/// Decides one spec in force, given all the ledger records of its id.
pub fn decide_spec<'a>(
    input: &PlanInput<'a>,
    id: &'a SpecId,
    desired: &'a Desired,
    records: &[&'a TaskRecord],
) -> SpecDecision {
    let mut out = decide::Decisions::default();
    decide::decide_spec(input, id, desired, records, &mut out);
    SpecDecision {
        kills: out.kills.iter().map(kill_order).collect(),
        wants: out
            .wants
            .iter()
            .map(|w| WantOrder {
                key: w.key.clone(),
                generation: w.generation.clone(),
                previous: !std::ptr::eq(w.spec, &*desired.spec),
            })
            .collect(),
        pending: out.pending.into_iter().collect(),
        rollout_update: out.rollout_updates.into_values().next(),
        wakeup_ms: out.wakeup,
    }
}

/// The pending entry of a new spec file that does not validate (and has no valid version).
pub fn invalid_pending(id: &SpecId, error: &str) -> (InstanceKey, Pending) {
    let mut out = decide::Decisions::default();
    decide::pend_invalid(id, error, &mut out);
    out.pending
        .into_iter()
        .next()
        .expect("pend_invalid pends one instance")
}

/// The live tasks of a deleted spec that deleting it kills (or the guard holds).
pub fn deletion_victims<'a>(
    records: impl IntoIterator<Item = &'a TaskRecord>,
) -> Vec<&'a TaskRecord> {
    decide::deletion_victims(records)
}

fn kill_order(k: &decide::Kill<'_>) -> KillOrder {
    KillOrder {
        task_id: k.record.task_id.clone(),
        agent_id: k.record.agent_id.clone(),
        spec_id: k.record.spec_id.clone(),
        instance: k.record.instance,
        grace: k.grace,
        reason: k.reason,
    }
}

/// What is outstanding across all specs, for [`finish`].
#[derive(Debug, Default)]
pub struct Outstanding<'a> {
    /// The kills of the per-spec decisions.
    pub kills: Vec<&'a KillOrder>,
    /// The wants of the per-spec decisions, in (spec id, instance) order.
    pub wants: Vec<&'a WantOrder>,
    /// The live tasks of deleted specs (from [`deletion_victims`]), by spec id as the ledger
    /// spells it; only specs with victims.
    pub deletions: BTreeMap<&'a str, Vec<&'a TaskRecord>>,
    /// All specs known: in force, invalid new, and deleted with tasks left (for the guard).
    pub known_specs: usize,
}

/// The part of a pass that looks across specs: the mass-deletion guard, placement of the wants on
/// the offers, declines, and suppress or revive.
#[derive(Debug, Default)]
pub struct Finished {
    /// Kills (sorted, one per task), launches, at most one decline, then revive or suppress.
    pub actions: Vec<Action>,
    /// Pending reasons of wants no offer took, and of deleted specs' tasks the guard holds.
    pub pending: Vec<(InstanceKey, Pending)>,
    /// Rollouts to forget (their spec is gone).
    pub rollouts_over: Vec<SpecId>,
    pub guard: Option<GuardHold>,
}

/// Finishes a pass over the outstanding decisions. `records_of` gives every ledger record of a spec
/// id (only asked for specs whose wants have constraints). Work is proportional to the outstanding
/// kills, wants and deletions, and to the offers held; not to the number of specs.
pub fn finish<'a>(
    input: &PlanInput<'a>,
    outstanding: Outstanding<'a>,
    records_of: &dyn Fn(&str) -> Vec<&'a TaskRecord>,
    new_task_id: &mut dyn FnMut(&SpecId, u32, &str) -> TaskId,
) -> Finished {
    let mut held = decide::Decisions::default();
    let guard = guard::apply(
        input,
        outstanding.deletions,
        outstanding.known_specs,
        &mut held,
    );
    let wants: Vec<decide::Want<'a>> = outstanding
        .wants
        .iter()
        .filter_map(|w| {
            let desired = input.desired.get(&w.key.spec)?;
            let spec = if w.previous {
                desired.previous.as_ref()?
            } else {
                &desired.spec
            };
            Some(decide::Want {
                key: w.key.clone(),
                spec,
                generation: w.generation.clone(),
            })
        })
        .collect();

    // One kill per task, in (spec id, instance, task id) order whatever step decided it.
    let guard_kills: Vec<KillOrder> = held.kills.iter().map(kill_order).collect();
    let mut kills: Vec<&KillOrder> = outstanding.kills;
    kills.extend(guard_kills.iter());
    kills.sort_by_key(|k| (k.spec_id.as_str(), k.instance, k.task_id.0.as_str()));
    kills.dedup_by(|a, b| a.task_id == b.task_id);
    let killed: std::collections::BTreeSet<&TaskId> = kills.iter().map(|k| &k.task_id).collect();

    let mut placer = placement::Placer::new(input, &wants, &killed, records_of);
    let mut unplaced = Vec::new();
    for want in &wants {
        if !placer.place(want, new_task_id) {
            unplaced.push(want);
        }
    }
    let mut pending: Vec<(InstanceKey, Pending)> = held.pending.into_iter().collect();
    for want in &unplaced {
        pending.push((want.key.clone(), reasons::explain(input, &placer, want)));
    }

    let mut actions: Vec<Action> = kills
        .into_iter()
        .map(|k| Action::Kill {
            task_id: k.task_id.clone(),
            agent_id: k.agent_id.clone(),
            grace: k.grace,
            reason: k.reason,
        })
        .collect();
    let (launches, unused) = placer.into_launches();
    actions.extend(launches);
    let needs_offers = !unplaced.is_empty();
    if !unused.is_empty() {
        actions.push(Action::Decline {
            offer_ids: unused,
            refuse_seconds: if needs_offers {
                SHORT_REFUSE_SECONDS
            } else {
                LONG_REFUSE_SECONDS
            },
        });
    }
    if needs_offers && input.suppressed {
        actions.push(Action::Revive);
    } else if !needs_offers && !input.suppressed {
        actions.push(Action::Suppress);
    }
    Finished {
        actions,
        pending,
        rollouts_over: held
            .rollout_updates
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect(),
        guard,
    }
}

/// Plans one whole pass: every spec in force decided afresh, then [`finish`]. `new_task_id` names
/// each task placed on an offer, given its spec, instance and generation (the controller's
/// `crate::task_ids::task_id`); it is called only for tasks actually launched. The controller plans incrementally with the same
/// pieces ([`decide_spec`], [`finish`]); this is the reference it is tested against.
pub fn plan(
    input: &PlanInput<'_>,
    new_task_id: &mut dyn FnMut(&SpecId, u32, &str) -> TaskId,
) -> Plan {
    let mut by_spec: BTreeMap<&str, Vec<&TaskRecord>> = BTreeMap::new();
    for r in input.ledger.values() {
        by_spec.entry(r.spec_id.as_str()).or_default().push(r);
    }
    let decisions: Vec<SpecDecision> = input
        .desired
        .iter()
        .map(|(id, desired)| {
            let records = by_spec.get(id.as_str()).map_or(&[][..], Vec::as_slice);
            decide_spec(input, id, desired, records)
        })
        .collect();
    let mut pending: BTreeMap<InstanceKey, Pending> = BTreeMap::new();
    let mut rollout_updates = BTreeMap::new();
    let mut wakeup: Option<u64> = None;
    for (id, d) in input.desired.keys().zip(&decisions) {
        pending.extend(d.pending.iter().cloned());
        if let Some(update) = &d.rollout_update {
            rollout_updates.insert(id.clone(), update.clone());
        }
        if let Some(at) = d.wakeup_ms {
            wakeup = Some(wakeup.map_or(at, |w| w.min(at)));
        }
    }
    let mut invalid_known = 0;
    for (id, error) in input.invalid {
        if input.desired.contains_key(id) {
            continue;
        }
        invalid_known += 1;
        let (key, p) = invalid_pending(id, error);
        pending.insert(key, p);
    }
    let mut deletions = BTreeMap::new();
    for (spec_id, records) in &by_spec {
        let id = SpecId::new(*spec_id).ok();
        let known = id
            .as_ref()
            .is_some_and(|id| input.desired.contains_key(id) || input.invalid.contains_key(id));
        if known {
            continue;
        }
        let victims = deletion_victims(records.iter().copied());
        if !victims.is_empty() {
            deletions.insert(*spec_id, victims);
        }
    }
    let outstanding = Outstanding {
        kills: decisions.iter().flat_map(|d| &d.kills).collect(),
        wants: decisions.iter().flat_map(|d| &d.wants).collect(),
        known_specs: input.desired.len() + invalid_known + deletions.len(),
        deletions,
    };
    let records_of = |id: &str| by_spec.get(id).cloned().unwrap_or_default();
    let finished = finish(input, outstanding, &records_of, new_task_id);
    pending.extend(finished.pending);
    for id in finished.rollouts_over {
        rollout_updates.insert(id, None);
    }
    Plan {
        actions: finished.actions,
        pending,
        rollout_updates,
        guard: finished.guard,
        next_wakeup_ms: wakeup,
    }
}

/// The first 8 characters of a generation, enough to tell generations apart in messages.
pub fn short_generation(generation: &str) -> &str {
    generation.get(..8).unwrap_or(generation)
}
