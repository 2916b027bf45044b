//! The mass-deletion guard: a sync glitch that empties the desired directory must not empty the
//! cluster. When one pass would kill the tasks of more than half of all specs known, and of at least
//! [`MIN_SPECS`], none of those deletion kills is made until the operator approves or the files
//! come back. Kills for any other reason (scaling, rollouts, surplus copies) are never held.
//!
//! "All specs known" are the specs in force, the new invalid ones, and the deleted ones that still
//! have tasks: a spec deleted long ago with nothing left does not dilute the count.

use std::collections::BTreeMap;

use super::decide::Decisions;
use super::{DEFAULT_KILL_GRACE, GuardHold, InstanceKey, KillReason, PendingReason, PlanInput};
use crate::model::TaskRecord;
use crate::spec::SpecId;

/// The guard never holds the deletion of fewer specs than this.
pub(super) const MIN_SPECS: usize = 3;

/// Turns the deletions (the live tasks of deleted specs, by spec id as the ledger spells it) into
/// kills, or holds them all. `known` counts all specs known: in force, invalid new, and deleted
/// with tasks left.
pub(super) fn apply<'a>(
    input: &PlanInput<'a>,
    deletions: BTreeMap<&'a str, Vec<&'a TaskRecord>>,
    known: usize,
    out: &mut Decisions<'a>,
) -> Option<GuardHold> {
    let held =
        !input.deletions_approved && deletions.len() >= MIN_SPECS && deletions.len() * 2 > known;
    if held {
        let hold = GuardHold {
            specs: deletions
                .keys()
                .filter_map(|id| SpecId::new(*id).ok())
                .collect(),
            tasks: deletions.values().map(Vec::len).sum(),
            total_specs: known,
        };
        let message = format!(
            "spec deleted, but kept running: the mass-deletion guard holds the kills of {} of {} \
             specs until an operator approves the deletions or the files come back",
            hold.specs.len(),
            hold.total_specs
        );
        for r in deletions.values().flatten() {
            if let Ok(spec) = SpecId::new(r.spec_id.as_str()) {
                out.pend(
                    InstanceKey::new(spec, r.instance),
                    PendingReason::DeletionHeld,
                    message.clone(),
                );
            }
        }
        return Some(hold);
    }
    for (spec, records) in deletions {
        let grace = SpecId::new(spec)
            .ok()
            .and_then(|id| input.applied.get(&id))
            .map_or(DEFAULT_KILL_GRACE, |s| s.kill_grace);
        for r in records {
            out.kill(r, grace, KillReason::SpecDeleted);
        }
    }
    for id in input.rollouts.keys() {
        if !input.desired.contains_key(id) && !input.invalid.contains_key(id) {
            out.rollout_updates.insert(id.clone(), None);
        }
    }
    None
}
