//! What applying a proposed desired set would do, without doing it: the `plan` command's answer.
//!
//! It runs the controller's own pieces on the controller's own state with the desired set
//! swapped: [`decide_spec`](super::decide_spec) for every spec the proposal adds or changes, the
//! deletion victims of every spec it removes, and [`finish`](super::finish) across all of them,
//! which is where the mass-deletion guard decides whether it would hold the kills. There is no
//! second implementation to drift from the first: what this says is what the next pass would
//! decide, but for the offers (none are used here, so nothing is placed; a want that no offer of
//! the last minute could take says why).
//!
//! The proposal mirrors a directory re-read: a file that does not validate keeps its spec's
//! version in force (if it has one) and launches nothing (if it has none); a spec that is not in
//! the proposal is deleted. Unchanged specs cost one comparison of generations each, so a
//! preview of 100,000 specs with a few changes decides only those few.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    Desired, KillReason, Outstanding, PendingReason, PlanInput, decide_spec, deletion_victims,
    finish,
};
use crate::model::{TaskId, TaskRecord};
use crate::spec::{SpecId, UpdateStrategy};

/// A desired set to compare with the one in force.
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    /// The specs whose files are valid, with their generation ([`Desired::new`]).
    pub specs: BTreeMap<SpecId, Desired>,
    /// Files that do not validate, by spec id (or by path when the name is not an id), with the
    /// error as one line.
    pub invalid: BTreeMap<String, String>,
}

/// What applying a [`Proposal`] would do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preview {
    /// Every spec id of the proposal and of the controller, in id order.
    pub specs: Vec<SpecChange>,
    /// Set when the deletion guard would hold the kills of the deleted specs.
    pub guard: Option<GuardPreview>,
}

/// What happens to one spec id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpecChange {
    pub id: String,
    pub change: Change,
    /// For `replace`: `rolling` or `replace`, as the new spec's `update.strategy` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// The generation in force now and the one the proposal has (short hashes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances_from: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances_to: Option<u32>,
    /// Instances the first pass would launch (when offers fit).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub launches: Vec<u32>,
    /// Tasks the first pass would kill (or the guard would hold, see `held`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kills: Vec<KillPreview>,
    /// Instances that would wait, and why (a rolling update's next steps, no offer big enough).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<String>,
    /// The deletion guard would hold this spec's kills.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// Why the file is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The kind of change, in the words `plan` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A new spec: its instances are launched.
    Launch,
    /// The spec's file is gone: its tasks are killed.
    Kill,
    /// A new generation (any change but `instances`), rolled out by `update.strategy`.
    Replace,
    /// Only `instances` changed: instances are added or the highest-numbered killed.
    Scale,
    /// Nothing that matters changed (comments, key order and explicit defaults do not).
    #[default]
    Unchanged,
    /// The file does not validate: its version in force (if any) stays, nothing new launches.
    Invalid,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Launch => "launch",
            Change::Kill => "kill",
            Change::Replace => "replace",
            Change::Scale => "scale",
            Change::Unchanged => "unchanged",
            Change::Invalid => "invalid",
        }
    }
}

/// One kill.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KillPreview {
    pub task_id: String,
    pub instance: u32,
    pub reason: String,
}

/// The guard's hold, as it would be.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuardPreview {
    pub specs: Vec<String>,
    pub tasks: usize,
    pub total_specs: usize,
    pub message: String,
}

/// Previews `proposal` against the state in `now` (whose `desired` and `invalid` are the ones in
/// force; its offers are not used). `ledger_specs` lists every spec id the ledger has records
/// of, and `records_of` gives the records of one.
pub fn preview<'a>(
    now: &PlanInput<'a>,
    proposal: Proposal,
    ledger_specs: impl IntoIterator<Item = &'a str>,
    records_of: &dyn Fn(&str) -> Vec<&'a TaskRecord>,
) -> Preview {
    let Proposal {
        specs: mut desired,
        invalid: errors,
    } = proposal;
    // As a re-read would make it: a changed generation remembers the spec it replaces, an
    // invalid file keeps its version in force.
    for (id, d) in desired.iter_mut() {
        if let Some(current) = now.desired.get(id) {
            d.previous = if current.generation == d.generation {
                current.previous.clone()
            } else {
                Some(current.spec.clone())
            };
        }
    }
    let mut kept = BTreeSet::new();
    let mut invalid: BTreeMap<SpecId, String> = BTreeMap::new();
    for (key, error) in &errors {
        let Ok(id) = SpecId::new(key.as_str()) else {
            continue;
        };
        match now.desired.get(&id) {
            Some(current) if !desired.contains_key(&id) => {
                desired.insert(id.clone(), current.clone());
                kept.insert(id);
            }
            Some(_) => {}
            None => {
                invalid.insert(id, error.clone());
            }
        }
    }
    let hypothetical = PlanInput {
        desired: &desired,
        invalid: &invalid,
        offers: &[],
        ..*now
    };
    let records = |id: &str| -> Vec<&TaskRecord> { records_of(id) };

    let mut changes: BTreeMap<String, SpecChange> = BTreeMap::new();
    let mut decisions = Vec::new();
    for (id, d) in &desired {
        let current = now.desired.get(id);
        let mut change = SpecChange {
            id: id.as_str().to_owned(),
            generation_from: current.map(|c| super::short_generation(&c.generation).to_owned()),
            generation_to: Some(super::short_generation(&d.generation).to_owned()),
            instances_from: current.map(|c| c.spec.instances),
            instances_to: Some(d.spec.instances),
            ..SpecChange::default()
        };
        change.change = match current {
            _ if kept.contains(id) => {
                change.error = errors.get(id.as_str()).cloned();
                change.generation_to = change.generation_from.clone();
                Change::Invalid
            }
            None => Change::Launch,
            Some(c) if c.generation != d.generation => {
                change.strategy = Some(
                    match d.spec.update.strategy {
                        UpdateStrategy::Rolling => "rolling",
                        UpdateStrategy::Replace => "replace",
                    }
                    .to_owned(),
                );
                Change::Replace
            }
            Some(c) if c.spec.instances != d.spec.instances => Change::Scale,
            Some(_) => Change::Unchanged,
        };
        if matches!(
            change.change,
            Change::Launch | Change::Replace | Change::Scale
        ) {
            let decision = decide_spec(&hypothetical, id, d, &records(id.as_str()));
            change.launches = decision.wants.iter().map(|w| w.key.instance).collect();
            change.kills = decision
                .kills
                .iter()
                .map(|k| KillPreview {
                    task_id: k.task_id.0.clone(),
                    instance: k.instance,
                    reason: k.reason.to_string(),
                })
                .collect();
            change.waits = decision
                .pending
                .iter()
                .map(|(key, p)| format!("#{}: {}", key.instance, p.message))
                .collect();
            decisions.push(decision);
        }
        changes.insert(id.as_str().to_owned(), change);
    }
    for (id, error) in &invalid {
        changes.insert(
            id.as_str().to_owned(),
            SpecChange {
                id: id.as_str().to_owned(),
                change: Change::Invalid,
                error: Some(error.clone()),
                ..SpecChange::default()
            },
        );
    }
    for (key, error) in &errors {
        if SpecId::new(key.as_str()).is_err() {
            changes.insert(
                key.clone(),
                SpecChange {
                    id: key.clone(),
                    change: Change::Invalid,
                    error: Some(error.clone()),
                    ..SpecChange::default()
                },
            );
        }
    }

    // Deleted: in force now and gone from the proposal, or already deleted with tasks left.
    let mut gone: BTreeSet<&str> = now
        .desired
        .keys()
        .filter(|id| !desired.contains_key(*id) && !invalid.contains_key(*id))
        .map(SpecId::as_str)
        .collect();
    for id in ledger_specs {
        let known =
            SpecId::new(id).is_ok_and(|id| desired.contains_key(&id) || invalid.contains_key(&id));
        if !known {
            gone.insert(id);
        }
    }
    let mut deletions: BTreeMap<&str, Vec<&TaskRecord>> = BTreeMap::new();
    for id in gone {
        let victims = deletion_victims(records(id));
        let current = SpecId::new(id).ok().and_then(|id| now.desired.get(&id));
        if current.is_none() && victims.is_empty() {
            continue;
        }
        changes.insert(
            id.to_owned(),
            SpecChange {
                id: id.to_owned(),
                change: Change::Kill,
                generation_from: current.map(|c| super::short_generation(&c.generation).to_owned()),
                instances_from: current.map(|c| c.spec.instances),
                kills: victims
                    .iter()
                    .map(|r| KillPreview {
                        task_id: r.task_id.0.clone(),
                        instance: r.instance,
                        reason: KillReason::SpecDeleted.to_string(),
                    })
                    .collect(),
                ..SpecChange::default()
            },
        );
        if !victims.is_empty() {
            deletions.insert(id, victims);
        }
    }

    let outstanding = Outstanding {
        kills: decisions.iter().flat_map(|d| &d.kills).collect(),
        wants: decisions.iter().flat_map(|d| &d.wants).collect(),
        known_specs: desired.len() + invalid.len() + deletions.len(),
        deletions,
    };
    let mut no_launch = |spec: &SpecId, instance: u32, _generation: &str| {
        TaskId(format!(
            "{}.{instance}.preview",
            spec.as_str().replace('/', ".")
        ))
    };
    let finished = finish(&hypothetical, outstanding, &records, &mut no_launch);
    for (key, pending) in &finished.pending {
        // No offers are used here, so "waiting for an offer" says nothing; a want no offer of the
        // last minute could take, or a constraint no agent meets, does.
        let telling = !matches!(
            pending.reason,
            PendingReason::WaitingForOffer
                | PendingReason::NoOfferFits
                | PendingReason::DeletionHeld
        );
        if let (true, Some(change)) = (telling, changes.get_mut(key.spec.as_str())) {
            change
                .waits
                .push(format!("#{}: {}", key.instance, pending.message));
        }
    }
    let guard = finished.guard.map(|hold| {
        for id in &hold.specs {
            if let Some(change) = changes.get_mut(id.as_str()) {
                change.held = true;
            }
        }
        GuardPreview {
            specs: hold.specs.iter().map(|s| s.as_str().to_owned()).collect(),
            tasks: hold.tasks,
            total_specs: hold.total_specs,
            message: hold.message(),
        }
    });
    Preview {
        specs: changes.into_values().collect(),
        guard,
    }
}

#[cfg(test)]
mod tests;
