//! Table-driven tests of `plan`. Each test builds a small [`World`] (specs, ledger, offers), runs
//! one pass and compares the rendered plan with the lines it expects: actions first, then rollout
//! updates, the guard, pending reasons and the next wake-up. A mismatch prints both lists with the
//! differing lines marked.
//!
//! Generations are shown by label (`web#0@v2`), registered with [`World::desire`] / [`World::label`].

mod basics;
mod placement_reasons;
mod recovery;
mod restart;
mod rollouts;

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    Action, Desired, InstanceKey, InstanceState, OfferStats, Plan, PlanInput, RolloutState, plan,
};
use crate::model::{Offer, Resources, TaskId, TaskRecord, TaskState};
use crate::spec::{
    Backoff, Command, Constraint, ConstraintOp, RestartPolicy, Spec, SpecId, UpdatePolicy,
    UpdateStrategy, format_duration,
};

/// "Now" in every test: 2023-11-14T22:13:20Z.
pub(super) const T0: u64 = 1_700_000_000_000;
pub(super) const SEC: u64 = 1000;

/// A spec with the defaults of `shared/task-spec.md`.
pub(super) fn spec(id: &str) -> Spec {
    Spec {
        id: SpecId::new(id).unwrap(),
        command: Command::Shell("sleep 1000".into()),
        cpus: 0.1,
        mem: 32,
        disk: 0,
        gpus: 0,
        ports: 0,
        instances: 1,
        restart: RestartPolicy::OnFailure,
        user: None,
        role: None,
        kill_grace: Duration::from_secs(5),
        unreachable_after: Duration::from_secs(300),
        backoff: Backoff {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
            max_failures: 0,
        },
        env: BTreeMap::new(),
        labels: BTreeMap::new(),
        uris: Vec::new(),
        container: None,
        constraints: Vec::new(),
        health: None,
        update: UpdatePolicy {
            strategy: UpdateStrategy::Rolling,
            deadline: Duration::from_secs(600),
        },
    }
}

/// `spec` with another command: a new generation.
pub(super) fn edited(spec: &Spec, command: &str) -> Spec {
    Spec {
        command: Command::Shell(command.into()),
        ..spec.clone()
    }
}

pub(super) fn constraint(field: &str, op: ConstraintOp) -> Constraint {
    Constraint {
        field: field.into(),
        op,
    }
}

pub(super) fn generation(spec: &Spec) -> String {
    spec.content_hash().to_string()
}

/// A task of `spec` (its generation), launched a minute before [`T0`] on agent a1 (h1).
pub(super) fn task(task_id: &str, spec: &Spec, instance: u32, state: TaskState) -> TaskRecord {
    TaskRecord {
        generation: generation(spec),
        instance,
        agent_id: Some("a1".into()),
        hostname: Some("h1".into()),
        launched_at_ms: T0 - 60 * SEC,
        running_since_ms: (state == TaskState::Running).then_some(T0 - 55 * SEC),
        updated_at_ms: T0 - 55 * SEC,
        ..TaskRecord::sample(task_id, spec.id.as_str(), state)
    }
}

/// Small edits of a task record, chained: `task(..).on("a2", "h2").kill_requested()`.
pub(super) trait RecordExt: Sized {
    fn edit(self, f: impl FnOnce(&mut TaskRecord)) -> Self;
    fn on(self, agent: &str, host: &str) -> Self {
        self.edit(|r| {
            r.agent_id = Some(agent.into());
            r.hostname = Some(host.into());
        })
    }
    fn launched_at(self, ms: u64) -> Self {
        self.edit(|r| r.launched_at_ms = ms)
    }
    fn kill_requested(self) -> Self {
        self.edit(|r| r.kill_requested = true)
    }
    fn healthy(self, healthy: bool) -> Self {
        self.edit(|r| r.healthy = Some(healthy))
    }
}

impl RecordExt for TaskRecord {
    fn edit(mut self, f: impl FnOnce(&mut TaskRecord)) -> Self {
        f(&mut self);
        self
    }
}

/// An offer of role `*` from agent `agent` on host `host`.
pub(super) fn offer(id: &str, agent: &str, host: &str, cpus: f64, mem: f64) -> Offer {
    Offer {
        id: id.into(),
        agent_id: agent.into(),
        hostname: host.into(),
        role: "*".into(),
        resources: Resources {
            cpus,
            mem,
            disk: 0.0,
            gpus: 0.0,
            ports: vec![(31000, 31009)],
        },
        attributes: BTreeMap::new(),
    }
}

/// Everything a pass looks at, owned, with defaults: now = [`T0`], framework role `*`. Every
/// builder method returns a changed copy, so one world can be the base of several cases.
#[derive(Debug, Clone)]
pub(super) struct World {
    pub now: u64,
    pub desired: BTreeMap<SpecId, Desired>,
    pub invalid: BTreeMap<SpecId, String>,
    pub applied: BTreeMap<SpecId, std::sync::Arc<Spec>>,
    pub ledger: BTreeMap<TaskId, TaskRecord>,
    pub instances: BTreeMap<InstanceKey, InstanceState>,
    pub rollouts: BTreeMap<SpecId, RolloutState>,
    pub offers: Vec<Offer>,
    pub stats: OfferStats,
    pub awaiting: bool,
    pub approved: bool,
    pub suppressed: bool,
    labels: BTreeMap<String, String>,
}

impl World {
    pub fn new() -> Self {
        World {
            now: T0,
            desired: BTreeMap::new(),
            invalid: BTreeMap::new(),
            applied: BTreeMap::new(),
            ledger: BTreeMap::new(),
            instances: BTreeMap::new(),
            rollouts: BTreeMap::new(),
            offers: Vec::new(),
            stats: OfferStats::default(),
            awaiting: false,
            approved: false,
            suppressed: false,
            labels: BTreeMap::new(),
        }
    }

    /// Puts `spec` in force; its generation is shown as `label`.
    pub fn desire(&self, spec: &Spec, label: &str) -> Self {
        self.desire_with(Desired::new(spec.clone()), label)
    }

    pub fn desire_with(&self, desired: Desired, label: &str) -> Self {
        self.edit(|w| {
            w.labels
                .insert(desired.generation.clone(), label.to_owned());
            w.desired.insert(desired.spec.id.clone(), desired);
        })
    }

    /// Shows the generation of `spec` as `label` without putting it in force.
    pub fn label(&self, spec: &Spec, label: &str) -> Self {
        self.edit(|w| {
            w.labels.insert(generation(spec), label.to_owned());
        })
    }

    pub fn task(&self, record: TaskRecord) -> Self {
        self.edit(|w| {
            w.ledger.insert(record.task_id.clone(), record);
        })
    }

    /// Adds offers; they are also what the offer stats have seen in the last minute.
    pub fn offers(&self, offers: impl IntoIterator<Item = Offer>) -> Self {
        self.edit(|w| {
            for o in offers {
                w.stats.observe(&o.resources);
                w.stats
                    .agents
                    .insert(o.agent_id.clone(), super::AgentInfo::of(&o));
                w.offers.push(o);
            }
        })
    }

    /// A copy of this world, changed by `f`.
    pub fn edit(&self, f: impl FnOnce(&mut World)) -> Self {
        let mut copy = self.clone();
        f(&mut copy);
        copy
    }

    /// One pass; task ids are `<spec>.<instance>.t<n>` in placement order.
    pub fn run(&self) -> Plan {
        let input = PlanInput {
            now_ms: self.now,
            desired: &self.desired,
            invalid: &self.invalid,
            applied: &self.applied,
            ledger: &self.ledger,
            instances: &self.instances,
            rollouts: &self.rollouts,
            offers: &self.offers,
            offer_stats: &self.stats,
            framework_role: "*",
            awaiting_reconciliation: self.awaiting,
            deletions_approved: self.approved,
            suppressed: self.suppressed,
        };
        let mut counter = 0;
        let mut new_id = |spec: &SpecId, instance: u32, _generation: &str| {
            counter += 1;
            TaskId(format!("{spec}.{instance}.t{counter}"))
        };
        plan(&input, &mut new_id)
    }

    /// Runs one pass and compares its rendering with `expected`.
    #[track_caller]
    pub fn expect(&self, expected: &[&str]) -> Plan {
        let plan = self.run();
        let got = self.render(&plan);
        assert_lines(expected, &got);
        plan
    }

    fn gen_label(&self, generation: &str) -> String {
        self.labels
            .get(generation)
            .cloned()
            .unwrap_or_else(|| super::short_generation(generation).to_owned())
    }

    pub fn render(&self, plan: &Plan) -> Vec<String> {
        let mut lines: Vec<String> = plan.actions.iter().map(|a| self.render_action(a)).collect();
        for (id, update) in &plan.rollout_updates {
            lines.push(match update {
                None => format!("rollout {id}: cleared"),
                Some(r) => match &r.stopped {
                    None => format!(
                        "rollout {id}: {} in progress",
                        self.gen_label(&r.generation)
                    ),
                    Some(s) => format!(
                        "rollout {id}: {} stopped: {}",
                        self.gen_label(&r.generation),
                        s.reason
                    ),
                },
            });
        }
        if let Some(g) = &plan.guard {
            lines.push(format!("guard: {}", g.message()));
        }
        for (key, p) in &plan.pending {
            lines.push(format!("pending {key}: {}", p.message));
        }
        if let Some(at) = plan.next_wakeup_ms {
            lines.push(format!("wake at T0{:+}s", (at as i64 - T0 as i64) / 1000));
        }
        lines
    }

    fn render_action(&self, action: &Action) -> String {
        match action {
            Action::Launch {
                offer_id, tasks, ..
            } => {
                let tasks: Vec<String> = tasks
                    .iter()
                    .map(|t| {
                        let ports = if t.ports.is_empty() {
                            String::new()
                        } else {
                            format!(" {:?}", t.ports)
                        };
                        format!(
                            "{}#{}@{}{ports}",
                            t.spec_id,
                            t.instance,
                            self.gen_label(&t.generation)
                        )
                    })
                    .collect();
                format!("launch on {offer_id}: {}", tasks.join(", "))
            }
            Action::Decline {
                offer_ids,
                refuse_seconds,
            } => format!("decline {} for {refuse_seconds}s", offer_ids.join(" ")),
            Action::Kill {
                task_id,
                grace,
                reason,
                ..
            } => format!(
                "kill {task_id} ({reason}, grace {})",
                format_duration(*grace)
            ),
            Action::Suppress => "suppress".into(),
            Action::Revive => "revive".into(),
        }
    }
}

/// Compares line lists; on a mismatch shows both, marking lines missing (-) or unexpected (+).
#[track_caller]
pub(super) fn assert_lines(expected: &[&str], got: &[String]) {
    if expected.iter().copied().eq(got.iter().map(String::as_str)) {
        return;
    }
    let mut report = String::from("plan differs from the expectation\n--- expected\n");
    for line in expected {
        let mark = if got.iter().any(|g| g == line) {
            ' '
        } else {
            '-'
        };
        report.push_str(&format!("{mark} {line}\n"));
    }
    report.push_str("+++ got\n");
    for line in got {
        let mark = if expected.contains(&line.as_str()) {
            ' '
        } else {
            '+'
        };
        report.push_str(&format!("{mark} {line}\n"));
    }
    panic!("{report}");
}
