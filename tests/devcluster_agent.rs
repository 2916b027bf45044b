//! The dev cluster's agents driven directly through `AgentCommand`, reading the `AgentUpdate`s they
//! produce: virtual tasks and the update delivery contract on tokio's paused clock, process tasks
//! (sandbox, environment, kills, fetcher, containers, health checks) on the real clock with
//! generous deadlines.

use std::collections::HashSet;
use std::time::Duration;

use mesos_reconciler::devcluster::agent::{
    self, AgentCommand, AgentConfig, AgentHandle, AgentKind, AgentUpdate, TaskReport, labels,
};
use mesos_reconciler::mesos::proto::v1 as pb;
use pb::TaskState as S;
use pb::task_status::{Reason, Source};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

const FW: &str = "fw-1";
const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

struct TestAgent {
    handle: AgentHandle,
    updates: mpsc::UnboundedReceiver<AgentUpdate>,
}

fn start(kind: AgentKind, retry_initial: Duration, retry_max: Duration) -> TestAgent {
    let (tx, updates) = mpsc::unbounded_channel();
    let handle = agent::spawn(
        AgentConfig {
            id: "master-S0".to_owned(),
            hostname: "localhost".to_owned(),
            ip: "127.0.0.1".to_owned(),
            kind,
            status_retry_initial: retry_initial,
            status_retry_max: retry_max,
        },
        tx,
    );
    TestAgent { handle, updates }
}

fn virtual_agent() -> TestAgent {
    start(
        AgentKind::Virtual,
        Duration::from_secs(10),
        Duration::from_secs(600),
    )
}

impl TestAgent {
    fn launch(&self, task: pb::TaskInfo) {
        self.handle.send(AgentCommand::Launch {
            framework_id: FW.to_owned(),
            framework_user: "nobody".to_owned(),
            task: Box::new(task),
        });
    }

    fn kill(&self, task_id: &str, grace: Option<Duration>) {
        self.handle.send(AgentCommand::Kill {
            framework_id: FW.to_owned(),
            task_id: task_id.to_owned(),
            grace,
        });
    }

    fn ack(&self, status: &pb::TaskStatus) {
        self.handle.send(AgentCommand::Acknowledge {
            framework_id: FW.to_owned(),
            task_id: status.task_id.value.clone(),
            uuid: status.uuid.clone().expect("agent updates carry a uuid"),
        });
    }

    /// The next update, whatever it is.
    async fn next(&mut self) -> pb::TaskStatus {
        let update = tokio::time::timeout(DEADLINE, self.updates.recv())
            .await
            .expect("no update before the deadline")
            .expect("agent dropped its update channel");
        assert_eq!(update.agent_id, "master-S0");
        assert_eq!(update.framework_id, FW);
        update.status
    }

    /// The next update, acknowledged, after checking its state.
    async fn expect(&mut self, state: S) -> pb::TaskStatus {
        let status = self.next().await;
        assert_eq!(
            state_of(&status),
            state,
            "unexpected update: {:?}",
            status.message
        );
        self.ack(&status);
        status
    }

    async fn list(&self) -> Vec<TaskReport> {
        let (reply, rx) = oneshot::channel();
        self.handle.send(AgentCommand::ListTasks { reply });
        rx.await.expect("agent answers ListTasks")
    }

    async fn stop(self) {
        let (done, rx) = oneshot::channel();
        self.handle.send(AgentCommand::Stop { done });
        tokio::time::timeout(DEADLINE, rx)
            .await
            .expect("agent stops before the deadline")
            .expect("agent replies to Stop");
    }
}

fn state_of(status: &pb::TaskStatus) -> S {
    S::try_from(status.state).expect("a known task state")
}

fn task(id: &str) -> pb::TaskInfo {
    pb::TaskInfo {
        name: id.to_owned(),
        task_id: pb::TaskId {
            value: id.to_owned(),
        },
        agent_id: pb::AgentId {
            value: "master-S0".to_owned(),
        },
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        command: Some(pb::CommandInfo {
            value: Some("true".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn scalar(name: &str, value: f64) -> pb::Resource {
    pb::Resource {
        name: name.to_owned(),
        r#type: pb::value::Type::Scalar as i32,
        scalar: Some(pb::value::Scalar { value }),
        ..Default::default()
    }
}

fn with_labels(mut task: pb::TaskInfo, pairs: &[(&str, &str)]) -> pb::TaskInfo {
    task.labels = Some(pb::Labels {
        labels: pairs
            .iter()
            .map(|(key, value)| pb::Label {
                key: (*key).to_owned(),
                value: Some((*value).to_owned()),
            })
            .collect(),
    });
    task
}

/// Nothing more arrives within `wait` (on the paused clock this costs no real time).
async fn assert_silent(agent: &mut TestAgent, wait: Duration) {
    if let Ok(update) = tokio::time::timeout(wait, agent.updates.recv()).await {
        panic!("unexpected update: {update:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Virtual agents and the delivery contract
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn virtual_scripted_tasks_end_with_their_outcome() {
    let mut agent = virtual_agent();
    let cases = [
        ("finished", S::TaskFinished),
        ("failed", S::TaskFailed),
        ("error", S::TaskError),
        ("lost", S::TaskLost),
    ];
    for (outcome, want) in cases {
        let id = format!("t-{outcome}");
        agent.launch(with_labels(
            task(&id),
            &[(labels::RUN_FOR, "2s"), (labels::OUTCOME, outcome)],
        ));
        let launched = Instant::now();
        let starting = agent.expect(S::TaskStarting).await;
        assert_eq!(starting.source, Some(Source::Executor as i32));
        assert_eq!(starting.executor_id.as_ref().unwrap().value, id);
        assert_eq!(starting.uuid.as_ref().unwrap().len(), 16);
        let running = agent.expect(S::TaskRunning).await;
        let ip = &running.container_status.as_ref().unwrap().network_infos[0].ip_addresses[0];
        assert_eq!(ip.ip_address.as_deref(), Some("127.0.0.1"));
        let end = agent.expect(want).await;
        assert_eq!(launched.elapsed(), Duration::from_secs(2), "{outcome}");
        if want == S::TaskFailed {
            assert_eq!(end.message.as_deref(), Some("Command exited with status 1"));
        }
    }
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn virtual_unscripted_task_runs_until_killed() {
    let mut agent = virtual_agent();
    agent.launch(task("forever"));
    agent.expect(S::TaskStarting).await;
    agent.expect(S::TaskRunning).await;
    assert_silent(&mut agent, Duration::from_secs(3600)).await;
    let listed = agent.list().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(state_of(&listed[0].latest), S::TaskRunning);

    agent.kill("forever", Some(Duration::from_secs(5)));
    let killed = agent.expect(S::TaskKilled).await;
    assert_eq!(killed.source, Some(Source::Executor as i32));
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_ack_releases_the_next_update() {
    let mut agent = virtual_agent();
    agent.launch(task("t"));
    let starting = agent.next().await;
    assert_eq!(state_of(&starting), S::TaskStarting);
    // RUNNING exists (ListTasks shows it) but waits behind the unacknowledged STARTING.
    assert_eq!(state_of(&agent.list().await[0].latest), S::TaskRunning);
    assert_silent(&mut agent, Duration::from_secs(5)).await;

    // An ack with another uuid does not release anything.
    agent.handle.send(AgentCommand::Acknowledge {
        framework_id: FW.to_owned(),
        task_id: "t".to_owned(),
        uuid: vec![7; 16],
    });
    assert_silent(&mut agent, Duration::from_secs(5)).await;

    let acked_at = Instant::now();
    agent.ack(&starting);
    let running = agent.next().await;
    assert_eq!(state_of(&running), S::TaskRunning);
    assert_eq!(
        acked_at.elapsed(),
        Duration::ZERO,
        "sent at once after the ack"
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unacknowledged_update_is_resent_with_doubling_delays() {
    let mut agent = start(
        AgentKind::Virtual,
        Duration::from_secs(1),
        Duration::from_secs(5),
    );
    agent.launch(task("t"));
    let first = agent.next().await;
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    for _ in 0..6 {
        let again = agent.next().await;
        assert_eq!(again.uuid, first.uuid, "the same update is re-sent");
        assert_eq!(state_of(&again), S::TaskStarting);
        gaps.push(last.elapsed().as_secs());
        last = Instant::now();
    }
    assert_eq!(gaps, [1, 2, 4, 5, 5, 5]);

    // After the ack the next update goes out, and its retries start over from the initial delay.
    agent.ack(&first);
    let running = agent.next().await;
    assert_eq!(state_of(&running), S::TaskRunning);
    let sent = Instant::now();
    let again = agent.next().await;
    assert_eq!(again.uuid, running.uuid);
    assert_eq!(sent.elapsed(), Duration::from_secs(1));
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn resend_unacknowledged_resends_at_once() {
    let mut agent = virtual_agent();
    agent.launch(task("a"));
    agent.launch(task("b"));
    let a = agent.next().await;
    let b = agent.next().await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let asked = Instant::now();
    agent.handle.send(AgentCommand::ResendUnacknowledged {
        framework_id: FW.to_owned(),
    });
    let mut resent = vec![agent.next().await.uuid, agent.next().await.uuid];
    assert_eq!(asked.elapsed(), Duration::ZERO);
    resent.sort();
    let mut want = vec![a.uuid.clone(), b.uuid.clone()];
    want.sort();
    assert_eq!(resent, want);

    // The usual backoff continues from the re-send: the next retry comes a full initial delay
    // later (10 s), not at the 10 s mark of the first send.
    let again = agent.next().await;
    assert_eq!(asked.elapsed(), Duration::from_secs(10));
    assert!(again.uuid == a.uuid || again.uuid == b.uuid);

    // Another framework's re-subscription does not touch these tasks.
    agent.handle.send(AgentCommand::ResendUnacknowledged {
        framework_id: "other".to_owned(),
    });
    let _ = agent.next().await; // the other task's retry, due at the same instant
    assert_silent(&mut agent, Duration::from_secs(9)).await;
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn terminal_ack_forgets_the_task() {
    let mut agent = virtual_agent();
    agent.launch(with_labels(task("t"), &[(labels::RUN_FOR, "500ms")]));
    agent.expect(S::TaskStarting).await;
    agent.expect(S::TaskRunning).await;
    let finished = agent.next().await;
    assert_eq!(state_of(&finished), S::TaskFinished);
    assert_eq!(
        finished.message.as_deref(),
        Some("Command exited with status 0")
    );

    // Terminal but unacknowledged: still listed, with its latest state.
    let listed = agent.list().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].framework_id, FW);
    assert_eq!(listed[0].task.task_id.value, "t");
    assert_eq!(state_of(&listed[0].latest), S::TaskFinished);

    agent.ack(&finished);
    assert!(agent.list().await.is_empty());
    assert_silent(&mut agent, Duration::from_secs(60)).await;
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn virtual_health_check_reports_healthy_once() {
    let mut agent = virtual_agent();
    let mut t = task("h");
    t.health_check = Some(pb::HealthCheck {
        r#type: Some(pb::health_check::Type::Tcp as i32),
        tcp: Some(pb::health_check::TcpCheckInfo {
            port: 1,
            protocol: None,
        }),
        ..Default::default()
    });
    agent.launch(t);
    agent.expect(S::TaskStarting).await;
    let running = agent.expect(S::TaskRunning).await;
    assert_eq!(running.healthy, None);
    let health = agent.expect(S::TaskRunning).await;
    assert_eq!(health.healthy, Some(true));
    assert_eq!(
        health.reason,
        Some(Reason::TaskHealthCheckStatusUpdated as i32)
    );
    assert_silent(&mut agent, Duration::from_secs(600)).await;
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn virtual_bad_script_fails_the_launch() {
    let mut agent = virtual_agent();
    agent.launch(with_labels(task("bad"), &[(labels::RUN_FOR, "soon")]));
    let failed = agent.expect(S::TaskFailed).await;
    assert_eq!(failed.source, Some(Source::Agent as i32));
    assert_eq!(failed.reason, Some(Reason::ContainerLaunchFailed as i32));
    assert!(failed.message.unwrap().contains(labels::RUN_FOR));
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_framework_drops_its_tasks_silently() {
    let mut agent = virtual_agent();
    agent.launch(task("a"));
    agent.launch(with_labels(task("b"), &[(labels::RUN_FOR, "1s")]));
    let _ = agent.next().await;
    let _ = agent.next().await;
    agent.handle.send(AgentCommand::ShutdownFramework {
        framework_id: FW.to_owned(),
    });
    assert!(agent.list().await.is_empty());
    assert_silent(&mut agent, Duration::from_secs(3600)).await;
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn many_virtual_tasks_run_on_few_agents() {
    let mut agents: Vec<TestAgent> = (0..10).map(|_| virtual_agent()).collect();
    for (n, agent) in agents.iter().enumerate() {
        for i in 0..200 {
            agent.launch(with_labels(
                task(&format!("t-{n}-{i}")),
                &[(labels::RUN_FOR, "20s")],
            ));
        }
    }
    for agent in &mut agents {
        // Agents not being read keep re-sending their updates meanwhile, so duplicates arrive:
        // count distinct tasks.
        let mut finished = HashSet::new();
        while finished.len() < 200 {
            let status = agent.next().await;
            agent.ack(&status);
            if state_of(&status) == S::TaskFinished {
                finished.insert(status.task_id.value);
            }
        }
        // Commands are handled in order, so the terminal acks were processed before this.
        assert!(agent.list().await.is_empty());
    }
    for agent in agents {
        agent.stop().await;
    }
}
