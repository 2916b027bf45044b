//! The scheduler endpoint on the wire: §3.1 status codes in order, the subscription stream
//! (headers, RecordIO, SUBSCRIBED then HEARTBEAT, periodic heartbeats), refusals inside a 200
//! stream, re-subscription failing the old stream over, failover timeout and TEARDOWN.

use std::time::Duration;

use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::scheduler::{call, event};
use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn status_codes_follow_upstream_order() {
    let cluster = start(config()).await;
    let url = cluster.url();
    let pbuf = Encoding::Protobuf;
    let revive_bytes = |fid: &str| pbuf.encode(&call_of(fid, call::Type::Revive));

    // 405 with Allow, before anything else is looked at.
    let response = client()
        .get(format!("{url}/api/v1/scheduler"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");

    // 400 without Content-Type; 415 for any other type, even with a charset suffix.
    let (status, _) = post_raw(&url, None, None, revive_bytes("x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for ct in ["text/plain", "application/json; charset=utf-8"] {
        let (status, _) = post_raw(&url, Some(ct), None, revive_bytes("x")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
    }

    // 400 for bodies that do not parse, in both encodings.
    let (status, _) = post_raw(&url, Some("application/x-protobuf"), None, vec![0xff, 0xff]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post_raw(&url, Some("application/json"), None, b"{not json".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 400 for a missing required field (FrameworkInfo.user), in both encodings. The protobuf
    // bytes are written by hand because prost always writes required fields.
    // Call{type: SUBSCRIBE, subscribe: {framework_info: {name: "n"}}}
    let missing_user = vec![0x10, 0x01, 0x1a, 0x05, 0x0a, 0x03, 0x12, 0x01, b'n'];
    let (status, body) = post_raw(&url, Some("application/x-protobuf"), None, missing_user).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let json = br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"name":"n"}}}"#.to_vec();
    let (status, body) = post_raw(&url, Some("application/json"), None, json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // 400 from Call validation.
    let no_kill = pbuf.encode(&call_of("x", call::Type::Kill));
    let (status, body) = post_raw(&url, Some("application/x-protobuf"), None, no_kill).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("Failed to validate scheduler::Call"),
        "{body}"
    );
    let mut bad_ack = call_of("x", call::Type::Acknowledge);
    bad_ack.acknowledge = Some(call::Acknowledge {
        agent_id: pb::AgentId { value: "a".into() },
        task_id: pb::TaskId { value: "t".into() },
        uuid: vec![1; 15],
    });
    let (status, body) = post(&url, pbuf, None, &bad_ack).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Not a valid UUID"), "{body}");

    // 406 for a SUBSCRIBE whose Accept allows neither encoding.
    let subscribe_bytes = pbuf.encode(&subscribe_call(framework_info("f", &[])));
    let response = client()
        .post(format!("{url}/api/v1/scheduler"))
        .header("Content-Type", "application/x-protobuf")
        .header("Accept", "text/html")
        .body(subscribe_bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);

    // 400 for a SUBSCRIBE carrying a stream id.
    let (status, _) = post_raw(
        &url,
        Some("application/x-protobuf"),
        Some("abc"),
        subscribe_bytes,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 400 for a framework the master does not know.
    let (status, body) = post_raw(
        &url,
        Some("application/x-protobuf"),
        Some("abc"),
        revive_bytes("nobody"),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, "Framework cannot be found")
    );

    let mut info = framework_info("codes", &[]);
    info.failover_timeout = Some(3600.0);
    let sub = subscribe(&url, pbuf, info).await;
    let fid = sub.framework_id.clone();
    // 400 without or with a wrong stream id; 202 with the right one; 501 for UNKNOWN.
    let (status, _) = post_raw(
        &url,
        Some("application/x-protobuf"),
        None,
        revive_bytes(&fid),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post_raw(
        &url,
        Some("application/x-protobuf"),
        Some("wrong"),
        revive_bytes(&fid),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = sub.call(&call_of(&fid, call::Type::Revive)).await;
    assert_eq!((status, body.as_str()), (StatusCode::ACCEPTED, ""));
    let (status, _) = sub.call(&call_of(&fid, call::Type::Unknown)).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);

    // 403 once the framework is disconnected (its failover timeout keeps it known).
    cluster.faults().drop_framework_stream(&fid).await.unwrap();
    let (status, body) = sub.call(&call_of(&fid, call::Type::Revive)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, "Framework is not subscribed")
    );

    // Any other path is a 404.
    let response = client()
        .post(format!("{url}/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    cluster.shutdown().await;
}

async fn subscribed_then_heartbeats(encoding: Encoding) {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(100);
    let cluster = start(cfg).await;
    let mut sub = subscribe(&cluster.url(), encoding, framework_info("hb", &[])).await;
    let master_id = cluster.state().await["id"].as_str().unwrap().to_owned();
    assert_eq!(sub.framework_id, format!("{master_id}-0000"));
    assert_eq!(sub.subscribed.heartbeat_interval_seconds, Some(0.1));
    let master = sub.subscribed.master_info.clone().unwrap();
    assert_eq!(master.id, master_id);
    assert_eq!(master.port, u32::from(cluster.addr().port()));
    assert_eq!(master.version.as_deref(), Some("1.11.0"));
    // The immediate heartbeat is a record on its own, exactly the bytes of the API notes.
    let expected: &[u8] = match encoding {
        Encoding::Protobuf => &[0x08, 0x08],
        Encoding::Json => br#"{"type":"HEARTBEAT"}"#,
    };
    assert_eq!(sub.events.raw[1], expected);
    // Then one every interval: three more arrive (and nothing else, with no agent offers
    // accepted yet, except offers).
    let others = sub.events.during_heartbeats(3).await;
    assert!(
        others
            .iter()
            .all(|e| e.r#type == Some(event::Type::Offers as i32)),
        "{others:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn subscribed_then_heartbeats_protobuf() {
    subscribed_then_heartbeats(Encoding::Protobuf).await;
}

#[tokio::test]
async fn subscribed_then_heartbeats_json() {
    subscribed_then_heartbeats(Encoding::Json).await;
}

/// A scheduler written against the docs (pymesos style) sends JSON by hand and reads JSON.
#[tokio::test]
async fn handwritten_json_subscription() {
    let cluster = start(config()).await;
    let body = r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"py","unknown_key":1}}}"#;
    let response = client()
        .post(format!("{}/master/api/v1/scheduler", cluster.url()))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let mut events = Events::new(Encoding::Json, response);
    events.next().await.unwrap();
    events.next().await.unwrap();
    let first: serde_json::Value = serde_json::from_slice(&events.raw[0]).unwrap();
    assert_eq!(first["type"], "SUBSCRIBED");
    assert!(first["subscribed"]["framework_id"]["value"].is_string());
    assert_eq!(first["subscribed"]["heartbeat_interval_seconds"], 15.0);
    let second: serde_json::Value = serde_json::from_slice(&events.raw[1]).unwrap();
    assert_eq!(second, serde_json::json!({"type": "HEARTBEAT"}));
    cluster.shutdown().await;
}

async fn resubscribe_fails_over(encoding: Encoding) {
    let cluster = start(config()).await;
    let url = cluster.url();
    let mut info = framework_info("ha", &[]);
    info.failover_timeout = Some(60.0);
    let mut first = subscribe(&url, encoding, info.clone()).await;
    info.id = Some(pb::FrameworkId {
        value: first.framework_id.clone(),
    });
    let second = subscribe(&url, encoding, info).await;
    assert_eq!(second.framework_id, first.framework_id);
    assert_ne!(second.stream_id, first.stream_id);
    let rest = first.events.until_end().await;
    let error = rest
        .iter()
        .find(|e| e.r#type == Some(event::Type::Error as i32))
        .expect("ERROR on the old stream");
    assert_eq!(
        error.error.as_ref().unwrap().message,
        "Framework failed over"
    );
    assert_eq!(
        rest.last().unwrap().r#type,
        Some(event::Type::Error as i32),
        "the old stream ends right after the ERROR"
    );
    let (status, _) = first.call(&first.call_of(call::Type::Revive)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "old stream id refused");
    second.send(second.call_of(call::Type::Revive)).await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn resubscribe_fails_over_protobuf() {
    resubscribe_fails_over(Encoding::Protobuf).await;
}

#[tokio::test]
async fn resubscribe_fails_over_json() {
    resubscribe_fails_over(Encoding::Json).await;
}

#[tokio::test]
async fn failover_timeout_zero_removes_the_framework_when_the_client_goes() {
    let mut cfg = config();
    // Short heartbeats make the server notice the closed connection quickly.
    cfg.heartbeat_interval = Duration::from_millis(50);
    let cluster = start(cfg).await;
    let url = cluster.url();
    let sub = subscribe(&url, Encoding::Protobuf, framework_info("short", &[])).await;
    let fid = sub.framework_id.clone();
    let stream_id = sub.stream_id.clone();
    drop(sub);
    wait_state(&cluster, "the framework to be removed", |s| {
        s["completed_frameworks"]
            .as_array()
            .is_some_and(|c| c.iter().any(|f| f["id"] == fid.as_str()))
    })
    .await;
    let (status, _) = post(
        &url,
        Encoding::Protobuf,
        Some(&stream_id),
        &call_of(&fid, call::Type::Revive),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut info = framework_info("short", &[]);
    info.id = Some(pb::FrameworkId { value: fid.clone() });
    let response = subscribe_response(&url, Encoding::Protobuf, &subscribe_call(info)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("mesos-stream-id"));
    let mut events = Events::new(Encoding::Protobuf, response);
    let all = events.until_end().await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].error.as_ref().unwrap().message,
        "Framework has been removed"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn failover_timeout_keeps_a_disconnected_framework_until_it_expires() {
    let cluster = start(config()).await;
    let url = cluster.url();
    let mut info = framework_info("patient", &[]);
    info.failover_timeout = Some(3.0);
    let sub = subscribe(&url, Encoding::Protobuf, info.clone()).await;
    let fid = sub.framework_id.clone();
    cluster.faults().drop_framework_stream(&fid).await.unwrap();
    let state = cluster.state().await;
    let framework = &state["frameworks"][0];
    assert_eq!(framework["id"], fid.as_str());
    assert_eq!(framework["active"], false);
    wait_state(&cluster, "the failover timeout to remove it", |s| {
        s["frameworks"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn subscription_refusals_are_errors_inside_a_200_stream() {
    let cluster = start(config()).await;
    let mut info = framework_info("roles", &[]);
    info.roles = vec!["web".into()];
    let response =
        subscribe_response(&cluster.url(), Encoding::Protobuf, &subscribe_call(info)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let all = Events::new(Encoding::Protobuf, response).until_end().await;
    assert_eq!(all.len(), 1);
    assert!(
        all[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("MULTI_ROLE"),
        "{all:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn teardown_closes_the_stream_without_error() {
    let cluster = start(config()).await;
    let mut sub = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("bye", &[]),
    )
    .await;
    sub.send(sub.call_of(call::Type::Teardown)).await;
    let rest = sub.events.until_end().await;
    assert!(
        rest.iter()
            .all(|e| e.r#type != Some(event::Type::Error as i32)),
        "{rest:?}"
    );
    let (status, _) = sub.call(&sub.call_of(call::Type::Revive)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let state = cluster.state().await;
    assert_eq!(
        state["completed_frameworks"][0]["id"],
        sub.framework_id.as_str()
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn resubscribing_with_an_id_the_master_never_saw_is_accepted() {
    let cluster = start(config()).await;
    let mut info = framework_info("old", &[]);
    info.id = Some(pb::FrameworkId {
        value: "from-another-master-0007".into(),
    });
    let sub = subscribe(&cluster.url(), Encoding::Protobuf, info).await;
    assert_eq!(sub.framework_id, "from-another-master-0007");
    sub.send(sub.call_of(call::Type::Revive)).await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn update_framework_is_synchronous() {
    let cluster = start(config()).await;
    let sub = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("before", &[]),
    )
    .await;
    let mut info = framework_info("after", &[]);
    info.id = Some(pb::FrameworkId {
        value: sub.framework_id.clone(),
    });
    let mut update = sub.call_of(call::Type::UpdateFramework);
    update.update_framework = Some(call::UpdateFramework {
        framework_info: info.clone(),
        ..Default::default()
    });
    let (status, body) = sub.call(&update).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert_eq!(cluster.state().await["frameworks"][0]["name"], "after");
    info.user = "someone-else".into();
    update.update_framework = Some(call::UpdateFramework {
        framework_info: info,
        ..Default::default()
    });
    let (status, body) = sub.call(&update).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    cluster.shutdown().await;
}
