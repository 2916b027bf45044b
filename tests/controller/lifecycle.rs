//! Adding and deleting spec files: launch on an offer that fits, kill with the grace period and
//! no relaunch.

use crate::e2e::*;

#[tokio::test]
async fn a_new_file_is_launched_and_runs() {
    let w = world("launch", vec![process_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("sleeper", "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n");

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
