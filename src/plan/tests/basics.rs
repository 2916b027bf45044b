//! Launching what is missing (packing, ports), scaling, deleting specs and the mass-deletion guard,
//! invalid new specs.

use std::time::Duration;

use super::*;
use crate::model::TaskState::{Finished, Killing, Running, Staging};

fn web(instances: u32) -> Spec {
    Spec {
        instances,
        cpus: 1.0,
        mem: 128,
        ports: 1,
        ..spec("web")
    }
}

#[test]
fn missing_instances_are_packed_onto_offers_in_order() {
    World::new()
        .desire(&web(3), "v1")
        .offers([
            offer("o1", "a1", "h1", 2.0, 1024.0),
            offer("o2", "a2", "h2", 4.0, 1024.0),
        ])
        .expect(&[
            "launch on o1: web#0@v1 [31000], web#1@v1 [31001]",
            "launch on o2: web#2@v1 [31000]",
            "suppress",
        ]);
}

#[test]
fn ports_are_distinct_and_the_offer_shrinks_as_tasks_are_packed() {
    let mut o1 = offer("o1", "a1", "h1", 8.0, 4096.0);
    o1.resources.ports = vec![(31007, 31009), (31000, 31004)];
    let mut o2 = offer("o2", "a2", "h2", 8.0, 4096.0);
    o2.resources.ports = vec![(32000, 32005)];
    let three_ports = Spec {
        ports: 3,
        instances: 4,
        ..spec("web")
    };
    let plan = World::new()
        .desire(&three_ports, "v1")
        .offers([o1, o2])
        .expect(&[
            "launch on o1: web#0@v1 [31000, 31001, 31002], web#1@v1 [31003, 31004, 31007]",
            "launch on o2: web#2@v1 [32000, 32001, 32002], web#3@v1 [32003, 32004, 32005]",
            "suppress",
        ]);
    let Action::Launch { tasks, .. } = &plan.actions[0] else {
        panic!("expected a launch first: {:?}", plan.actions);
    };
    assert_eq!(
        tasks[1].resources.ports,
        vec![(31003, 31004), (31007, 31007)]
    );
    assert_eq!(tasks[1].resources.cpus, 0.1);
    assert_eq!(tasks[1].resources.mem, 32.0);
    assert_eq!(tasks[1].task_id, TaskId("web.1.t2".into()));
    assert_eq!(
        tasks[1].spec, three_ports,
        "the launch carries the spec to build it from"
    );
}

#[test]
fn task_ids_are_made_only_for_tasks_placed() {
    let plan = World::new()
        .desire(&web(3), "v1")
        .offers([offer("o1", "a1", "h1", 1.0, 1024.0)])
        .run();
    let launched: Vec<&TaskId> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Launch { tasks, .. } => Some(tasks.iter().map(|t| &t.task_id)),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(launched, [&TaskId("web.0.t1".into())]);
}

#[test]
fn nothing_to_do_declines_long_and_suppresses_once() {
    let running = task("web.0.x", &web(1), 0, Running);
    let world = World::new().desire(&web(1), "v1").task(running);
    world.expect(&["suppress"]);
    let world = world.offers([offer("o1", "a1", "h1", 4.0, 1024.0)]);
    world.expect(&["decline o1 for 120s", "suppress"]);
    world
        .edit(|w| w.suppressed = true)
        .expect(&["decline o1 for 120s"]);
}

#[test]
fn scaling_changes_instances_in_place() {
    let v1 = web(4);
    let tasks = (0..4).map(|i| task(&format!("web.{i}.x"), &v1, i, Running));
    struct Case {
        instances: u32,
        expected: &'static [&'static str],
    }
    let cases = [
        Case {
            instances: 4,
            expected: &["suppress"],
        },
        Case {
            instances: 2,
            expected: &[
                "kill web.2.x (scaled down, grace 5s)",
                "kill web.3.x (scaled down, grace 5s)",
                "suppress",
            ],
        },
        Case {
            instances: 0,
            expected: &[
                "kill web.0.x (scaled down, grace 5s)",
                "kill web.1.x (scaled down, grace 5s)",
                "kill web.2.x (scaled down, grace 5s)",
                "kill web.3.x (scaled down, grace 5s)",
                "suppress",
            ],
        },
        Case {
            instances: 6,
            expected: &[
                "launch on o1: web#4@v1 [31000], web#5@v1 [31001]",
                "suppress",
            ],
        },
    ];
    for case in cases {
        let scaled = web(case.instances);
        assert_eq!(
            generation(&scaled),
            generation(&v1),
            "scaling is not a new generation"
        );
        let mut world = World::new().desire(&scaled, "v1");
        for t in tasks.clone() {
            world = world.task(t);
        }
        if case.instances > 4 {
            world = world.offers([offer("o1", "a1", "h1", 8.0, 1024.0)]);
        }
        world.expect(case.expected);
    }
}

#[test]
fn a_deleted_spec_is_killed_with_its_last_kill_grace() {
    let mut old = spec("old");
    old.kill_grace = Duration::from_secs(30);
    let world = World::new()
        .desire(&spec("web"), "v1")
        .task(task("web.0.x", &spec("web"), 0, Running))
        .task(task("old.0.x", &old, 0, Running))
        .task(task("old.1.x", &old, 1, Staging))
        .task(task("old.2.x", &old, 2, Killing).kill_requested())
        .task(task("old.3.x", &old, 3, Finished));
    world.expect(&[
        "kill old.0.x (spec deleted, grace 5s)",
        "kill old.1.x (spec deleted, grace 5s)",
        "suppress",
    ]);
    world
        .edit(|w| {
            w.applied.insert(old.id.clone(), old.clone().into());
        })
        .expect(&[
            "kill old.0.x (spec deleted, grace 30s)",
            "kill old.1.x (spec deleted, grace 30s)",
            "suppress",
        ]);
}

#[test]
fn the_guard_holds_mass_deletions_until_approved() {
    // (specs kept, specs deleted, approved) -> kills held?
    let cases = [
        (1, 3, false, true),
        (1, 3, true, false),
        (0, 5, false, true),
        (3, 3, false, false),
        (2, 3, false, true),
        (0, 2, false, false),
    ];
    for (kept, deleted, approved, held) in cases {
        let mut world = World::new().edit(|w| w.approved = approved);
        for i in 0..kept {
            let s = spec(&format!("keep{i}"));
            world = world.task(task(&format!("keep{i}.0.x"), &s, 0, Running));
            world = world.desire(&s, "v1");
        }
        for i in 0..deleted {
            let s = spec(&format!("gone{i}"));
            world = world.task(task(&format!("gone{i}.0.x"), &s, 0, Running));
        }
        let plan = world.run();
        let kills = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Kill { .. }))
            .count();
        let case = format!("{kept} kept, {deleted} deleted, approved {approved}");
        assert_eq!(plan.guard.is_some(), held, "{case}");
        assert_eq!(kills, if held { 0 } else { deleted }, "{case}");
        assert_eq!(plan.pending.len(), if held { deleted } else { 0 }, "{case}");
    }
}

#[test]
fn held_deletions_are_reported_and_other_kills_go_ahead() {
    let mut world = World::new()
        .desire(&web(1), "v1")
        .task(task("web.0.x", &web(1), 0, Running))
        .task(task("web.1.x", &web(1), 1, Running));
    for name in ["a", "b", "c"] {
        world = world.task(task(&format!("{name}.0.x"), &spec(name), 0, Running));
    }
    let plan = world.expect(&[
        "kill web.1.x (scaled down, grace 5s)",
        "suppress",
        "guard: mass-deletion guard: holding the kills of 3 tasks of 3 of 4 specs (a, b, c) until \
         an operator approves the deletions or the files come back",
        "pending a#0: spec deleted, but kept running: the mass-deletion guard holds the kills of 3 \
         of 4 specs until an operator approves the deletions or the files come back",
        "pending b#0: spec deleted, but kept running: the mass-deletion guard holds the kills of 3 \
         of 4 specs until an operator approves the deletions or the files come back",
        "pending c#0: spec deleted, but kept running: the mass-deletion guard holds the kills of 3 \
         of 4 specs until an operator approves the deletions or the files come back",
    ]);
    let hold = plan.guard.unwrap();
    assert_eq!((hold.tasks, hold.total_specs), (3, 4));
    assert_eq!(
        plan.pending.values().next().map(|p| &p.reason),
        Some(&super::super::PendingReason::DeletionHeld)
    );
}

#[test]
fn a_new_invalid_spec_launches_nothing_and_touches_nothing() {
    let broken = spec("broken");
    World::new()
        .edit(|w| {
            w.invalid.insert(
                broken.id.clone(),
                "broken.toml:3:7: unknown key `instnaces`".into(),
            );
        })
        .task(task("broken.0.x", &broken, 0, Running))
        .offers([offer("o1", "a1", "h1", 4.0, 1024.0)])
        .expect(&[
            "decline o1 for 120s",
            "suppress",
            "pending broken#0: invalid spec, nothing is launched until the file is fixed: \
             broken.toml:3:7: unknown key `instnaces`",
        ]);
}

#[test]
fn instance_keys_print_and_parse() {
    let key = InstanceKey::new(SpecId::new("team-a/web").unwrap(), 2);
    assert_eq!(key.to_string(), "team-a/web#2");
    assert_eq!("team-a/web#2".parse::<InstanceKey>(), Ok(key));
    assert!("team-a/web".parse::<InstanceKey>().is_err());
    assert!("Web#1".parse::<InstanceKey>().is_err());
    assert!("web#x".parse::<InstanceKey>().is_err());
}

#[test]
fn kills_come_in_spec_and_instance_order_whatever_decided_them() {
    let web = web(1);
    World::new()
        .desire(&web, "v1")
        .task(task("web.2.x", &web, 2, Running))
        .task(task("web.1.x", &web, 1, Running))
        .task(task("web.0.x", &web, 0, Running))
        .task(task("aaa.0.x", &spec("aaa"), 0, Running))
        .task(task("zzz.0.x", &spec("zzz"), 0, Running))
        .expect(&[
            "kill aaa.0.x (spec deleted, grace 5s)",
            "kill web.1.x (scaled down, grace 5s)",
            "kill web.2.x (scaled down, grace 5s)",
            "kill zzz.0.x (spec deleted, grace 5s)",
            "suppress",
        ]);
}

#[test]
fn the_next_wakeup_is_the_earliest_change_by_time() {
    let a = spec("a");
    let b = spec("b");
    let plan = World::new()
        .desire(&a, "v1")
        .desire(&b, "v1")
        .task(task("a.0.x", &a, 0, TaskState::Unreachable).edit(|r| {
            r.unreachable_since_ms = Some(T0 - 290 * SEC);
        }))
        .edit(|w| {
            w.instances.insert(
                InstanceKey::new(b.id.clone(), 0),
                InstanceState {
                    generation: generation(&b),
                    backoff_until_ms: Some(T0 + 30 * SEC),
                    ..InstanceState::default()
                },
            );
        })
        .run();
    assert_eq!(plan.next_wakeup_ms, Some(T0 + 10 * SEC));
}

#[test]
fn offer_stats_keep_the_largest_of_each_resource_and_the_agents() {
    let mut big_mem = offer("o2", "a2", "h2", 1.0, 8192.0);
    big_mem.resources.ports = vec![(1, 100)];
    big_mem.attributes.insert("rack".into(), "r2".into());
    let offers = [offer("o1", "a1", "h1", 4.0, 1024.0), big_mem];
    let stats = OfferStats::from_offers(offers.iter().map(|o| &o.resources)).with_agents(&offers);
    assert_eq!(
        (stats.offers, stats.cpus, stats.mem, stats.ports),
        (2, 4.0, 8192.0, 100)
    );
    assert_eq!(stats.agents["a2"].hostname, "h2");
    assert_eq!(stats.agents["a2"].attributes["rack"], "r2");
}

#[test]
fn rollout_states_describe_themselves() {
    let mut state = RolloutState {
        generation: "0123456789abcdef0123456789abcdef".into(),
        started_at_ms: T0,
        stopped: None,
    };
    assert_eq!(
        state.describe(),
        "rolling out generation 01234567 since 2023-11-14T22:13:20Z"
    );
    state.stopped = Some(crate::plan::RolloutStop {
        at_ms: T0 + 60 * SEC,
        reason: "task web.0.x (instance 0) failed: TASK_FAILED".into(),
    });
    assert_eq!(
        state.describe(),
        "rollout of generation 01234567 stopped at 2023-11-14T22:14:20Z: task web.0.x (instance \
         0) failed: TASK_FAILED; the old generation keeps running"
    );
}
