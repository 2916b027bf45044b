//! How the instances of a spec that are not running ended: what turns a one-shot job's "0 / 1
//! running" into "finished" or "failed: <reason>". Read from the snapshot alone (the spec's
//! pending reasons, its live tasks and its history), so the page, the `status` command and the
//! index all say the same.
//!
//! An instance counts as *ended* when it has no live task and no pending reason (nothing is on its
//! way and nothing waits for it): its newest attempt then says how it ended. That is the case of a
//! `restart = "never"` instance after any end and of an `on-failure` one after a clean exit; an
//! instance that will be relaunched has a pending reason (backoff) or a new task instead.

use super::snapshot::{AttemptRow, SpecStatus, TaskStatusRow};

/// The Mesos state of a clean exit.
pub const FINISHED: &str = "TASK_FINISHED";

/// The ended instances of one spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes<'a> {
    /// Instances whose last attempt exited cleanly (TASK_FINISHED).
    pub finished: u32,
    /// Instances whose last attempt ended otherwise (failed, killed by someone else, lost...),
    /// with that attempt, in instance order.
    pub failed: Vec<&'a AttemptRow>,
}

impl Outcomes<'_> {
    /// The instances that ended, cleanly or not.
    pub fn ended(&self) -> u32 {
        self.finished + self.failed.len() as u32
    }
}

/// The ended instances of `spec`, given its live tasks.
pub fn outcomes<'a>(
    spec: &'a SpecStatus,
    live: impl IntoIterator<Item = &'a TaskStatusRow>,
) -> Outcomes<'a> {
    let mut out = Outcomes::default();
    if spec.history.is_empty() || spec.running >= spec.instances {
        return out;
    }
    let busy: Vec<u32> = live
        .into_iter()
        .map(|t| t.instance)
        .chain(spec.pending.iter().map(|p| p.instance))
        .collect();
    for instance in 0..spec.instances {
        if busy.contains(&instance) {
            continue;
        }
        // The history lists each instance's attempts newest first.
        let Some(last) = spec.history.iter().find(|a| a.instance == instance) else {
            continue;
        };
        if last.ended_ms.is_none() {
            continue;
        }
        if last.state == FINISHED {
            out.finished += 1;
        } else {
            out.failed.push(last);
        }
    }
    out
}

/// One line for an ended attempt: `TASK_FAILED: exit status 1` (the state, and its reason and
/// message when the agent gave them).
pub fn describe_end(attempt: &AttemptRow) -> String {
    match attempt.reason.as_deref().filter(|r| !r.is_empty()) {
        Some(reason) => format!("{}: {reason}", attempt.state),
        None => attempt.state.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::snapshot::{PendingKind, PendingRow};

    fn attempt(instance: u32, state: &str, ended: bool) -> AttemptRow {
        AttemptRow {
            instance,
            task_id: format!("job.{instance}.x"),
            started_ms: 1,
            ended_ms: ended.then_some(2),
            state: state.to_owned(),
            reason: (state == "TASK_FAILED").then(|| "exit status 3".to_owned()),
            ..AttemptRow::default()
        }
    }

    #[test]
    fn a_finished_one_shot_counts_as_finished_and_a_failed_one_with_its_reason() {
        let spec = SpecStatus {
            id: "job".to_owned(),
            instances: 3,
            running: 0,
            history: vec![
                attempt(0, FINISHED, true),
                attempt(1, "TASK_FAILED", true),
                attempt(1, FINISHED, true),
                attempt(2, "TASK_RUNNING", false),
            ],
            ..SpecStatus::default()
        };
        let got = outcomes(&spec, []);
        assert_eq!(got.finished, 1);
        assert_eq!(got.failed.len(), 1, "the newest attempt of #1 failed");
        assert_eq!(describe_end(got.failed[0]), "TASK_FAILED: exit status 3");
        assert_eq!(got.ended(), 2, "#2 is still live");
    }

    #[test]
    fn an_instance_with_a_live_task_or_a_pending_reason_has_not_ended() {
        let spec = SpecStatus {
            id: "svc".to_owned(),
            instances: 2,
            history: vec![
                attempt(0, "TASK_FAILED", true),
                attempt(1, "TASK_FAILED", true),
            ],
            pending: vec![PendingRow {
                instance: 0,
                reason: "waiting for backoff".to_owned(),
                until_ms: Some(5),
                kind: PendingKind::Backoff,
            }],
            ..SpecStatus::default()
        };
        let relaunched = TaskStatusRow {
            instance: 1,
            state: "TASK_STAGING".to_owned(),
            ..TaskStatusRow::default()
        };
        assert_eq!(outcomes(&spec, [&relaunched]), Outcomes::default());
    }
}
