//! The life of a spec file and of the controller itself: a new file is launched, a deleted file's
//! task is killed (SIGTERM, grace, SIGKILL) and not relaunched, changes made while the controller
//! is down are applied at the next start, and a clean stop leaves the tasks running and the store
//! flushed.

use std::time::{Duration, Instant};

use crate::e2e::*;

const SLEEPER: &str = "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n";

#[tokio::test]
async fn a_new_file_is_launched_and_runs() {
    let w = world("launch", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("sleeper", SLEEPER);

    let tasks = w.wait_running(&ctl, "sleeper", 1).await;
    assert_eq!(tasks[0].name, "sleeper");
    assert!(
        tasks[0].id.starts_with("sleeper.0."),
        "task id {} should start with the spec id and instance",
        tasks[0].id
    );
    let snap = ctl
        .wait_status("the snapshot to show the task running", |s| {
            match spec_of(s, "sleeper") {
                Some(spec) if spec.running == 1 => Ok(s.clone()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    assert_eq!(snap.counters.launches, 1);
    assert_eq!(snap.tasks.len(), 1);
    assert_eq!(snap.tasks[0].task_id, tasks[0].id);
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn deleting_the_file_kills_with_term_then_kill_after_the_grace_and_does_not_relaunch() {
    let w = world("delete", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    // The task notes the SIGTERM in a file and keeps running: only SIGKILL after the grace
    // ends it.
    let marker = w.out.join("term");
    w.write_spec(
        "stubborn",
        &format!(
            "command = \"trap 'echo TERM >> {}' TERM; while true; do sleep 0.1; done\"\ncpus = 0.1\nmem = 16\nkill_grace = \"1s\"\n",
            marker.display()
        ),
    );
    let task = w.wait_running(&ctl, "stubborn", 1).await.remove(0);
    let launches = ctl.status().await.counters.launches;

    let deleted_at = Instant::now();
    w.delete_spec("stubborn");
    w.wait(&ctl, "the task to be killed", async || {
        let t = w.master_tasks().await.into_iter().find(|t| t.id == task.id);
        match t {
            Some(t) if t.state == "TASK_KILLED" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let took = deleted_at.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "the task ignored SIGTERM, so it can only have ended by SIGKILL after the 1 s grace, \
         yet it ended {took:?} after the delete"
    );
    let term = std::fs::read_to_string(&marker).unwrap_or_default();
    assert!(
        term.contains("TERM"),
        "the task was sent SIGTERM first (marker: {term:?})"
    );

    // Not relaunched: several passes later, nothing of it runs and nothing was launched.
    let snap = w.settle(&ctl, 4).await;
    assert!(w.live_tasks("stubborn").await.is_empty());
    assert_eq!(snap.counters.launches, launches, "nothing was relaunched");
    assert!(snap.tasks.is_empty(), "{}", describe_snapshot(&snap));
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn files_added_edited_and_deleted_while_the_controller_is_down_are_applied_at_start() {
    let w = world("down", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    for id in ["keep", "edit", "gone"] {
        w.write_spec(id, SLEEPER);
    }
    let keep = w.wait_running(&ctl, "keep", 1).await.remove(0);
    let edit = w.wait_running(&ctl, "edit", 1).await.remove(0);
    let gone = w.wait_running(&ctl, "gone", 1).await.remove(0);
    let framework = ctl.status().await.framework_id;
    ctl.stop().await;

    w.write_spec("added", SLEEPER);
    w.write_spec("edit", "command = \"sleep 301\"\ncpus = 0.1\nmem = 16\n");
    w.delete_spec("gone");

    let ctl = w.start_controller().await;
    assert_eq!(
        ctl.status().await.framework_id,
        framework,
        "the same framework id is used again"
    );
    w.wait_running(&ctl, "added", 1).await;
    w.wait(&ctl, "the edited spec to be replaced", async || {
        let live = w.live_tasks("edit").await;
        match live.as_slice() {
            [t] if t.id != edit.id && t.state == "TASK_RUNNING" => Ok(()),
            _ => Err(describe_tasks(&live)),
        }
    })
    .await;
    w.wait(&ctl, "the deleted spec's task to be killed", async || {
        let t = w.master_tasks().await.into_iter().find(|t| t.id == gone.id);
        match t {
            Some(t) if t.state == "TASK_KILLED" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let infos = w.cluster.received_task_infos().await;
    let edited = infos
        .iter()
        .filter(|i| i.name == "edit")
        .map(command_of)
        .collect::<Vec<_>>();
    assert_eq!(edited, ["sleep 300", "sleep 301"]);
    assert_eq!(
        w.live_tasks("keep").await,
        vec![keep],
        "the unchanged spec's task kept running untouched"
    );
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn a_clean_stop_leaves_tasks_running_and_a_restart_launches_nothing() {
    let w = world("stop", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("a", SLEEPER);
    w.write_spec("b", SLEEPER);
    let a = w.wait_running(&ctl, "a", 1).await;
    let b = w.wait_running(&ctl, "b", 1).await;
    let framework = ctl.status().await.framework_id.expect("registered");
    ctl.stop().await;

    // The cluster still runs them: they belong to the cluster, not to the controller process.
    assert_eq!(w.live_tasks("a").await, a);
    assert_eq!(w.live_tasks("b").await, b);
    let infos_before = w.cluster.received_task_infos().await.len();

    let ctl = w.start_controller().await;
    let snap = w.settle(&ctl, 3).await;
    assert_eq!(snap.framework_id.as_deref(), Some(framework.as_str()));
    assert_eq!(snap.counters.launches, 0, "{}", describe_snapshot(&snap));
    assert_eq!(
        snap.counters.running_tasks,
        2,
        "{}",
        describe_snapshot(&snap)
    );
    assert_eq!(w.cluster.received_task_infos().await.len(), infos_before);
    assert_eq!(w.live_tasks("a").await, a);
    assert_eq!(w.live_tasks("b").await, b);
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn given_up_and_done_instances_stay_so_across_a_restart() {
    let w = world("remember", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec(
        "crash",
        "command = \"exit 3\"\ncpus = 0.1\nmem = 16\n\n[backoff]\ninitial = \"100ms\"\nmax_failures = 2\n",
    );
    w.write_spec(
        "once",
        "command = \"true\"\ncpus = 0.1\nmem = 16\nrestart = \"never\"\n",
    );
    ctl.wait_status("crash to give up and once to finish", |s| {
        let gave_up = spec_of(s, "crash")
            .is_some_and(|x| x.pending.iter().any(|p| p.reason.contains("gave up")));
        let finished = spec_of(s, "once")
            .is_some_and(|x| x.history.iter().any(|a| a.state == "TASK_FINISHED"));
        if gave_up && finished {
            Ok(())
        } else {
            Err(format!("gave_up={gave_up} finished={finished}"))
        }
    })
    .await;
    ctl.stop().await;
    let launched = w.cluster.received_task_infos().await.len();
    assert_eq!(launched, 3);

    let ctl = w.start_controller().await;
    let snap = w.settle(&ctl, 3).await;
    assert_eq!(snap.counters.launches, 0, "{}", describe_snapshot(&snap));
    assert_eq!(w.cluster.received_task_infos().await.len(), launched);
    let crash = spec_of(&snap, "crash").unwrap();
    assert!(
        crash
            .pending
            .iter()
            .any(|p| p.reason.contains("gave up after 2")),
        "{:?}",
        crash.pending
    );
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn a_task_that_failed_while_the_controller_was_down_is_relaunched_once_at_start() {
    let w = world("faileddown", vec![virtual_agent()]).await;
    let ctl = w.start_controller().await;
    // Every attempt fails after 2 s; the second failure gives up.
    w.write_spec(
        "flaky",
        "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n\n[backoff]\ninitial = \"100ms\"\nmax_failures = 2\n\n[labels]\n\"devcluster.run_for\" = \"2s\"\n\"devcluster.outcome\" = \"failed\"\n",
    );
    let first = w.wait_running(&ctl, "flaky", 1).await.remove(0);
    ctl.stop().await;
    w.wait_cluster(
        "the task to fail while the controller is down",
        async || match w
            .master_tasks()
            .await
            .into_iter()
            .find(|t| t.id == first.id)
        {
            Some(t) if t.state == "TASK_FAILED" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;

    let ctl = w.start_controller().await;
    ctl.wait_status("the relaunch to fail and give up", |s| {
        let pending = spec_of(s, "flaky")
            .map(|x| x.pending.clone())
            .unwrap_or_default();
        if pending.iter().any(|p| p.reason.contains("gave up after 2")) {
            Ok(())
        } else {
            Err(format!("{pending:?}"))
        }
    })
    .await;
    let snap = w.settle(&ctl, 2).await;
    let infos = w.cluster.received_task_infos().await;
    assert_eq!(
        infos.len(),
        2,
        "launched once before and once after the restart"
    );
    assert_eq!(snap.counters.launches, 1);
    assert_eq!(snap.counters.failures, 2, "{}", describe_snapshot(&snap));
    ctl.stop().await;
    w.shutdown().await;
}
