//! Restart policies and backoff: [`instance_after_end`] as a table, and how `plan` acts on the
//! resulting instance state.

use std::time::Duration;

use super::*;
use crate::model::TaskState::{Dropped, Failed, Finished, Killed, Lost};
use crate::plan::{PendingReason, backoff_delay, instance_after_end};

fn policy_spec(restart: RestartPolicy, max_failures: u32) -> Spec {
    let mut s = spec("job");
    s.restart = restart;
    s.backoff.max_failures = max_failures;
    s
}

#[test]
fn instance_after_end_follows_the_restart_policy() {
    use RestartPolicy::{Always, Never, OnFailure};
    struct Case {
        name: &'static str,
        restart: RestartPolicy,
        state: TaskState,
        cluster: bool,
        requested: bool,
        prev_failures: Option<u32>,
        /// How long the task had been running when it ended.
        ran_secs: Option<u64>,
        // expected
        failures: u32,
        backoff_secs: Option<u64>,
        given_up: bool,
        done: bool,
    }
    let case = |name, restart, state| Case {
        name,
        restart,
        state,
        cluster: false,
        requested: false,
        prev_failures: None,
        ran_secs: Some(5),
        failures: 0,
        backoff_secs: None,
        given_up: false,
        done: false,
    };
    let cases = [
        Case {
            failures: 1,
            backoff_secs: Some(1),
            ..case("first failure waits initial", OnFailure, Failed)
        },
        Case {
            prev_failures: Some(2),
            failures: 3,
            backoff_secs: Some(4),
            given_up: true,
            ..case("max_failures gives up", OnFailure, Failed)
        },
        Case {
            prev_failures: Some(2),
            ran_secs: Some(700),
            failures: 1,
            backoff_secs: Some(1),
            ..case("ran past reset_after: counts afresh", OnFailure, Failed)
        },
        Case {
            done: true,
            ..case("finished is done", OnFailure, Finished)
        },
        Case {
            requested: true,
            prev_failures: Some(1),
            failures: 1,
            ..case("a kill we asked for is no failure", OnFailure, Killed)
        },
        Case {
            failures: 1,
            backoff_secs: Some(1),
            ..case("killed by someone else is a failure", OnFailure, Killed)
        },
        Case {
            cluster: true,
            prev_failures: Some(2),
            failures: 2,
            ..case("cluster-caused: at once, not counted", OnFailure, Lost)
        },
        Case {
            prev_failures: Some(2),
            failures: 3,
            backoff_secs: Some(4),
            ..case("always: finished counts, never gives up", Always, Finished)
        },
        Case {
            prev_failures: Some(9),
            failures: 10,
            backoff_secs: Some(300),
            ..case("always: the wait is capped at max", Always, Failed)
        },
        Case {
            done: true,
            ..case("never: a failure is the one run", Never, Failed)
        },
        Case {
            done: true,
            ..case("never: finished", Never, Finished)
        },
        Case {
            cluster: true,
            ran_secs: None,
            ..case("never: dropped before running gets its run", Never, Dropped)
        },
        Case {
            cluster: true,
            ..case(
                "never: lost after running (the cluster's doing) runs again",
                Never,
                Lost,
            )
        },
    ];
    for c in cases {
        let s = policy_spec(c.restart, 3);
        let mut record = task("job.0.x", &s, 0, c.state);
        record.cluster_caused = c.cluster;
        record.kill_requested = c.requested;
        record.running_since_ms = c.ran_secs.map(|secs| T0 - secs * SEC);
        let prev = c.prev_failures.map(|n| InstanceState {
            generation: generation(&s),
            consecutive_failures: n,
            ..InstanceState::default()
        });
        let next = instance_after_end(prev.as_ref(), &record, &s, T0);
        let got = (
            next.consecutive_failures,
            next.backoff_until_ms.map(|t| (t - T0) / SEC),
            next.given_up,
            next.done,
        );
        let want = (c.failures, c.backoff_secs, c.given_up, c.done);
        assert_eq!(got, want, "{}", c.name);
        assert_eq!(next.last_end_ms, Some(T0), "{}", c.name);
        assert_eq!(next.last_task, Some(record.task_id.clone()), "{}", c.name);
        assert_eq!(
            next.counts_failure(prev.as_ref()),
            c.backoff_secs.is_some(),
            "{}",
            c.name
        );
    }
}

#[test]
fn a_new_generation_starts_afresh() {
    let s = policy_spec(RestartPolicy::OnFailure, 3);
    let prev = InstanceState {
        generation: "another generation".into(),
        consecutive_failures: 2,
        given_up: true,
        done: true,
        ..InstanceState::default()
    };
    let mut record = task("job.0.x", &s, 0, Failed);
    record.reason = Some("COMMAND_EXECUTOR_FAILED".into());
    record.message = Some("exit status 1".into());
    let next = instance_after_end(Some(&prev), &record, &s, T0);
    assert_eq!(next.generation, generation(&s));
    assert_eq!(
        (next.consecutive_failures, next.given_up, next.done),
        (1, false, false)
    );
    assert_eq!(
        next.last_failure.as_deref(),
        Some("TASK_FAILED (COMMAND_EXECUTOR_FAILED): exit status 1")
    );
}

#[test]
fn backoff_grows_by_factor_up_to_max() {
    let b = |initial_ms: u64, factor: f64, max_ms: u64| Backoff {
        initial: Duration::from_millis(initial_ms),
        factor,
        max: Duration::from_millis(max_ms),
        reset_after: Duration::from_secs(600),
        max_failures: 0,
    };
    // (backoff, failures) -> delay in ms
    let cases = [
        (b(1000, 2.0, 300_000), 0, 1000),
        (b(1000, 2.0, 300_000), 1, 1000),
        (b(1000, 2.0, 300_000), 2, 2000),
        (b(1000, 2.0, 300_000), 3, 4000),
        (b(1000, 2.0, 300_000), 9, 256_000),
        (b(1000, 2.0, 300_000), 10, 300_000),
        (b(1000, 2.0, 300_000), u32::MAX, 300_000),
        (b(2000, 1.5, 300_000), 3, 4500),
        (b(500, 1.0, 300_000), 50, 500),
    ];
    for (backoff, failures, ms) in cases {
        assert_eq!(
            backoff_delay(&backoff, failures),
            Duration::from_millis(ms),
            "{backoff:?} after {failures} failures"
        );
    }
}

fn in_backoff(s: &Spec, until_ms: u64) -> InstanceState {
    InstanceState {
        generation: generation(s),
        consecutive_failures: 3,
        last_failure: Some("TASK_FAILED (COMMAND_EXECUTOR_FAILED): exit status 1".into()),
        backoff_until_ms: Some(until_ms),
        ..InstanceState::default()
    }
}

#[test]
fn an_instance_waits_for_its_backoff_then_launches() {
    let s = policy_spec(RestartPolicy::Always, 0);
    let key = InstanceKey::new(s.id.clone(), 0);
    let world = World::new()
        .desire(&s, "v1")
        .task(task("job.0.x", &s, 0, Failed))
        .offers([offer("o1", "a1", "h1", 4.0, 1024.0)])
        .edit(|w| {
            w.instances
                .insert(key.clone(), in_backoff(&s, T0 + 4 * SEC));
        });
    let plan = world.expect(&[
        "decline o1 for 120s",
        "suppress",
        "pending job#0: waiting for backoff until 2023-11-14T22:13:24Z, last failure: TASK_FAILED \
         (COMMAND_EXECUTOR_FAILED): exit status 1",
        "wake at T0+4s",
    ]);
    assert_eq!(plan.pending[&key].until_ms, Some(T0 + 4 * SEC));
    assert_eq!(
        plan.pending[&key].reason,
        PendingReason::Backoff {
            until_ms: T0 + 4 * SEC
        }
    );

    let expired = world.edit(|w| {
        w.now = T0 + 4 * SEC;
        w.suppressed = true;
    });
    expired.expect(&["launch on o1: job#0@v1"]);
    // Suppressed and no offer held: the expiry revives offers.
    expired
        .edit(|w| w.offers.clear())
        .expect(&["revive", "pending job#0: waiting for an offer"]);
}

#[test]
fn given_up_and_done_instances_are_not_launched() {
    let s = policy_spec(RestartPolicy::OnFailure, 3);
    let key = InstanceKey::new(s.id.clone(), 0);
    let world = World::new()
        .desire(&s, "v1")
        .task(task("job.0.x", &s, 0, Failed))
        .offers([offer("o1", "a1", "h1", 4.0, 1024.0)]);
    world
        .edit(|w| {
            let mut state = in_backoff(&s, T0 - SEC);
            state.given_up = true;
            w.instances.insert(key.clone(), state);
        })
        .expect(&[
            "decline o1 for 120s",
            "suppress",
            "pending job#0: gave up after 3 consecutive failures (backoff.max_failures = 3), \
             last failure: TASK_FAILED (COMMAND_EXECUTOR_FAILED): exit status 1; edit the spec \
             to try again",
        ]);
    world
        .edit(|w| {
            let state = InstanceState {
                generation: generation(&s),
                done: true,
                ..InstanceState::default()
            };
            w.instances.insert(key.clone(), state);
        })
        .expect(&["decline o1 for 120s", "suppress"]);
    // Done in another generation: the edited spec runs again.
    world
        .edit(|w| {
            let state = InstanceState {
                generation: "an older generation".into(),
                done: true,
                ..InstanceState::default()
            };
            w.instances.insert(key.clone(), state);
        })
        .expect(&["launch on o1: job#0@v1", "suppress"]);
}

#[test]
fn a_cluster_caused_end_relaunches_at_once() {
    let s = policy_spec(RestartPolicy::OnFailure, 3);
    let mut lost = task("job.0.x", &s, 0, Lost);
    lost.cluster_caused = true;
    lost.reason = Some("AGENT_REMOVED".into());
    let state = instance_after_end(None, &lost, &s, T0 - SEC);
    World::new()
        .desire(&s, "v1")
        .task(lost)
        .offers([offer("o1", "a1", "h1", 4.0, 1024.0)])
        .edit(|w| {
            w.instances.insert(InstanceKey::new(s.id.clone(), 0), state);
        })
        .expect(&["launch on o1: job#0@v1", "suppress"]);
}
