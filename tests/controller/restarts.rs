//! Restart policies and backoff, measured in real time on process agents: `on-failure` relaunches a
//! failing command with growing gaps and gives up at `max_failures`, `never` runs once, `always`
//! relaunches a task that finished, and the tutorial's `echo HelloWorld` finishes once for good.
//! Failures the cluster caused (an agent killed) are relaunched at once and not counted.

use mesos_reconciler::devcluster::AgentSpecKind;
use mesos_reconciler::status::AttemptRow;

use crate::e2e::*;

/// The attempts of instance 0 of `spec`, oldest first.
fn attempts(snap: &mesos_reconciler::status::Snapshot, spec: &str) -> Vec<AttemptRow> {
    let mut rows: Vec<AttemptRow> = spec_of(snap, spec)
        .map(|s| s.history.clone())
        .unwrap_or_default();
    rows.sort_by_key(|a| a.started_ms);
    rows
}

#[tokio::test]
async fn on_failure_backs_off_with_growing_gaps_then_gives_up_at_max_failures() {
    let w = world("backoff", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    // Four attempts: failures 1..3 wait 200, 400 and 800 ms; the fourth gives up.
    w.write_spec(
        "crash",
        "command = \"exit 3\"\ncpus = 0.1\nmem = 16\nrestart = \"on-failure\"\n\n[backoff]\ninitial = \"200ms\"\nfactor = 2.0\nmax_failures = 4\n",
    );
    let snap = ctl
        .wait_status("the spec to give up", |s| {
            let pending = spec_of(s, "crash")
                .map(|x| x.pending.clone())
                .unwrap_or_default();
            if pending.iter().any(|p| p.reason.contains("gave up")) {
                Ok(s.clone())
            } else {
                Err(format!("{pending:?}"))
            }
        })
        .await;
    let reason = &spec_of(&snap, "crash").unwrap().pending[0].reason;
    assert!(
        reason.contains("gave up after 4 consecutive failures")
            && reason.contains("max_failures = 4")
            && reason.contains("TASK_FAILED"),
        "{reason}"
    );

    let rows = attempts(&snap, "crash");
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(rows.iter().all(|a| a.state == "TASK_FAILED"), "{rows:#?}");
    assert!(
        rows.iter().all(|a| a
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("exited with status 3"))),
        "each attempt says how it ended: {rows:#?}"
    );
    let gaps: Vec<u64> = rows
        .windows(2)
        .map(|p| p[1].started_ms - p[0].ended_ms.expect("ended"))
        .collect();
    // The backoff is a lower bound (on the controller's own clock); offers and load only add.
    for (gap, wanted) in gaps.iter().zip([200, 400, 800]) {
        assert!(
            *gap >= wanted,
            "gap {gap} ms is shorter than the backoff {wanted} ms: {gaps:?}"
        );
        assert!(
            *gap < wanted + 5_000,
            "gap {gap} ms is far above the backoff {wanted} ms: {gaps:?}"
        );
    }
    assert!(
        gaps[2] > gaps[0] + 300,
        "the gaps grow by the factor: {gaps:?}"
    );
    assert_eq!(snap.counters.failures, 4);

    // Given up means given up: no fifth launch.
    let snap = w.settle(&ctl, 3).await;
    assert_eq!(snap.counters.launches, 4);
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn never_runs_once_always_relaunches_a_finished_task_and_hello_world_finishes_once() {
    let w = world("policies", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec(
        "once",
        "command = \"exit 3\"\ncpus = 0.1\nmem = 16\nrestart = \"never\"\n",
    );
    w.write_spec(
        "loop",
        "command = \"true\"\ncpus = 0.1\nmem = 16\nrestart = \"always\"\n\n[backoff]\ninitial = \"100ms\"\nfactor = 1.0\n",
    );
    // The original tutorial's task, under the default policy (on-failure).
    w.write_spec(
        "hello",
        "command = \"echo HelloWorld\"\ncpus = 0.1\nmem = 100\n",
    );

    ctl.wait_status("`always` to have run `true` three times", |s| {
        let rows = attempts(s, "loop");
        let finished = rows.iter().filter(|a| a.state == "TASK_FINISHED").count();
        if finished >= 3 {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .await;
    let done = |s: &mesos_reconciler::status::Snapshot, id: &str, state: &str| {
        let rows = attempts(s, id);
        rows.len() == 1 && rows[0].state == state
    };
    ctl.wait_status("`never` and hello to have ended", |s| {
        if done(s, "once", "TASK_FAILED") && done(s, "hello", "TASK_FINISHED") {
            Ok(())
        } else {
            Err(format!(
                "{:?} {:?}",
                attempts(s, "once"),
                attempts(s, "hello")
            ))
        }
    })
    .await;

    let snap = w.settle(&ctl, 4).await;
    assert!(
        done(&snap, "once", "TASK_FAILED"),
        "{}",
        describe_snapshot(&snap)
    );
    assert!(
        done(&snap, "hello", "TASK_FINISHED"),
        "{}",
        describe_snapshot(&snap)
    );
    let infos = w.cluster.received_task_infos().await;
    for (name, launched) in [("once", 1), ("hello", 1)] {
        assert_eq!(
            infos.iter().filter(|i| i.name == name).count(),
            launched,
            "{name} was launched once"
        );
    }
    // Finished for good is not "pending": nothing is wanted.
    for id in ["once", "hello"] {
        let spec = spec_of(&snap, id).unwrap();
        assert!(spec.pending.is_empty(), "{id}: {:?}", spec.pending);
    }
    // The tutorial's output is in the task's sandbox.
    let hello = &attempts(&snap, "hello")[0].task_id;
    let stdout = find_file(&w.root.path().join("cluster"), hello, "stdout")
        .map(|p| std::fs::read_to_string(p).unwrap_or_default());
    assert_eq!(stdout.as_deref().map(str::trim), Some("HelloWorld"));
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn an_agent_killed_under_a_task_is_not_a_failure() {
    let w = world(
        "agentkill",
        vec![
            agent_named(AgentSpecKind::Virtual, "host-a"),
            agent_named(AgentSpecKind::Virtual, "host-b"),
        ],
    )
    .await;
    let ctl = w.start_controller().await;
    // One failure would give up; a lost agent must not count as one.
    w.write_spec(
        "fragile",
        "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n\n[backoff]\ninitial = \"30s\"\nmax_failures = 1\n",
    );
    let first = w.wait_running(&ctl, "fragile", 1).await.remove(0);
    w.cluster.faults().kill_agent(&first.agent).await.unwrap();

    let second = w
        .wait(&ctl, "a replacement on the other agent", async || {
            let live = w.live_tasks("fragile").await;
            match live.as_slice() {
                [t] if t.id != first.id && t.state == "TASK_RUNNING" => Ok(t.clone()),
                _ => Err(describe_tasks(&live)),
            }
        })
        .await;
    assert_ne!(second.agent, first.agent);
    let snap = ctl.status().await;
    assert_eq!(snap.counters.failures, 0, "{}", describe_snapshot(&snap));
    let rows = attempts(&snap, "fragile");
    // Relaunched at once, not after the 30 s backoff.
    let gap = rows[1].started_ms - rows[0].ended_ms.unwrap();
    assert!(gap < 10_000, "relaunched {gap} ms after the loss");
    ctl.stop().await;
    w.shutdown().await;
}

/// The file `name` in a directory under `root` whose name starts with `task_id` (a sandbox).
fn find_file(root: &std::path::Path, task_id: &str, name: &str) -> Option<std::path::PathBuf> {
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if entry.file_name().to_string_lossy().starts_with(task_id) {
                    let file = path.join(name);
                    if file.exists() {
                        return Some(file);
                    }
                }
                stack.push(path);
            }
        }
    }
    None
}

#[tokio::test]
async fn duplicated_status_updates_count_each_failure_once() {
    let w = world("dupes", vec![virtual_agent()]).await;
    let ctl = w.start_controller().await;
    w.cluster
        .faults()
        .duplicate_status_updates(true)
        .await
        .unwrap();
    w.write_spec(
        "flaky",
        "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n\n[backoff]\ninitial = \"100ms\"\nmax_failures = 3\n\n[labels]\n\"devcluster.run_for\" = \"300ms\"\n\"devcluster.outcome\" = \"failed\"\n",
    );
    let snap = ctl
        .wait_status("the spec to give up", |s| {
            let pending = spec_of(s, "flaky")
                .map(|x| x.pending.clone())
                .unwrap_or_default();
            if pending.iter().any(|p| p.reason.contains("gave up")) {
                Ok(s.clone())
            } else {
                Err(format!("{pending:?}"))
            }
        })
        .await;
    assert_eq!(snap.counters.failures, 3, "{}", describe_snapshot(&snap));
    assert_eq!(snap.counters.launches, 3);
    assert!(
        snap.counters.status_updates >= 2 * 3 * 2,
        "every update came twice: {:?}",
        snap.counters
    );
    let snap = w.settle(&ctl, 2).await;
    assert_eq!(snap.counters.launches, 3);
    assert_eq!(w.cluster.received_task_infos().await.len(), 3);
    ctl.stop().await;
    w.shutdown().await;
}
