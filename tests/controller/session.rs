//! The Mesos session: when the master reports the framework removed (its failover timeout
//! expired while the stream was down), the controller says so loudly, registers anew under a new
//! framework id and relaunches everything the specs want.

use std::time::Duration;

use crate::e2e::*;

#[tokio::test]
async fn a_removed_framework_registers_anew_and_relaunches_everything() {
    let w = world("removed", vec![process_agent()]).await;
    // A zero failover timeout: the master removes the framework as soon as its stream drops.
    let ctl = w.start_controller_with(Duration::ZERO).await;
    w.write_spec("a", "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n");
    w.write_spec(
        "b",
        "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\ninstances = 2\n",
    );
    let a = w.wait_running(&ctl, "a", 1).await;
    let b = w.wait_running(&ctl, "b", 2).await;
    let old = ctl.status().await.framework_id.expect("registered");

    w.cluster
        .faults()
        .drop_framework_stream(&old)
        .await
        .unwrap();

    let new = ctl
        .wait_status("a new framework id", |s| match &s.framework_id {
            Some(id) if *id != old && s.connected => Ok(id.clone()),
            other => Err(format!("{other:?} connected={}", s.connected)),
        })
        .await;
    let a2 = w.wait_running(&ctl, "a", 1).await;
    let b2 = w.wait_running(&ctl, "b", 2).await;
    for t in a2.iter().chain(&b2) {
        assert_eq!(t.framework, new, "{} runs under the new framework", t.id);
        assert!(!a.contains(t) && !b.contains(t), "{} is a new task", t.id);
    }
    // The old tasks died with their framework.
    let tasks = w.master_tasks().await;
    for t in a.iter().chain(&b) {
        let now = tasks.iter().find(|x| x.id == t.id);
        assert!(now.is_none_or(MasterTask::is_terminal), "{now:?}");
    }
    let loud: Vec<LogEvent> = w
        .logs
        .matching("MESOS REMOVED THIS FRAMEWORK")
        .into_iter()
        .filter(|e| e.level == tracing::Level::ERROR)
        .collect();
    assert_eq!(loud.len(), 1, "said once, loudly: {loud:#?}");

    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn a_master_failover_keeps_every_task_and_launches_nothing() {
    let w = world("failover", vec![process_agent(), virtual_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec(
        "a",
        "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\ninstances = 3\n",
    );
    let before = w.wait_running(&ctl, "a", 3).await;
    let framework = ctl.status().await.framework_id;

    w.cluster.faults().restart_master().await.unwrap();
    ctl.wait_status("the controller to reconnect", |s| {
        if s.connected {
            Ok(())
        } else {
            Err("disconnected".to_owned())
        }
    })
    .await;
    let after = w.wait_running(&ctl, "a", 3).await;
    assert_eq!(
        after, before,
        "the same tasks, re-registered with their agents"
    );
    let snap = w.settle(&ctl, 3).await;
    assert_eq!(snap.framework_id, framework);
    assert_eq!(snap.counters.launches, 3, "{}", describe_snapshot(&snap));
    assert_eq!(snap.counters.kills, 0, "{}", describe_snapshot(&snap));
    assert_eq!(w.live_tasks("a").await, before);
    ctl.stop().await;
    w.shutdown().await;
}
