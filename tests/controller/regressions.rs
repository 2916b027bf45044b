//! Regression tests, each named after a controller bug these end-to-end tests found.

use crate::e2e::*;

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
        info.resources.iter().all(|r| r
            .allocation_info
            .as_ref()
            .and_then(|a| a.role.as_deref())
            == Some("batch")),
        "{:?}",
        info.resources
    );

    // Deleting the spec drops the role again, and its task is still killed.
    w.delete_spec("batch");
    w.wait(&ctl, "the task to be killed and the role dropped", async || {
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
    })
    .await;
    ctl.stop().await;
    w.shutdown().await;
}
