//! The operator endpoints: `GET /master/frameworks` (and `/frameworks`, with or without a trailing
//! slash), in upstream's shape, filtered by `framework_id`, wrapped by `jsonp`.

use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use pb::framework_info::capability::Type as Cap;
use reqwest::StatusCode;

use crate::support::*;

fn label(key: &str, value: &str) -> pb::Label {
    pb::Label {
        key: key.into(),
        value: Some(value.into()),
    }
}

#[tokio::test]
async fn frameworks_lists_registered_and_completed_frameworks_with_their_tasks() {
    let cluster = start(config()).await;
    let url = cluster.url();
    let mut info = framework_info("alpha", &[Cap::MultiRole]);
    info.roles = vec!["*".into()];
    info.principal = Some("ops".into());
    info.hostname = Some("scheduler-host".into());
    info.failover_timeout = Some(3600.0);
    let mut alpha = subscribe(&url, Encoding::Protobuf, info).await;
    let offer = alpha.events.next_offers().await.remove(0);
    let mut t = task("a1", &offer);
    t.labels = Some(pb::Labels {
        labels: vec![label("spec", "team-a/web"), label("instance", "0")],
    });
    alpha.launch(&[&offer.id], vec![t]).await;
    alpha.until_running("a1").await;
    // A second framework that goes away for good.
    let beta = subscribe(&url, Encoding::Json, framework_info("beta", &[])).await;
    beta.send(beta.call_of(pb::scheduler::call::Type::Teardown))
        .await;
    wait_state(&cluster, "beta to be removed", |s| {
        s["completed_frameworks"]
            .as_array()
            .is_some_and(|c| c.len() == 1)
    })
    .await;

    for path in [
        "/master/frameworks",
        "/master/frameworks/",
        "/frameworks",
        "/frameworks/",
    ] {
        let (status, doc) = get_json(&format!("{url}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "completed_frameworks",
                "frameworks",
                "unregistered_frameworks"
            ],
            "{path}"
        );
        assert_eq!(doc["unregistered_frameworks"], serde_json::json!([]));
        let frameworks = doc["frameworks"].as_array().unwrap();
        assert_eq!(frameworks.len(), 1, "{path}: {doc:#}");
        let f = &frameworks[0];
        assert_eq!(f["id"], alpha.framework_id.as_str());
        assert_eq!(f["name"], "alpha");
        assert_eq!(f["principal"], "ops");
        assert_eq!(f["hostname"], "scheduler-host");
        assert_eq!(f["active"], true);
        assert_eq!(f["connected"], true);
        assert_eq!(f["recovered"], false);
        assert_eq!(f["failover_timeout"], 3600.0);
        assert_eq!(f["roles"], serde_json::json!(["*"]));
        assert!(
            f.get("role").is_none(),
            "MULTI_ROLE frameworks show roles only"
        );
        let task = &f["tasks"][0];
        assert_eq!(task["id"], "a1");
        assert_eq!(task["state"], "TASK_RUNNING");
        assert_eq!(task["slave_id"], offer.agent_id.value.as_str());
        assert_eq!(
            task["labels"],
            serde_json::json!([
                {"key": "spec", "value": "team-a/web"},
                {"key": "instance", "value": "0"}
            ])
        );
        let completed = doc["completed_frameworks"].as_array().unwrap();
        assert_eq!(completed.len(), 1);
        assert_eq!(completed[0]["name"], "beta");
        assert_eq!(completed[0]["active"], false);
        assert!(
            completed[0].get("principal").is_none(),
            "no principal: the field is left out"
        );
        assert_eq!(completed[0]["role"], "*");
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn frameworks_filters_by_framework_id_and_shows_disconnected_ones() {
    let cluster = start(config()).await;
    let url = cluster.url();
    let mut info = framework_info("same-name", &[]);
    info.failover_timeout = Some(3600.0);
    let one = subscribe(&url, Encoding::Protobuf, info.clone()).await;
    let two = subscribe(&url, Encoding::Protobuf, info).await;
    cluster
        .faults()
        .drop_framework_stream(&one.framework_id)
        .await
        .unwrap();

    let (status, doc) = get_json(&format!(
        "{url}/master/frameworks?framework_id={}",
        one.framework_id
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let frameworks = doc["frameworks"].as_array().unwrap();
    assert_eq!(frameworks.len(), 1, "{doc:#}");
    assert_eq!(frameworks[0]["id"], one.framework_id.as_str());
    assert_eq!(frameworks[0]["connected"], false);
    assert_eq!(frameworks[0]["active"], false);
    assert_eq!(frameworks[0]["tasks"], serde_json::json!([]));

    let (_, all) = get_json(&format!("{url}/master/frameworks")).await;
    let mut ids: Vec<&str> = all["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![one.framework_id.as_str(), two.framework_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    let (_, none) = get_json(&format!("{url}/master/frameworks?framework_id=nope-0000")).await;
    assert_eq!(
        none,
        serde_json::json!({"frameworks": [], "completed_frameworks": [], "unregistered_frameworks": []})
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn frameworks_wraps_the_document_for_jsonp() {
    let cluster = start(config()).await;
    let response = client()
        .get(format!("{}/master/frameworks?jsonp=show", cluster.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/javascript");
    let body = response.text().await.unwrap();
    assert_eq!(
        body,
        r#"show({"frameworks":[],"completed_frameworks":[],"unregistered_frameworks":[]});"#
    );
    cluster.shutdown().await;
}
