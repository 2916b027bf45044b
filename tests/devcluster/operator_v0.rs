//! The v0 operator endpoints an operator's tools read (`mesos agent list` reads `/slaves`,
//! `mesos task list` reads `/tasks?order=asc&limit=-1`, the web UI reads `/master/state-summary`):
//! every path upstream serves (`/master/<name>`, `/<name>`, with and without a trailing slash),
//! each document against a golden shape (field names and JSON types, not values) written from
//! upstream's writers (`src/master/readonly_handler.cpp`, `src/common/http.cpp`), the query
//! parameters of `/master/tasks` and `/master/slaves`, and `jsonp`.

use mesos_reconciler::devcluster::DevCluster;
use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// Fails with every place where `doc` lacks a field of `shape` or has another JSON type. A
/// shape is a type name (`"string"`, `"number"`, `"boolean"`, `"object"`, `"array"`), an
/// object of shapes (extra fields in `doc` are allowed), or `[shape]`: a non-empty array whose
/// every element has that shape.
pub fn assert_shape(doc: &Value, shape: &Value, what: &str) {
    let mut problems = Vec::new();
    check_shape(doc, shape, what.to_owned(), &mut problems);
    assert!(
        problems.is_empty(),
        "{what} differs from upstream's shape:\n  {}\ndocument: {doc:#}",
        problems.join("\n  ")
    );
}

fn check_shape(doc: &Value, shape: &Value, at: String, problems: &mut Vec<String>) {
    match shape {
        Value::String(ty) => {
            let ok = match ty.as_str() {
                "string" => doc.is_string(),
                "number" => doc.is_number(),
                "boolean" => doc.is_boolean(),
                "object" => doc.is_object(),
                "array" => doc.is_array(),
                other => panic!("unknown type {other} in a shape"),
            };
            if !ok {
                problems.push(format!("{at}: expected {ty}, found {doc}"));
            }
        }
        Value::Object(fields) => {
            let Some(object) = doc.as_object() else {
                problems.push(format!("{at}: expected an object, found {doc}"));
                return;
            };
            for (name, field_shape) in fields {
                match object.get(name) {
                    Some(v) => check_shape(v, field_shape, format!("{at}.{name}"), problems),
                    None => problems.push(format!("{at}.{name}: missing")),
                }
            }
        }
        Value::Array(element) => {
            let Some(items) = doc.as_array().filter(|a| !a.is_empty()) else {
                problems.push(format!("{at}: expected a non-empty array, found {doc}"));
                return;
            };
            for (i, item) in items.iter().enumerate() {
                check_shape(item, &element[0], format!("{at}[{i}]"), problems);
            }
        }
        other => panic!("bad shape {other}"),
    }
}

/// An agent as upstream's `SlaveWriter` writes it.
fn agent_shape() -> Value {
    json!({
        "id": "string", "hostname": "string", "port": "number", "attributes": "object",
        "pid": "string", "registered_time": "number", "resources": "object",
        "used_resources": "object", "offered_resources": "object",
        "reserved_resources": "object", "unreserved_resources": "object", "active": "boolean",
        "deactivated": "boolean", "version": "string", "capabilities": "array",
    })
}

/// A task as upstream's `json(Task)` writes it.
fn task_shape() -> Value {
    json!({
        "id": "string", "name": "string", "framework_id": "string", "executor_id": "string",
        "slave_id": "string", "state": "string", "resources": "object", "role": "string",
        "statuses": [{"state": "string", "timestamp": "number"}],
    })
}

fn with(mut base: Value, more: Value) -> Value {
    base.as_object_mut()
        .unwrap()
        .extend(more.as_object().unwrap().clone());
    base
}

fn summary_counts() -> Value {
    json!({
        "TASK_STAGING": "number", "TASK_STARTING": "number", "TASK_RUNNING": "number",
        "TASK_KILLING": "number", "TASK_FINISHED": "number", "TASK_KILLED": "number",
        "TASK_FAILED": "number", "TASK_LOST": "number", "TASK_ERROR": "number",
        "TASK_UNREACHABLE": "number",
    })
}

/// Every path upstream answers for a master endpoint.
fn paths(url: &str, name: &str) -> [String; 4] {
    [
        format!("{url}/master/{name}"),
        format!("{url}/master/{name}/"),
        format!("{url}/{name}"),
        format!("{url}/{name}/"),
    ]
}

/// A cluster with one framework ("ops") running two tasks on its one virtual agent, and a
/// third task that has finished.
pub async fn busy_cluster() -> (DevCluster, Sub) {
    let cluster = start(config()).await;
    let url = cluster.url();
    let mut sub = subscribe(&url, Encoding::Json, framework_info("ops", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    let mut done = task("t-done", &offer);
    done.labels = Some(pb::Labels::from_pairs([(
        mesos_reconciler::devcluster::agent::labels::RUN_FOR,
        "10ms",
    )]));
    sub.launch(
        &[&offer.id],
        vec![task("t-a", &offer), task("t-b", &offer), done],
    )
    .await;
    // Acknowledge every update until both long tasks run and the short one has finished (a
    // terminal task moves to `completed_tasks` once its update is acknowledged).
    let mut seen = std::collections::BTreeMap::new();
    while seen.get("t-a") != Some(&pb::TaskState::TaskRunning)
        || seen.get("t-b") != Some(&pb::TaskState::TaskRunning)
        || seen.get("t-done") != Some(&pb::TaskState::TaskFinished)
    {
        let status = sub.events.next_update().await;
        if status.uuid.is_some() {
            sub.acknowledge(&status).await;
        }
        seen.insert(status.task_id.value.clone(), state_of(&status));
    }
    wait_state(&cluster, "t-done to finish", |s| {
        s["frameworks"][0]["completed_tasks"]
            .as_array()
            .is_some_and(|c| c.len() == 1)
    })
    .await;
    (cluster, sub)
}

#[tokio::test]
async fn every_v0_endpoint_answers_on_upstreams_paths_in_upstreams_shape() {
    let (cluster, sub) = busy_cluster().await;
    let url = cluster.url();
    let shapes = [
        (
            "slaves",
            json!({
                "slaves": [with(agent_shape(), json!({
                    "reserved_resources_full": "object",
                    "unreserved_resources_full": [{"name": "string", "type": "string"}],
                    "used_resources_full": "array", "offered_resources_full": "array",
                }))],
                "recovered_slaves": "array",
            }),
        ),
        ("tasks", json!({"tasks": [task_shape()]})),
        (
            "state-summary",
            json!({
                "hostname": "string",
                "slaves": [with(with(agent_shape(), summary_counts()), json!({"framework_ids": ["string"]}))],
                "frameworks": [with(summary_counts(), json!({
                    "id": "string", "name": "string", "used_resources": "object",
                    "offered_resources": "object", "capabilities": "array", "hostname": "string",
                    "webui_url": "string", "active": "boolean", "connected": "boolean",
                    "recovered": "boolean", "slave_ids": ["string"],
                }))],
            }),
        ),
        (
            "roles",
            json!({"roles": [{
                "name": "string", "weight": "number",
                "quota": {"role": "string", "guarantee": "object", "limit": "object", "consumed": "object"},
                "resources": "object", "allocated": "object", "offered": "object",
                "reserved": "object", "frameworks": ["string"],
            }]}),
        ),
        (
            "flags",
            json!({"flags": {"allocation_interval": "string", "hostname": "string", "port": "string"}}),
        ),
        (
            "frameworks",
            json!({
                "frameworks": [{"id": "string", "name": "string", "tasks": [task_shape()],
                                "completed_tasks": [task_shape()], "active": "boolean"}],
                "completed_frameworks": "array", "unregistered_frameworks": "array",
            }),
        ),
        (
            "state",
            json!({
                "version": "string", "id": "string", "pid": "string", "hostname": "string",
                "leader": "string", "flags": "object", "slaves": [agent_shape()],
                "frameworks": "array", "completed_frameworks": "array",
            }),
        ),
    ];
    for (name, shape) in shapes {
        for path in paths(&url, name) {
            let (status, doc) = get_json(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_shape(&doc, &shape, &path);
        }
    }
    // What the documents say, beyond their shape.
    let (_, summary) = get_json(&format!("{url}/master/state-summary")).await;
    let framework = &summary["frameworks"][0];
    assert_eq!(framework["id"], sub.framework_id.as_str());
    assert_eq!(framework["TASK_RUNNING"], 2);
    assert_eq!(framework["TASK_FINISHED"], 1);
    assert_eq!(summary["slaves"][0]["TASK_RUNNING"], 2);
    assert_eq!(
        summary["slaves"][0]["framework_ids"],
        json!([sub.framework_id])
    );
    let (_, roles) = get_json(&format!("{url}/master/roles")).await;
    assert_eq!(roles["roles"][0]["name"], "*");
    assert_eq!(roles["roles"][0]["frameworks"], json!([sub.framework_id]));
    // Two running tasks of 0.1 cpus each.
    let cpus = roles["roles"][0]["allocated"]["cpus"].as_f64().unwrap();
    assert!((cpus - 0.2).abs() < 1e-9, "{roles:#}");
    cluster.shutdown().await;
}

/// The time of each listed task's first status, in the list's order.
fn first_status_times(doc: &Value) -> Vec<f64> {
    doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["statuses"][0]["timestamp"].as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn tasks_are_sorted_paged_and_filtered_as_upstream_does() {
    let (cluster, sub) = busy_cluster().await;
    let url = cluster.url();
    let ids = |doc: &Value| -> Vec<String> {
        doc["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // What `mesos task list` asks: everything, oldest first.
    let (_, all) = get_json(&format!("{url}/tasks?order=asc&limit=-1")).await;
    let mut sorted = ids(&all);
    assert_eq!(sorted.len(), 3, "{all:#}");
    let first_times = first_status_times(&all);
    assert!(
        first_times.windows(2).all(|w| w[0] <= w[1]),
        "ascending by first status: {first_times:?}"
    );
    // The default order is newest first.
    let (_, newest_first) = get_json(&format!("{url}/master/tasks")).await;
    let mut reversed = ids(&newest_first);
    reversed.reverse();
    let desc_times = first_status_times(&newest_first);
    assert!(
        desc_times.windows(2).all(|w| w[0] >= w[1]),
        "{desc_times:?}"
    );
    sorted.sort();
    reversed.sort();
    assert_eq!(sorted, reversed);

    let (_, page) = get_json(&format!("{url}/master/tasks?order=asc&limit=1&offset=1")).await;
    assert_eq!(ids(&page), [ids(&all)[1].clone()]);
    let (_, beyond) = get_json(&format!("{url}/master/tasks?offset=10")).await;
    assert_eq!(beyond, json!({"tasks": []}));
    let (_, one) = get_json(&format!("{url}/master/tasks?task_id=t-done")).await;
    assert_eq!(ids(&one), ["t-done"]);
    assert_eq!(one["tasks"][0]["state"], "TASK_FINISHED");
    let (_, mine) = get_json(&format!(
        "{url}/master/tasks?limit=-1&framework_id={}",
        sub.framework_id
    ))
    .await;
    assert_eq!(ids(&mine).len(), 3);
    let (_, none) = get_json(&format!("{url}/master/tasks?framework_id=other")).await;
    assert_eq!(none, json!({"tasks": []}));
    cluster.shutdown().await;
}

#[tokio::test]
async fn slaves_filters_by_slave_id_and_names_the_agents_pid() {
    let mut cfg = config();
    cfg.agents = vec![
        agent("cpus:1;mem:512", ""),
        agent("cpus:2;mem:1024", "rack:r1"),
    ];
    let cluster = start(cfg).await;
    let url = cluster.url();
    let ids = cluster.agent_ids().await;
    assert_eq!(ids.len(), 2);
    let (_, one) = get_json(&format!("{url}/master/slaves?slave_id={}", ids[1])).await;
    let slaves = one["slaves"].as_array().unwrap();
    assert_eq!(slaves.len(), 1, "{one:#}");
    assert_eq!(slaves[0]["id"], ids[1].as_str());
    assert_eq!(slaves[0]["resources"]["cpus"], 2.0);
    assert_eq!(slaves[0]["attributes"], json!({"rack": "r1"}));
    // The pid names the agent's own server, which answers for it.
    let pid = slaves[0]["pid"].as_str().unwrap();
    let (process, at) = pid.split_once('@').unwrap();
    assert!(
        process.starts_with("slave(") && at.starts_with("127.0.0.1:"),
        "{pid}"
    );
    assert_eq!(
        slaves[0]["port"].to_string(),
        at.trim_start_matches("127.0.0.1:")
    );
    let (status, state) = get_json(&format!("http://{at}/state")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["id"], ids[1].as_str());
    assert_eq!(state["pid"], pid);
    let (_, none) = get_json(&format!("{url}/slaves?slave_id=nobody")).await;
    assert_eq!(none, json!({"slaves": [], "recovered_slaves": []}));
    cluster.shutdown().await;
}

#[tokio::test]
async fn jsonp_wraps_every_document_and_metrics_count_what_happened() {
    let (cluster, _sub) = busy_cluster().await;
    let url = cluster.url();
    for path in [
        "/master/state?jsonp=cb",
        "/state-summary?jsonp=cb",
        "/master/slaves?jsonp=cb",
        "/tasks?jsonp=cb",
        "/master/roles?jsonp=cb",
        "/master/flags?jsonp=cb",
        "/metrics/snapshot?jsonp=cb",
    ] {
        let response = client().get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/javascript",
            "{path}"
        );
        let body = response.text().await.unwrap();
        let inner = body
            .strip_prefix("cb(")
            .and_then(|b| b.strip_suffix(");"))
            .unwrap_or_else(|| panic!("{path}: {body}"));
        serde_json::from_str::<Value>(inner).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let (status, metrics) = get_json(&format!("{url}/metrics/snapshot/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_shape(
        &metrics,
        &json!({
            "master/uptime_secs": "number", "master/elected": "number",
            "master/slaves_active": "number", "master/frameworks_active": "number",
            "master/tasks_running": "number", "master/tasks_finished": "number",
            "master/outstanding_offers": "number", "master/messages_launch_tasks": "number",
            "master/slave_registrations": "number",
        }),
        "/metrics/snapshot",
    );
    assert_eq!(metrics["master/frameworks_active"], 1.0);
    assert_eq!(metrics["master/slaves_active"], 1.0);
    assert_eq!(metrics["master/tasks_running"], 2.0);
    assert_eq!(metrics["master/tasks_finished"], 1.0);
    assert_eq!(metrics["master/messages_launch_tasks"], 1.0);
    cluster.shutdown().await;
}
