//! Restart bookkeeping: what an instance's [`InstanceState`] becomes when one of its tasks ends, and
//! whether the instance may be launched now. The restart policies of `shared/task-spec.md` live here
//! and nowhere else.

use std::time::Duration;

use super::InstanceState;
use crate::model::{TaskRecord, TaskState};
use crate::spec::{Backoff, RestartPolicy, Spec};

/// The next state of an instance after `record` (one of its tasks) ended at `now_ms`.
///
/// - A state of another generation than the record's is not carried over: each generation starts
///   afresh.
/// - An end the controller asked for (`kill_requested`) changes nothing but the last end: scaling,
///   rollouts and surplus kills are not failures, and are relaunched (if still wanted) at once.
/// - A task that ran for `backoff.reset_after` first resets the failure count.
/// - `never`: done after any end the task itself caused. A cluster-caused end (agent lost,
///   framework removed by the master, offer rescinded) is not the task's one run: it is
///   relaunched at once, as the task spec says of every failure the cluster caused.
/// - `on-failure`: FINISHED is done; a cluster-caused failure is relaunched at once and not
///   counted; any other end counts, waits for the backoff, and gives up at `max_failures` (> 0).
/// - `always`: like `on-failure`, except that FINISHED counts too (a service that keeps exiting
///   cleanly backs off like one that keeps crashing) and it never gives up.
pub fn instance_after_end(
    prev: Option<&InstanceState>,
    record: &TaskRecord,
    spec: &Spec,
    now_ms: u64,
) -> InstanceState {
    let mut next = match prev {
        Some(p) if p.generation == record.generation => p.clone(),
        _ => InstanceState {
            generation: record.generation.clone(),
            ..InstanceState::default()
        },
    };
    next.last_task = Some(record.task_id.clone());
    next.last_end_ms = Some(now_ms);
    next.last_end_counted = false;
    next.backoff_until_ms = None;
    if record.kill_requested {
        return next;
    }
    let ran_long_enough = record
        .running_since_ms
        .is_some_and(|since| now_ms.saturating_sub(since) >= millis(spec.backoff.reset_after));
    if ran_long_enough {
        next.consecutive_failures = 0;
    }
    let finished = record.state == TaskState::Finished;
    match spec.restart {
        RestartPolicy::Never => {
            if !record.cluster_caused {
                next.done = true;
            }
        }
        RestartPolicy::OnFailure if finished => next.done = true,
        _ if record.cluster_caused => {}
        policy => {
            next.consecutive_failures = next.consecutive_failures.saturating_add(1);
            next.last_end_counted = true;
            next.last_failure = Some(describe_end(record));
            let delay = backoff_delay(&spec.backoff, next.consecutive_failures);
            next.backoff_until_ms = Some(now_ms.saturating_add(millis(delay)));
            let limit = spec.backoff.max_failures;
            if policy == RestartPolicy::OnFailure && limit > 0 && next.consecutive_failures >= limit
            {
                next.given_up = true;
            }
        }
    }
    next
}

/// The wait before relaunching after the `failures`-th consecutive failure:
/// `initial * factor^(failures - 1)`, at most `max`.
pub fn backoff_delay(backoff: &Backoff, failures: u32) -> Duration {
    let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
    let scaled = backoff.initial.as_secs_f64() * backoff.factor.powi(exponent);
    if !scaled.is_finite() || scaled >= backoff.max.as_secs_f64() {
        backoff.max
    } else {
        Duration::from_secs_f64(scaled.max(0.0))
    }
}

/// Whether an instance whose wanted generation has no live task may be launched now.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Readiness<'s> {
    Launch,
    /// Finished for good under its restart policy: not wanted any more.
    Done,
    GivenUp(&'s InstanceState),
    Backoff(&'s InstanceState, u64),
}

/// `state` must already be the state of the generation to launch (or `None`).
pub(super) fn readiness(state: Option<&InstanceState>, now_ms: u64) -> Readiness<'_> {
    let Some(state) = state else {
        return Readiness::Launch;
    };
    if state.done {
        Readiness::Done
    } else if state.given_up {
        Readiness::GivenUp(state)
    } else {
        match state.backoff_until_ms {
            Some(until) if until > now_ms => Readiness::Backoff(state, until),
            _ => Readiness::Launch,
        }
    }
}

/// How a task ended, for people: `TASK_FAILED (COMMAND_EXECUTOR_FAILED): exit status 1`.
pub(super) fn describe_end(record: &TaskRecord) -> String {
    let mut text = record.state.mesos_name().to_owned();
    if let Some(reason) = &record.reason {
        text.push_str(&format!(" ({reason})"));
    }
    if let Some(message) = record.message.as_deref().filter(|m| !m.is_empty()) {
        text.push_str(&format!(": {message}"));
    }
    text
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
