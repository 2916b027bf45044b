//! Editing a spec file: a changed command is a new generation rolled out by `update.strategy`
//! (`rolling`: start new, then kill old, one at a time; `replace`: kill all old, then start), a
//! comment-only or key-order edit restarts nothing, `instances` alone scales in place, and a file
//! that does not parse or validate keeps its previous version in force.

use std::collections::BTreeSet;

use mesos_reconciler::status::{AttemptRow, Snapshot};

use crate::e2e::*;

fn spec(command: &str, instances: u32, strategy: &str) -> String {
    format!(
        "command = \"{command}\"\ncpus = 0.1\nmem = 16\ninstances = {instances}\n\n[update]\nstrategy = \"{strategy}\"\n"
    )
}

/// Waits until exactly `n` tasks of `spec` run, all with `command` (read from the TaskInfos the
/// master received), and returns them.
async fn wait_generation(
    w: &World,
    ctl: &Controller,
    spec: &str,
    n: usize,
    command: &str,
) -> Vec<MasterTask> {
    w.wait(
        ctl,
        &format!("{n} tasks of {spec} running `{command}`"),
        async || {
            let infos = w.cluster.received_task_infos().await;
            let live = w.live_tasks(spec).await;
            let of_command: BTreeSet<String> = infos
                .iter()
                .filter(|i| command_of(i) == command)
                .map(|i| i.task_id.value.clone())
                .collect();
            let ok = live.len() == n
                && live
                    .iter()
                    .all(|t| t.state == "TASK_RUNNING" && of_command.contains(&t.id));
            if ok {
                Ok(live)
            } else {
                Err(describe_tasks(&live))
            }
        },
    )
    .await
}

/// The attempts of `spec` in the snapshot, by task id.
fn attempts<'a>(snap: &'a Snapshot, spec: &str) -> Vec<&'a AttemptRow> {
    spec_of(snap, spec)
        .map(|s| s.history.iter().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_rolling_update_starts_each_new_task_before_killing_its_old_one() {
    let w = world("rolling", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("web", &spec("sleep 300", 2, "rolling"));
    let old = w.wait_running(&ctl, "web", 2).await;

    w.write_spec("web", &spec("sleep 301", 2, "rolling"));
    let new = wait_generation(&w, &ctl, "web", 2, "sleep 301").await;
    let generations: BTreeSet<&str> = new.iter().map(MasterTask::generation).collect();
    assert_eq!(generations.len(), 1, "one new generation: {new:?}");
    assert!(
        old.iter().all(|o| o.generation() != new[0].generation()),
        "the new tasks carry the new generation label"
    );
    for o in &old {
        let now = w.master_tasks().await.into_iter().find(|t| t.id == o.id);
        assert_eq!(now.map(|t| t.state), Some("TASK_KILLED".to_owned()));
    }

    // Rolling: every new task was launched while the old task of its instance still ran.
    let snap = ctl.status().await;
    let rows = attempts(&snap, "web");
    for n in &new {
        let new_row = rows.iter().find(|a| a.task_id == n.id).unwrap();
        let old_row = rows
            .iter()
            .find(|a| a.instance == new_row.instance && old.iter().any(|o| o.id == a.task_id))
            .unwrap();
        let old_end = old_row.ended_ms.expect("the old task ended");
        assert!(
            new_row.started_ms <= old_end,
            "instance {}: new task started at {} but the old one ended at {old_end}",
            new_row.instance,
            new_row.started_ms
        );
    }
    assert_eq!(snap.counters.launches, 4);
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn a_replace_update_kills_every_old_task_before_starting_new_ones() {
    let w = world("replace", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("batch", &spec("sleep 300", 2, "replace"));
    let old = w.wait_running(&ctl, "batch", 2).await;

    w.write_spec("batch", &spec("sleep 301", 2, "replace"));
    let new = wait_generation(&w, &ctl, "batch", 2, "sleep 301").await;
    assert!(new.iter().all(|n| old.iter().all(|o| o.id != n.id)));

    let snap = ctl.status().await;
    let rows = attempts(&snap, "batch");
    let last_old_end = rows
        .iter()
        .filter(|a| old.iter().any(|o| o.id == a.task_id))
        .map(|a| a.ended_ms.expect("old tasks ended"))
        .max()
        .unwrap();
    let first_new_start = rows
        .iter()
        .filter(|a| new.iter().any(|n| n.id == a.task_id))
        .map(|a| a.started_ms)
        .min()
        .unwrap();
    assert!(
        first_new_start >= last_old_end,
        "replace: the first new task started at {first_new_start}, before the last old one \
         ended at {last_old_end}"
    );
    assert_eq!(snap.counters.launches, 4);
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn comment_and_key_order_edits_restart_nothing_and_instances_scale_in_place() {
    let w = world("scale", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("svc", &spec("sleep 300", 2, "rolling"));
    let before = w.wait_running(&ctl, "svc", 2).await;
    let launches = ctl.status().await.counters.launches;

    // Same spec, other words: comments, whitespace and key order.
    w.write_spec(
        "svc",
        "# the service, reordered\ninstances = 2\nmem = 16\n  cpus = 0.1\ncommand = \"sleep 300\"  # same\n\n[update]\nstrategy = \"rolling\"\n",
    );
    let snap = w.settle(&ctl, 3).await;
    assert_eq!(
        snap.counters.launches,
        launches,
        "{}",
        describe_snapshot(&snap)
    );
    assert_eq!(
        w.live_tasks("svc").await,
        before,
        "the same tasks keep running"
    );

    // Scale up: the old tasks stay, instance 2 is added.
    w.write_spec("svc", &spec("sleep 300", 3, "rolling"));
    let up = w.wait_running(&ctl, "svc", 3).await;
    for b in &before {
        assert!(up.contains(b), "{} kept running after the scale-up", b.id);
    }
    let added: Vec<&MasterTask> = up.iter().filter(|t| !before.contains(t)).collect();
    assert_eq!(added.len(), 1);
    assert!(added[0].id.starts_with("svc.2."), "{}", added[0].id);

    // Scale down to 1: the highest instances go, instance 0 stays.
    w.write_spec("svc", &spec("sleep 300", 1, "rolling"));
    let down = w.wait_running(&ctl, "svc", 1).await;
    assert!(down[0].id.starts_with("svc.0."), "{}", down[0].id);
    assert!(before.contains(&down[0]));
    assert_eq!(ctl.status().await.counters.launches, launches + 1);
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn an_invalid_file_keeps_the_previous_version_and_a_new_invalid_file_launches_nothing() {
    let w = world("invalid", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("good", "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n");
    let running = w.wait_running(&ctl, "good", 1).await;
    let launches = ctl.status().await.counters.launches;

    // A typo in a key of a running spec (line 3, column 1), and a new file with a bad value.
    w.write_spec(
        "good",
        "command = \"sleep 301\"\ncpus = 0.1\ninstnaces = 2\n",
    );
    w.write_spec("fresh", "command = \"sleep 300\"\ncpus = \"lots\"\n");
    let snap = ctl
        .wait_status("both errors in the snapshot", |s| {
            let good = spec_of(s, "good").and_then(|x| x.error.clone());
            let fresh = spec_of(s, "fresh").and_then(|x| x.error.clone());
            match (good, fresh) {
                (Some(g), Some(f)) => Ok((s.clone(), g, f)),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    let (snap, good_error, fresh_error) = snap;
    assert!(good_error.file.ends_with("good.toml"), "{good_error:?}");
    assert_eq!(
        (good_error.line, good_error.column),
        (3, 1),
        "{good_error:?}"
    );
    assert!(good_error.message.contains("instnaces") || good_error.field.contains("instnaces"));
    assert!(fresh_error.file.ends_with("fresh.toml"), "{fresh_error:?}");
    assert_eq!(fresh_error.line, 2, "{fresh_error:?}");
    assert!(fresh_error.column > 0, "{fresh_error:?}");
    assert_eq!(snap.counters.invalid_specs, 2);
    let fresh_pending = &spec_of(&snap, "fresh").unwrap().pending;
    assert!(
        fresh_pending
            .iter()
            .any(|p| p.reason.contains("invalid spec")),
        "{fresh_pending:?}"
    );

    // The log says which file, where and what.
    let logged: Vec<String> = w
        .logs
        .matching("invalid spec")
        .iter()
        .filter(|e| e.level == tracing::Level::ERROR)
        .map(LogEvent::line)
        .collect();
    assert!(
        logged.iter().any(|l| l.contains("good.toml:3:1")),
        "{logged:#?}"
    );
    assert!(
        logged.iter().any(|l| l.contains("fresh.toml:2:")),
        "{logged:#?}"
    );

    // Nothing was restarted or launched for either.
    let snap = w.settle(&ctl, 3).await;
    assert_eq!(snap.counters.launches, launches);
    assert_eq!(w.live_tasks("good").await, running);
    assert!(w.live_tasks("fresh").await.is_empty());

    // Fixing the files applies them.
    w.write_spec("good", "command = \"sleep 301\"\ncpus = 0.1\nmem = 16\n");
    w.write_spec("fresh", "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n");
    w.wait_running(&ctl, "fresh", 1).await;
    w.wait(&ctl, "the fixed spec's new generation", async || {
        let live = w.live_tasks("good").await;
        match live.as_slice() {
            [t] if t.id != running[0].id && t.state == "TASK_RUNNING" => Ok(()),
            _ => Err(describe_tasks(&live)),
        }
    })
    .await;
    let snap = ctl.status().await;
    assert_eq!(
        snap.counters.invalid_specs,
        0,
        "{}",
        describe_snapshot(&snap)
    );
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn a_failing_new_generation_stops_the_rollout_and_a_newer_edit_replaces_it() {
    let w = world("rollfail", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("svc", &spec("sleep 300", 2, "rolling"));
    let old = w.wait_running(&ctl, "svc", 2).await;

    // The new generation exits at once: the rollout stops after its first failure. Without a
    // health check RUNNING is all a rollout can wait for, and a process that exits at once is
    // briefly RUNNING (as under Mesos' command executor), so the old task of instance 0 may already
    // have been replaced, and a pass that saw the new task RUNNING may even have launched the new
    // generation for instance 1 before the failure arrived; the stopped rollout then runs the old
    // generation on instance 0 again and kills instance 1's new task. The old task of instance 1 is
    // never touched, and no instance tries the failing generation twice.
    w.write_spec("svc", &spec("exit 1", 2, "rolling"));
    let rollout = ctl
        .wait_status("the rollout to stop", |s| {
            let r = spec_of(s, "svc")
                .and_then(|x| x.rollout.clone())
                .unwrap_or_default();
            if r.contains("stopped") { Ok(r) } else { Err(r) }
        })
        .await;
    assert!(
        rollout.contains("failed") && rollout.contains("TASK_FAILED"),
        "{rollout}"
    );
    let snap = w.settle(&ctl, 3).await;
    let live = w
        .wait(&ctl, "two tasks of the old generation", async || {
            let live = w.live_tasks("svc").await;
            let old_generation = live
                .iter()
                .all(|t| t.generation() == old[0].generation() && t.state == "TASK_RUNNING");
            if live.len() == 2 && old_generation {
                Ok(live)
            } else {
                Err(describe_tasks(&live))
            }
        })
        .await;
    assert!(
        live.contains(&old[1]),
        "instance 1 was not touched: {}",
        describe_tasks(&live)
    );
    let infos = w.cluster.received_task_infos().await;
    for t in &live {
        let info = infos.iter().find(|i| i.task_id.value == t.id).unwrap();
        assert_eq!(command_of(info), "sleep 300");
    }
    let pending = &spec_of(&snap, "svc").unwrap().pending;
    assert!(
        pending
            .iter()
            .all(|p| p.reason.contains("rollout of generation")),
        "{pending:?}"
    );
    let failing: Vec<u32> = w
        .cluster
        .received_task_infos()
        .await
        .iter()
        .filter(|i| command_of(i) == "exit 1")
        .map(|i| {
            mesos_reconciler::task_ids::parse(&i.task_id.value)
                .expect("a controller task id")
                .instance
        })
        .collect();
    assert!(
        matches!(failing[..], [0] | [0, 1]),
        "the failing generation was launched once for instance 0, and at most once for \
         instance 1 while its first task was briefly RUNNING: instances {failing:?}"
    );

    // A newer edit starts a new rollout, which completes.
    w.write_spec("svc", &spec("sleep 301", 2, "rolling"));
    wait_generation(&w, &ctl, "svc", 2, "sleep 301").await;
    ctl.wait_status("the rollout to be over", |s| {
        match spec_of(s, "svc").map(|x| x.rollout.clone()) {
            Some(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    ctl.stop().await;
    w.shutdown().await;
}
