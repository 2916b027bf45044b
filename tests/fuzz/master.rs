//! The dev master's scheduler endpoint under arbitrary Call bodies, in both encodings: every
//! answer is a status below 500, in time, and the master still answers afterwards (no panic in a
//! handler, no wedged actor). The calls come from a subscribed framework (`fuzz-framework`, with
//! its stream id), so that they get past the stream checks into the master's validation.

use std::time::Duration;

use mesos_reconciler::devcluster::{AgentSpec, AgentSpecKind, DevCluster, DevClusterConfig};

use super::engine::fuzz;
use super::targets::outcome;

/// The framework every fuzzed call may name.
pub const FRAMEWORK_ID: &str = "fuzz-framework";

const ANSWER_WITHIN: Duration = Duration::from_secs(10);

const CALL_WORDS: &[&[u8]] = &[
    b"\"type\":\"ACCEPT\"",
    b"\"type\":\"DECLINE\"",
    b"\"type\":\"KILL\"",
    b"\"type\":\"REVIVE\"",
    b"\"type\":\"RECONCILE\"",
    b"\"type\":\"ACKNOWLEDGE\"",
    b"\"type\":\"SUPPRESS\"",
    b"\"type\":\"TEARDOWN\"",
    b"\"type\":\"UPDATE_FRAMEWORK\"",
    b"\"offer_ids\":[{\"value\":\"",
    b"\"operations\":[{\"type\":\"LAUNCH\",\"launch\":{\"task_infos\":[",
    b"\"task_id\":{\"value\":\"t\"}",
    b"\"agent_id\":{\"value\":\"",
    b"\"resources\":[{\"name\":\"cpus\",\"type\":\"SCALAR\",\"scalar\":{\"value\":",
    b"\"framework_id\":{\"value\":\"fuzz-framework\"}",
    b"\"uuid\":\"AAAA\"",
    b"-1",
    b"1e400",
    b"null",
    &[0x08],
    &[0x0a, 0x10],
    &[0x12, 0x00],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
];

#[test]
fn master() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (cluster, stream_id) = runtime.block_on(subscribed_master());
    let url = format!("{}/api/v1/scheduler", cluster.url());
    let http = mesos_reconciler::http::client_builder()
        .timeout(ANSWER_WITHIN)
        .build()
        .unwrap();
    fuzz("master", CALL_WORDS, |input| {
        // The first byte picks the encoding; the rest is the body.
        let Some((&flags, body)) = input.split_first() else {
            return Ok("empty".to_owned());
        };
        let content_type = if flags & 1 == 0 {
            "application/json"
        } else {
            "application/x-protobuf"
        };
        let request = http
            .post(&url)
            .header("Content-Type", content_type)
            .header("Accept", "application/json")
            .header("Mesos-Stream-Id", &stream_id)
            .body(body.to_vec());
        runtime.block_on(async {
            let response = request
                .send()
                .await
                .map_err(|e| format!("no answer (a panic, or wedged): {e}"))?;
            let status = response.status();
            let text = tokio::time::timeout(ANSWER_WITHIN, response.text())
                .await
                .map_err(|_| "the answer's body never ended".to_owned())?
                .unwrap_or_default();
            // 501 is upstream's answer to a call of type UNKNOWN (`Master::Http::scheduler`),
            // which a body can ask for explicitly; any other 5xx is the master failing.
            if status.is_server_error() && status != reqwest::StatusCode::NOT_IMPLEMENTED {
                return Err(format!("{status}: {text}"));
            }
            let first = text.lines().next().unwrap_or_default();
            Ok(format!("{} {}", status.as_u16(), outcome(first)))
        })
    });
    runtime.block_on(async {
        let state = tokio::time::timeout(ANSWER_WITHIN, cluster.state())
            .await
            .expect("the master's actor still answers");
        assert!(state["frameworks"].is_array(), "{state}");
        cluster.shutdown().await;
    });
}

/// A dev master with one agent and the framework [`FRAMEWORK_ID`] subscribed; its stream is kept
/// open (and read) for the whole run.
async fn subscribed_master() -> (DevCluster, String) {
    let agent = AgentSpec::parse(
        AgentSpecKind::Virtual,
        "cpus:4;mem:4096;ports:[31000-31100]",
        "",
    )
    .unwrap();
    let cluster = DevCluster::start(DevClusterConfig {
        agents: vec![agent],
        allocation_interval: Duration::from_millis(100),
        ..DevClusterConfig::default()
    })
    .await
    .unwrap();
    let subscribe = format!(
        r#"{{"type":"SUBSCRIBE","framework_id":{{"value":"{FRAMEWORK_ID}"}},"subscribe":{{"framework_info":{{"user":"nobody","name":"fuzz","id":{{"value":"{FRAMEWORK_ID}"}},"failover_timeout":604800}}}}}}"#
    );
    let response = mesos_reconciler::http::client_builder()
        .build()
        .unwrap()
        .post(format!("{}/api/v1/scheduler", cluster.url()))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(subscribe)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "SUBSCRIBE of {FRAMEWORK_ID}");
    let stream_id = response.headers()["Mesos-Stream-Id"]
        .to_str()
        .unwrap()
        .to_owned();
    tokio::spawn(async move {
        let mut response = response;
        while let Ok(Some(_)) = response.chunk().await {}
    });
    (cluster, stream_id)
}
