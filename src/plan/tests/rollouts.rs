//! Rollouts of a new generation: rolling (one instance at a time, new before old), replace (old
//! before new), stops on failure or deadline, newer edits, completion.

use std::time::Duration;

use super::*;
use crate::model::TaskState::{Failed, Killed, Running, Staging};
use crate::plan::{PendingReason, RolloutStop, short_generation};
use crate::spec::{HealthCheck, HealthKind};

fn v1() -> Spec {
    Spec {
        instances: 3,
        ..spec("web")
    }
}

fn v2() -> Spec {
    edited(&v1(), "serve --v2")
}

/// Three v1 tasks running, v2 in force, an offer to launch on.
fn rolling_world() -> World {
    World::new()
        .desire(&v2(), "v2")
        .label(&v1(), "v1")
        .task(task("web.0.old", &v1(), 0, Running))
        .task(task("web.1.old", &v1(), 1, Running))
        .task(task("web.2.old", &v1(), 2, Running))
        .offers([offer("o1", "a1", "h1", 4.0, 1024.0)])
}

fn tcp_check() -> HealthCheck {
    HealthCheck {
        kind: HealthKind::Tcp { port_index: 0 },
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        grace: Duration::from_secs(30),
        max_failures: 3,
    }
}

fn in_progress(spec: &Spec, started_at_ms: u64) -> RolloutState {
    RolloutState {
        generation: generation(spec),
        started_at_ms,
        stopped: None,
    }
}

#[test]
fn rolling_starts_with_one_new_task_for_the_lowest_instance() {
    rolling_world().expect(&[
        "launch on o1: web#0@v2",
        "suppress",
        "rollout web: v2 in progress",
    ]);
}

#[test]
fn rolling_waits_for_running_then_kills_the_old_task_and_moves_on() {
    let started = T0 - 30 * SEC;
    let world = rolling_world().edit(|w| {
        w.rollouts.insert(v2().id, in_progress(&v2(), started));
    });
    // The new task of instance 0 is still staging: nothing else starts; its deadline wakes a pass.
    world
        .task(task("web.0.new", &v2(), 0, Staging).launched_at(T0 - 20 * SEC))
        .expect(&["decline o1 for 120s", "suppress", "wake at T0+580s"]);
    // Running: the old task of instance 0 goes, instance 1 starts.
    world
        .task(task("web.0.new", &v2(), 0, Running).launched_at(T0 - 20 * SEC))
        .expect(&[
            "kill web.0.old (replaced by the new generation, grace 5s)",
            "launch on o1: web#1@v2",
            "suppress",
        ]);
}

#[test]
fn with_a_health_check_rolling_waits_for_healthy() {
    let mut v1 = v1();
    v1.health = Some(tcp_check());
    let v2 = edited(&v1, "serve --v2");
    let world = World::new()
        .desire(&v2, "v2")
        .label(&v1, "v1")
        .task(task("web.0.old", &v1, 0, Running))
        .task(task("web.1.old", &v1, 1, Running))
        .task(task("web.2.old", &v1, 2, Running))
        .edit(|w| {
            w.rollouts
                .insert(v2.id.clone(), in_progress(&v2, T0 - 30 * SEC));
        });
    let new = task("web.0.new", &v2, 0, Running).launched_at(T0 - 20 * SEC);
    world
        .task(new.clone())
        .expect(&["suppress", "wake at T0+580s"]);
    world
        .task(new.clone().healthy(false))
        .expect(&["suppress", "wake at T0+580s"]);
    world.task(new.healthy(true)).expect(&[
        "kill web.0.old (replaced by the new generation, grace 5s)",
        "pending web#1: waiting for an offer (none seen in the last minute)",
    ]);
}

#[test]
fn replace_kills_all_old_tasks_before_starting_new_ones() {
    let mut v1 = v1();
    v1.update.strategy = UpdateStrategy::Replace;
    let v2 = edited(&v1, "serve --v2");
    let world = World::new()
        .desire(&v2, "v2")
        .label(&v1, "v1")
        .offers([offer("o1", "a1", "h1", 4.0, 1024.0)]);
    let waiting = "waiting for 3 task(s) of the old generation to end before starting generation";
    let short = short_generation(&generation(&v2)).to_owned();
    let plan = world
        .task(task("web.0.old", &v1, 0, Running))
        .task(task("web.1.old", &v1, 1, Running))
        .task(task("web.2.old", &v1, 2, Running))
        .run();
    let got = world.render(&plan);
    assert_lines(
        &[
            "kill web.0.old (replaced by the new generation, grace 5s)",
            "kill web.1.old (replaced by the new generation, grace 5s)",
            "kill web.2.old (replaced by the new generation, grace 5s)",
            "decline o1 for 120s",
            "suppress",
            "rollout web: v2 in progress",
            &format!("pending web#0: {waiting} {short} (update strategy replace)"),
            &format!("pending web#1: {waiting} {short} (update strategy replace)"),
            &format!("pending web#2: {waiting} {short} (update strategy replace)"),
        ],
        &got,
    );
    assert_eq!(
        plan.pending[&InstanceKey::new(v2.id.clone(), 0)].reason,
        PendingReason::WaitingForOldGeneration { tasks: 3 }
    );

    // One old task still dying: nobody starts. All ended: all start.
    let world = world.edit(|w| {
        w.rollouts
            .insert(v2.id.clone(), in_progress(&v2, T0 - 10 * SEC));
    });
    let dying = world
        .task(task("web.0.old", &v1, 0, Killed).kill_requested())
        .task(task("web.1.old", &v1, 1, Running).kill_requested())
        .task(task("web.2.old", &v1, 2, Killed).kill_requested())
        .run();
    assert!(
        dying
            .actions
            .iter()
            .all(|a| !matches!(a, Action::Launch { .. })),
        "{dying:?}"
    );
    assert_eq!(dying.pending.len(), 3);
    world
        .task(task("web.0.old", &v1, 0, Killed).kill_requested())
        .task(task("web.1.old", &v1, 1, Killed).kill_requested())
        .task(task("web.2.old", &v1, 2, Killed).kill_requested())
        .expect(&["launch on o1: web#0@v2, web#1@v2, web#2@v2", "suppress"]);
}

#[test]
fn a_new_generation_missing_its_deadline_stops_the_rollout() {
    let world = rolling_world()
        .edit(|w| {
            w.rollouts
                .insert(v2().id, in_progress(&v2(), T0 - 700 * SEC));
        })
        .task(task("web.0.new", &v2(), 0, Staging).launched_at(T0 - 600 * SEC));
    let held = |i: u32| {
        format!(
            "pending web#{i}: rollout of generation {} stopped: instance 0 was not running \
             within the 10m deadline; keeping the old generation until the spec changes",
            short_generation(&generation(&v2()))
        )
    };
    let plan = world.expect(&[
        "kill web.0.new (rollout stopped, grace 5s)",
        "decline o1 for 120s",
        "suppress",
        "rollout web: v2 stopped: instance 0 was not running within the 10m deadline",
        &held(0),
        &held(1),
        &held(2),
    ]);
    assert_eq!(
        plan.pending[&InstanceKey::new(v2().id, 1)].reason,
        PendingReason::RolloutStopped {
            generation: generation(&v2())
        }
    );
    let Some(Some(stopped)) = plan.rollout_updates.get(&v2().id) else {
        panic!("no rollout update: {plan:?}");
    };
    assert_eq!(stopped.stopped.as_ref().map(|s| s.at_ms), Some(T0));
}

#[test]
fn a_failed_new_task_stops_the_rollout_and_the_old_generation_keeps_running() {
    let mut failed = task("web.0.new", &v2(), 0, Failed).launched_at(T0 - 20 * SEC);
    failed.reason = Some("COMMAND_EXECUTOR_FAILED".into());
    failed.message = Some("exit status 2".into());
    let plan = rolling_world()
        .edit(|w| {
            w.rollouts
                .insert(v2().id, in_progress(&v2(), T0 - 30 * SEC));
        })
        .task(failed)
        .run();
    let Some(Some(stopped)) = plan.rollout_updates.get(&v2().id) else {
        panic!("no rollout update: {plan:?}");
    };
    assert_eq!(
        stopped.stopped.as_ref().map(|s| s.reason.as_str()),
        Some(
            "task web.0.new (instance 0) failed: TASK_FAILED (COMMAND_EXECUTOR_FAILED): exit status 2"
        )
    );
    assert!(
        plan.actions
            .iter()
            .all(|a| !matches!(a, Action::Launch { .. } | Action::Kill { .. })),
        "nothing of v1 is killed and v2 is not retried: {:?}",
        plan.actions
    );
}

#[test]
fn a_stopped_rollout_relaunches_the_previous_generation_when_known() {
    let stopped = RolloutState {
        stopped: Some(RolloutStop {
            at_ms: T0 - 60 * SEC,
            reason: "instance 0 was not running within the 10m deadline".into(),
        }),
        ..in_progress(&v2(), T0 - 700 * SEC)
    };
    let world = World::new()
        .label(&v1(), "v1")
        .task(task("web.0.old", &v1(), 0, Running))
        .task(task("web.1.old", &v1(), 1, Failed))
        .task(task("web.2.old", &v1(), 2, Running))
        .task(task("web.0.new", &v2(), 0, Killed).kill_requested())
        .offers([offer("o1", "a1", "h1", 4.0, 1024.0)])
        .edit(|w| {
            w.rollouts.insert(v2().id, stopped);
        });
    let pending0 = format!(
        "pending web#0: rollout of generation {} stopped: instance 0 was not running within the \
         10m deadline; keeping the old generation until the spec changes",
        short_generation(&generation(&v2()))
    );
    let pending2 = pending0.replace("web#0", "web#2");
    world
        .desire_with(Desired::new(v2()).with_previous(v1()), "v2")
        .expect(&["launch on o1: web#1@v1", "suppress", &pending0, &pending2]);
    // Without the previous spec, the instance runs what is in force.
    world
        .desire(&v2(), "v2")
        .expect(&["launch on o1: web#1@v2", "suppress", &pending0, &pending2]);
}

#[test]
fn a_newer_edit_replaces_a_stopped_rollout() {
    let v3 = edited(&v1(), "serve --v3");
    let stopped = RolloutState {
        stopped: Some(RolloutStop {
            at_ms: T0 - 60 * SEC,
            reason: "gave up".into(),
        }),
        ..in_progress(&v2(), T0 - 700 * SEC)
    };
    rolling_world()
        .desire(&v3, "v3")
        .edit(|w| {
            w.rollouts.insert(v2().id, stopped);
        })
        .expect(&[
            "launch on o1: web#0@v3",
            "suppress",
            "rollout web: v3 in progress",
        ]);
}

#[test]
fn a_rollout_is_complete_when_no_old_task_is_left() {
    let world = World::new()
        .desire(&v2(), "v2")
        .task(task("web.0.new", &v2(), 0, Running))
        .task(task("web.1.new", &v2(), 1, Running))
        .task(task("web.2.new", &v2(), 2, Running))
        .edit(|w| {
            w.rollouts
                .insert(v2().id, in_progress(&v2(), T0 - 100 * SEC));
        });
    world
        .task(task("web.2.old", &v1(), 2, Running).kill_requested())
        .expect(&["suppress"]);
    world.expect(&["suppress", "rollout web: cleared"]);
}

#[test]
fn instances_without_an_old_task_start_the_new_generation_at_once() {
    let mut v2 = v2();
    v2.instances = 4;
    World::new()
        .desire(&v2, "v2")
        .label(&v1(), "v1")
        .task(task("web.0.old", &v1(), 0, Running))
        .task(task("web.1.old", &v1(), 1, Running))
        .offers([offer("o1", "a1", "h1", 4.0, 1024.0)])
        .expect(&[
            "launch on o1: web#0@v2, web#2@v2, web#3@v2",
            "suppress",
            "rollout web: v2 in progress",
        ]);
}

#[test]
fn a_rollout_of_a_deleted_spec_is_forgotten() {
    let plan = World::new()
        .edit(|w| {
            w.rollouts
                .insert(v2().id, in_progress(&v2(), T0 - 100 * SEC));
        })
        .run();
    assert_eq!(plan.rollout_updates.get(&v2().id), Some(&None));
}

#[test]
fn the_deadline_is_not_judged_on_states_reconciliation_has_not_confirmed() {
    let world = rolling_world()
        .edit(|w| {
            w.rollouts
                .insert(v2().id, in_progress(&v2(), T0 - 700 * SEC));
        })
        .task(task("web.0.new", &v2(), 0, Staging).launched_at(T0 - 600 * SEC));
    world
        .edit(|w| w.awaiting = true)
        .expect(&["decline o1 for 120s", "suppress"]);
    let answered = world.run();
    assert!(
        matches!(
            plan_rollout(&answered),
            Some(RolloutState {
                stopped: Some(_),
                ..
            })
        ),
        "{answered:?}"
    );
}

fn plan_rollout(plan: &Plan) -> Option<&RolloutState> {
    plan.rollout_updates.get(&v2().id).and_then(Option::as_ref)
}
