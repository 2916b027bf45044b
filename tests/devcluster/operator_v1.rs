//! The v1 operator API, `POST /api/v1`, as an operator's tool uses it: every call the dev master
//! answers, in JSON and in protobuf, the status codes in upstream's order, and `SUBSCRIBE`, whose
//! RecordIO stream (read here by a reader of the tests' own) follows a launched task from
//! TASK_ADDED to TASK_UPDATED (RUNNING) to TASK_UPDATED (FINISHED), and frameworks and agents
//! coming and going.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use mesos_reconciler::devcluster::AgentSpec;
use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::master::{Call, Event, Response, call, event, response};
use mesos_reconciler::mesos::proto::v1::scheduler::call as scheduler;
use reqwest::StatusCode;
use serde_json::json;

use crate::operator_v0::{assert_shape, busy_cluster};
use crate::support::*;

fn call(ty: call::Type) -> Call {
    Call {
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

/// POSTs a call in `encoding` (and accepts the same); the status, and the Response when 200.
async fn api(url: &str, encoding: Encoding, c: &Call) -> (StatusCode, Option<Response>, Vec<u8>) {
    let answer = client()
        .post(format!("{url}/api/v1"))
        .header("Content-Type", encoding.content_type())
        .header("Accept", encoding.content_type())
        .body(encoding.encode(c))
        .send()
        .await
        .unwrap();
    let status = answer.status();
    if status == StatusCode::OK {
        assert_eq!(answer.headers()["content-type"], encoding.content_type());
    }
    let bytes = answer.bytes().await.unwrap().to_vec();
    let decoded = (status == StatusCode::OK).then(|| {
        encoding
            .decode::<Response>(&bytes)
            .expect("a Response in the accepted encoding")
    });
    (status, decoded, bytes)
}

/// POSTs raw bytes; the status and the body as text.
async fn api_raw(
    url: &str,
    method: reqwest::Method,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let mut request = client().request(method, format!("{url}/api/v1"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.body(body.to_owned()).send().await.unwrap();
    (answer.status(), answer.text().await.unwrap())
}

#[tokio::test]
async fn every_read_call_answers_in_both_encodings() {
    let (cluster, sub) = busy_cluster().await;
    let url = cluster.url();
    let port = cluster.addr().port();
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let ask = |ty| {
            let url = url.clone();
            async move {
                let (status, answer, _) = api(&url, encoding, &call(ty)).await;
                assert_eq!(status, StatusCode::OK, "{ty:?} in {encoding:?}");
                answer.unwrap()
            }
        };
        let r = ask(call::Type::GetHealth).await;
        assert_eq!(r.r#type, Some(response::Type::GetHealth as i32));
        assert!(r.get_health.unwrap().healthy);

        let r = ask(call::Type::GetVersion).await;
        assert_eq!(r.get_version.unwrap().version_info.version, "1.11.0");

        let r = ask(call::Type::GetFlags).await;
        let flags = r.get_flags.unwrap().flags;
        let port_flag = flags.iter().find(|f| f.name == "port").unwrap();
        assert_eq!(port_flag.value.as_deref(), Some(port.to_string().as_str()));

        let r = ask(call::Type::GetMetrics).await;
        let metrics = r.get_metrics.unwrap().metrics;
        let running = metrics
            .iter()
            .find(|m| m.name == "master/tasks_running")
            .unwrap();
        assert_eq!(running.value, Some(2.0));

        let r = ask(call::Type::GetMaster).await;
        let master = r.get_master.unwrap();
        assert_eq!(master.master_info.unwrap().port, u32::from(port));
        assert!(master.start_time.unwrap() > 0.0);

        let r = ask(call::Type::GetAgents).await;
        let agents = r.get_agents.unwrap().agents;
        assert_eq!(agents.len(), 1);
        // The agent's own server, not the master's.
        let pid = agents[0].pid.as_deref().unwrap();
        assert!(pid.starts_with("slave(1)@127.0.0.1:"), "{pid}");
        assert!(!pid.ends_with(&format!(":{port}")), "{pid}");
        assert!(agents[0].active);
        assert_eq!(agents[0].agent_info.hostname, "127.0.0.1");

        let r = ask(call::Type::GetFrameworks).await;
        let frameworks = r.get_frameworks.unwrap().frameworks;
        assert_eq!(frameworks.len(), 1);
        assert_eq!(frameworks[0].framework_info.name, "ops");
        assert_eq!(
            frameworks[0].framework_info.id.as_ref().unwrap().value,
            sub.framework_id
        );
        assert!(frameworks[0].active && frameworks[0].connected);

        let r = ask(call::Type::GetTasks).await;
        let tasks = r.get_tasks.unwrap();
        let live: Vec<&str> = tasks
            .tasks
            .iter()
            .map(|t| t.task_id.value.as_str())
            .collect();
        assert_eq!(live, ["t-a", "t-b"]);
        assert!(
            tasks
                .tasks
                .iter()
                .all(|t| t.state == pb::TaskState::TaskRunning as i32)
        );
        assert_eq!(tasks.completed_tasks.len(), 1);
        assert_eq!(tasks.completed_tasks[0].task_id.value, "t-done");
        assert_eq!(
            tasks.completed_tasks[0].state,
            pb::TaskState::TaskFinished as i32
        );

        let r = ask(call::Type::GetExecutors).await;
        // Command executors are the agent's business: the master lists none.
        assert!(r.get_executors.unwrap().executors.is_empty());

        let r = ask(call::Type::GetRoles).await;
        let roles = r.get_roles.unwrap().roles;
        assert_eq!(roles.len(), 1);
        assert_eq!(roles[0].name, "*");
        assert_eq!(roles[0].weight, 1.0);
        assert_eq!(roles[0].frameworks[0].value, sub.framework_id);

        let r = ask(call::Type::GetState).await;
        assert_eq!(r.r#type, Some(response::Type::GetState as i32));
        let state = r.get_state.unwrap();
        assert_eq!(state.get_tasks.unwrap().tasks.len(), 2);
        assert_eq!(state.get_frameworks.unwrap().frameworks.len(), 1);
        assert_eq!(state.get_agents.unwrap().agents.len(), 1);
    }
    // The JSON answer under upstream's field names (the generic mapping of master.proto).
    let (_, _, bytes) = api(&url, Encoding::Json, &call(call::Type::GetState)).await;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let task = json!({
        "name": "string", "task_id": {"value": "string"}, "framework_id": {"value": "string"},
        "agent_id": {"value": "string"}, "state": "string",
        "resources": [{"name": "string", "type": "string", "scalar": {"value": "number"}}],
        "statuses": [{"task_id": {"value": "string"}, "state": "string", "timestamp": "number"}],
    });
    assert_shape(
        &doc,
        &json!({
            "type": "string",
            "get_state": {
                "get_tasks": {"tasks": [task.clone()], "completed_tasks": [task]},
                "get_frameworks": {"frameworks": [{
                    "framework_info": {"user": "string", "name": "string", "id": {"value": "string"}},
                    "active": "boolean", "connected": "boolean", "recovered": "boolean",
                    "registered_time": {"nanoseconds": "number"},
                }]},
                "get_agents": {"agents": [{
                    "agent_info": {"hostname": "string", "port": "number", "id": {"value": "string"},
                                   "resources": "array"},
                    "active": "boolean", "version": "string", "pid": "string",
                    "registered_time": {"nanoseconds": "number"}, "total_resources": "array",
                    "allocated_resources": "array", "offered_resources": "array",
                    "capabilities": [{"type": "string"}],
                }]},
                "get_executors": "object",
            },
        }),
        "GET_STATE in JSON",
    );
    assert_eq!(doc["type"], "GET_STATE");
    cluster.shutdown().await;
}

#[tokio::test]
async fn status_codes_follow_upstreams_order() {
    let cluster = start(config()).await;
    let url = cluster.url();
    let json_type = ("Content-Type", "application/json");
    let (status, body) = api_raw(&url, reqwest::Method::GET, &[], "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let (status, body) = api_raw(&url, reqwest::Method::POST, &[], "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "Expecting 'Content-Type' to be present");
    let (status, _) = api_raw(
        &url,
        reqwest::Method::POST,
        &[("Content-Type", "text/plain")],
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = api_raw(&url, reqwest::Method::POST, &[json_type], "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("Failed to parse body into JSON"), "{body}");
    let (status, body) = api_raw(
        &url,
        reqwest::Method::POST,
        &[json_type],
        r#"{"type": "GET_EVERYTHING"}"#,
    )
    .await;
    // An enum name this master does not know leaves the type unset (the crate's JSON mapping
    // skips unknown enum names, as proto2 parsers skip unknown enum numbers): still a 400.
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api_raw(
        &url,
        reqwest::Method::POST,
        &[json_type],
        r#"{"type": 4.5}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("Failed to convert JSON into Call protobuf"),
        "{body}"
    );
    let (status, body) = api_raw(
        &url,
        reqwest::Method::POST,
        &[("Content-Type", "application/x-protobuf")],
        "\u{7f}garbage",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api_raw(&url, reqwest::Method::POST, &[json_type], "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        "Failed to validate master::Call: Expecting 'type' to be present"
    );
    let (status, _) = api_raw(
        &url,
        reqwest::Method::POST,
        &[json_type, ("Accept", "text/html")],
        r#"{"type": "GET_HEALTH"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    let (status, _) = api_raw(
        &url,
        reqwest::Method::POST,
        &[json_type],
        r#"{"type": "UNKNOWN"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    let (status, body) = api_raw(
        &url,
        reqwest::Method::POST,
        &[json_type],
        r#"{"type": "GET_QUOTA"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert!(
        body.contains("GET_QUOTA") && body.contains("dev cluster"),
        "{body}"
    );
    // JSON is answered whenever acceptable; `/master/api/v1` is the same endpoint.
    let (status, body) = api_raw(
        &url.replace("/api/v1", ""),
        reqwest::Method::POST,
        &[
            json_type,
            ("Accept", "application/x-protobuf, application/json;q=0.5"),
        ],
        r#"{"type": "GET_HEALTH"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"type": "GET_HEALTH", "get_health": {"healthy": true}})
    );
    let answer = client()
        .post(format!("{url}/master/api/v1"))
        .header("Content-Type", "application/json")
        .body(r#"{"type": "GET_HEALTH"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    cluster.shutdown().await;
}

/// An operator event stream, read with a RecordIO reader of the test's own.
struct OperatorEvents {
    encoding: Encoding,
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: BytesMut,
}

impl OperatorEvents {
    async fn open(url: &str, encoding: Encoding) -> OperatorEvents {
        let answer = client()
            .post(format!("{url}/api/v1"))
            .header("Content-Type", encoding.content_type())
            .header("Accept", encoding.content_type())
            .body(encoding.encode(&call(call::Type::Subscribe)))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()["content-type"], encoding.content_type());
        OperatorEvents {
            encoding,
            body: Box::pin(answer.bytes_stream()),
            buf: BytesMut::new(),
        }
    }

    async fn next(&mut self) -> Event {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(newline) = self.buf.iter().position(|b| *b == b'\n') {
                    let len: usize = std::str::from_utf8(&self.buf[..newline])
                        .unwrap()
                        .parse()
                        .unwrap();
                    if self.buf.len() >= newline + 1 + len {
                        self.buf.advance(newline + 1);
                        let payload = self.buf.split_to(len);
                        return self.encoding.decode::<Event>(&payload).unwrap();
                    }
                }
                let chunk = self
                    .body
                    .next()
                    .await
                    .expect("the stream stays open")
                    .unwrap();
                self.buf.extend_from_slice(&chunk);
            }
        })
        .await
        .expect("an operator event within the deadline")
    }

    /// The next event of one of `types`, skipping the others.
    async fn next_of(&mut self, types: &[event::Type]) -> Event {
        loop {
            let e = self.next().await;
            if types.iter().any(|t| e.r#type == Some(*t as i32)) {
                return e;
            }
        }
    }
}

#[tokio::test]
async fn subscribe_follows_a_task_from_launch_to_finish_in_both_encodings() {
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let mut cfg = config();
        cfg.heartbeat_interval = Duration::from_millis(300);
        let cluster = start(cfg).await;
        let url = cluster.url();
        let mut ops = OperatorEvents::open(&url, encoding).await;
        let first = ops.next().await;
        assert_eq!(first.r#type, Some(event::Type::Subscribed as i32));
        let subscribed = first.subscribed.unwrap();
        assert_eq!(subscribed.heartbeat_interval_seconds, Some(0.3));
        let state = subscribed.get_state.unwrap();
        assert_eq!(state.get_agents.unwrap().agents.len(), 1);
        assert!(state.get_tasks.unwrap().tasks.is_empty());

        let mut sub = subscribe(&url, encoding, framework_info("watched", &[])).await;
        let added = ops.next_of(&[event::Type::FrameworkAdded]).await;
        let framework = added.framework_added.unwrap().framework;
        assert_eq!(framework.framework_info.name, "watched");
        assert!(framework.connected);

        let offer = sub.events.next_offers().await.remove(0);
        let mut t = task("short", &offer);
        t.labels = Some(pb::Labels::from_pairs([(
            mesos_reconciler::devcluster::agent::labels::RUN_FOR,
            "300ms",
        )]));
        sub.launch(&[&offer.id], vec![t]).await;
        // The scheduler acknowledges what it gets, as a real one does, while the operator
        // stream is read.
        let acking = async {
            loop {
                let status = sub.events.next_update().await;
                if status.uuid.is_some() {
                    sub.acknowledge(&status).await;
                }
                if status.state == pb::TaskState::TaskFinished as i32 {
                    return;
                }
            }
        };
        let task_events = [event::Type::TaskAdded, event::Type::TaskUpdated];
        let watching = async {
            let added = ops.next_of(&task_events).await;
            assert_eq!(
                added.r#type,
                Some(event::Type::TaskAdded as i32),
                "{added:?}"
            );
            let mut states = Vec::new();
            while states.last() != Some(&pb::TaskState::TaskFinished) {
                let e = ops.next_of(&task_events).await;
                let updated = e.task_updated.expect("only TASK_UPDATED after TASK_ADDED");
                assert_eq!(
                    Some(&updated.framework_id),
                    framework.framework_info.id.as_ref()
                );
                assert_eq!(updated.status.task_id.value, "short");
                // The event carries the status that brought a new state into the task's
                // statuses; `state` is the task's latest, which can be ahead of it on a loaded
                // machine (the agent's newer state travels with an unacknowledged older update).
                states.push(pb::TaskState::try_from(updated.status.state).unwrap());
                if updated.status.state == pb::TaskState::TaskFinished as i32 {
                    assert_eq!(updated.state, pb::TaskState::TaskFinished as i32);
                }
            }
            (added.task_added.unwrap().task, states)
        };
        let ((), (added_task, mut states)) = tokio::join!(acking, watching);
        assert_eq!(added_task.task_id.value, "short");
        assert_eq!(added_task.state, pb::TaskState::TaskStaging as i32);
        assert_eq!(added_task.agent_id, offer.agent_id);
        states.retain(|s| *s != pb::TaskState::TaskStarting);
        assert_eq!(
            states,
            [pb::TaskState::TaskRunning, pb::TaskState::TaskFinished]
        );

        let heartbeat = ops.next_of(&[event::Type::Heartbeat]).await;
        assert_eq!(heartbeat.r#type, Some(event::Type::Heartbeat as i32));

        let new_agent = cluster
            .faults()
            .add_agent(AgentSpec::default())
            .await
            .unwrap();
        let e = ops.next_of(&[event::Type::AgentAdded]).await;
        let agent = e.agent_added.unwrap().agent;
        assert_eq!(agent.agent_info.id.unwrap().value, new_agent);
        assert!(
            agent
                .pid
                .as_deref()
                .unwrap()
                .starts_with("slave(2)@127.0.0.1:")
        );
        cluster.faults().kill_agent(&new_agent).await.unwrap();
        let e = ops.next_of(&[event::Type::AgentRemoved]).await;
        assert_eq!(e.agent_removed.unwrap().agent_id.value, new_agent);

        // A new FrameworkInfo: FRAMEWORK_UPDATED.
        let mut update = sub.call_of(scheduler::Type::UpdateFramework);
        let mut info = framework_info("watched", &[]);
        info.id = framework.framework_info.id.clone();
        info.labels = Some(pb::Labels::from_pairs([("team", "ops")]));
        update.update_framework = Some(scheduler::UpdateFramework {
            framework_info: info.clone(),
            ..Default::default()
        });
        let (status, body) = sub.call(&update).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let e = ops.next_of(&[event::Type::FrameworkUpdated]).await;
        let updated = e.framework_updated.unwrap().framework;
        assert_eq!(updated.framework_info.labels, info.labels);

        // A teardown kills the framework's tasks (TASK_UPDATED to KILLED), then removes it.
        let again = loop {
            let offers = sub.events.next_offers().await;
            if let Some(o) = offers.into_iter().find(|o| o.agent_id == offer.agent_id) {
                break o;
            }
        };
        sub.launch(&[&again.id], vec![task("long", &again)]).await;
        sub.until_running("long").await;
        sub.send(sub.call_of(scheduler::Type::Teardown)).await;
        loop {
            let e = ops.next_of(&task_events).await;
            if let Some(u) = e.task_updated
                && u.status.task_id.value == "long"
                && u.state == pb::TaskState::TaskKilled as i32
            {
                break;
            }
        }
        let e = ops.next_of(&[event::Type::FrameworkRemoved]).await;
        assert_eq!(e.framework_removed.unwrap().framework_info.name, "watched");
        cluster.shutdown().await;
    }
}
