//! Builds the status snapshot from the loop's state: what the status page, the JSON API and the
//! metrics show. Pure formatting; nothing here changes state.

use std::collections::HashMap;

use super::state::Controller;
use crate::model::TaskState;
use crate::status::{
    AttemptRow, Counters, GuardStatus, MasterErrorView, PassInfo, PendingRow, Snapshot,
    SpecErrorView, SpecStatus, TaskStatusRow,
};

pub(super) fn snapshot(c: &Controller) -> Snapshot {
    let dir = c.desired_dir.display().to_string();
    // Sized once: a vector left to grow by doubling holds up to twice its rows, which at 100,000
    // specs is tens of MiB kept for as long as the snapshot is.
    let mut specs = Rows::with_capacity(c.desired.specs.len() + c.desired.errors.len());
    // Running tasks by spec id, in one walk of the ledger rather than a lookup of every spec's
    // records (a tree search per spec and per task).
    let mut running_of: HashMap<&str, u32> = HashMap::with_capacity(c.desired.specs.len());
    for r in c.ledger.values() {
        if r.state == TaskState::Running && !r.kill_requested {
            *running_of.entry(r.spec_id.as_str()).or_default() += 1;
        }
    }
    for (id, spec) in &c.desired.specs {
        let running = running_of.get(id.as_str()).copied().unwrap_or_default();
        specs.push(
            id.as_str(),
            SpecStatus {
                id: id.as_str().to_owned(),
                file: format!("{dir}/{}.toml", id.as_str()),
                generation: c
                    .plan_desired
                    .get(id)
                    .map(|d| crate::plan::short_generation(&d.generation).to_owned()),
                commit: c.origins.spec_view(id).map(Box::new),
                instances: spec.instances,
                running,
                rollout: c.rollouts.get(id).map(|r| r.describe()),
                ..Default::default()
            },
        );
    }
    for (key, err) in &c.desired.errors {
        let entry = specs.entry(key, || SpecStatus {
            id: key.clone(),
            file: err.file.clone(),
            ..Default::default()
        });
        entry.error = Some(Box::new(SpecErrorView {
            file: err.file.clone(),
            line: err.line as u32,
            column: err.column as u32,
            field: err.field.clone(),
            message: err.message.clone(),
            hint: err.hint.clone(),
        }));
    }
    for (key, pending) in c
        .planned
        .spec_pending
        .iter()
        .chain(&c.planned.extra_pending)
    {
        if let Some(s) = specs.get_mut(key.spec.as_str()) {
            s.pending.push(PendingRow {
                instance: key.instance,
                reason: pending.message.clone(),
                until_ms: pending.until_ms,
                kind: crate::status::PendingKind::of(&pending.reason),
            });
        }
    }
    for (key, attempts) in &c.history {
        let Some((spec, instance)) = key.rsplit_once('#') else {
            continue;
        };
        if let Some(s) = specs.get_mut(spec) {
            let instance = instance.parse().unwrap_or(0);
            s.history.extend(attempts.iter().rev().map(|a| AttemptRow {
                instance,
                task_id: a.task_id.clone(),
                started_ms: a.started_ms,
                ended_ms: a.ended_ms,
                state: a.state.mesos_name().to_owned(),
                reason: a.reason.clone(),
                agent: a.agent_id.clone(),
                hostname: a.hostname.clone(),
                sandbox: None,
            }));
        }
    }
    let mut tasks: Vec<TaskStatusRow> = c
        .ledger
        .values()
        .filter(|r| r.is_live())
        .map(|r| TaskStatusRow {
            task_id: r.task_id.0.clone(),
            spec: r.spec_id.clone(),
            instance: r.instance,
            // Hex digits: twelve bytes are twelve characters.
            generation: r.generation.get(..12).unwrap_or(&r.generation).to_owned(),
            commit: r
                .commit
                .as_deref()
                .map(|sha| Box::new(c.origins.task_view(sha))),
            state: r.state.mesos_name().to_owned(),
            agent_id: r.agent_id.clone(),
            hostname: r.hostname.clone(),
            ports: r.ports.clone(),
            healthy: r.healthy,
            launched_ms: r.launched_at_ms,
        })
        .collect();
    tasks.shrink_to_fit();
    let running_tasks = tasks.iter().filter(|t| t.state == "TASK_RUNNING").count() as u64;
    assemble(c, specs.into_rows(), tasks, running_tasks)
}

/// The snapshot `previous` (a partial one: the problem rows) with everything but its rows as of
/// now: what an idle refresh publishes when nothing shown changed since `previous` was built, so
/// that the pass counter and time move without building 100,000 rows to throw them away.
pub(super) fn refreshed(c: &Controller, previous: &Snapshot) -> Snapshot {
    Snapshot {
        partial: previous.partial.clone(),
        ..assemble(
            c,
            previous.specs.clone(),
            previous.tasks.clone(),
            previous.counters.running_tasks,
        )
    }
}

/// A snapshot of these rows, with the rest as of now.
fn assemble(
    c: &Controller,
    specs: Vec<SpecStatus>,
    tasks: Vec<TaskStatusRow>,
    running_tasks: u64,
) -> Snapshot {
    let counters = Counters {
        launches: c.counts.launches,
        kills: c.counts.kills,
        status_updates: c.counts.status_updates,
        failures: c.counts.failures,
        offers_declined: c.counts.offers_declined,
        passes: c.counts.passes,
        invalid_specs: c.desired.errors.len() as u64,
        pending_instances: c.planned.pending_count() as u64,
        running_tasks,
        plan_specs_decided: c.planned.work.specs_decided,
        plan_records_visited: c.planned.work.records_visited,
        snapshot_builds: c.published.builds + 1,
    };
    Snapshot {
        ready: c.ready,
        halted: c.halted.clone(),
        standby: c.standby.clone(),
        recovery: c.recovery_status(),
        connected: c.connected,
        framework_id: c.framework_id.clone(),
        master: c.master.clone(),
        master_error: c.client.problem().map(|p| MasterErrorView {
            url: p.url,
            message: p.message,
            at_ms: p.at_ms,
            attempts: p.attempts,
        }),
        desired_dir: c.desired_dir.display().to_string(),
        desired_error: c.desired.dir_error.clone(),
        git: c.origins.status(c.clock.now_ms()),
        specs,
        tasks,
        guard: c.guard.as_ref().map(|g| GuardStatus {
            specs: g.specs.iter().map(|s| s.as_str().to_owned()).collect(),
            instances: g.tasks as u32,
            total_specs: g.total_specs as u32,
            since_ms: c.guard_since_ms.unwrap_or_default(),
            release: "run `mesos-reconciler approve-deletions`, or restore the files".to_owned(),
        }),
        counters,
        last_pass: c.last_pass.map(|(at_ms, why, duration_ms)| PassInfo {
            at_ms,
            reason: why.to_owned(),
            duration_ms,
        }),
        partial: None,
    }
}

/// The rows of the snapshot's specs in id order, found by id in constant time while they are
/// filled (a `BTreeMap<String, _>` costs a string comparison per level for every pending reason
/// and attempt, which at 100,000 specs was most of the build).
struct Rows<'c> {
    rows: Vec<SpecStatus>,
    index: HashMap<&'c str, usize>,
    /// A row was added out of id order (a file error without a spec in force).
    unsorted: bool,
}

impl<'c> Rows<'c> {
    fn with_capacity(n: usize) -> Self {
        Rows {
            rows: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
            unsorted: false,
        }
    }

    /// Adds the row of `id`; ids come in order (the specs in force are a sorted map).
    fn push(&mut self, id: &'c str, row: SpecStatus) {
        self.index.insert(id, self.rows.len());
        self.rows.push(row);
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut SpecStatus> {
        let i = *self.index.get(id)?;
        self.rows.get_mut(i)
    }

    fn entry(&mut self, id: &'c str, make: impl FnOnce() -> SpecStatus) -> &mut SpecStatus {
        let i = match self.index.get(id) {
            Some(i) => *i,
            None => {
                self.unsorted = true;
                self.push(id, make());
                self.rows.len() - 1
            }
        };
        &mut self.rows[i]
    }

    fn into_rows(mut self) -> Vec<SpecStatus> {
        if self.unsorted {
            self.rows.sort_by(|a, b| a.id.cmp(&b.id));
        }
        self.rows
    }
}
