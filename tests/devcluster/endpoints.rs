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

/// Reads `/metrics/snapshot` until `pred` holds (counters change as updates arrive).
async fn wait_metrics(
    url: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, metrics) = get_json(&format!("{url}/metrics/snapshot")).await;
        assert_eq!(status, StatusCode::OK);
        if pred(&metrics) {
            return metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; metrics: {metrics:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `/metrics/snapshot` is a flat object of numbers under upstream's master metric names: task
/// gauges by state, terminal task counters, framework and agent gauges, call counters.
#[tokio::test]
async fn metrics_snapshot_has_upstream_names_and_counts() {
    let mut cfg = config();
    cfg.agents = vec![agent("cpus:2;mem:1024", "")];
    // Offers only when asked for (SUBSCRIBE, REVIVE), so `outstanding_offers` is exact; no
    // re-sent updates, so update and acknowledgement counts are exact.
    cfg.allocation_interval = Duration::from_secs(600);
    cfg.status_retry_initial = Duration::from_secs(600);
    let cluster = start(cfg).await;
    let url = cluster.url();
    let (status, metrics) = get_json(&format!("{url}/metrics/snapshot")).await;
    assert_eq!(status, StatusCode::OK);
    let object = metrics.as_object().expect("a JSON object");
    for (name, value) in object {
        assert!(name.starts_with("master/"), "{name}");
        assert!(value.is_number(), "{name}: {value}");
    }
    for (name, expected) in [
        ("elected", 1.0),
        ("slaves_active", 1.0),
        ("slaves_connected", 1.0),
        ("frameworks_active", 0.0),
        ("tasks_running", 0.0),
        ("cpus_total", 2.0),
        ("mem_total", 1024.0),
        ("slave_registrations", 1.0),
    ] {
        assert_eq!(metrics[format!("master/{name}")], expected, "{name}");
    }
    assert!(metrics["master/uptime_secs"].as_f64().unwrap() >= 0.0);

    let mut info = framework_info("metrics", &[]);
    info.failover_timeout = Some(3600.0);
    let mut sub = subscribe(&url, Encoding::Protobuf, info).await;
    let offer = sub.events.next_offers().await.remove(0);
    let metrics = wait_metrics(&url, "one offer", |m| m["master/outstanding_offers"] == 1.0).await;
    assert_eq!(metrics["master/frameworks_active"], 1.0);
    assert_eq!(metrics["master/frameworks_connected"], 1.0);
    assert_eq!(metrics["master/messages_register_framework"], 1.0);
    let mut invalid = task("no-resources", &offer);
    invalid.resources.clear();
    sub.launch(
        &[&offer.id],
        vec![task("a", &offer), task("b", &offer), invalid],
    )
    .await;
    // Every update is acknowledged as it comes (the agents re-send nothing here).
    let mut pending = vec![
        ("no-resources", pb::TaskState::TaskError),
        ("a", pb::TaskState::TaskRunning),
        ("b", pb::TaskState::TaskRunning),
    ];
    while !pending.is_empty() {
        let status = sub.events.next_update().await;
        if status.uuid.is_some() {
            sub.acknowledge(&status).await;
        }
        let seen = (status.task_id.value.as_str(), state_of(&status));
        pending.retain(|p| *p != seen);
    }
    sub.kill("b", None).await;
    let killed = sub.events.update_of("b").await;
    assert_eq!(state_of(&killed), pb::TaskState::TaskKilled);
    sub.acknowledge(&killed).await;
    let metrics = wait_metrics(&url, "a running, b killed and acknowledged", |m| {
        m["master/tasks_running"] == 1.0
            && m["master/tasks_killed"] == 1.0
            && m["master/valid_status_update_acknowledgements"] == 5.0
    })
    .await;
    for (name, expected) in [
        ("tasks_staging", 0.0),
        ("tasks_starting", 0.0),
        ("tasks_finished", 0.0),
        ("tasks_error", 1.0),
        ("outstanding_offers", 0.0),
        ("messages_launch_tasks", 1.0),
        ("messages_kill_task", 1.0),
        // STARTING and RUNNING of both tasks, then KILLED.
        ("messages_status_update", 5.0),
        ("valid_status_updates", 5.0),
        ("messages_status_update_acknowledgement", 5.0),
        ("invalid_status_update_acknowledgements", 0.0),
        ("cpus_used", 0.1),
        ("mem_used", 32.0),
    ] {
        assert_eq!(metrics[format!("master/{name}")], expected, "{name}");
    }

    // A disconnected framework is neither connected nor active.
    cluster
        .faults()
        .drop_framework_stream(&sub.framework_id)
        .await
        .unwrap();
    let metrics = wait_metrics(&url, "the framework disconnected", |m| {
        m["master/frameworks_disconnected"] == 1.0
    })
    .await;
    assert_eq!(metrics["master/frameworks_connected"], 0.0);
    assert_eq!(metrics["master/frameworks_active"], 0.0);
    assert_eq!(metrics["master/frameworks_inactive"], 1.0);
    assert_eq!(metrics["master/tasks_running"], 1.0, "its task still runs");
    cluster.shutdown().await;
}
