//! Unreachable agents, copies that come back, and launching nothing that could duplicate a task
//! whose state is unknown until reconciliation is answered.

use super::*;
use crate::model::TaskState::{Failed, Running, Staging, Starting, Unknown, Unreachable};

fn unreachable_since(record: TaskRecord, since_ms: u64) -> TaskRecord {
    record.edit(|r| {
        r.state = Unreachable;
        r.unreachable_since_ms = Some(since_ms);
        r.updated_at_ms = since_ms;
    })
}

#[test]
fn an_unreachable_task_is_replaced_after_unreachable_after() {
    let web = spec("web");
    let world = World::new()
        .desire(&web, "v1")
        .offers([offer("o2", "a2", "h2", 4.0, 1024.0)]);
    let lost = task("web.0.x", &web, 0, Running);
    world
        .task(unreachable_since(lost.clone(), T0 - 60 * SEC))
        .expect(&["decline o2 for 120s", "suppress", "wake at T0+240s"]);
    world
        .task(unreachable_since(lost, T0 - 300 * SEC))
        .expect(&["launch on o2: web#0@v1", "suppress"]);
}

#[test]
fn a_copy_that_comes_back_makes_a_surplus_which_is_killed() {
    let web = spec("web");
    let old = task("web.0.old", &web, 0, Running).launched_at(T0 - 900 * SEC);
    let replacement = task("web.0.new", &web, 0, Running)
        .on("a2", "h2")
        .launched_at(T0 - 60 * SEC);
    let world = World::new().desire(&web, "v1").task(old);
    // Both running: the replacement (launched last) stays.
    world.task(replacement.clone()).expect(&[
        "kill web.0.old (surplus copy of its instance, grace 5s)",
        "suppress",
    ]);
    // The replacement is still staging and the old copy runs: the running one stays.
    world
        .task(replacement.edit(|r| r.state = Staging))
        .expect(&[
            "kill web.0.new (surplus copy of its instance, grace 5s)",
            "suppress",
        ]);
}

#[test]
fn an_unknown_task_after_reconciliation_is_replaced() {
    let web = spec("web");
    World::new()
        .desire(&web, "v1")
        .task(task("web.0.x", &web, 0, Unknown))
        .offers([offer("o1", "a1", "h1", 4.0, 1024.0)])
        .expect(&["launch on o1: web#0@v1", "suppress"]);
}

#[test]
fn awaiting_reconciliation_launches_only_what_cannot_duplicate() {
    let web = Spec {
        instances: 7,
        ..spec("web")
    };
    World::new()
        .desire(&web, "v1")
        .edit(|w| w.awaiting = true)
        .task(task("web.0.x", &web, 0, Staging))
        .task(task("web.1.x", &web, 1, Unknown))
        .task(task("web.2.x", &web, 2, Running))
        .task(task("web.3.x", &web, 3, Starting))
        .task(unreachable_since(
            task("web.4.x", &web, 4, Running),
            T0 - 3600 * SEC,
        ))
        .task(task("web.5.x", &web, 5, Failed))
        .offers([offer("o1", "a1", "h1", 4.0, 1024.0)])
        .expect(&[
            "launch on o1: web#5@v1, web#6@v1",
            "suppress",
            "pending web#0: waiting for reconciliation: task web.0.x was last known as TASK_STAGING",
            "pending web#1: waiting for reconciliation: task web.1.x was last known as TASK_UNKNOWN",
            "pending web#4: waiting for reconciliation: task web.4.x was last known as \
             TASK_UNREACHABLE",
        ]);
}

#[test]
fn surplus_copies_are_not_killed_before_reconciliation_is_answered() {
    let web = spec("web");
    World::new()
        .desire(&web, "v1")
        .edit(|w| w.awaiting = true)
        .task(task("web.0.a", &web, 0, Running))
        .task(task("web.0.b", &web, 0, Running).on("a2", "h2"))
        .expect(&["suppress"]);
}
