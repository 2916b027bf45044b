//! The dev cluster's agents driven directly through `AgentCommand`, reading the `AgentUpdate`s they
//! produce: virtual tasks and the update delivery contract on tokio's paused clock, process tasks
//! (sandbox, environment, kills, fetcher, containers, health checks) on the real clock with
//! generous deadlines.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
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
        update.status().expect("the agent's update decodes")
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

    /// The next update is the agent failing the launch (TASK_FAILED from the agent with
    /// REASON_CONTAINER_LAUNCH_FAILED) with a message containing every one of `needles`.
    async fn expect_launch_failure(&mut self, needles: &[&str]) {
        let failed = self.expect(S::TaskFailed).await;
        assert_eq!(failed.source, Some(Source::Agent as i32));
        assert_eq!(failed.reason, Some(Reason::ContainerLaunchFailed as i32));
        let message = failed.message.unwrap_or_default();
        for needle in needles {
            assert!(message.contains(needle), "{needle:?} not in {message:?}");
        }
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
        resources: vec![
            pb::Resource::scalar("cpus", 0.1),
            pb::Resource::scalar("mem", 32.0),
        ],
        command: Some(pb::CommandInfo {
            value: Some("true".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn with_labels(mut task: pb::TaskInfo, pairs: &[(&str, &str)]) -> pb::TaskInfo {
    task.labels = Some(pb::Labels::from_pairs(pairs.iter().copied()));
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
    agent.expect_launch_failure(&[labels::RUN_FOR]).await;
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

// ---------------------------------------------------------------------------------------------
// Process agents
// ---------------------------------------------------------------------------------------------

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "devcluster-agent-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn process_agent(dir: &Scratch) -> TestAgent {
    start(
        AgentKind::Process {
            work_dir: dir.path().join("work"),
        },
        Duration::from_secs(10),
        Duration::from_secs(600),
    )
}

fn shell_task(id: &str, script: &str) -> pb::TaskInfo {
    let mut t = task(id);
    t.command = Some(pb::CommandInfo {
        value: Some(script.to_owned()),
        ..Default::default()
    });
    t
}

/// The sandbox of a task: `<work_dir>/<framework>/<task_id>-<short uuid>`.
fn sandbox_of(dir: &Scratch, task_id: &str) -> PathBuf {
    let framework_dir = dir.path().join("work").join(FW);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&framework_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("{task_id}-"))
        })
        .collect();
    assert_eq!(found.len(), 1, "one sandbox for {task_id}: {found:?}");
    found.pop().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The pid in a RUNNING update, which is also the task's process group.
fn pgid_of(running: &pb::TaskStatus) -> u32 {
    running
        .container_status
        .as_ref()
        .and_then(|c| c.executor_pid)
        .expect("RUNNING carries the executor pid")
}

/// Live (not zombie) processes of a process group, from /proc.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...", where comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && !matches!(fields[0], "Z" | "X") {
            pids.push(pid);
        }
    }
    pids
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn process_echo_finishes_and_writes_stdout() {
    let dir = Scratch::new("echo");
    let mut agent = process_agent(&dir);
    agent.launch(shell_task("echo", "echo HelloWorld; echo oops >&2"));
    let starting = agent.expect(S::TaskStarting).await;
    assert_eq!(starting.source, Some(Source::Executor as i32));
    let running = agent.expect(S::TaskRunning).await;
    let container = running.container_status.as_ref().unwrap();
    assert!(container.container_id.is_some());
    assert_eq!(
        container.network_infos[0].ip_addresses[0]
            .ip_address
            .as_deref(),
        Some("127.0.0.1")
    );
    let finished = agent.expect(S::TaskFinished).await;
    assert_eq!(finished.source, Some(Source::Executor as i32));
    assert_eq!(
        finished.message.as_deref(),
        Some("Command exited with status 0")
    );
    let sandbox = sandbox_of(&dir, "echo");
    assert_eq!(read(&sandbox.join("stdout")), "HelloWorld\n");
    assert_eq!(read(&sandbox.join("stderr")), "oops\n");
    agent.stop().await;
}

#[tokio::test]
async fn process_nonzero_exit_fails() {
    let dir = Scratch::new("exit");
    let mut agent = process_agent(&dir);
    agent.launch(shell_task("exit3", "exit 3"));
    agent.expect(S::TaskStarting).await;
    agent.expect(S::TaskRunning).await;
    let failed = agent.expect(S::TaskFailed).await;
    assert_eq!(
        failed.message.as_deref(),
        Some("Command exited with status 3")
    );
    assert_eq!(failed.source, Some(Source::Executor as i32));
    assert_eq!(failed.reason, None);
    agent.stop().await;
}

#[tokio::test]
async fn process_argv_mode_runs_without_a_shell() {
    let dir = Scratch::new("argv");
    let mut agent = process_agent(&dir);
    let mut t = task("argv");
    t.command = Some(pb::CommandInfo {
        shell: Some(false),
        value: Some("/usr/bin/printf".to_owned()),
        arguments: vec!["printf".into(), "[%s]".into(), "a b".into(), "$HOME".into()],
        ..Default::default()
    });
    agent.launch(t);
    let mut t = task("argv0");
    t.command = Some(pb::CommandInfo {
        shell: Some(false),
        value: Some("/bin/sh".to_owned()),
        arguments: vec![
            "custom-name".into(),
            "-c".into(),
            "tr '\\0' ' ' < /proc/$$/cmdline".into(),
        ],
        ..Default::default()
    });
    agent.launch(t);
    let mut finished = 0;
    while finished < 2 {
        let status = agent.next().await;
        agent.ack(&status);
        match state_of(&status) {
            S::TaskFinished => finished += 1,
            S::TaskStarting | S::TaskRunning => {}
            other => panic!("unexpected {other:?}: {:?}", status.message),
        }
    }
    // No word splitting, no expansion: each argument arrives as given.
    assert_eq!(
        read(&sandbox_of(&dir, "argv").join("stdout")),
        "[a b][$HOME]"
    );
    // arguments[0] is the name the process sees.
    assert!(
        read(&sandbox_of(&dir, "argv0").join("stdout")).starts_with("custom-name -c "),
        "argv0"
    );
    agent.stop().await;
}

#[tokio::test]
async fn process_environment_has_ports_mesos_and_task_variables() {
    let dir = Scratch::new("env");
    let mut agent = process_agent(&dir);
    let mut t = shell_task("env", "env > env.txt");
    t.resources.push(pb::Resource {
        name: "ports".to_owned(),
        r#type: pb::value::Type::Ranges as i32,
        ranges: Some(pb::value::Ranges {
            range: vec![
                pb::value::Range {
                    begin: 31000,
                    end: 31001,
                },
                pb::value::Range {
                    begin: 31010,
                    end: 31010,
                },
            ],
        }),
        ..Default::default()
    });
    t.command.as_mut().unwrap().environment = Some(pb::Environment {
        variables: vec![pb::environment::Variable {
            name: "GREETING".to_owned(),
            value: Some("hello world".to_owned()),
            ..Default::default()
        }],
    });
    agent.launch(t);
    agent.expect(S::TaskStarting).await;
    agent.expect(S::TaskRunning).await;
    agent.expect(S::TaskFinished).await;

    let sandbox = sandbox_of(&dir, "env");
    let env: HashMap<String, String> = read(&sandbox.join("env.txt"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("PORT0"), Some("31000"));
    assert_eq!(get("PORT1"), Some("31001"));
    assert_eq!(get("PORT2"), Some("31010"));
    assert_eq!(get("PORT"), Some("31000"));
    assert_eq!(get("PORTS"), Some("31000,31001,31010"));
    assert_eq!(get("GREETING"), Some("hello world"));
    assert_eq!(get("MESOS_TASK_ID"), Some("env"));
    assert_eq!(get("MESOS_FRAMEWORK_ID"), Some(FW));
    assert_eq!(get("MESOS_AGENT_ID"), Some("master-S0"));
    assert_eq!(get("MESOS_SANDBOX"), Some(sandbox.to_str().unwrap()));
    agent.stop().await;
}

#[tokio::test]
async fn process_kill_sends_sigterm_first() {
    let dir = Scratch::new("term");
    let mut agent = process_agent(&dir);
    agent.launch(shell_task("sleeper", "sleep 300"));
    agent.expect(S::TaskStarting).await;
    let running = agent.expect(S::TaskRunning).await;
    let pgid = pgid_of(&running);
    let asked = Instant::now();
    agent.kill("sleeper", Some(Duration::from_secs(60)));
    let killed = agent.expect(S::TaskKilled).await;
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "SIGTERM ended it"
    );
    assert_eq!(
        killed.message.as_deref(),
        Some("Command terminated with signal Terminated")
    );
    assert_eq!(killed.source, Some(Source::Executor as i32));
    wait_for("the group to be gone", || group_members(pgid).is_empty()).await;
    agent.stop().await;
}

#[tokio::test]
async fn process_kill_escalates_to_sigkill_after_the_grace() {
    let dir = Scratch::new("grace");
    let mut agent = process_agent(&dir);
    agent.launch(shell_task(
        "stubborn",
        "trap '' TERM; echo ready > ready; sleep 300",
    ));
    agent.expect(S::TaskStarting).await;
    let running = agent.expect(S::TaskRunning).await;
    let pgid = pgid_of(&running);
    let ready = sandbox_of(&dir, "stubborn").join("ready");
    wait_for("the trap to be set", || ready.exists()).await;

    let grace = Duration::from_secs(1);
    let asked = Instant::now();
    agent.kill("stubborn", Some(grace));
    let killed = agent.expect(S::TaskKilled).await;
    assert!(asked.elapsed() >= grace, "SIGKILL only after the grace");
    assert_eq!(
        killed.message.as_deref(),
        Some("Command terminated with signal Killed")
    );
    wait_for("the group to be gone", || group_members(pgid).is_empty()).await;
    agent.stop().await;
}

#[tokio::test]
async fn process_kill_leaves_no_process_behind() {
    let dir = Scratch::new("tree");
    let mut agent = process_agent(&dir);
    agent.launch(shell_task("tree", "sleep 300 & sleep 300"));
    agent.expect(S::TaskStarting).await;
    let running = agent.expect(S::TaskRunning).await;
    let pgid = pgid_of(&running);
    wait_for("sh and both sleeps", || group_members(pgid).len() >= 3).await;
    agent.kill("tree", None);
    agent.expect(S::TaskKilled).await;
    wait_for("the group to be gone", || group_members(pgid).is_empty()).await;
    agent.stop().await;
}

#[tokio::test]
async fn process_stop_leaves_no_process_behind() {
    let dir = Scratch::new("stop");
    let mut agent = process_agent(&dir);
    agent.launch(shell_task("tree", "sleep 300 & sleep 300"));
    agent.expect(S::TaskStarting).await;
    let running = agent.expect(S::TaskRunning).await;
    let pgid = pgid_of(&running);
    wait_for("sh and both sleeps", || group_members(pgid).len() >= 3).await;
    let mut updates = std::mem::replace(&mut agent.updates, mpsc::unbounded_channel().1);
    agent.stop().await;
    wait_for("the group to be gone", || group_members(pgid).is_empty()).await;
    // A stopped agent sends nothing more.
    assert!(updates.try_recv().is_err());
}

#[tokio::test]
async fn process_exit_takes_the_rest_of_its_group() {
    let dir = Scratch::new("orphans");
    let mut agent = process_agent(&dir);
    agent.launch(shell_task("orphans", "sleep 300 & echo $! > bg.pid"));
    agent.expect(S::TaskStarting).await;
    let running = agent.expect(S::TaskRunning).await;
    agent.expect(S::TaskFinished).await;
    let pgid = pgid_of(&running);
    wait_for("the background sleep to be gone", || {
        group_members(pgid).is_empty()
    })
    .await;
    agent.stop().await;
}

#[tokio::test]
async fn process_shutdown_framework_kills_silently() {
    let dir = Scratch::new("shutdown");
    let mut agent = process_agent(&dir);
    agent.launch(shell_task("tree", "sleep 300 & sleep 300"));
    agent.expect(S::TaskStarting).await;
    let running = agent.expect(S::TaskRunning).await;
    let pgid = pgid_of(&running);
    agent.handle.send(AgentCommand::ShutdownFramework {
        framework_id: FW.to_owned(),
    });
    assert!(agent.list().await.is_empty());
    wait_for("the group to be gone", || group_members(pgid).is_empty()).await;
    assert!(agent.updates.try_recv().is_err(), "nothing sent");
    agent.stop().await;
}

#[tokio::test]
async fn process_kill_during_launch() {
    let dir = Scratch::new("launchkill");
    let mut agent = process_agent(&dir);
    // On this single-threaded runtime the agent handles both commands before the task's runner
    // first runs, so the kill finds the task still launching.
    agent.launch(shell_task("early", "sleep 300"));
    agent.kill("early", None);
    let killed = agent.expect(S::TaskKilled).await;
    assert_eq!(killed.source, Some(Source::Agent as i32));
    assert_eq!(killed.reason, Some(Reason::TaskKilledDuringLaunch as i32));
    assert_eq!(killed.uuid.as_ref().unwrap().len(), 16);
    assert!(agent.list().await.is_empty());
    agent.stop().await;
}

#[tokio::test]
async fn process_docker_and_image_containers_fail_to_launch() {
    use pb::container_info::{DockerInfo, MesosInfo, Type};
    let dir = Scratch::new("docker");
    let mut agent = process_agent(&dir);
    let mut t = shell_task("docker", "true");
    t.container = Some(pb::ContainerInfo {
        r#type: Type::Docker as i32,
        docker: Some(DockerInfo {
            image: "nginx".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    });
    agent.launch(t);
    agent
        .expect_launch_failure(&[
            "Failed to launch container: ",
            "docker containerizer is not enabled",
        ])
        .await;

    let mut t = shell_task("image", "true");
    t.container = Some(pb::ContainerInfo {
        r#type: Type::Mesos as i32,
        mesos: Some(MesosInfo {
            image: Some(pb::Image::default()),
        }),
        ..Default::default()
    });
    agent.launch(t);
    agent.expect_launch_failure(&["image provisioning"]).await;

    // A MESOS container without an image runs on the host.
    let mut t = shell_task("plain", "true");
    t.container = Some(pb::ContainerInfo {
        r#type: Type::Mesos as i32,
        ..Default::default()
    });
    agent.launch(t);
    agent.expect(S::TaskStarting).await;
    agent.expect(S::TaskRunning).await;
    agent.expect(S::TaskFinished).await;
    agent.stop().await;
}

fn uri(value: &str) -> pb::command_info::Uri {
    pb::command_info::Uri {
        value: value.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn process_fetches_local_files_and_archives() {
    let dir = Scratch::new("fetch");
    let source = dir.path().join("source");
    std::fs::create_dir_all(source.join("bundle")).unwrap();
    std::fs::write(source.join("run.sh"), "echo from-script\n").unwrap();
    std::fs::write(source.join("bundle/inner.txt"), "from-archive\n").unwrap();
    let archive = dir.path().join("bundle.tar.gz");
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&source)
        .arg("-czf")
        .arg(&archive)
        .arg("bundle")
        .status()
        .unwrap();
    assert!(tar.success());

    let mut agent = process_agent(&dir);
    let mut t = shell_task(
        "fetch",
        "./run.sh && cat bundle/inner.txt && cat renamed.txt",
    );
    let command = t.command.as_mut().unwrap();
    let mut script = uri(&format!("file://{}", source.join("run.sh").display()));
    script.executable = Some(true);
    let mut copy = uri(source.join("bundle/inner.txt").to_str().unwrap());
    copy.output_file = Some("renamed.txt".to_owned());
    command.uris = vec![script, uri(archive.to_str().unwrap()), copy];
    agent.launch(t);
    agent.expect(S::TaskStarting).await;
    agent.expect(S::TaskRunning).await;
    let end = agent.next().await;
    let sandbox = sandbox_of(&dir, "fetch");
    assert_eq!(
        state_of(&end),
        S::TaskFinished,
        "{:?} stderr: {}",
        end.message,
        read(&sandbox.join("stderr"))
    );
    assert_eq!(
        read(&sandbox.join("stdout")),
        "from-script\nfrom-archive\nfrom-archive\n"
    );
    assert!(
        sandbox.join("bundle.tar.gz").exists(),
        "the archive is kept"
    );
    agent.stop().await;
}

#[tokio::test]
async fn process_fetch_failures_fail_the_launch() {
    let dir = Scratch::new("fetchfail");
    let mut agent = process_agent(&dir);
    let mut t = shell_task("remote", "true");
    t.command.as_mut().unwrap().uris = vec![uri("https://example.invalid/app.tgz")];
    agent.launch(t);
    agent
        .expect_launch_failure(&[
            "Failed to fetch all URIs for container",
            "scheme 'https' is not supported",
        ])
        .await;

    let mut t = shell_task("missing", "true");
    let missing = dir.path().join("nope.txt");
    t.command.as_mut().unwrap().uris = vec![uri(missing.to_str().unwrap())];
    agent.launch(t);
    agent.expect_launch_failure(&["nope.txt"]).await;
    agent.stop().await;
}

fn fast_check(kind: pb::health_check::Type, failures: u32) -> pb::HealthCheck {
    pb::HealthCheck {
        r#type: Some(kind as i32),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.1),
        timeout_seconds: Some(10.0),
        consecutive_failures: Some(failures),
        grace_period_seconds: Some(0.0),
        ..Default::default()
    }
}

/// Launches `sleep 300` with a health check and returns its first health update.
async fn first_health(agent: &mut TestAgent, id: &str, check: pb::HealthCheck) -> pb::TaskStatus {
    let mut t = shell_task(id, "sleep 300");
    t.health_check = Some(check);
    agent.launch(t);
    agent.expect(S::TaskStarting).await;
    let running = agent.expect(S::TaskRunning).await;
    assert_eq!(running.healthy, None);
    let health = agent.expect(S::TaskRunning).await;
    assert_eq!(
        health.reason,
        Some(Reason::TaskHealthCheckStatusUpdated as i32)
    );
    health
}

#[tokio::test]
async fn process_command_health_checks() {
    use pb::health_check::Type;
    let dir = Scratch::new("hc-command");
    let mut agent = process_agent(&dir);

    let mut check = fast_check(Type::Command, 3);
    check.command = Some(pb::CommandInfo {
        // Runs in the sandbox, with the task's environment.
        value: Some("test \"$MESOS_TASK_ID\" = good && test -d \"$MESOS_SANDBOX\"".to_owned()),
        ..Default::default()
    });
    let health = first_health(&mut agent, "good", check).await;
    assert_eq!(health.healthy, Some(true));
    agent.kill("good", None);
    let killed = agent.expect(S::TaskKilled).await;
    assert_eq!(
        killed.healthy, None,
        "killed by the framework, not by its check"
    );

    let mut check = fast_check(Type::Command, 2);
    check.command = Some(pb::CommandInfo {
        value: Some("false".to_owned()),
        ..Default::default()
    });
    let health = first_health(&mut agent, "bad", check).await;
    assert_eq!(health.healthy, Some(false));
    let killed = agent.expect(S::TaskKilled).await;
    assert_eq!(killed.healthy, Some(false));
    let message = killed.message.unwrap();
    assert!(
        message.contains("health check failed 2 consecutive times"),
        "{message}"
    );
    agent.stop().await;
}

/// A tiny HTTP server on 127.0.0.1:0: 200 for `/ok`, 503 for anything else.
async fn http_server() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let ok = request.starts_with(b"GET /ok HTTP/1.1\r\n");
                let response: &[u8] = if ok {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                } else {
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                let _ = socket.write_all(response).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn process_http_health_checks() {
    use pb::health_check::{HttpCheckInfo, Type};
    let dir = Scratch::new("hc-http");
    let port = u32::from(http_server().await);
    let mut agent = process_agent(&dir);

    let mut check = fast_check(Type::Http, 3);
    check.http = Some(HttpCheckInfo {
        port,
        path: Some("/ok".to_owned()),
        ..Default::default()
    });
    assert_eq!(
        first_health(&mut agent, "up", check).await.healthy,
        Some(true)
    );
    agent.kill("up", None);
    agent.expect(S::TaskKilled).await;

    let mut check = fast_check(Type::Http, 1);
    check.http = Some(HttpCheckInfo {
        port,
        path: Some("/broken".to_owned()),
        ..Default::default()
    });
    let health = first_health(&mut agent, "down", check).await;
    assert_eq!(health.healthy, Some(false));
    assert!(health.message.unwrap().contains("503"));
    let killed = agent.expect(S::TaskKilled).await;
    assert_eq!(killed.healthy, Some(false));
    agent.stop().await;
}

#[tokio::test]
async fn process_tcp_health_checks() {
    use pb::health_check::{TcpCheckInfo, Type};
    let dir = Scratch::new("hc-tcp");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = u32::from(listener.local_addr().unwrap().port());
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        u32::from(l.local_addr().unwrap().port())
    };
    let mut agent = process_agent(&dir);

    let mut check = fast_check(Type::Tcp, 3);
    check.tcp = Some(TcpCheckInfo {
        port: open,
        protocol: None,
    });
    assert_eq!(
        first_health(&mut agent, "open", check).await.healthy,
        Some(true)
    );
    agent.kill("open", None);
    agent.expect(S::TaskKilled).await;

    let mut check = fast_check(Type::Tcp, 1);
    check.tcp = Some(TcpCheckInfo {
        port: closed,
        protocol: None,
    });
    assert_eq!(
        first_health(&mut agent, "closed", check).await.healthy,
        Some(false)
    );
    let killed = agent.expect(S::TaskKilled).await;
    assert_eq!(killed.healthy, Some(false));
    drop(listener);
    agent.stop().await;
}
