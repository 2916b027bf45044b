//! Tasks through the master: launch on a virtual agent, agent updates with uuids re-sent until
//! acknowledged, KILL, invalid offers and invalid tasks, reconciliation with and without
//! PARTITION_AWARE.

use mesos_reconciler::mesos::encoding::Encoding;
use mesos_reconciler::mesos::proto::v1 as pb;
use pb::TaskState as S;
use pb::task_status::Reason;

use crate::support::*;

async fn launch_ack_kill(encoding: Encoding) {
    let cluster = start(config()).await;
    let mut sub = subscribe(&cluster.url(), encoding, framework_info("run", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    let mut info = task("web-1", &offer);
    info.resources.push(ports(31000, 31000));
    sub.launch(&[&offer.id], vec![info.clone()]).await;

    let starting = sub.events.update_of("web-1").await;
    assert_eq!(state_of(&starting), S::TaskStarting);
    assert_eq!(starting.uuid.as_ref().map(Vec::len), Some(16));
    assert_eq!(starting.agent_id, Some(offer.agent_id.clone()));
    sub.acknowledge(&starting).await;
    let running = sub.events.update_of("web-1").await;
    assert_eq!(state_of(&running), S::TaskRunning);
    assert_ne!(running.uuid, starting.uuid);
    sub.acknowledge(&running).await;
    assert_eq!(cluster.received_task_infos().await, vec![info]);

    let state = cluster.state().await;
    let t = &state["frameworks"][0]["tasks"][0];
    assert_eq!(t["id"], "web-1");
    assert_eq!(t["state"], "TASK_RUNNING");
    assert_eq!(t["slave_id"], offer.agent_id.value.as_str());
    assert_eq!(t["resources"]["cpus"], 0.1);
    assert_eq!(t["resources"]["ports"], "[31000-31000]");
    assert_eq!(state["slaves"][0]["used_resources"]["mem"], 32.0);

    sub.kill("web-1", None).await;
    let killed = loop {
        let s = sub.events.update_of("web-1").await;
        sub.acknowledge(&s).await;
        if state_of(&s) != S::TaskKilling {
            break s;
        }
    };
    assert_eq!(state_of(&killed), S::TaskKilled);
    assert!(killed.uuid.is_some());
    wait_state(&cluster, "the acknowledged task to be completed", |s| {
        s["frameworks"][0]["completed_tasks"][0]["id"] == "web-1"
            && s["frameworks"][0]["tasks"]
                .as_array()
                .is_some_and(Vec::is_empty)
            && s["slaves"][0]["used_resources"]["cpus"] == 0.0
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn launch_ack_kill_protobuf() {
    launch_ack_kill(Encoding::Protobuf).await;
}

#[tokio::test]
async fn launch_ack_kill_json() {
    launch_ack_kill(Encoding::Json).await;
}

#[tokio::test]
async fn unacknowledged_updates_are_resent_with_the_same_uuid() {
    let cluster = start(config()).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("r", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    sub.launch(&[&offer.id], vec![task("t", &offer)]).await;
    let first = sub.events.update_of("t").await;
    let again = sub.events.update_of("t").await;
    assert_eq!(
        again.uuid, first.uuid,
        "oldest unacknowledged update re-sent"
    );
    assert_eq!(again.state, first.state);
    sub.acknowledge(&again).await;
    let next = sub.events.update_of("t").await;
    assert_ne!(next.uuid, first.uuid);
    cluster.shutdown().await;
}

/// Upstream's `Master::updateTask` takes a task's state from the agent's `latest_state`: while
/// TASK_STARTING waits for its acknowledgement, the agent already knows TASK_RUNNING, and the
/// master shows that (state endpoint, task gauges) though it forwards only TASK_STARTING.
#[tokio::test]
async fn the_master_shows_the_latest_state_while_an_older_update_is_unacknowledged() {
    let cluster = start(config()).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("l", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    sub.launch(&[&offer.id], vec![task("t", &offer)]).await;
    let starting = sub.events.update_of("t").await;
    assert_eq!(state_of(&starting), S::TaskStarting);
    wait_state(&cluster, "the task shown as TASK_RUNNING", |s| {
        s["frameworks"][0]["tasks"][0]["state"] == "TASK_RUNNING"
    })
    .await;
    let state = cluster.state().await;
    let t = &state["frameworks"][0]["tasks"][0];
    // The last status the master holds is the forwarded one, still unacknowledged.
    let statuses = t["statuses"].as_array().expect("statuses");
    assert_eq!(statuses.last().unwrap()["state"], "TASK_STARTING");
    // Nothing newer was forwarded: the next update is the same TASK_STARTING, re-sent.
    let again = sub.events.update_of("t").await;
    assert_eq!(
        (state_of(&again), &again.uuid),
        (S::TaskStarting, &starting.uuid)
    );
    sub.acknowledge(&again).await;
    assert_eq!(state_of(&sub.events.update_of("t").await), S::TaskRunning);
    cluster.shutdown().await;
}

async fn invalid_offer_fails_the_whole_accept(partition_aware: bool) {
    let cluster = start(config()).await;
    let caps: &[Cap] = if partition_aware {
        &[Cap::PartitionAware]
    } else {
        &[]
    };
    let mut sub = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("bad", caps),
    )
    .await;
    let offer = sub.events.next_offers().await.remove(0);
    let bogus = pb::OfferId {
        value: "no-such-offer".into(),
    };
    sub.launch(
        &[&offer.id, &bogus],
        vec![task("t1", &offer), task("t2", &offer)],
    )
    .await;
    for id in ["t1", "t2"] {
        let status = sub.events.update_of(id).await;
        let expected = if partition_aware {
            S::TaskDropped
        } else {
            S::TaskLost
        };
        assert_eq!(state_of(&status), expected);
        assert_eq!(reason_of(&status), Some(Reason::InvalidOffers));
        assert!(is_master_generated(&status), "{status:?}");
    }
    // The valid offer was consumed without a filter: its agent is offered again.
    let again = sub.events.next_offers().await;
    assert_eq!(again[0].agent_id, offer.agent_id);
    assert!(
        cluster.state().await["frameworks"][0]["tasks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn invalid_offer_gives_task_lost() {
    invalid_offer_fails_the_whole_accept(false).await;
}

#[tokio::test]
async fn invalid_offer_gives_task_dropped_to_partition_aware() {
    invalid_offer_fails_the_whole_accept(true).await;
}

#[tokio::test]
async fn invalid_tasks_get_task_error_and_the_rest_still_launch() {
    let cluster = start(config()).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("v", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    let mut bad_id = task("a/b", &offer);
    bad_id.name = "slash".into();
    let mut wrong_agent = task("wrong-agent", &offer);
    wrong_agent.agent_id.value = "someone-else".into();
    let mut no_resources = task("no-resources", &offer);
    no_resources.resources.clear();
    let mut too_big = task("too-big", &offer);
    too_big.resources = vec![pb::Resource::scalar("cpus", 64.0)];
    let mut both = task("both", &offer);
    both.executor = Some(pb::ExecutorInfo {
        executor_id: pb::ExecutorId { value: "e".into() },
        command: Some(pb::CommandInfo::default()),
        ..Default::default()
    });
    let tasks = vec![
        task("good", &offer),
        task("good", &offer),
        bad_id,
        wrong_agent,
        no_resources,
        too_big,
        both,
    ];
    sub.launch(&[&offer.id], tasks).await;
    let mut errors = std::collections::BTreeMap::new();
    let mut good_started = false;
    while errors.len() < 6 || !good_started {
        let status = sub.events.next_update().await;
        if status.uuid.is_some() {
            assert_eq!(status.task_id.value, "good");
            good_started = true;
            continue;
        }
        assert_eq!(state_of(&status), S::TaskError, "{status:?}");
        assert_eq!(reason_of(&status), Some(Reason::TaskInvalid));
        assert!(is_master_generated(&status));
        errors.insert(status.task_id.value.clone(), status.message.unwrap());
    }
    assert!(errors["good"].contains("duplicate ID"), "{errors:?}");
    assert!(errors["a/b"].contains("invalid"), "{errors:?}");
    assert!(
        errors["wrong-agent"].contains("invalid agent"),
        "{errors:?}"
    );
    assert!(
        errors["no-resources"].contains("no resources"),
        "{errors:?}"
    );
    assert!(errors["too-big"].contains("more resources"), "{errors:?}");
    assert!(errors["both"].contains("not both"), "{errors:?}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn operation_id_on_launch_is_a_task_error() {
    let cluster = start(config()).await;
    let mut sub = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("op", &[]),
    )
    .await;
    let offer = sub.events.next_offers().await.remove(0);
    let mut op = launch_op(vec![task("t", &offer)]);
    op.id = Some(pb::OperationId {
        value: "op-1".into(),
    });
    sub.accept(&[&offer.id], vec![op], Some(0.0)).await;
    let status = sub.events.update_of("t").await;
    assert_eq!(state_of(&status), S::TaskError);
    assert_eq!(reason_of(&status), Some(Reason::TaskInvalid));
    cluster.shutdown().await;
}

#[tokio::test]
async fn virtual_tasks_end_as_their_labels_script_them() {
    let cluster = start(config()).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("v", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    let mut t = task("short", &offer);
    t.labels = Some(pb::Labels {
        labels: vec![pb::Label {
            key: "devcluster.run_for".into(),
            value: Some("100ms".into()),
        }],
    });
    sub.launch(&[&offer.id], vec![t]).await;
    let end = loop {
        let s = sub.events.update_of("short").await;
        sub.acknowledge(&s).await;
        if state_of(&s) != S::TaskStarting && state_of(&s) != S::TaskRunning {
            break s;
        }
    };
    assert_eq!(state_of(&end), S::TaskFinished);
    cluster.shutdown().await;
}

async fn reconciliation(partition_aware: bool) {
    let cluster = start(config()).await;
    let caps: &[Cap] = if partition_aware {
        &[Cap::PartitionAware]
    } else {
        &[]
    };
    let mut sub = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("rec", caps),
    )
    .await;
    let offer = sub.events.next_offers().await.remove(0);
    let agent_id = offer.agent_id.value.clone();
    sub.launch(&[&offer.id], vec![task("known", &offer)]).await;
    sub.until_running("known").await;

    // Implicit: one answer per tracked task, master-generated.
    sub.reconcile(&[]).await;
    let status = sub.events.update_of("known").await;
    assert_eq!(state_of(&status), S::TaskRunning);
    assert_eq!(reason_of(&status), Some(Reason::Reconciliation));
    assert!(is_master_generated(&status));
    assert_eq!(
        status.message.as_deref(),
        Some("Reconciliation: Latest task state")
    );

    // Explicit, in one call: known task, unknown task on a registered agent, unknown task
    // without an agent, unknown task on an agent nobody knows.
    sub.reconcile(&[
        ("known", Some(&agent_id)),
        ("ghost-on-agent", Some(&agent_id)),
        ("ghost", None),
        ("ghost-elsewhere", Some("no-such-agent")),
    ])
    .await;
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 4 {
        let s = sub.events.next_update().await;
        assert!(is_master_generated(&s));
        assert_eq!(reason_of(&s), Some(Reason::Reconciliation));
        answers.insert(s.task_id.value.clone(), state_of(&s));
    }
    let (gone, unknown) = if partition_aware {
        (S::TaskGone, S::TaskUnknown)
    } else {
        (S::TaskLost, S::TaskLost)
    };
    assert_eq!(answers["known"], S::TaskRunning);
    assert_eq!(answers["ghost-on-agent"], gone);
    assert_eq!(answers["ghost"], unknown);
    assert_eq!(answers["ghost-elsewhere"], unknown);

    // KILL of an unknown task answers as explicit reconciliation.
    sub.kill("never-launched", Some(&agent_id)).await;
    let s = sub.events.update_of("never-launched").await;
    assert_eq!(state_of(&s), gone);
    assert_eq!(reason_of(&s), Some(Reason::Reconciliation));
    cluster.shutdown().await;
}

#[tokio::test]
async fn reconciliation_without_partition_awareness() {
    reconciliation(false).await;
}

#[tokio::test]
async fn reconciliation_with_partition_awareness() {
    reconciliation(true).await;
}

#[tokio::test]
async fn duplicate_and_delayed_status_updates() {
    let cluster = start(config()).await;
    let faults = cluster.faults();
    let mut sub = subscribe(
        &cluster.url(),
        Encoding::Protobuf,
        framework_info("dup", &[]),
    )
    .await;
    let offer = sub.events.next_offers().await.remove(0);
    faults.duplicate_status_updates(true).await.unwrap();
    sub.launch(&[&offer.id], vec![task("t", &offer)]).await;
    let first = sub.events.update_of("t").await;
    let second = sub.events.update_of("t").await;
    assert_eq!(first.uuid, second.uuid, "the same update twice");
    faults.duplicate_status_updates(false).await.unwrap();
    faults
        .delay_status_updates(std::time::Duration::from_millis(200))
        .await
        .unwrap();
    // RUNNING is produced only after this acknowledgement, so it cannot arrive sooner than the
    // delay after it.
    let acked_at = std::time::Instant::now();
    sub.acknowledge(&first).await;
    sub.acknowledge(&second).await;
    let running = loop {
        let s = sub.events.update_of("t").await;
        if state_of(&s) == S::TaskRunning {
            break s;
        }
    };
    assert!(acked_at.elapsed() >= std::time::Duration::from_millis(200));
    sub.acknowledge(&running).await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn launch_group_runs_and_kills_the_group_together() {
    let cluster = start(config()).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("g", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    let executor = pb::ExecutorInfo {
        r#type: Some(pb::executor_info::Type::Default as i32),
        executor_id: pb::ExecutorId {
            value: "group-exec".into(),
        },
        resources: vec![
            pb::Resource::scalar("cpus", 0.1),
            pb::Resource::scalar("mem", 32.0),
            pb::Resource::scalar("disk", 10.0),
        ],
        ..Default::default()
    };
    let op = pb::offer::Operation {
        r#type: Some(pb::offer::operation::Type::LaunchGroup as i32),
        launch_group: Some(pb::offer::operation::LaunchGroup {
            executor,
            task_group: pb::TaskGroupInfo {
                tasks: vec![task("g1", &offer), task("g2", &offer)],
            },
        }),
        ..Default::default()
    };
    sub.accept(&[&offer.id], vec![op], Some(0.0)).await;
    sub.until_running("g1").await;
    sub.until_running("g2").await;
    let state = cluster.state().await;
    // Two tasks (0.1 cpu each) plus the default executor (0.1 cpu).
    assert_eq!(state["slaves"][0]["used_resources"]["cpus"], 0.3);
    sub.kill("g1", None).await;
    let mut killed = std::collections::BTreeSet::new();
    while killed.len() < 2 {
        let s = sub.events.next_update().await;
        sub.acknowledge(&s).await;
        if state_of(&s) == S::TaskKilled {
            killed.insert(s.task_id.value.clone());
        }
    }
    wait_state(&cluster, "the group and its executor to be freed", |s| {
        s["slaves"][0]["used_resources"]["cpus"] == 0.0
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_invalid_task_group_fails_every_task() {
    let cluster = start(config()).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("g", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    let executor = pb::ExecutorInfo {
        r#type: Some(pb::executor_info::Type::Default as i32),
        executor_id: pb::ExecutorId { value: "e".into() },
        resources: vec![
            pb::Resource::scalar("cpus", 0.1),
            pb::Resource::scalar("mem", 32.0),
        ],
        ..Default::default()
    };
    let mut too_big = task("g2", &offer);
    too_big.resources = vec![pb::Resource::scalar("mem", 1e9)];
    let op = pb::offer::Operation {
        r#type: Some(pb::offer::operation::Type::LaunchGroup as i32),
        launch_group: Some(pb::offer::operation::LaunchGroup {
            executor,
            task_group: pb::TaskGroupInfo {
                tasks: vec![task("g1", &offer), too_big],
            },
        }),
        ..Default::default()
    };
    sub.accept(&[&offer.id], vec![op], Some(0.0)).await;
    for id in ["g1", "g2"] {
        let s = sub.events.update_of(id).await;
        assert_eq!(state_of(&s), S::TaskError);
        assert_eq!(reason_of(&s), Some(Reason::TaskGroupInvalid));
    }
    cluster.shutdown().await;
}

/// Updates sent while the framework was away are dropped by the master; re-subscribing makes
/// the agent re-send them at once, long before its own retry would.
#[tokio::test]
async fn resubscribing_redelivers_unacknowledged_updates() {
    let mut cfg = config();
    cfg.status_retry_initial = std::time::Duration::from_secs(3600);
    cfg.status_retry_max = std::time::Duration::from_secs(3600);
    let cluster = start(cfg).await;
    let url = cluster.url();
    let mut info = framework_info("again", &[]);
    info.failover_timeout = Some(3600.0);
    let mut sub = subscribe(&url, Encoding::Protobuf, info.clone()).await;
    let offer = sub.events.next_offers().await.remove(0);
    sub.launch(&[&offer.id], vec![task("t", &offer)]).await;
    let starting = sub.events.update_of("t").await;
    info.id = Some(pb::FrameworkId {
        value: sub.framework_id.clone(),
    });
    let mut again = subscribe(&url, Encoding::Protobuf, info).await;
    let resent = again.events.update_of("t").await;
    assert_eq!(resent.uuid, starting.uuid);
    again.acknowledge(&resent).await;
    let running = again.events.update_of("t").await;
    assert_eq!(state_of(&running), S::TaskRunning);
    cluster.shutdown().await;
}

#[tokio::test]
async fn process_agent_runs_a_real_command() {
    let work_dir = std::env::temp_dir().join(format!("devcluster-test-{}", uuid::Uuid::new_v4()));
    let mut cfg = config();
    cfg.work_dir = work_dir.clone();
    cfg.agents = vec![
        mesos_reconciler::devcluster::AgentSpec::parse(
            mesos_reconciler::devcluster::AgentSpecKind::Process,
            "cpus:1;mem:256;ports:[31000-31001]",
            "",
        )
        .unwrap(),
    ];
    let cluster = start(cfg).await;
    let mut sub = subscribe(&cluster.url(), Encoding::Protobuf, framework_info("p", &[])).await;
    let offer = sub.events.next_offers().await.remove(0);
    let mut t = task("echo", &offer);
    t.command.as_mut().unwrap().value = Some("echo hello from $MESOS_TASK_ID".into());
    sub.launch(&[&offer.id], vec![t]).await;
    let end = loop {
        let s = sub.events.update_of("echo").await;
        sub.acknowledge(&s).await;
        if state_of(&s) != S::TaskStarting && state_of(&s) != S::TaskRunning {
            break s;
        }
    };
    assert_eq!(state_of(&end), S::TaskFinished, "{end:?}");
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&work_dir);
}
