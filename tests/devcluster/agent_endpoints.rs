//! A process agent's own endpoints, found as an operator's tools find them: the agent's `pid` in
//! `/master/slaves` names its own loopback port, where `/state` lists the task's sandbox, the
//! `/files` endpoints read it by its real directory and by upstream's virtual path
//! (`/frameworks/<fw>/executors/<ex>/runs/latest`), and `/api/v1` answers GET_STATE and
//! GET_CONTAINERS in both encodings. A killed agent's port stops answering.

use mesos_reconciler::devcluster::{AgentSpec, AgentSpecKind};
use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::agent::{Call, Response, call, response};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

/// `http://127.0.0.1:PORT` and `slave(N)` from a pid `slave(N)@127.0.0.1:PORT`.
fn agent_address(pid: &str) -> (String, String) {
    let (process, at) = pid.split_once('@').unwrap();
    (format!("http://{at}"), process.to_owned())
}

/// Polls `url` until `pred` holds for its JSON; the last document.
async fn until_json(url: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, doc) = get_json(url).await;
        if status == StatusCode::OK && pred(&doc) {
            return doc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {status} {doc:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn encode_query(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn a_process_agent_serves_its_state_sandbox_and_api_on_its_own_port() {
    let work_dir = std::env::temp_dir().join(format!("devcluster-test-{}", uuid::Uuid::new_v4()));
    let mut cfg = config();
    cfg.work_dir = work_dir.clone();
    cfg.agents = vec![AgentSpec::parse(AgentSpecKind::Process, "cpus:1;mem:256", "").unwrap()];
    let cluster = start(cfg).await;
    let url = cluster.url();
    let mut sub = subscribe(&url, Encoding::Json, framework_info("files", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    let mut t = task("printer", &offer);
    t.command.as_mut().unwrap().value = Some("echo hello from the sandbox; sleep 600".into());
    sub.launch(&[&offer.id], vec![t]).await;
    sub.until_running("printer").await;

    // Where the agent is: its pid, as `mesos agent list` and the web UI read it.
    let (_, slaves) = get_json(&format!("{url}/slaves")).await;
    let pid = slaves["slaves"][0]["pid"].as_str().unwrap().to_owned();
    let (agent_url, process) = agent_address(&pid);
    assert_ne!(agent_url, url, "the agent has a port of its own");

    let state = until_json(&format!("{agent_url}/state"), "the task's executor", |s| {
        s["frameworks"][0]["executors"][0]["id"] == "printer"
    })
    .await;
    assert_eq!(state["pid"], pid.as_str());
    assert_eq!(state["id"], offer.agent_id.value.as_str());
    let (status, prefixed) = get_json(&format!("{agent_url}/{process}/state")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(prefixed["id"], state["id"]);
    let directory = state["frameworks"][0]["executors"][0]["directory"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        std::path::Path::new(&directory).starts_with(&work_dir),
        "{directory}"
    );

    // The output, by the real directory and by the virtual path.
    let real = format!("{directory}/stdout");
    let virtual_dir = format!(
        "/frameworks/{}/executors/printer/runs/latest",
        sub.framework_id
    );
    for path in [real.clone(), format!("{virtual_dir}/stdout")] {
        let read = until_json(
            &format!(
                "{agent_url}/files/read?path={}&offset=0",
                encode_query(&path)
            ),
            "the task's output",
            |d| {
                d["data"]
                    .as_str()
                    .is_some_and(|s| s.contains("hello from the sandbox"))
            },
        )
        .await;
        assert_eq!(read["offset"], 0, "{path}");
    }
    let (status, listing) = get_json(&format!(
        "{agent_url}/files/browse?path={}",
        encode_query(&virtual_dir)
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&format!("{virtual_dir}/stdout").as_str()),
        "{names:?}"
    );
    let download = client()
        .get(format!(
            "{agent_url}/files/download?path={}",
            encode_query(&real)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&download.bytes().await.unwrap())
            .contains("hello from the sandbox")
    );
    let (status, _) = get_json(&format!(
        "{agent_url}/files/read?path={}",
        encode_query("/frameworks/nope/executors/printer/runs/latest/stdout")
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The agent's v1 API, in both encodings and under both paths.
    for (encoding, path) in [
        (Encoding::Json, "/api/v1".to_owned()),
        (Encoding::Protobuf, format!("/{process}/api/v1")),
    ] {
        let ask = |ty: call::Type| {
            let endpoint = format!("{agent_url}{path}");
            async move {
                let answer = client()
                    .post(endpoint)
                    .header("Content-Type", encoding.content_type())
                    .header("Accept", encoding.content_type())
                    .body(encoding.encode(&Call {
                        r#type: Some(ty as i32),
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), StatusCode::OK, "{ty:?}");
                encoding
                    .decode::<Response>(&answer.bytes().await.unwrap())
                    .unwrap()
            }
        };
        let r = ask(call::Type::GetState).await;
        assert_eq!(r.r#type, Some(response::Type::GetState as i32));
        let state = r.get_state.unwrap();
        let tasks = state.get_tasks.unwrap();
        assert_eq!(tasks.launched_tasks.len(), 1);
        let task = &tasks.launched_tasks[0];
        assert_eq!(task.task_id.value, "printer");
        assert_eq!(task.state, pb::TaskState::TaskRunning as i32);
        assert_eq!(task.framework_id.value, sub.framework_id);
        let executors = state.get_executors.unwrap().executors;
        assert_eq!(executors[0].executor_info.executor_id.value, "printer");
        let frameworks = state.get_frameworks.unwrap().frameworks;
        assert_eq!(
            frameworks[0].framework_info.id.as_ref().unwrap().value,
            sub.framework_id
        );
        let r = ask(call::Type::GetContainers).await;
        let containers = r.get_containers.unwrap().containers;
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0].executor_id.as_ref().unwrap().value, "printer");
        assert!(!containers[0].container_id.value.is_empty());
    }
    let refused = client()
        .post(format!("{agent_url}/api/v1"))
        .header("Content-Type", "application/json")
        .body(r#"{"type": "LAUNCH_CONTAINER"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_IMPLEMENTED);

    // A killed agent's address answers nothing.
    cluster
        .faults()
        .kill_agent(&offer.agent_id.value)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while client()
        .get(format!("{agent_url}/health"))
        .send()
        .await
        .is_ok()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the killed agent still answers"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&work_dir);
}
