//! A state directory that cannot be written: full, read-only, a failing disk.
//!
//! The durability rules rest on the store: a launch is flushed before its ACCEPT, a kill's mark
//! before the KILL, a status update before its acknowledgement. While writes fail the controller
//! therefore launches and kills nothing (the offers it would have used are declined), acknowledges
//! nothing it could not write (the agents send those updates again), and says why: in the log, on
//! the status page, and on `/readyz` (503, although readiness otherwise latches). It keeps its
//! subscription, so reconciliation goes on and the status page stays current.
//!
//! Every [`PROBE_EVERY`] it tries a small write and a flush (`Store::probe`, which also opens sled
//! again when sled itself gave up after an i/o error). Once that succeeds, everything the
//! controller holds in memory is written again (writes that failed meanwhile are lost: the
//! framework id, the ledger, the specs in force and their previous versions, rollouts, backoff
//! and history), and it goes on by itself.

use std::time::Duration;

use tokio::time::Instant;

use super::state::Controller;
use crate::plan::{Action, SHORT_REFUSE_SECONDS};
use crate::store::{StoreError, Tree};

/// How often an unwritable state directory is tried again.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

impl Controller {
    /// Takes note of the store's health after it was used: a new failure is logged once and
    /// shown at once.
    pub(super) fn observe_store(&mut self) {
        let Some(why) = self.store.failure() else {
            return;
        };
        if self.halted.is_some() {
            return;
        }
        let text = format!(
            "the state directory {} cannot be written ({why})",
            self.store.dir().display()
        );
        tracing::error!(
            "{text}: LAUNCHING AND KILLING NOTHING, and acknowledging nothing that could not be written, until it can; trying again every {}s",
            PROBE_EVERY.as_secs()
        );
        self.halted = Some(text);
        self.next_store_probe = Some(Instant::now() + PROBE_EVERY);
        self.published.stale = true;
    }

    /// When the next write probe is due, while the store fails.
    pub(super) fn store_probe_at(&self) -> Option<Instant> {
        self.halted.as_ref().and(self.next_store_probe)
    }

    /// Called by time: tries the store again and, if it writes, writes everything again and
    /// resumes.
    pub(super) async fn probe_store(&mut self, now: Instant) {
        if self.store_probe_at().is_none_or(|at| now < at) {
            return;
        }
        self.next_store_probe = Some(now + PROBE_EVERY);
        if let Err(e) = self.store.probe().await {
            tracing::debug!(error = %e, "the state directory still cannot be written");
            return;
        }
        if let Err(e) = self.write_everything_again().await {
            tracing::warn!(error = %e, "the state directory took a write, then failed again");
            return;
        }
        tracing::warn!(
            "the state directory can be written again: everything in memory was written again; launching and killing resume"
        );
        self.halted = None;
        self.next_store_probe = None;
        self.published.stale = true;
        // Whatever a pass held back is decided again.
        for id in self.plan_desired.keys() {
            self.planned.mark(id.as_str());
        }
    }

    /// Writes every piece of durable state the controller holds, then flushes.
    async fn write_everything_again(&mut self) -> Result<(), StoreError> {
        match &self.framework_id {
            Some(id) => self.store.set_framework_id(id).await?,
            None => self.store.clear_framework_id().await?,
        }
        self.store.put_all(
            Tree::Ledger,
            self.ledger.values().map(|r| (r.task_id.0.as_str(), r)),
        )?;
        self.store.put_all(
            Tree::Specs,
            self.desired.specs.iter().map(|(id, s)| (id.as_str(), s)),
        )?;
        self.store.put_all(
            Tree::Previous,
            self.previous.iter().map(|(id, s)| (id.as_str(), s)),
        )?;
        let rollouts: Vec<(String, _)> = self
            .rollouts
            .iter()
            .map(|(id, r)| (id.as_str().to_owned(), (id, r)))
            .collect();
        self.store.put_all(
            Tree::Rollouts,
            rollouts.iter().map(|(k, v)| (k.as_str(), v)),
        )?;
        let backoff: Vec<(String, _)> = self
            .instances
            .iter()
            .map(|(key, state)| (key.to_string(), (key, state)))
            .collect();
        self.store
            .put_all(Tree::Backoff, backoff.iter().map(|(k, v)| (k.as_str(), v)))?;
        self.store.put_all(
            Tree::History,
            self.history.iter().map(|(k, v)| (k.as_str(), v)),
        )?;
        self.store.flush().await
    }
}

/// The actions of a pass that write nothing: answers to offers. A launch becomes a decline of
/// its offer (with a short filter); kills wait; a revive waits too, since nothing could use the
/// offers (the first pass after writes work again revives).
pub(super) fn without_writes(actions: Vec<Action>) -> Vec<Action> {
    let mut declined = Vec::new();
    let mut out = Vec::new();
    for action in actions {
        match action {
            Action::Launch { offer_id, .. } => declined.push(offer_id),
            Action::Kill { .. } | Action::Revive => {}
            other => out.push(other),
        }
    }
    if !declined.is_empty() {
        out.push(Action::Decline {
            offer_ids: declined,
            refuse_seconds: SHORT_REFUSE_SECONDS,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskId;
    use crate::plan::KillReason;

    #[test]
    fn launches_become_declines_and_kills_wait() {
        let actions = vec![
            Action::Kill {
                task_id: TaskId("t".into()),
                agent_id: None,
                grace: Duration::from_secs(1),
                reason: KillReason::ScaledDown,
            },
            Action::Launch {
                offer_id: "o1".into(),
                agent_id: "a".into(),
                hostname: "h".into(),
                tasks: Vec::new(),
            },
            Action::Decline {
                offer_ids: vec!["o2".into()],
                refuse_seconds: 120.0,
            },
            Action::Suppress,
            Action::Revive,
        ];
        assert_eq!(
            without_writes(actions),
            vec![
                Action::Decline {
                    offer_ids: vec!["o2".into()],
                    refuse_seconds: 120.0,
                },
                Action::Suppress,
                Action::Decline {
                    offer_ids: vec!["o1".into()],
                    refuse_seconds: SHORT_REFUSE_SECONDS,
                },
            ]
        );
    }
}
