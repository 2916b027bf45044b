//! Regression tests, each named after a controller bug these end-to-end tests found.

use crate::e2e::*;
use mesos_reconciler::devcluster::{DevCluster, DevClusterConfig};

/// The framework's roles were computed only when subscribing, so a spec added later with a role
/// of its own never got an offer of that role and stayed "waiting for an offer" forever. The
/// controller now sends UPDATE_FRAMEWORK when the roles its specs use change.
#[tokio::test]
async fn regression_a_spec_with_a_new_role_added_after_subscribing_never_got_an_offer() {
    let w = world("newrole", vec![virtual_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec(
        "batch",
        "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\nrole = \"batch\"\n",
    );
    let task = w.wait_running(&ctl, "batch", 1).await.remove(0);
    let state = w.cluster.state().await;
    let roles = state["frameworks"][0]["roles"].clone();
    assert_eq!(roles, serde_json::json!(["*", "batch"]));
    let info = w.cluster.received_task_infos().await.remove(0);
    assert!(
        info.resources
            .iter()
            .all(|r| r.allocation_info.as_ref().and_then(|a| a.role.as_deref()) == Some("batch")),
        "{:?}",
        info.resources
    );

    // Deleting the spec drops the role again, and its task is still killed.
    w.delete_spec("batch");
    w.wait(
        &ctl,
        "the task to be killed and the role dropped",
        async || {
            let state = w.cluster.state().await;
            let killed = master_tasks_of(&state)
                .iter()
                .any(|t| t.id == task.id && t.state == "TASK_KILLED");
            let roles = state["frameworks"][0]["roles"].clone();
            if killed && roles == serde_json::json!(["*"]) {
                Ok(())
            } else {
                Err(format!("killed={killed} roles={roles}"))
            }
        },
    )
    .await;
    ctl.stop().await;
    w.shutdown().await;
}

/// The watcher (src/watch.rs) counted every inotify event under the directory as a change,
/// including the OPEN and CLOSE_NOWRITE events of the controller's own re-read. Each re-read
/// therefore triggered the next one: an idle controller re-read the whole directory and ran a
/// pass about every 150 ms (the watcher's quiet window), forever. It now ignores access events
/// other than closing a file opened for writing.
#[tokio::test]
async fn regression_the_controllers_own_reread_wakes_it_again() {
    let w = world("idle", vec![virtual_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("a", "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n");
    w.wait_running(&ctl, "a", 1).await;
    w.settle(&ctl, 1).await;

    // An observation window, not a synchronisation: nothing changes during it.
    let count = |w: &World| {
        w.logs
            .matching("span pass")
            .iter()
            .filter(|e| e.field("why") == Some("desired changed"))
            .count()
    };
    let before = count(&w);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let woken = count(&w) - before;
    assert!(
        woken <= 1,
        "{woken} passes woken by 'desired changed' in 3 s with no change to the directory"
    );
    ctl.stop().await;
    w.shutdown().await;
}

/// A desired directory that did not exist when the controller started was never watched, even
/// after it appeared: the watcher was only created at start, so changes were picked up by the
/// 30 s periodic re-read alone. The controller now retries the watch while it has none.
#[tokio::test]
async fn regression_a_directory_missing_at_start_was_never_watched() {
    let w = world("latedir", vec![virtual_agent()]).await;
    std::fs::remove_dir(&w.desired).unwrap();
    let ctl = w.start_controller().await;
    ctl.wait_status("the missing directory to be reported", |s| {
        s.desired_error.clone().ok_or("no desired_error".to_owned())
    })
    .await;
    assert_eq!(ctl.status().await.counters.launches, 0);

    std::fs::create_dir(&w.desired).unwrap();
    w.write_spec("a", "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n");
    w.wait_running(&ctl, "a", 1).await;

    // The directory is watched now: a new file is launched at once, not at the next periodic
    // re-read 30 s later.
    let written = std::time::Instant::now();
    w.write_spec("b", "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n");
    w.wait_running(&ctl, "b", 1).await;
    let took = written.elapsed();
    assert!(
        took < std::time::Duration::from_secs(15),
        "a new file took {took:?} to launch"
    );
    assert!(ctl.status().await.desired_error.is_none());
    ctl.stop().await;
    w.shutdown().await;
}

/// A spec deleted while its task's agent was partitioned: the KILL could not reach the agent,
/// and when the agent came back (the task RUNNING again) the kill was only retried
/// KILL_RETRY_MS (60 s) after that update. The controller now sends it again as soon as the task
/// is heard from again.
#[tokio::test]
async fn regression_a_kill_sent_while_the_agent_was_unreachable_was_retried_only_60s_after_it_came_back()
 {
    let w = world(
        "partkill",
        vec![
            agent_named(
                mesos_reconciler::devcluster::AgentSpecKind::Virtual,
                "host-a",
            ),
            agent_named(
                mesos_reconciler::devcluster::AgentSpecKind::Virtual,
                "host-b",
            ),
        ],
    )
    .await;
    let ctl = w.start_controller().await;
    w.write_spec("keep", "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n");
    w.write_spec("doomed", "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n");
    w.wait_running(&ctl, "keep", 1).await;
    let task = w.wait_running(&ctl, "doomed", 1).await.remove(0);
    w.cluster
        .faults()
        .partition_agent(&task.agent)
        .await
        .unwrap();
    ctl.wait_status("the task to be unreachable", |s| {
        match s.tasks.iter().find(|t| t.task_id == task.id) {
            Some(t) if t.state == "TASK_UNREACHABLE" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    w.delete_spec("doomed");
    w.settle(&ctl, 2).await;
    w.cluster.faults().heal_agent(&task.agent).await.unwrap();
    let healed = std::time::Instant::now();
    w.wait(
        &ctl,
        "the deleted spec's task to be killed",
        async || match w.master_tasks().await.into_iter().find(|t| t.id == task.id) {
            Some(t) if t.state == "TASK_KILLED" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let took = healed.elapsed();
    assert!(
        took < std::time::Duration::from_secs(20),
        "killed {took:?} after its agent came back"
    );
    ctl.stop().await;
    w.shutdown().await;
}

/// A controller whose master was replaced by one that never heard of its tasks (what `dev` does
/// on every start) gets TASK_UNKNOWN answers. It replaced those tasks, but kept listing the
/// UNKNOWN ones as healthy: health now belongs to running tasks only.
#[tokio::test]
async fn regression_tasks_unknown_to_a_new_master_kept_showing_healthy() {
    let mut w = world("newmaster", vec![virtual_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec(
        "a",
        "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n[health]\ncommand = \"true\"\n",
    );
    let old = w.wait_running(&ctl, "a", 1).await.remove(0);
    ctl.wait_status("the task to be healthy", |s| {
        match s.tasks.iter().find(|t| t.task_id == old.id) {
            Some(t) if t.healthy == Some(true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    ctl.stop().await;

    // A new master with a new agent: it knows nothing of the old task.
    let fresh = DevCluster::start(DevClusterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        agents: vec![virtual_agent()],
        allocation_interval: std::time::Duration::from_millis(50),
        heartbeat_interval: std::time::Duration::from_secs(1),
        work_dir: w.root.path().join("cluster-2"),
        ..DevClusterConfig::default()
    })
    .await
    .expect("a second dev cluster starts");
    std::mem::replace(&mut w.cluster, fresh).shutdown().await;

    let ctl = w.start_controller().await;
    let new = w.wait_running(&ctl, "a", 1).await.remove(0);
    assert_ne!(new.id, old.id, "the unknown task is replaced");
    let snap = ctl
        .wait_status("the old task to be reported unknown", |s| {
            match s.tasks.iter().find(|t| t.task_id == old.id) {
                Some(t) if t.state == "TASK_UNKNOWN" => Ok(t.clone()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    assert_eq!(
        snap.healthy, None,
        "an unknown task is not healthy: {snap:?}"
    );
    ctl.stop().await;
    w.shutdown().await;
}
