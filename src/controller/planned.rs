//! The controller's incremental planning state: the per-spec decisions of `plan` kept between
//! passes, so that a pass decides again only the specs something happened to.
//!
//! A spec's decision depends on its spec (and previous generation), its ledger records, its
//! instances' backoff, its rollout state, whether reconciliation is awaited, and the time. The loop
//! marks a spec dirty when any of the first four changes (the ledger does it by itself, see
//! `ledger.rs`); a change of the reconciliation state marks every spec dirty; and each decision
//! says when time alone would change it (its wake-up), at which point it is dirty again. What
//! crosses specs (the deletion guard, placement on the offers held, declines, suppress/revive) is
//! `plan::finish`, whose work follows the outstanding kills, wants and deletions, not the number
//! of specs.
//!
//! `plan::plan` runs the same pieces over everything at once; the unit tests of `plan` are the
//! reference for what a decision is, and `tests/scale.rs` checks that the work per pass stays
//! proportional to what changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ledger::Ledger;
use crate::plan::{
    Desired, InstanceKey, Outstanding, Pending, PlanInput, SpecDecision, decide_spec,
    deletion_victims, invalid_pending,
};
use crate::spec::SpecId;

/// How much work the planning did, for `/metrics` and the scale regression test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanWork {
    /// Specs (in force or deleted) decided again.
    pub specs_decided: u64,
    /// Ledger records read while deciding them.
    pub records_visited: u64,
}

#[derive(Debug, Default)]
pub(super) struct Planned {
    decisions: HashMap<SpecId, SpecDecision>,
    with_kills: BTreeSet<SpecId>,
    with_wants: BTreeSet<SpecId>,
    /// Pending reasons of the per-spec decisions (and of invalid new specs).
    pub spec_pending: BTreeMap<InstanceKey, Pending>,
    /// Pending reasons of the cross-spec step of the latest pass (wants no offer took, deletions
    /// the guard holds); replaced by every pass.
    pub extra_pending: BTreeMap<InstanceKey, Pending>,
    wakeups: BTreeSet<(u64, SpecId)>,
    wakeup_of: HashMap<SpecId, u64>,
    /// Deleted spec ids (as the ledger spells them) that still have live tasks to kill.
    deleted: BTreeSet<String>,
    /// Spec ids (as the ledger spells them) to decide again at the next pass.
    dirty: BTreeSet<String>,
    all_dirty: bool,
    last_awaiting: Option<bool>,
    pub work: PlanWork,
}

impl Planned {
    /// Decides `id` again at the next pass.
    pub fn mark(&mut self, id: &str) {
        self.dirty.insert(id.to_owned());
    }

    /// The spec ids to decide in this pass: those marked, those whose records changed, those whose
    /// wake-up is due, or all of them after a change of the reconciliation state.
    pub fn take_dirty(
        &mut self,
        now_ms: u64,
        awaiting: bool,
        ledger: &mut Ledger,
        desired: &BTreeMap<SpecId, Desired>,
        invalid: &BTreeMap<SpecId, String>,
    ) -> BTreeSet<String> {
        if self.last_awaiting != Some(awaiting) {
            self.last_awaiting = Some(awaiting);
            self.all_dirty = true;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.extend(ledger.take_changed());
        while let Some((at, _)) = self.wakeups.first() {
            if *at > now_ms {
                break;
            }
            if let Some((_, id)) = self.wakeups.pop_first() {
                self.wakeup_of.remove(&id);
                dirty.insert(id.as_str().to_owned());
            }
        }
        if std::mem::take(&mut self.all_dirty) {
            dirty.extend(desired.keys().map(|id| id.as_str().to_owned()));
            dirty.extend(invalid.keys().map(|id| id.as_str().to_owned()));
            dirty.extend(ledger.spec_ids().cloned());
            dirty.extend(self.deleted.iter().cloned());
        }
        dirty
    }

    /// Decides one spec id again: in force, invalid new, or deleted.
    pub fn redecide(&mut self, input: &PlanInput<'_>, ledger: &Ledger, id_text: &str) {
        self.work.specs_decided += 1;
        let id = SpecId::new(id_text).ok();
        let records = ledger.of_spec(id_text);
        self.work.records_visited += records.len() as u64;
        let in_force = id.as_ref().and_then(|id| input.desired.get_key_value(id));
        match in_force {
            Some((id, desired)) => {
                let decision = decide_spec(input, id, desired, &records);
                self.deleted.remove(id_text);
                self.store(id.clone(), decision);
            }
            None => {
                if let Some(id) = &id {
                    self.forget(id);
                }
                let invalid = id.as_ref().and_then(|id| input.invalid.get_key_value(id));
                if let Some((id, error)) = invalid {
                    let (key, pending) = invalid_pending(id, error);
                    self.spec_pending.insert(key, pending);
                    self.deleted.remove(id_text);
                } else if deletion_victims(records.iter().copied()).is_empty() {
                    self.deleted.remove(id_text);
                } else {
                    self.deleted.insert(id_text.to_owned());
                }
            }
        }
    }

    fn store(&mut self, id: SpecId, decision: SpecDecision) {
        self.clear_pending(&id);
        for (key, pending) in &decision.pending {
            self.spec_pending.insert(key.clone(), pending.clone());
        }
        set_membership(&mut self.with_kills, &id, !decision.kills.is_empty());
        set_membership(&mut self.with_wants, &id, !decision.wants.is_empty());
        if let Some(old) = self.wakeup_of.remove(&id) {
            self.wakeups.remove(&(old, id.clone()));
        }
        if let Some(at) = decision.wakeup_ms {
            self.wakeup_of.insert(id.clone(), at);
            self.wakeups.insert((at, id.clone()));
        }
        // Only kills, wants and rollout updates are read back from a decision (its pending
        // reasons and wake-up are kept above): a spec with nothing to do, which is most specs in
        // a steady state, keeps no entry.
        if decision.kills.is_empty()
            && decision.wants.is_empty()
            && decision.rollout_update.is_none()
        {
            self.decisions.remove(&id);
            shrink_when_sparse(&mut self.decisions);
        } else {
            self.decisions.insert(id, decision);
        }
    }

    fn forget(&mut self, id: &SpecId) {
        self.clear_pending(id);
        self.with_kills.remove(id);
        self.with_wants.remove(id);
        if let Some(old) = self.wakeup_of.remove(id) {
            self.wakeups.remove(&(old, id.clone()));
        }
        self.decisions.remove(id);
        shrink_when_sparse(&mut self.decisions);
    }

    fn clear_pending(&mut self, id: &SpecId) {
        let from = InstanceKey::new(id.clone(), 0);
        let keys: Vec<InstanceKey> = self
            .spec_pending
            .range(from..)
            .take_while(|(k, _)| k.spec == *id)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.spec_pending.remove(&k);
        }
    }

    /// The rollout updates of the decisions made for `ids` (to record after the pass).
    pub fn rollout_updates<'s>(
        &'s self,
        ids: &'s BTreeSet<String>,
    ) -> impl Iterator<Item = (&'s SpecId, &'s Option<crate::plan::RolloutState>)> + 's {
        ids.iter().filter_map(|id| {
            let id = SpecId::new(id.as_str()).ok()?;
            let (id, d) = self.decisions.get_key_value(&id)?;
            d.rollout_update.as_ref().map(|u| (id, u))
        })
    }

    /// Everything outstanding across specs, for `plan::finish`.
    pub fn outstanding<'a>(&'a self, ledger: &'a Ledger, known_in_force: usize) -> Outstanding<'a> {
        let mut deletions = BTreeMap::new();
        for id in &self.deleted {
            let victims = deletion_victims(ledger.of_spec(id));
            if !victims.is_empty() {
                deletions.insert(id.as_str(), victims);
            }
        }
        Outstanding {
            kills: self
                .with_kills
                .iter()
                .filter_map(|id| self.decisions.get(id))
                .flat_map(|d| &d.kills)
                .collect(),
            wants: self
                .with_wants
                .iter()
                .filter_map(|id| self.decisions.get(id))
                .flat_map(|d| &d.wants)
                .collect(),
            known_specs: known_in_force + deletions.len(),
            deletions,
        }
    }

    /// The earliest wake-up of any decision.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        self.wakeups.first().map(|(at, _)| *at)
    }

    /// Every pending instance: the per-spec reasons and those of the latest cross-spec step.
    pub fn pending_count(&self) -> usize {
        self.spec_pending.len() + self.extra_pending.len()
    }
}

/// Gives back the room of a map that a burst filled (every spec of a cold start has a launch to
/// decide) once it is mostly empty: a hash map keeps its capacity otherwise.
fn shrink_when_sparse<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

fn set_membership(set: &mut BTreeSet<SpecId>, id: &SpecId, member: bool) {
    if member {
        if !set.contains(id) {
            set.insert(id.clone());
        }
    } else {
        set.remove(id);
    }
}
