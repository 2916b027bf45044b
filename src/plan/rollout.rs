//! Rollouts: when one starts (a spec in force has live tasks of another generation), when it stops
//! (a task of the new generation failed, or was not running and healthy by `update.deadline` after
//! its launch), and when it is complete (no old-generation task left, no new one starting or about
//! to be launched).
//! Which tasks to start and kill at each step is `decide`'s business; this module only keeps the
//! [`RolloutState`] and says which tasks a stop dooms.
//!
//! The deadline is measured per new-generation task from its launch. A new generation that cannot
//! be placed at all is therefore never stopped by the deadline: nothing has been killed for it, the
//! old generation keeps running, and the pending reason says what the new one lacks.

use std::collections::BTreeSet;

use super::backoff::{describe_end, millis};
use super::decide::{Decisions, Presence, presence, ready};
use super::{Desired, PlanInput, RolloutState, RolloutStop, short_generation};
use crate::model::{TaskId, TaskRecord, TaskState};
use crate::spec::{RestartPolicy, SpecId, format_duration};

/// The rollout of a spec as this pass sees it.
#[derive(Debug, Default)]
pub(super) struct RolloutView {
    /// The rollout of the generation in force stopped (now or earlier): why.
    pub stopped: Option<String>,
    /// New-generation tasks that missed the deadline: killed by this pass.
    pub doomed: BTreeSet<TaskId>,
    /// No old task is left and no new one is starting: the rollout is complete unless this pass
    /// launches more of the new generation (whose deadline and failures still belong to it).
    pub may_complete: bool,
}

/// Advances the rollout of `desired` given all ledger records of its spec, recording state changes
/// in `out.rollout_updates`.
pub(super) fn advance(
    input: &PlanInput<'_>,
    id: &SpecId,
    desired: &Desired,
    records: &[&TaskRecord],
    out: &mut Decisions<'_>,
) -> RolloutView {
    let spec = &desired.spec;
    let generation = desired.generation.as_str();
    let now = input.now_ms;
    let at = |r: &TaskRecord| presence(r, spec, now, input.awaiting_reconciliation);
    let current = input.rollouts.get(id);

    let mut state = match current {
        Some(r) if r.generation == generation => r.clone(),
        _ => {
            let old_live = records.iter().any(|r| {
                r.generation != generation && r.instance < spec.instances && at(r) == Presence::Live
            });
            if old_live {
                // A new generation (or a newer edit replacing a rollout in progress or stopped).
                let started = RolloutState {
                    generation: generation.to_owned(),
                    started_at_ms: now,
                    stopped: None,
                };
                out.rollout_updates
                    .insert(id.clone(), Some(started.clone()));
                started
            } else {
                if current.is_some() {
                    out.rollout_updates.insert(id.clone(), None);
                }
                return RolloutView::default();
            }
        }
    };
    if let Some(stop) = &state.stopped {
        return RolloutView {
            stopped: Some(stop.reason.clone()),
            ..RolloutView::default()
        };
    }

    let part_of_rollout =
        |r: &TaskRecord| r.generation == generation && r.launched_at_ms >= state.started_at_ms;
    let mut view = RolloutView::default();
    let failed = records
        .iter()
        .filter(|r| part_of_rollout(r) && is_rollout_failure(r, spec.restart))
        .min_by_key(|r| (r.updated_at_ms, r.task_id.clone()));
    let mut stop_reason = failed.map(|r| {
        format!(
            "task {} (instance {}) failed: {}",
            r.task_id,
            r.instance,
            describe_end(r)
        )
    });
    let deadline = millis(spec.update.deadline);
    let waiting_for = if spec.health.is_some() {
        "running and healthy"
    } else {
        "running"
    };
    let mut in_flight = false;
    for r in records {
        let wanted = r.instance < spec.instances;
        if !wanted || !part_of_rollout(r) || at(r) != Presence::Live || ready(r, spec) {
            continue;
        }
        in_flight = true;
        let due = r.launched_at_ms.saturating_add(deadline);
        // Until reconciliation is answered the ledger's states may be stale (the controller may
        // have been down while the task started), so the deadline is not judged on them.
        if due <= now && !input.awaiting_reconciliation {
            view.doomed.insert(r.task_id.clone());
            stop_reason.get_or_insert_with(|| {
                format!(
                    "instance {} was not {waiting_for} within the {} deadline",
                    r.instance,
                    format_duration(spec.update.deadline)
                )
            });
        } else if due > now {
            out.wake_at(due);
        }
    }

    if let Some(reason) = stop_reason {
        state.stopped = Some(RolloutStop {
            at_ms: now,
            reason: reason.clone(),
        });
        out.rollout_updates.insert(id.clone(), Some(state));
        view.stopped = Some(reason);
        return view;
    }
    let old_left = records
        .iter()
        .any(|r| r.generation != generation && at(r).occupies());
    view.may_complete = !old_left && !in_flight;
    view
}

/// A new-generation task that ended on its own in a way its restart policy does not accept. Kills
/// the controller asked for and failures the cluster caused do not stop a rollout; a clean exit
/// stops it only for a service (`always`).
fn is_rollout_failure(r: &TaskRecord, restart: RestartPolicy) -> bool {
    r.state.is_terminal()
        && !r.kill_requested
        && !r.cluster_caused
        && (r.state != TaskState::Finished || restart == RestartPolicy::Always)
}

/// The pending reason of an instance a stopped rollout holds on its old generation.
pub(super) fn stopped_message(generation: &str, reason: &str) -> String {
    format!(
        "rollout of generation {} stopped: {reason}; keeping the old generation until the spec changes",
        short_generation(generation)
    )
}
