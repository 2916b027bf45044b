//! The preview as a table: a world in force, a proposal, and what each spec id would go through.

use std::collections::BTreeMap;

use super::super::tests::{SEC, T0, World, edited, spec, task};
use super::{Change, Preview, Proposal, preview};
use crate::model::{TaskRecord, TaskState};
use crate::plan::{Desired, PlanInput};
use crate::spec::{Spec, SpecId, UpdateStrategy};

fn run(world: &World, proposal: Proposal) -> Preview {
    let input = PlanInput {
        now_ms: world.now,
        desired: &world.desired,
        invalid: &world.invalid,
        applied: &world.applied,
        ledger: &world.ledger,
        instances: &world.instances,
        rollouts: &world.rollouts,
        offers: &world.offers,
        offer_stats: &world.stats,
        framework_role: "*",
        awaiting_reconciliation: false,
        deletions_approved: world.approved,
        suppressed: false,
    };
    let mut by_spec: BTreeMap<&str, Vec<&TaskRecord>> = BTreeMap::new();
    for r in world.ledger.values() {
        by_spec.entry(r.spec_id.as_str()).or_default().push(r);
    }
    let ids: Vec<&str> = by_spec.keys().copied().collect();
    preview(&input, proposal, ids, &|id| {
        by_spec.get(id).cloned().unwrap_or_default()
    })
}

fn proposal(specs: &[&Spec], invalid: &[(&str, &str)]) -> Proposal {
    Proposal {
        specs: specs
            .iter()
            .map(|s| (s.id.clone(), Desired::new((*s).clone())))
            .collect(),
        invalid: invalid
            .iter()
            .map(|(k, e)| ((*k).to_owned(), (*e).to_owned()))
            .collect(),
    }
}

/// `id change launches=.. kills=.. held` per spec, for one-line comparisons.
fn lines(p: &Preview) -> Vec<String> {
    p.specs
        .iter()
        .map(|c| {
            let mut line = format!("{} {}", c.id, c.change.name());
            if let Some(s) = &c.strategy {
                line.push_str(&format!(" ({s})"));
            }
            if !c.launches.is_empty() {
                line.push_str(&format!(" launch={:?}", c.launches));
            }
            if !c.kills.is_empty() {
                let kills: Vec<&str> = c.kills.iter().map(|k| k.task_id.as_str()).collect();
                line.push_str(&format!(" kill={kills:?}"));
            }
            if c.held {
                line.push_str(" held");
            }
            line
        })
        .collect()
}

/// Four services running: web (2 instances), api, db, and cache.
fn running() -> (World, Spec, Spec, Spec) {
    let web = Spec {
        instances: 2,
        ..spec("web")
    };
    let api = spec("api");
    let db = spec("db");
    let world = World::new()
        .desire(&web, "web@v1")
        .desire(&api, "api@v1")
        .desire(&db, "db@v1")
        .task(task("web.0.a", &web, 0, TaskState::Running))
        .task(task("web.1.a", &web, 1, TaskState::Running))
        .task(task("api.0.a", &api, 0, TaskState::Running))
        .task(task("db.0.a", &db, 0, TaskState::Running));
    let cache = spec("cache");
    let world =
        world
            .desire(&cache, "cache@v1")
            .task(task("cache.0.a", &cache, 0, TaskState::Running));
    (world, web, api, db)
}

#[test]
fn each_kind_of_change_with_what_the_first_pass_would_do() {
    let (world, web, api, db) = running();
    let web_more = Spec {
        instances: 3,
        ..web.clone()
    };
    let api_v2 = edited(&api, "sleep 2000");
    let new = spec("batch");
    let got = run(&world, proposal(&[&web_more, &api_v2, &new], &[]));
    let _ = db;
    assert!(
        got.guard.is_none(),
        "two deletions of five specs are not held"
    );
    assert_eq!(
        lines(&got),
        [
            "api replace (rolling) launch=[0]",
            "batch launch launch=[0]",
            "cache kill kill=[\"cache.0.a\"]",
            "db kill kill=[\"db.0.a\"]",
            "web scale launch=[2]",
        ]
    );
    let api = &got.specs[0];
    assert_ne!(api.generation_from, api.generation_to);
}

#[test]
fn the_same_spec_rewritten_is_unchanged_and_a_replace_strategy_kills_first() {
    let (world, web, api, db) = running();
    let api_v2 = Spec {
        update: crate::spec::UpdatePolicy {
            strategy: UpdateStrategy::Replace,
            ..api.update.clone()
        },
        ..edited(&api, "sleep 2000")
    };
    let got = run(&world, proposal(&[&web, &api_v2, &db], &[]));
    assert_eq!(
        lines(&got),
        [
            "api replace (replace) kill=[\"api.0.a\"]",
            "cache kill kill=[\"cache.0.a\"]",
            "db unchanged",
            "web unchanged",
        ]
    );
}

#[test]
fn deleting_most_specs_is_held_by_the_guard() {
    let (world, _web, _api, db) = running();
    let got = run(&world, proposal(&[&db], &[]));
    assert_eq!(
        lines(&got),
        [
            "api kill kill=[\"api.0.a\"] held",
            "cache kill kill=[\"cache.0.a\"] held",
            "db unchanged",
            "web kill kill=[\"web.0.a\", \"web.1.a\"] held",
        ]
    );
    let guard = got.guard.expect("held");
    assert_eq!(guard.specs, ["api", "cache", "web"]);
    assert_eq!((guard.tasks, guard.total_specs), (4, 4));
    assert!(
        guard.message.contains("mass-deletion guard"),
        "{}",
        guard.message
    );

    let approved = world.edit(|w| w.approved = true);
    let got = run(&approved, proposal(&[&db], &[]));
    assert!(got.guard.is_none(), "an approval lets the kills through");
}

#[test]
fn an_invalid_file_keeps_its_version_and_a_new_invalid_file_launches_nothing() {
    let (world, web, _api, db) = running();
    let got = run(
        &world,
        proposal(
            &[&web, &db, &spec("cache")],
            &[
                ("api", "desired/api.toml:2:1: unknown field `instnaces`"),
                ("fresh", "desired/fresh.toml:1:1: expected `=`"),
                (
                    "Bad Name.toml",
                    "desired/Bad Name.toml: invalid spec file name",
                ),
            ],
        ),
    );
    assert_eq!(
        lines(&got),
        [
            "Bad Name.toml invalid",
            "api invalid",
            "cache unchanged",
            "db unchanged",
            "fresh invalid",
            "web unchanged",
        ]
    );
    let api = got.specs.iter().find(|c| c.id == "api").unwrap();
    assert_eq!(
        api.generation_from, api.generation_to,
        "the version in force stays"
    );
    assert!(api.error.as_deref().unwrap().contains("instnaces"));
}

#[test]
fn a_deleted_spec_with_tasks_left_is_listed_and_a_want_too_big_says_why() {
    let (world, web, api, db) = running();
    let old = spec("old");
    let world = world
        .task(task("old.0.a", &old, 0, TaskState::Running))
        .offers([super::super::tests::offer("o1", "a1", "h1", 2.0, 1024.0)])
        .edit(|w| w.now = T0 + SEC);
    let huge = Spec {
        cpus: 64.0,
        ..spec("huge")
    };
    let got = run(
        &world,
        proposal(&[&web, &api, &db, &spec("cache"), &huge], &[]),
    );
    let old = got.specs.iter().find(|c| c.id == "old").unwrap();
    assert_eq!(old.change, Change::Kill);
    assert_eq!(old.generation_from, None, "its file was already gone");
    let huge = got.specs.iter().find(|c| c.id == "huge").unwrap();
    assert_eq!(huge.launches, [0]);
    assert!(
        huge.waits.iter().any(|w| w.contains("cpus")),
        "{:?}",
        huge.waits
    );
    assert!(SpecId::new("huge").is_ok());
}
