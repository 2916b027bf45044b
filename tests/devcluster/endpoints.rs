//! The read-only endpoints: `/master/state` (and `/state`), `/version`, `/master/redirect`
//! (and `/redirect`), `/health`; and a scale smoke test of many virtual agents and tasks.

use std::time::Duration;

use mesos_reconciler::devcluster::DevClusterConfig;
use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn master_state_has_upstream_field_names() {
    let mut cfg = config();
    cfg.agents = vec![agent(
        "cpus:2;mem:512;disk:100;ports:[31000-31005]",
        "rack:r1;level:2",
    )];
    let cluster = start(cfg).await;
    let url = cluster.url();
    let mut sub = subscribe(&url, Encoding::Protobuf, framework_info("st", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    let mut t = task("s1", &offer);
    t.resources.push(ports(31002, 31003));
    sub.launch(&[&offer.id], vec![t]).await;
    sub.until_running("s1").await;

    for path in ["/master/state", "/state"] {
        let (status, state) = get_json(&format!("{url}{path}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(state["version"], "1.11.0");
        assert_eq!(
            state["leader"],
            format!("master@127.0.0.1:{}", cluster.addr().port())
        );
        let slave = &state["slaves"][0];
        assert_eq!(slave["id"], offer.agent_id.value.as_str());
        assert_eq!(slave["hostname"], "127.0.0.1");
        assert_eq!(slave["resources"]["cpus"], 2.0);
        assert_eq!(slave["resources"]["ports"], "[31000-31005]");
        assert_eq!(slave["used_resources"]["cpus"], 0.1);
        assert_eq!(slave["used_resources"]["ports"], "[31002-31003]");
        assert_eq!(slave["attributes"]["rack"], "r1");
        assert_eq!(slave["attributes"]["level"], 2.0);
        let framework = &state["frameworks"][0];
        assert_eq!(framework["id"], sub.framework_id.as_str());
        assert_eq!(framework["name"], "st");
        assert_eq!(framework["active"], true);
        assert!(framework["completed_tasks"].as_array().unwrap().is_empty());
        let task = &framework["tasks"][0];
        assert_eq!(task["id"], "s1");
        assert_eq!(task["name"], "task s1");
        assert_eq!(task["framework_id"], sub.framework_id.as_str());
        assert_eq!(task["slave_id"], offer.agent_id.value.as_str());
        assert_eq!(task["state"], "TASK_RUNNING");
        assert_eq!(
            task["resources"],
            serde_json::json!({"cpus":0.1,"mem":32.0,"disk":0.0,"gpus":0.0,"ports":"[31002-31003]"})
        );
        let statuses: Vec<&str> = task["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["state"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["TASK_STARTING", "TASK_RUNNING"]);
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn version_redirect_health() {
    let cluster = start(config()).await;
    let url = cluster.url();
    let http = client();
    let (status, version) = get_json(&format!("{url}/version")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(version["version"], "1.11.0");
    for key in ["build_date", "build_time", "build_user", "git_sha"] {
        assert!(version.get(key).is_some(), "{key} in {version}");
    }
    for path in ["/master/redirect", "/redirect"] {
        let response = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            response.headers()["location"],
            format!("//127.0.0.1:{}", cluster.addr().port()).as_str()
        );
    }
    let response = http.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    cluster.shutdown().await;
}

/// The scale the issue names, 100 virtual agents and 10,000 tasks: everything launched reaches
/// RUNNING through one framework (a few seconds in a debug build, most of it in the test's own
/// acknowledgements).
#[tokio::test]
async fn many_virtual_agents_and_tasks() {
    const AGENTS: usize = 100;
    const TASKS_PER_AGENT: usize = 100;
    let cfg = DevClusterConfig {
        agents: (0..AGENTS).map(|_| agent("cpus:16;mem:8192", "")).collect(),
        status_retry_initial: Duration::from_secs(30),
        ..config()
    };
    let cluster = start(cfg).await;
    let mut sub = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("scale", &[]),
    )
    .await;
    let mut offers: Vec<pb::Offer> = Vec::new();
    while offers.len() < AGENTS {
        offers.extend(sub.events.next_offers().await);
    }
    for (a, offer) in offers.iter().enumerate() {
        let tasks = (0..TASKS_PER_AGENT)
            .map(|i| task(&format!("t-{a}-{i}"), offer))
            .collect();
        sub.launch(&[&offer.id], tasks).await;
    }
    let mut running = 0;
    while running < AGENTS * TASKS_PER_AGENT {
        let status = sub.events.next_update().await;
        sub.acknowledge(&status).await;
        if state_of(&status) == pb::TaskState::TaskRunning {
            running += 1;
        }
    }
    let state = cluster.state().await;
    assert_eq!(
        state["frameworks"][0]["tasks"].as_array().unwrap().len(),
        AGENTS * TASKS_PER_AGENT
    );
    cluster.shutdown().await;
}
