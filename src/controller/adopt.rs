//! Adopting the tasks of the framework that the ledger does not know.
//!
//! The master is the source of truth for what runs; the ledger is a write-ahead log and a cache
//! of it. It can fall behind: the state directory was lost and the framework found again on the
//! master (`discover.rs`), a ledger was restored from an older backup, or another scheduler ran
//! the framework for a while. Launching from such a ledger would run instances twice, so after
//! the first subscription of the process (and whenever an update names a task the ledger does not
//! know) the controller reads the framework's tasks from the master (`/master/frameworks`, whose
//! tasks carry the TaskInfo labels that status updates lack) and writes each unknown one to the
//! ledger as what its labels and id say it is: spec, instance, generation. Until that list is in,
//! nothing is launched or killed, and updates about unknown tasks are held (not acknowledged).
//!
//! From then on the plan treats an adopted task like any other: kept if its spec and generation
//! are in force, rolled to the generation in force, killed as a surplus copy or a scaled-down
//! instance, and killed through the mass-deletion guard if no spec wants it (its spec was deleted,
//! or nothing names one).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::session::SessionEvent;
use super::state::Controller;
use crate::mesos::convert::labels;
use crate::model::{MasterTask, TaskId, TaskRecord, TaskState, TaskUpdate};
use crate::plan::Desired;
use crate::spec::SpecId;

/// The spec id recorded for a task that names no spec (no labels, an id of another scheduler):
/// not a valid spec id, so no spec ever wants it and the plan kills it like a deleted spec's.
pub const UNIDENTIFIED: &str = "(unidentified)";

/// First wait before asking the master again after it could not list the tasks; doubles.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Where the adoption stands.
#[derive(Debug, Default)]
pub(super) struct Adoption {
    /// The master's list of the framework's tasks must be read before anything is launched or
    /// killed.
    needed: bool,
    in_flight: Option<tokio::task::JoinHandle<()>>,
    /// Updates about tasks the ledger does not know, held until the list is in.
    held: Vec<TaskUpdate>,
    failures: u32,
    retry_at: Option<Instant>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Tasks adopted since the controller started.
    pub adopted: u64,
}

impl Adoption {
    /// The tasks must be read from the master before the controller acts.
    pub fn require(&mut self) {
        self.needed = true;
    }

    /// Nothing may be launched or killed: the framework's tasks are not all known.
    pub fn blocks(&self) -> bool {
        self.needed || self.in_flight.is_some() || !self.held.is_empty()
    }

    /// When an attempt that failed is due again.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Why the controller waits, for the status page and `/readyz`.
    pub fn describe(&self) -> Option<String> {
        if !self.blocks() {
            return None;
        }
        let mut text = "learning the framework's tasks from the master before launching or \
                        killing anything"
            .to_owned();
        if !self.held.is_empty() {
            text.push_str(&format!(
                " ({} updates about tasks the ledger does not know held)",
                self.held.len()
            ));
        }
        if let Some(e) = &self.last_error {
            text.push_str(&format!("; the last attempt failed: {e}"));
        }
        Some(text)
    }

    /// The controller stopped acting (`ha.rs`): a listing in flight is dropped (its answer would
    /// be ignored); what is needed stays needed, asked again after the next subscription.
    pub fn interrupt(&mut self) {
        if let Some(task) = self.in_flight.take() {
            task.abort();
        }
    }

    /// The framework is gone (removed by Mesos): nothing of it is left to adopt.
    pub fn forget(&mut self) {
        if let Some(task) = self.in_flight.take() {
            task.abort();
        }
        let adopted = self.adopted;
        *self = Adoption {
            adopted,
            ..Adoption::default()
        };
    }
}

/// What a task's labels and id say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identified {
    /// A valid spec id (in force or not).
    pub spec_id: SpecId,
    pub instance: u32,
    /// The whole spec hash; empty when only its start (or nothing) is known and it is not the
    /// generation in force, which makes the plan roll the task.
    pub generation: String,
}

/// Reads spec, instance and generation from the controller's labels, or else from the task id
/// (see `task_ids`). An id of an earlier version names its spec only up to `/` versus `.`; it
/// counts when exactly one spec in force matches.
pub(super) fn identify(
    task_id: &TaskId,
    task_labels: &BTreeMap<String, String>,
    desired: &BTreeMap<SpecId, Desired>,
) -> Option<Identified> {
    let from_labels = (|| {
        let spec_id = SpecId::new(task_labels.get(labels::SPEC)?.as_str()).ok()?;
        let instance = task_labels.get(labels::INSTANCE)?.parse().ok()?;
        let generation = task_labels.get(labels::GENERATION)?.clone();
        Some(Identified {
            spec_id,
            instance,
            generation,
        })
    })();
    let parsed = crate::task_ids::parse(&task_id.0);
    if let Some(found) = from_labels {
        if let Some(p) = &parsed {
            if !p.names(&found.spec_id) || p.instance != found.instance {
                tracing::warn!(%task_id, spec = %found.spec_id.as_str(), instance = found.instance, "the task's labels and its id disagree; going by the labels");
            }
        }
        return Some(found);
    }
    let parsed = parsed?;
    let spec_id = match parsed.exact_spec() {
        Some(id) => id.clone(),
        None => {
            let mut matching = desired.keys().filter(|id| parsed.names(id));
            match (matching.next(), matching.next()) {
                (Some(one), None) => one.clone(),
                _ => return None,
            }
        }
    };
    let generation = match (&parsed.generation_prefix, desired.get(&spec_id)) {
        (Some(prefix), Some(d)) if d.generation.starts_with(prefix.as_str()) => {
            d.generation.clone()
        }
        _ => String::new(),
    };
    Some(Identified {
        spec_id,
        instance: parsed.instance,
        generation,
    })
}

/// The ledger record of an adopted task.
fn adopted_record(t: &MasterTask, who: Option<Identified>, now_ms: u64) -> TaskRecord {
    let (spec_id, instance, generation) = match who {
        Some(i) => (i.spec_id.as_str().to_owned(), i.instance, i.generation),
        None => (UNIDENTIFIED.to_owned(), 0, String::new()),
    };
    TaskRecord {
        task_id: t.task_id.clone(),
        spec_id,
        generation,
        instance,
        agent_id: t.agent_id.clone(),
        hostname: None,
        ports: t.ports.clone(),
        state: t.state,
        launched_at_ms: t.first_status_ms.unwrap_or(now_ms),
        running_since_ms: t.running_since_ms,
        unreachable_since_ms: t.unreachable_since_ms,
        updated_at_ms: now_ms,
        healthy: t.healthy,
        reason: None,
        message: Some("adopted from the master: the ledger did not know it".to_owned()),
        // A task being killed was being killed by whoever ran the framework before.
        kill_requested: t.state == TaskState::Killing,
        cluster_caused: false,
        // The commit a task came from is only in the lost ledger.
        commit: None,
    }
}

impl Controller {
    /// Whether a pass may apply its actions: subscribed, and every task of the framework known.
    pub(super) fn may_act(&self) -> bool {
        self.connected && !self.adoption.blocks()
    }

    /// After SUBSCRIBED: reads the framework's tasks from the master if they must be known first.
    pub(super) fn learn_tasks_if_needed(&mut self) {
        if self.adoption.needed {
            self.request_master_tasks();
        }
    }

    /// Called by time: an attempt that failed is due again.
    pub(super) fn adoption_tick(&mut self, now: Instant) {
        if self.adoption.retry_at.is_some_and(|at| now >= at) {
            self.adoption.retry_at = None;
            self.request_master_tasks();
        }
    }

    /// Holds an update about a task the ledger does not know, and asks the master about the
    /// framework's tasks (the update is applied, and acknowledged, once the task is adopted).
    pub(super) fn hold_unknown(&mut self, u: TaskUpdate) {
        if self.adoption.held.is_empty() && !self.adoption.needed {
            tracing::warn!(task_id = %u.task_id, state = %u.state, "an update names a task the ledger does not know: reading the framework's tasks from the master to adopt it");
        }
        self.adoption.held.push(u);
        self.adoption.needed = true;
        if self.adoption.retry_at.is_none() {
            self.request_master_tasks();
        }
    }

    fn request_master_tasks(&mut self) {
        if self.adoption.in_flight.is_some() {
            return;
        }
        let Some(framework_id) = self.framework_id.clone() else {
            return;
        };
        let client = self.client.clone();
        let tx = self.session_tx.clone();
        tracing::info!(%framework_id, "reading the framework's tasks from the master");
        self.adoption.in_flight = Some(tokio::spawn(async move {
            let result = crate::mesos::operator::frameworks(&client, Some(&framework_id))
                .await
                .map(|frameworks| {
                    frameworks
                        .into_iter()
                        .find(|f| f.id == framework_id && !f.completed)
                        .map(|f| f.tasks)
                        .unwrap_or_default()
                })
                .map_err(|e| e.to_string());
            let _ = tx
                .send(SessionEvent::MasterTasks {
                    framework_id,
                    result,
                })
                .await;
        }));
    }

    /// The master's list of the framework's tasks: adopts the unknown ones, then applies the
    /// updates held meanwhile.
    pub(super) async fn on_master_tasks(
        &mut self,
        framework_id: String,
        result: Result<Vec<MasterTask>, String>,
    ) {
        self.adoption.in_flight = None;
        if self.framework_id.as_deref() != Some(framework_id.as_str()) {
            return;
        }
        let tasks = match result {
            Ok(tasks) => tasks,
            Err(e) => {
                self.adoption.failures = self.adoption.failures.saturating_add(1);
                let delay =
                    (FIRST_RETRY * 2u32.saturating_pow(self.adoption.failures - 1)).min(MAX_RETRY);
                tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot read the framework's tasks from the master; launching and killing nothing until it answers");
                self.adoption.last_error = Some(e);
                self.adoption.retry_at = Some(Instant::now() + delay);
                return;
            }
        };
        let now_ms = self.clock.now_ms();
        let mut records = Vec::new();
        for t in &tasks {
            if t.state.is_terminal() || self.ledger.get(&t.task_id).is_some() {
                continue;
            }
            let who = identify(&t.task_id, &t.labels, &self.plan_desired);
            records.push(adopted_record(t, who, now_ms));
        }
        self.adopt(&records).await;
        self.adoption.needed = false;
        self.adoption.failures = 0;
        self.adoption.last_error = None;
        self.adoption.retry_at = None;
        tracing::info!(
            listed = tasks.len(),
            adopted = records.len(),
            "the framework's tasks are known"
        );
        // Held updates, in the order they came. A task the master did not list (it ended, or
        // came back from an agent since) is adopted from what its id says.
        for u in std::mem::take(&mut self.adoption.held) {
            if self.ledger.get(&u.task_id).is_none() {
                if u.state.is_terminal() {
                    self.acknowledge(&u).await;
                    continue;
                }
                let listed = MasterTask {
                    task_id: u.task_id.clone(),
                    name: String::new(),
                    state: u.state,
                    agent_id: u.agent_id.clone(),
                    labels: BTreeMap::new(),
                    ports: Vec::new(),
                    first_status_ms: None,
                    running_since_ms: None,
                    unreachable_since_ms: None,
                    healthy: u.healthy,
                };
                let who = identify(&u.task_id, &listed.labels, &self.plan_desired);
                self.adopt(&[adopted_record(&listed, who, now_ms)]).await;
            }
            self.update_record(u).await;
        }
    }

    /// Writes adopted records to the ledger (flushed) and says so.
    async fn adopt(&mut self, records: &[TaskRecord]) {
        if records.is_empty() {
            return;
        }
        let mut in_force = 0usize;
        let mut unwanted = 0usize;
        for r in records {
            let wanted = SpecId::new(r.spec_id.as_str())
                .ok()
                .is_some_and(|id| self.plan_desired.contains_key(&id));
            if wanted {
                in_force += 1;
            } else {
                unwanted += 1;
            }
            tracing::info!(task_id = %r.task_id, spec = %r.spec_id, instance = r.instance, generation = %crate::plan::short_generation(&r.generation), state = %r.state, spec_in_force = wanted, "adopted a task from the master");
            self.ledger.put(r.clone());
            self.touch_history(r);
        }
        // Kept in memory even if the write fails: what runs is known either way, and the store's
        // recovery writes the whole ledger again (see `health.rs`).
        self.persist_records(records).await;
        self.adoption.adopted += records.len() as u64;
        tracing::warn!(
            tasks = records.len(),
            of_specs_in_force = in_force,
            of_no_spec = unwanted,
            "ADOPTED TASKS THE LEDGER DID NOT KNOW: those of specs in force are kept, rolled or scaled as the specs say; the others will be killed through the mass-deletion guard"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;

    fn desired(ids: &[&str]) -> BTreeMap<SpecId, Desired> {
        ids.iter()
            .map(|id| {
                let id = SpecId::new(*id).unwrap();
                let spec: Spec = crate::spec::parse(&id, "t.toml", "command = \"true\"\n").unwrap();
                (id, Desired::new(spec))
            })
            .collect()
    }

    fn labelled(spec: &str, instance: &str, generation: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::SPEC.to_owned(), spec.to_owned()),
            (labels::INSTANCE.to_owned(), instance.to_owned()),
            (labels::GENERATION.to_owned(), generation.to_owned()),
        ])
    }

    fn id(text: &str) -> TaskId {
        TaskId(text.to_owned())
    }

    #[test]
    fn labels_name_the_task() {
        let d = desired(&["web"]);
        let found = identify(&id("anything"), &labelled("team/web", "3", "abc"), &d).unwrap();
        assert_eq!(found.spec_id.as_str(), "team/web");
        assert_eq!(found.instance, 3);
        assert_eq!(found.generation, "abc");
    }

    #[test]
    fn without_labels_a_current_id_names_the_task() {
        let d = desired(&["team/web"]);
        let generation = d.values().next().unwrap().generation.clone();
        let spec = SpecId::new("team/web").unwrap();
        let task = crate::task_ids::task_id(&spec, 2, &generation);
        let found = identify(&task, &BTreeMap::new(), &d).unwrap();
        assert_eq!(found.spec_id, spec);
        assert_eq!(found.instance, 2);
        assert_eq!(found.generation, generation, "the full generation in force");
        let old = crate::task_ids::task_id(&spec, 2, "ffffffffffffffffffffffffffffffff");
        let found = identify(&old, &BTreeMap::new(), &d).unwrap();
        assert_eq!(found.generation, "", "another generation: rolled");
        let deleted = crate::task_ids::task_id(&SpecId::new("gone").unwrap(), 0, &generation);
        let found = identify(&deleted, &BTreeMap::new(), &d).unwrap();
        assert_eq!(found.spec_id.as_str(), "gone");
    }

    #[test]
    fn an_earlier_id_names_a_spec_only_when_one_matches() {
        let old = id("a.b.1.0123456789abcdef0123456789abcdef");
        let one = identify(&old, &BTreeMap::new(), &desired(&["a/b", "c"])).unwrap();
        assert_eq!(one.spec_id.as_str(), "a/b");
        assert_eq!(one.instance, 1);
        assert_eq!(
            identify(&old, &BTreeMap::new(), &desired(&["a/b", "a.b"])),
            None
        );
        assert_eq!(identify(&old, &BTreeMap::new(), &desired(&["c"])), None);
    }

    #[test]
    fn other_tasks_are_unidentified() {
        let d = desired(&["web"]);
        assert_eq!(identify(&id("s1"), &BTreeMap::new(), &d), None);
        // Incomplete labels are not enough.
        let mut partial = labelled("web", "0", "g");
        partial.remove(labels::GENERATION);
        assert_eq!(identify(&id("s1"), &partial, &d), None);
        let t = MasterTask {
            task_id: id("s1"),
            name: "x".to_owned(),
            state: TaskState::Running,
            agent_id: Some("S0".to_owned()),
            labels: BTreeMap::new(),
            ports: vec![31000],
            first_status_ms: Some(5),
            running_since_ms: Some(6),
            unreachable_since_ms: None,
            healthy: None,
        };
        let r = adopted_record(&t, None, 100);
        assert_eq!(r.spec_id, UNIDENTIFIED);
        assert!(SpecId::new(UNIDENTIFIED).is_err(), "never a spec in force");
        assert_eq!((r.launched_at_ms, r.running_since_ms), (5, Some(6)));
        assert_eq!(r.ports, vec![31000]);
        assert!(r.is_live() && !r.kill_requested);
    }
}
