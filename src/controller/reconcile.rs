//! Task reconciliation after every (re)subscription, as the Mesos reconciliation guide describes it:
//! ask explicitly about every non-terminal task in the ledger, retry the ones without an answer
//! with truncated exponential backoff, and when all have answered ask implicitly (empty list) to
//! find tasks the ledger does not know.
//!
//! Mesos' RECONCILE call is called `reconcile_tasks` here so it is not confused with the
//! controller's own reconcile loop. This tracker is pure: the loop passes the time in and sends the
//! calls it returns.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::TaskId;

/// First wait for answers before asking again; doubles up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The cap of the retry interval (tasks on agents that have not re-registered after a master
/// failover may stay silent for ten minutes or more).
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// A call the loop must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileCall {
    /// RECONCILE with these tasks (task id, agent id if known).
    Explicit(Vec<(TaskId, Option<String>)>),
    /// RECONCILE with an empty list.
    Implicit,
}

/// Where one reconciliation stands.
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    /// Tasks asked about that have not answered since the round started.
    pending: BTreeMap<TaskId, Option<String>>,
    next_retry_ms: Option<u64>,
    interval: Duration,
    implicit_sent: bool,
    active: bool,
}

impl Reconciliation {
    /// Starts a round (a new one supersedes any round in progress). Returns the first call.
    pub fn start(
        &mut self,
        tasks: impl IntoIterator<Item = (TaskId, Option<String>)>,
        now_ms: u64,
    ) -> ReconcileCall {
        self.pending = tasks.into_iter().collect();
        self.interval = FIRST_RETRY;
        self.active = true;
        self.implicit_sent = false;
        if self.pending.is_empty() {
            self.next_retry_ms = None;
            self.implicit_sent = true;
            return ReconcileCall::Implicit;
        }
        self.next_retry_ms = Some(now_ms + ms(self.interval));
        ReconcileCall::Explicit(
            self.pending
                .iter()
                .map(|(t, a)| (t.clone(), a.clone()))
                .collect(),
        )
    }

    /// Any update about a task counts as its answer. Returns the implicit call when this was the
    /// last task the round waited for.
    pub fn answered(&mut self, task: &TaskId) -> Option<ReconcileCall> {
        if !self.active || self.pending.remove(task).is_none() {
            return None;
        }
        self.finish_if_done()
    }

    /// Called when time passes: the retry for the tasks still silent, if due.
    pub fn tick(&mut self, now_ms: u64) -> Option<ReconcileCall> {
        let due = self.next_retry_ms.is_some_and(|t| now_ms >= t);
        if !self.active || !due || self.pending.is_empty() {
            return None;
        }
        self.interval = (self.interval * 2).min(MAX_RETRY);
        self.next_retry_ms = Some(now_ms + ms(self.interval));
        Some(ReconcileCall::Explicit(
            self.pending
                .iter()
                .map(|(t, a)| (t.clone(), a.clone()))
                .collect(),
        ))
    }

    /// Explicit answers are still missing: tasks in unknown state must not be replaced yet.
    pub fn awaiting(&self) -> bool {
        self.active && !self.pending.is_empty()
    }

    /// The round is over (all explicit answers in and the implicit call sent).
    pub fn done(&self) -> bool {
        self.active && self.pending.is_empty() && self.implicit_sent
    }

    /// When the loop should call [`Reconciliation::tick`] next.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        if self.awaiting() {
            self.next_retry_ms
        } else {
            None
        }
    }

    /// The subscription ended: nothing is in progress until the next `start`.
    pub fn stop(&mut self) {
        *self = Reconciliation::default();
    }

    fn finish_if_done(&mut self) -> Option<ReconcileCall> {
        if self.pending.is_empty() && !self.implicit_sent {
            self.implicit_sent = true;
            self.next_retry_ms = None;
            return Some(ReconcileCall::Implicit);
        }
        None
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str) -> (TaskId, Option<String>) {
        (TaskId(id.to_owned()), Some("S1".to_owned()))
    }

    #[test]
    fn empty_ledger_goes_straight_to_implicit() {
        let mut r = Reconciliation::default();
        assert_eq!(r.start([], 0), ReconcileCall::Implicit);
        assert!(!r.awaiting());
        assert!(r.done());
    }

    #[test]
    fn explicit_then_retries_with_doubling_then_implicit() {
        let mut r = Reconciliation::default();
        let first = r.start([t("a"), t("b")], 1_000);
        assert_eq!(first, ReconcileCall::Explicit(vec![t("a"), t("b")]));
        assert!(r.awaiting());
        assert_eq!(r.tick(2_999), None, "not due before the first interval");
        assert_eq!(r.answered(&TaskId("a".into())), None);
        assert_eq!(r.tick(3_000), Some(ReconcileCall::Explicit(vec![t("b")])));
        // The interval doubled to 4 s.
        assert_eq!(r.next_wakeup_ms(), Some(7_000));
        assert_eq!(r.tick(6_999), None);
        assert_eq!(
            r.answered(&TaskId("b".into())),
            Some(ReconcileCall::Implicit)
        );
        assert!(r.done());
        assert_eq!(r.answered(&TaskId("b".into())), None, "only once");
    }

    #[test]
    fn retry_interval_is_capped() {
        let mut r = Reconciliation::default();
        r.start([t("a")], 0);
        let mut now = 0;
        for _ in 0..20 {
            now = r.next_wakeup_ms().unwrap();
            assert!(r.tick(now).is_some());
        }
        assert_eq!(r.next_wakeup_ms(), Some(now + 60_000));
    }

    #[test]
    fn a_new_round_supersedes_the_old() {
        let mut r = Reconciliation::default();
        r.start([t("a")], 0);
        r.start([t("b")], 10);
        assert_eq!(r.answered(&TaskId("a".into())), None);
        assert!(r.awaiting());
        assert_eq!(
            r.answered(&TaskId("b".into())),
            Some(ReconcileCall::Implicit)
        );
    }
}
