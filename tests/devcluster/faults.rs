//! The fault API: partitioned, healed and killed agents (with the task states upstream sends,
//! per PARTITION_AWARE), master restart with reconciliation silence until agents re-register,
//! the HTTP form of the faults, and adding agents.

use std::time::Duration;

use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::mesos::proto::v1::scheduler::{call, event};
use pb::TaskState as S;
use pb::task_status::Reason;
use reqwest::StatusCode;

use crate::support::*;

fn caps(partition_aware: bool) -> &'static [Cap] {
    if partition_aware {
        &[Cap::PartitionAware]
    } else {
        &[]
    }
}

async fn partition_and_heal(partition_aware: bool) {
    let cluster = start(config()).await;
    let faults = cluster.faults();
    let mut sub = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("p", caps(partition_aware)),
    )
    .await;
    let offer = sub.events.next_offers().await.remove(0);
    let agent_id = offer.agent_id.value.clone();
    sub.launch(&[&offer.id], vec![task("t", &offer)]).await;
    sub.until_running("t").await;
    // Hold the re-offered remainder so the partition has an offer to rescind.
    let held = sub.events.next_offers().await.remove(0);

    faults.partition_agent(&agent_id).await.unwrap();
    let mut rescinded = false;
    let mut failure = false;
    let mut update = None;
    while !(rescinded && failure && update.is_some()) {
        let e = sub.events.next().await.expect("events after the partition");
        match event::Type::try_from(e.r#type.unwrap()).unwrap() {
            event::Type::Rescind => {
                assert_eq!(e.rescind.unwrap().offer_id, held.id);
                rescinded = true;
            }
            event::Type::Failure => {
                assert_eq!(e.failure.unwrap().agent_id.unwrap().value, agent_id);
                failure = true;
            }
            event::Type::Update => update = Some(e.update.unwrap().status),
            _ => {}
        }
    }
    let status = update.unwrap();
    let expected = if partition_aware {
        S::TaskUnreachable
    } else {
        S::TaskLost
    };
    assert_eq!(state_of(&status), expected);
    assert_eq!(reason_of(&status), Some(Reason::AgentRemoved));
    assert!(status.unreachable_time.is_some());
    assert!(is_master_generated(&status));

    // Explicit reconciliation with the agent id: unreachable.
    sub.reconcile(&[("t", Some(&agent_id))]).await;
    let status = sub.events.update_of("t").await;
    assert_eq!(state_of(&status), expected);
    assert!(
        cluster.state().await["slaves"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Heal: the agent re-registers with its running task.
    assert_eq!(faults.heal_agent(&agent_id).await.unwrap(), agent_id);
    let status = sub.events.update_of("t").await;
    assert_eq!(state_of(&status), S::TaskRunning);
    assert_eq!(reason_of(&status), Some(Reason::AgentReregistered));
    assert!(is_master_generated(&status));
    sub.reconcile(&[("t", Some(&agent_id))]).await;
    let status = sub.events.update_of("t").await;
    assert_eq!(state_of(&status), S::TaskRunning);
    assert_eq!(reason_of(&status), Some(Reason::Reconciliation));
    // Its resources are accounted again, and it is offered again.
    let offers = sub.events.next_offers().await;
    assert_eq!(offers[0].agent_id.value, agent_id);
    let cpus = offers[0]
        .resources
        .iter()
        .find(|r| r.name == "cpus")
        .unwrap();
    assert_eq!(cpus.scalar.unwrap().value, 3.9);
    cluster.shutdown().await;
}

#[tokio::test]
async fn partition_and_heal_partition_aware() {
    partition_and_heal(true).await;
}

#[tokio::test]
async fn partition_and_heal_not_partition_aware() {
    partition_and_heal(false).await;
}

async fn kill_agent(partition_aware: bool) {
    let cluster = start(config()).await;
    let faults = cluster.faults();
    let mut sub = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("k", caps(partition_aware)),
    )
    .await;
    let offer = sub.events.next_offers().await.remove(0);
    let agent_id = offer.agent_id.value.clone();
    sub.launch(&[&offer.id], vec![task("t", &offer)]).await;
    sub.until_running("t").await;
    faults.kill_agent(&agent_id).await.unwrap();
    let status = sub.events.update_of("t").await;
    if partition_aware {
        assert_eq!(state_of(&status), S::TaskGoneByOperator);
        assert_eq!(reason_of(&status), Some(Reason::AgentRemovedByOperator));
    } else {
        assert_eq!(state_of(&status), S::TaskLost);
        assert_eq!(reason_of(&status), Some(Reason::AgentRemoved));
    }
    assert!(is_master_generated(&status));
    sub.reconcile(&[("t", Some(&agent_id))]).await;
    let status = sub.events.update_of("t").await;
    let expected = if partition_aware {
        S::TaskGoneByOperator
    } else {
        S::TaskLost
    };
    assert_eq!(state_of(&status), expected);

    // A killed agent comes back empty, under a new id, and is offered whole.
    let new_id = faults.heal_agent(&agent_id).await.unwrap();
    assert_ne!(new_id, agent_id);
    let offers = loop {
        let offers = sub.events.next_offers().await;
        if offers.iter().any(|o| o.agent_id.value == new_id) {
            break offers;
        }
    };
    let cpus = offers[0]
        .resources
        .iter()
        .find(|r| r.name == "cpus")
        .unwrap();
    assert_eq!(cpus.scalar.unwrap().value, 4.0);
    cluster.shutdown().await;
}

#[tokio::test]
async fn kill_agent_partition_aware() {
    kill_agent(true).await;
}

#[tokio::test]
async fn kill_agent_not_partition_aware() {
    kill_agent(false).await;
}

#[tokio::test]
async fn master_restart_answers_nothing_until_agents_reregister() {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(100);
    // Agents re-register only when the test heals them, so the silence window is controlled.
    cfg.reregister_delay = Duration::from_secs(3600);
    let cluster = start(cfg).await;
    let faults = cluster.faults();
    let url = cluster.url();
    let mut info = framework_info("survivor", &[Cap::PartitionAware]);
    info.failover_timeout = Some(3600.0);
    let mut sub = subscribe(&url, Encoding::Protobuf, info.clone()).await;
    let offer = sub.events.next_offers().await.remove(0);
    let agent_id = offer.agent_id.value.clone();
    sub.launch(&[&offer.id], vec![task("t", &offer)]).await;
    sub.until_running("t").await;
    // The other framework gets an agent of its own (and maybe the rest of the first one).
    sub.send(sub.call_of(call::Type::Suppress)).await;
    let mut other = subscribe(&url, Encoding::Protobuf, framework_info("other", &[])).await;
    faults.add_agent(agent("cpus:1;mem:256", "")).await.unwrap();
    let offer = other.events.next_offers().await.remove(0);
    other.launch(&[&offer.id], vec![task("o", &offer)]).await;
    other.until_running("o").await;
    let agents = cluster.agent_ids().await;
    let old_master = cluster.state().await["id"].as_str().unwrap().to_owned();

    faults.restart_master().await.unwrap();
    sub.events.until_end().await;
    other.events.until_end().await;
    let state = cluster.state().await;
    assert_ne!(state["id"].as_str().unwrap(), old_master, "a new master");
    assert!(state["frameworks"].as_array().unwrap().is_empty());

    // Re-subscribe with the old id: accepted by the new master.
    info.id = Some(pb::FrameworkId {
        value: sub.framework_id.clone(),
    });
    let mut sub = subscribe(&url, Encoding::Protobuf, info).await;
    // Explicit reconciliation and KILL of the task on the recovering agent: no answer.
    sub.reconcile(&[("t", Some(&agent_id)), ("t", None)]).await;
    sub.kill("t", Some(&agent_id)).await;
    let seen = sub.events.during_heartbeats(5).await;
    assert!(
        seen.iter()
            .all(|e| e.r#type != Some(event::Type::Update as i32)),
        "{seen:?}"
    );
    // Implicit reconciliation knows nothing yet either.
    sub.reconcile(&[]).await;
    let seen = sub.events.during_heartbeats(3).await;
    assert!(
        seen.iter()
            .all(|e| e.r#type != Some(event::Type::Update as i32)),
        "{seen:?}"
    );

    // The agents re-register with their tasks; the never-resubscribed framework is recovered:
    // its calls get 403.
    for id in &agents {
        assert_eq!(&faults.heal_agent(id).await.unwrap(), id);
    }
    let (status, _) = other.call(&other.call_of(call::Type::Revive)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The KILL sent during recovery is not replayed: the task still runs.
    sub.reconcile(&[("t", Some(&agent_id))]).await;
    let status = sub.events.update_of("t").await;
    assert_eq!(state_of(&status), S::TaskRunning);
    assert_eq!(reason_of(&status), Some(Reason::Reconciliation));
    let state = cluster.state().await;
    let recovered = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == other.framework_id.as_str())
        .expect("recovered framework listed");
    assert_eq!(recovered["recovered"], true);
    assert_eq!(recovered["tasks"][0]["id"], "o");
    cluster.shutdown().await;
}

#[tokio::test]
async fn master_restart_agents_reregister_by_themselves() {
    let mut cfg = config();
    cfg.reregister_delay = Duration::from_millis(200);
    let cluster = start(cfg).await;
    let url = cluster.url();
    let mut info = framework_info("f", &[]);
    info.failover_timeout = Some(3600.0);
    let mut sub = subscribe(&url, Encoding::Protobuf, info.clone()).await;
    let offer = sub.events.next_offers().await.remove(0);
    sub.launch(&[&offer.id], vec![task("t", &offer)]).await;
    sub.until_running("t").await;
    cluster.faults().restart_master().await.unwrap();
    sub.events.until_end().await;
    wait_state(&cluster, "the agent to re-register", |s| {
        s["slaves"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    info.id = Some(pb::FrameworkId {
        value: sub.framework_id.clone(),
    });
    let mut sub = subscribe(&url, Encoding::Protobuf, info).await;
    sub.reconcile(&[]).await;
    let status = sub.events.update_of("t").await;
    assert_eq!(state_of(&status), S::TaskRunning);
    cluster.shutdown().await;
}

#[tokio::test]
async fn faults_over_http() {
    let cluster = start(config()).await;
    let url = cluster.url();
    let agent_id = cluster.agent_ids().await.remove(0);
    let fault = |name: &str| format!("{url}/devcluster/faults/{name}");
    let (status, _) = post_json(
        &fault("partition_agent"),
        serde_json::json!({"agent_id": agent_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(cluster.agent_ids().await.is_empty());
    let (status, body) = post_json(
        &fault("heal_agent"),
        serde_json::json!({"agent_id": agent_id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["agent_id"], agent_id.as_str());
    let (status, body) = post_json(
        &fault("add_agent"),
        serde_json::json!({"resources": "cpus:1;mem:128", "attributes": "rack:r2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let new_id = body["agent_id"].as_str().unwrap().to_owned();
    let state = cluster.state().await;
    let added = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == new_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(added["resources"]["cpus"], 1.0);
    assert_eq!(added["attributes"]["rack"], "r2");
    let (status, _) = post_json(&fault("explode"), serde_json::json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post_json(
        &fault("kill_agent"),
        serde_json::json!({"agent_id": "nope"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    cluster.shutdown().await;
}
