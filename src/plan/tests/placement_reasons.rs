//! Constraints, the reasons of pending instances, and what happens to offers (decline filters,
//! suppress and revive).

use super::*;
use crate::model::TaskState::{Running, Staging};
use crate::plan::{AgentInfo, PendingReason, ResourceKind};
use crate::spec::ConstraintOp::{Cluster, Like, MaxPer, Unique, Unlike};

fn with_rack(mut o: Offer, rack: &str) -> Offer {
    o.attributes.insert("rack".into(), rack.into());
    o
}

/// o1 (h1, rack r1), o2 (h2, rack r2), o3 (h3, no rack).
fn racks() -> [Offer; 3] {
    [
        with_rack(offer("o1", "a1", "h1", 4.0, 1024.0), "r1"),
        with_rack(offer("o2", "a2", "h2", 4.0, 1024.0), "r2"),
        offer("o3", "a3", "h3", 4.0, 1024.0),
    ]
}

fn constrained(instances: u32, constraints: Vec<Constraint>) -> Spec {
    Spec {
        instances,
        constraints,
        ..spec("web")
    }
}

#[test]
fn hostname_unique_spreads_and_explains_the_instance_left_over() {
    let web = constrained(4, vec![constraint("hostname", Unique)]);
    let reason = "pending web#3: no offer meets constraint hostname unique (3 instances already on \
                  the 3 agents seen)";
    let world = World::new().desire(&web, "v1").offers([
        offer("o1", "a1", "h1", 4.0, 1024.0),
        offer("o2", "a2", "h2", 4.0, 1024.0),
        offer("o3", "a3", "h3", 4.0, 1024.0),
    ]);
    let plan = world.expect(&[
        "launch on o1: web#0@v1",
        "launch on o2: web#1@v1",
        "launch on o3: web#2@v1",
        reason,
    ]);
    assert_eq!(
        plan.pending[&InstanceKey::new(web.id.clone(), 3)].reason,
        PendingReason::Constraint
    );
    // The next pass, offers gone and the three tasks staging: the same reason, and offers are
    // revived if they were suppressed.
    world
        .edit(|w| {
            w.offers.clear();
            w.suppressed = true;
        })
        .task(task("web.0.x", &web, 0, Staging).on("a1", "h1"))
        .task(task("web.1.x", &web, 1, Staging).on("a2", "h2"))
        .task(task("web.2.x", &web, 2, Staging).on("a3", "h3"))
        .expect(&["revive", reason]);
}

#[test]
fn attribute_constraints_choose_offers_or_say_why_not() {
    let cases: Vec<(Vec<Constraint>, u32, Vec<&str>)> = vec![
        (
            vec![constraint("rack", Cluster("r2".into()))],
            1,
            vec![
                "launch on o2: web#0@v1",
                "decline o1 o3 for 120s",
                "suppress",
            ],
        ),
        (
            vec![constraint("rack", Like("r[23]".into()))],
            1,
            vec![
                "launch on o2: web#0@v1",
                "decline o1 o3 for 120s",
                "suppress",
            ],
        ),
        (
            vec![constraint("rack", Unlike("r1".into()))],
            1,
            vec![
                "launch on o2: web#0@v1",
                "decline o1 o3 for 120s",
                "suppress",
            ],
        ),
        (
            vec![constraint("hostname", Unlike("h[12]".into()))],
            1,
            vec![
                "launch on o3: web#0@v1",
                "decline o1 o2 for 120s",
                "suppress",
            ],
        ),
        (
            // An agent without the attribute passes `unlike`.
            vec![constraint("rack", Unlike("r.*".into()))],
            1,
            vec![
                "launch on o3: web#0@v1",
                "decline o1 o2 for 120s",
                "suppress",
            ],
        ),
        (
            vec![constraint("rack", Cluster("r9".into()))],
            1,
            vec![
                "decline o1 o2 o3 for 5s",
                "pending web#0: no offer meets constraint rack cluster r9 (values seen: r1, r2)",
            ],
        ),
        (
            vec![constraint("dc", Like(".*".into()))],
            1,
            vec![
                "decline o1 o2 o3 for 5s",
                "pending web#0: no offer meets constraint dc like .* (no agent seen has \
                 attribute dc)",
            ],
        ),
        (
            // An agent without the attribute fails `unique`.
            vec![constraint("rack", Unique)],
            3,
            vec![
                "launch on o1: web#0@v1",
                "launch on o2: web#1@v1",
                "decline o3 for 5s",
                "pending web#2: no offer meets constraint rack unique (2 instances already on \
                 the 2 values of rack seen)",
            ],
        ),
        (
            vec![constraint("rack", MaxPer(2))],
            5,
            vec![
                "launch on o1: web#0@v1, web#1@v1",
                "launch on o2: web#2@v1, web#3@v1",
                "decline o3 for 5s",
                "pending web#4: no offer meets constraint rack max_per 2 (4 instances already \
                 on the 2 values of rack seen)",
            ],
        ),
        (
            vec![
                constraint("rack", Cluster("r1".into())),
                constraint("hostname", Like("h2".into())),
            ],
            1,
            vec![
                "decline o1 o2 o3 for 5s",
                "pending web#0: no agent seen meets all constraints together (rack cluster r1, \
                 hostname like h2)",
            ],
        ),
    ];
    for (constraints, instances, expected) in cases {
        let web = constrained(instances, constraints);
        World::new()
            .desire(&web, "v1")
            .offers(racks())
            .expect(&expected);
    }
}

#[test]
fn constraints_count_live_tasks_on_agents_known_from_earlier_offers() {
    let web = constrained(2, vec![constraint("rack", Unique)]);
    World::new()
        .desire(&web, "v1")
        .edit(|w| {
            let mut a9 = AgentInfo {
                hostname: "h9".into(),
                ..AgentInfo::default()
            };
            a9.attributes.insert("rack".into(), "r1".into());
            w.stats.agents.insert("a9".into(), a9);
        })
        .task(task("web.0.x", &web, 0, Running).on("a9", "h9"))
        .offers(racks())
        .expect(&[
            "launch on o2: web#1@v1",
            "decline o1 o3 for 120s",
            "suppress",
        ]);
}

#[test]
fn a_known_agent_that_would_do_makes_it_a_wait_for_its_offer() {
    let web = constrained(1, vec![constraint("rack", Cluster("r2".into()))]);
    let [o1, o2, _] = racks();
    World::new()
        .desire(&web, "v1")
        .offers([o2])
        .edit(|w| w.offers.clear())
        .offers([o1])
        .expect(&[
            "decline o1 for 5s",
            "pending web#0: the offers held now do not meet rack cluster r2; waiting for other \
             offers",
        ]);
}

#[test]
fn resource_reasons_name_the_scarcest_resource() {
    let needs = |f: fn(&mut Spec)| {
        let mut s = spec("web");
        f(&mut s);
        s
    };
    let cases: Vec<(Spec, &str)> = vec![
        (
            needs(|s| s.cpus = 8.0),
            "needs 8 cpus; the largest offer in the last minute had 4",
        ),
        (
            needs(|s| s.mem = 4096),
            "needs 4096 MiB mem; the largest offer in the last minute had 1024 MiB",
        ),
        (
            needs(|s| s.disk = 100),
            "needs 100 MiB disk; the largest offer in the last minute had 0 MiB",
        ),
        (
            needs(|s| s.gpus = 2),
            "needs 2 gpus; the largest offer in the last minute had 0",
        ),
        (
            needs(|s| s.ports = 20),
            "needs 20 ports; the largest offer in the last minute had 10",
        ),
        (
            needs(|s| {
                s.cpus = 8.0;
                s.mem = 8192;
            }),
            "needs 8192 MiB mem; the largest offer in the last minute had 1024 MiB",
        ),
        (
            needs(|s| s.role = Some("web".into())),
            "waiting for an offer for role web; the offers held now are for other roles",
        ),
    ];
    for (s, message) in cases {
        let plan = World::new()
            .desire(&s, "v1")
            .offers([offer("o1", "a1", "h1", 4.0, 1024.0)])
            .expect(&["decline o1 for 5s", &format!("pending web#0: {message}")]);
        if s.cpus == 8.0 && s.mem == 32 {
            assert_eq!(
                plan.pending.values().next().map(|p| &p.reason),
                Some(&PendingReason::InsufficientResources {
                    resource: ResourceKind::Cpus,
                    needed: 8.0,
                    largest: 4.0
                })
            );
        }
    }
}

#[test]
fn reasons_tell_a_busy_cluster_from_a_small_one() {
    let two = Spec {
        cpus: 2.0,
        mem: 2048,
        ..spec("web")
    };
    let world = World::new().desire(&two, "v1");
    // An offer of the last minute was big enough; the ones held now are not.
    world
        .edit(|w| {
            w.stats
                .observe(&offer("old", "a5", "h5", 16.0, 65536.0).resources);
        })
        .offers([offer("o1", "a1", "h1", 1.0, 8192.0)])
        .expect(&[
            "decline o1 for 5s",
            "pending web#0: needs 2 cpus; the offers held now have at most 1 free",
        ]);
    // Enough of each, but not in the same offer.
    world
        .offers([
            offer("o1", "a1", "h1", 4.0, 1024.0),
            offer("o2", "a2", "h2", 1.0, 4096.0),
        ])
        .expect(&[
            "decline o1 o2 for 5s",
            "pending web#0: needs 2 cpus, 2048 MiB mem; no single offer held now has all of it \
             free (e.g. 4 cpus, 1024 MiB mem, 10 ports on h1)",
        ]);
    // Nothing offered at all.
    world.expect(&["pending web#0: waiting for an offer (none seen in the last minute)"]);
}

#[test]
fn offers_are_revived_only_when_needed_and_suppressed_only_when_not() {
    let web = spec("web");
    let running = task("web.0.x", &web, 0, Running);
    // (instance running, suppressed) -> offer actions
    let cases: [(bool, bool, &[&str]); 4] = [
        (true, false, &["suppress"]),
        (true, true, &[]),
        (
            false,
            false,
            &["pending web#0: waiting for an offer (none seen in the last minute)"],
        ),
        (
            false,
            true,
            &[
                "revive",
                "pending web#0: waiting for an offer (none seen in the last minute)",
            ],
        ),
    ];
    for (is_running, suppressed, expected) in cases {
        let mut world = World::new()
            .desire(&web, "v1")
            .edit(|w| w.suppressed = suppressed);
        if is_running {
            world = world.task(running.clone());
        }
        world.expect(expected);
    }
}
