//! The agent's actor: one tokio task per agent that owns its task table, the per-task update
//! queues and every timer, and reacts to one closed set of triggers (master commands, events from
//! process runners, due timers).
//!
//! Virtual tasks live entirely in the table (a scripted one costs a timer entry, no tokio task);
//! each process task has a runner task (`process.rs`) that reports its updates here, so that
//! ordering, retries and acknowledgements are handled in one place (`updates.rs`).
//!
//! Invariants: an update is produced once and enters its task's queue in production order; nothing
//! is sent after `Stop` (a stopped agent is gone, and the master speaks for its tasks); a task is
//! forgotten only when its terminal update is acknowledged, or with its framework.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::process::{self, Control, ProcessLaunch, RunnerEvent, RunnerEventKind};
use super::updates::{Acked, RetryPolicy, StatusFactory, UpdateQueue, is_terminal};
use super::virtual_task::{self, Outcome, Script};
use bytes::Bytes;
use prost::Message;

use super::{AgentCommand, AgentConfig, AgentKind, AgentUpdate, SandboxReport, TaskReport};

/// How many ended tasks' sandboxes an agent lists (upstream's agent keeps 150 completed
/// executors per framework; one bound per agent is enough here).
const COMPLETED_SANDBOXES: usize = 1000;
use crate::mesos::proto::v1 as pb;
use pb::task_status::{Reason, Source};

/// Runs an agent until `Stop` or until every handle on it is dropped.
pub(crate) async fn run(
    config: AgentConfig,
    mut commands: mpsc::UnboundedReceiver<AgentCommand>,
    updates: mpsc::UnboundedSender<AgentUpdate>,
) {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut agent = Agent {
        out: Outbox {
            agent_id: config.id.clone(),
            updates,
            policy: RetryPolicy {
                initial: config.status_retry_initial,
                max: config.status_retry_max.max(config.status_retry_initial),
            },
        },
        factory: StatusFactory::new(&config.id, &config.ip),
        config,
        frameworks: HashMap::new(),
        timers: Timers::default(),
        runners: JoinSet::new(),
        runner_keys: HashMap::new(),
        events_tx,
        next_runner: 0,
        completed: VecDeque::new(),
    };
    info!(agent_id = %agent.config.id, "agent started");

    let sleep = tokio::time::sleep_until(far_future());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        let next = agent.timers.next_deadline();
        if next != armed {
            sleep.as_mut().reset(next.unwrap_or_else(far_future));
            armed = next;
        }
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(AgentCommand::Stop { done }) => {
                    agent.stop().await;
                    let _ = done.send(());
                    return;
                }
                Some(command) => agent.on_command(command),
                None => {
                    debug!(agent_id = %agent.config.id, "every handle dropped: stopping");
                    agent.stop().await;
                    return;
                }
            },
            Some(event) = events.recv() => agent.on_runner_event(event),
            Some(joined) = agent.runners.join_next(), if !agent.runners.is_empty() => {
                if let Err(error) = joined {
                    // The runner's emitter already reported it gone (see `Emitter`'s Drop).
                    warn!(agent_id = %agent.config.id, %error, "task runner failed");
                }
            }
            () = &mut sleep, if armed.is_some() => {
                armed = None;
                agent.fire_due_timers();
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

struct Agent {
    config: AgentConfig,
    factory: StatusFactory,
    out: Outbox,
    /// framework id -> task id -> entry.
    frameworks: HashMap<String, HashMap<String, TaskEntry>>,
    timers: Timers,
    runners: JoinSet<()>,
    /// runner id -> the task it runs; absent once its task was forgotten.
    runner_keys: HashMap<u64, (String, String)>,
    events_tx: mpsc::UnboundedSender<RunnerEvent>,
    next_runner: u64,
    /// The sandboxes of the last tasks forgotten, oldest first.
    completed: VecDeque<SandboxReport>,
}

/// What the agent keeps of a task. The TaskInfo and the latest status are only read back by
/// `ListTasks`, so they are kept protobuf-encoded: a decoded TaskInfo takes about 3 KB, its
/// encoding a few hundred bytes, which is what lets 10,000 virtual tasks fit in a few megabytes.
struct TaskEntry {
    task: Bytes,
    /// The state of the latest update produced (acknowledged or not); None before the first one.
    latest_state: Option<i32>,
    /// That update, encoded (empty before the first one).
    latest: Bytes,
    queue: UpdateQueue,
    retry_timer: Option<TimerKey>,
    /// When a scripted virtual task ends by itself.
    end_timer: Option<TimerKey>,
    /// The runner of a process task, until it exits.
    runner: Option<RunnerHandle>,
    /// The sandbox of a process task.
    sandbox: Option<PathBuf>,
}

impl TaskEntry {
    fn is_terminal(&self) -> bool {
        self.latest_state.is_some_and(is_terminal)
    }
}

struct RunnerHandle {
    id: u64,
    control: mpsc::UnboundedSender<Control>,
}

/// Where updates go, and how they are retried.
struct Outbox {
    agent_id: String,
    updates: mpsc::UnboundedSender<AgentUpdate>,
    policy: RetryPolicy,
}

impl Agent {
    fn on_command(&mut self, command: AgentCommand) {
        match command {
            AgentCommand::Launch {
                framework_id,
                framework_user,
                task,
            } => {
                let encoded = Bytes::from(task.encode_to_vec());
                self.launch(framework_id, framework_user, task, encoded);
            }
            AgentCommand::LaunchEncoded {
                framework_id,
                framework_user,
                task,
            } => match pb::TaskInfo::decode(&task[..]) {
                Ok(decoded) => self.launch(framework_id, framework_user, Box::new(decoded), task),
                // The master encoded it from a valid message, so this cannot happen.
                Err(error) => {
                    warn!(agent_id = %self.config.id, %error, "undecodable launch dropped")
                }
            },
            AgentCommand::Kill {
                framework_id,
                task_id,
                grace,
            } => self.kill(&framework_id, &task_id, grace),
            AgentCommand::Acknowledge {
                framework_id,
                task_id,
                uuid,
            } => self.acknowledge(&framework_id, &task_id, &uuid),
            AgentCommand::ResendUnacknowledged { framework_id } => self.resend(&framework_id),
            AgentCommand::ShutdownFramework { framework_id } => {
                self.shutdown_framework(&framework_id);
            }
            AgentCommand::ListTasks { reply } => {
                let _ = reply.send(self.list_tasks());
            }
            AgentCommand::Sandboxes { reply } => {
                let _ = reply.send(self.sandboxes());
            }
            AgentCommand::Stop { .. } => unreachable!("Stop is handled by the loop"),
        }
    }

    /// Launches `task`, keeping `encoded` (its encoding) for `ListTasks`.
    fn launch(
        &mut self,
        framework_id: String,
        framework_user: String,
        task: Box<pb::TaskInfo>,
        encoded: Bytes,
    ) {
        let task_id = task.task_id.value.clone();
        let tasks = self.frameworks.entry(framework_id.clone()).or_default();
        if tasks.contains_key(&task_id) {
            warn!(
                agent_id = %self.config.id, framework_id, task_id,
                "ignoring the launch of a task this agent already runs"
            );
            return;
        }
        debug!(agent_id = %self.config.id, framework_id, task_id, "launching task");
        let mut entry = TaskEntry {
            task: encoded,
            latest_state: None,
            latest: Bytes::new(),
            queue: UpdateQueue::new(self.out.policy),
            retry_timer: None,
            end_timer: None,
            runner: None,
            sandbox: None,
        };
        match &self.config.kind {
            AgentKind::Virtual => {
                launch_virtual(
                    &framework_id,
                    &task,
                    &mut entry,
                    &self.factory,
                    &self.out,
                    &mut self.timers,
                );
            }
            AgentKind::Process { work_dir } => {
                let id = self.next_runner;
                self.next_runner += 1;
                let (control, control_rx) = mpsc::unbounded_channel();
                let container_id = uuid::Uuid::new_v4().to_string();
                entry.sandbox = Some(process::sandbox_dir(
                    work_dir,
                    &framework_id,
                    &task_id,
                    &container_id,
                ));
                let launch = ProcessLaunch {
                    framework_id: framework_id.clone(),
                    framework_user,
                    task,
                    work_dir: work_dir.clone(),
                    agent_id: self.config.id.clone(),
                    factory: self.factory.clone(),
                    container_id,
                };
                let emitter = process::Emitter::new(id, self.events_tx.clone());
                self.runners
                    .spawn(process::run(launch, control_rx, emitter));
                self.runner_keys
                    .insert(id, (framework_id.clone(), task_id.clone()));
                entry.runner = Some(RunnerHandle { id, control });
            }
        }
        tasks.insert(task_id, entry);
    }

    fn kill(&mut self, framework_id: &str, task_id: &str, grace: Option<Duration>) {
        let Some(entry) = self
            .frameworks
            .get_mut(framework_id)
            .and_then(|tasks| tasks.get_mut(task_id))
        else {
            debug!(agent_id = %self.config.id, framework_id, task_id, "kill of an unknown task ignored");
            return;
        };
        if entry.is_terminal() {
            debug!(agent_id = %self.config.id, framework_id, task_id, "kill of a terminated task ignored");
            return;
        }
        if let Some(runner) = &entry.runner {
            let _ = runner.control.send(Control::Kill { grace });
            return;
        }
        if matches!(self.config.kind, AgentKind::Virtual) {
            // A virtual task has no process to outlive SIGTERM, so the grace period never runs.
            if let Some(key) = entry.end_timer.take() {
                self.timers.cancel(key);
            }
            let status = self.factory.status(
                task_id,
                pb::TaskState::TaskKilled,
                Source::Executor,
                None,
                Some("Command terminated with signal Terminated".to_owned()),
            );
            push_update(framework_id, entry, status, &self.out, &mut self.timers);
        }
    }

    fn acknowledge(&mut self, framework_id: &str, task_id: &str, uuid: &[u8]) {
        let Some(tasks) = self.frameworks.get_mut(framework_id) else {
            debug!(agent_id = %self.config.id, framework_id, task_id, "ack for an unknown framework ignored");
            return;
        };
        let Some(entry) = tasks.get_mut(task_id) else {
            debug!(agent_id = %self.config.id, framework_id, task_id, "ack for an unknown task ignored");
            return;
        };
        match entry.queue.acknowledge(uuid, self.out.policy) {
            Acked::Ignored => {
                debug!(agent_id = %self.config.id, framework_id, task_id, "ack of a uuid that is not the pending update ignored");
            }
            Acked::Next => {
                if let Some(key) = entry.retry_timer.take() {
                    self.timers.cancel(key);
                }
                send_head(framework_id, task_id, entry, &self.out, &mut self.timers);
            }
            Acked::Drained { terminal } => {
                if let Some(key) = entry.retry_timer.take() {
                    self.timers.cancel(key);
                }
                if terminal {
                    debug!(agent_id = %self.config.id, framework_id, task_id, "terminal update acknowledged: forgetting the task");
                    let removed = tasks.remove(task_id);
                    if tasks.is_empty() {
                        self.frameworks.remove(framework_id);
                    }
                    if let Some(entry) = removed {
                        self.remember_sandbox(framework_id, task_id, &entry);
                        self.forget(entry);
                    }
                }
            }
        }
    }

    fn resend(&mut self, framework_id: &str) {
        let Some(tasks) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        for (task_id, entry) in tasks.iter_mut() {
            if entry.queue.is_empty() {
                continue;
            }
            if let Some(key) = entry.retry_timer.take() {
                self.timers.cancel(key);
            }
            entry.queue.reset_backoff(self.out.policy);
            send_head(framework_id, task_id, entry, &self.out, &mut self.timers);
        }
    }

    fn shutdown_framework(&mut self, framework_id: &str) {
        let Some(tasks) = self.frameworks.remove(framework_id) else {
            return;
        };
        info!(agent_id = %self.config.id, framework_id, tasks = tasks.len(), "shutting down framework");
        for (task_id, entry) in tasks {
            if let Some(runner) = &entry.runner {
                // The runner goes on killing its process; its updates have nowhere to go.
                let _ = runner.control.send(Control::Kill { grace: None });
            }
            self.remember_sandbox(framework_id, &task_id, &entry);
            self.forget(entry);
        }
    }

    fn list_tasks(&self) -> Vec<TaskReport> {
        let mut reports = Vec::new();
        for (framework_id, tasks) in &self.frameworks {
            for (task_id, entry) in tasks {
                // Both were encoded by this agent from valid messages, so decoding cannot fail.
                let (Ok(task), Ok(latest)) = (
                    pb::TaskInfo::decode(&entry.task[..]),
                    pb::TaskStatus::decode(&entry.latest[..]),
                ) else {
                    warn!(agent_id = %self.config.id, framework_id, task_id, "could not decode a kept task");
                    continue;
                };
                let latest = match entry.latest_state {
                    Some(_) => latest,
                    None => staging(&task),
                };
                reports.push(TaskReport {
                    framework_id: framework_id.clone(),
                    task,
                    latest,
                });
            }
        }
        reports
    }

    /// The sandboxes of the tasks running and of the last ones forgotten.
    fn sandboxes(&self) -> Vec<SandboxReport> {
        let mut reports: Vec<SandboxReport> = self
            .frameworks
            .iter()
            .flat_map(|(framework_id, tasks)| {
                tasks.iter().map(move |(task_id, entry)| SandboxReport {
                    framework_id: framework_id.clone(),
                    task_id: task_id.clone(),
                    directory: entry.sandbox.clone(),
                    state: entry.latest_state,
                    completed: false,
                })
            })
            .collect();
        reports.extend(self.completed.iter().cloned());
        reports
    }

    /// Keeps the sandbox of a task being forgotten, for `/state` and `/files` (its directory
    /// stays on disk, as upstream's does until garbage collection).
    fn remember_sandbox(&mut self, framework_id: &str, task_id: &str, entry: &TaskEntry) {
        if entry.sandbox.is_none() {
            return;
        }
        if self.completed.len() == COMPLETED_SANDBOXES {
            self.completed.pop_front();
        }
        self.completed.push_back(SandboxReport {
            framework_id: framework_id.to_owned(),
            task_id: task_id.to_owned(),
            directory: entry.sandbox.clone(),
            state: entry.latest_state,
            completed: true,
        });
    }

    /// Drops a task's timers and detaches its runner (dropping its control channel makes a
    /// runner that is still working kill its process).
    fn forget(&mut self, entry: TaskEntry) {
        for key in [entry.retry_timer, entry.end_timer].into_iter().flatten() {
            self.timers.cancel(key);
        }
        if let Some(runner) = entry.runner {
            self.runner_keys.remove(&runner.id);
        }
    }

    fn on_runner_event(&mut self, event: RunnerEvent) {
        let Some((framework_id, task_id)) = self.runner_keys.get(&event.runner).cloned() else {
            return;
        };
        let Some(entry) = self
            .frameworks
            .get_mut(&framework_id)
            .and_then(|tasks| tasks.get_mut(&task_id))
        else {
            return;
        };
        match event.kind {
            RunnerEventKind::Update(status) => {
                push_update(&framework_id, entry, *status, &self.out, &mut self.timers);
            }
            RunnerEventKind::Exited => self.runner_gone(event.runner),
        }
    }

    /// A runner ended. If its task has no terminal update (the runner failed), the agent reports
    /// the executor's death as a real agent does.
    fn runner_gone(&mut self, runner: u64) {
        let Some((framework_id, task_id)) = self.runner_keys.remove(&runner) else {
            return;
        };
        let Some(entry) = self
            .frameworks
            .get_mut(&framework_id)
            .and_then(|tasks| tasks.get_mut(&task_id))
        else {
            return;
        };
        entry.runner = None;
        if !entry.is_terminal() {
            let message = "Executor terminated";
            let status = self.factory.status(
                &task_id,
                pb::TaskState::TaskFailed,
                Source::Agent,
                Some(Reason::ExecutorTerminated),
                Some(message.to_owned()),
            );
            push_update(&framework_id, entry, status, &self.out, &mut self.timers);
        }
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        while let Some((key, timer)) = self.timers.pop_due(now) {
            let Some(entry) = self
                .frameworks
                .get_mut(&timer.framework_id)
                .and_then(|tasks| tasks.get_mut(&timer.task_id))
            else {
                continue;
            };
            match timer.kind {
                TimerKind::Retry => {
                    if entry.retry_timer == Some(key) {
                        entry.retry_timer = None;
                        debug!(agent_id = %self.config.id, task_id = %timer.task_id, "re-sending unacknowledged update");
                        send_head(
                            &timer.framework_id,
                            &timer.task_id,
                            entry,
                            &self.out,
                            &mut self.timers,
                        );
                    }
                }
                TimerKind::End(outcome) => {
                    if entry.end_timer == Some(key) {
                        entry.end_timer = None;
                        if !entry.is_terminal() {
                            let status = virtual_task::outcome_status(
                                &self.factory,
                                &timer.task_id,
                                outcome,
                            );
                            push_update(
                                &timer.framework_id,
                                entry,
                                status,
                                &self.out,
                                &mut self.timers,
                            );
                        }
                    }
                }
            }
        }
    }

    /// Kills every task (runners whose control channel closes kill their process with its grace)
    /// and waits for every runner to finish. Nothing is sent any more.
    async fn stop(&mut self) {
        info!(agent_id = %self.config.id, "agent stopping");
        let frameworks = std::mem::take(&mut self.frameworks);
        for (_, tasks) in frameworks {
            for (_, entry) in tasks {
                self.forget(entry);
            }
        }
        self.timers = Timers::default();
        while self.runners.join_next().await.is_some() {}
        info!(agent_id = %self.config.id, "agent stopped");
    }
}

fn launch_virtual(
    framework_id: &str,
    task: &pb::TaskInfo,
    entry: &mut TaskEntry,
    factory: &StatusFactory,
    out: &Outbox,
    timers: &mut Timers,
) {
    let task_id = task.task_id.value.clone();
    let script = match virtual_task::script_of(task) {
        Ok(script) => script,
        Err(error) => {
            let status = factory.status(
                &task_id,
                pb::TaskState::TaskFailed,
                Source::Agent,
                Some(Reason::ContainerLaunchFailed),
                Some(format!("Failed to launch container: {error}")),
            );
            push_update(framework_id, entry, status, out, timers);
            return;
        }
    };
    let container_id = uuid::Uuid::new_v4().to_string();
    let starting = factory.status(
        &task_id,
        pb::TaskState::TaskStarting,
        Source::Executor,
        None,
        None,
    );
    push_update(framework_id, entry, starting, out, timers);
    let running = factory.running(&task_id, &container_id, None);
    push_update(framework_id, entry, running, out, timers);
    if task.health_check.is_some() {
        // No probing: a virtual task is healthy by construction.
        let healthy = factory.health(&task_id, &container_id, None, true, None);
        push_update(framework_id, entry, healthy, out, timers);
    }
    if let Script::EndAfter { after, outcome } = script {
        let key = timers.schedule(
            Instant::now() + after,
            Timer {
                framework_id: framework_id.to_owned(),
                task_id,
                kind: TimerKind::End(outcome),
            },
        );
        entry.end_timer = Some(key);
    }
}

/// Records a new update of a task and sends it if nothing older is pending.
fn push_update(
    framework_id: &str,
    entry: &mut TaskEntry,
    status: pb::TaskStatus,
    out: &Outbox,
    timers: &mut Timers,
) {
    info!(
        agent_id = %out.agent_id,
        framework_id,
        task_id = %status.task_id.value,
        state = state_name(status.state),
        healthy = ?status.healthy,
        "task update"
    );
    entry.latest_state = Some(status.state);
    let encoded = Bytes::from(status.encode_to_vec());
    entry.latest = encoded.clone();
    if entry.queue.push(&status, encoded, out.policy) {
        send_head(framework_id, &status.task_id.value, entry, out, timers);
    }
}

/// Sends the oldest pending update of a task and schedules its re-send.
fn send_head(
    framework_id: &str,
    task_id: &str,
    entry: &mut TaskEntry,
    out: &Outbox,
    timers: &mut Timers,
) {
    let (Some(encoded), Some(state)) = (entry.queue.head_encoded(), entry.queue.head_state())
    else {
        return;
    };
    debug!(
        agent_id = %out.agent_id,
        framework_id,
        task_id,
        state = state_name(state),
        "sending update"
    );
    let _ = out.updates.send(AgentUpdate {
        agent_id: out.agent_id.clone(),
        framework_id: framework_id.to_owned(),
        encoded: encoded.clone(),
        latest_state: entry.latest_state,
    });
    let timer = Timer {
        framework_id: framework_id.to_owned(),
        task_id: task_id.to_owned(),
        kind: TimerKind::Retry,
    };
    if let Some(key) = entry.retry_timer.take() {
        timers.cancel(key);
    }
    let delay = entry.queue.next_retry_delay(out.policy);
    entry.retry_timer = Some(timers.schedule(Instant::now() + delay, timer));
}

/// What a task the agent has not started yet reports (as a Mesos agent reports a queued task).
fn staging(task: &pb::TaskInfo) -> pb::TaskStatus {
    pb::TaskStatus {
        task_id: task.task_id.clone(),
        state: pb::TaskState::TaskStaging as i32,
        source: Some(Source::Agent as i32),
        agent_id: Some(task.agent_id.clone()),
        executor_id: Some(pb::ExecutorId {
            value: task.task_id.value.clone(),
        }),
        ..Default::default()
    }
}

pub(crate) fn state_name(state: i32) -> &'static str {
    pb::TaskState::try_from(state).map_or("UNKNOWN_STATE", |s| s.as_str_name())
}

/// A timer's identity: its deadline and a sequence number that makes it unique.
type TimerKey = (Instant, u64);

#[derive(Debug)]
struct Timer {
    framework_id: String,
    task_id: String,
    kind: TimerKind,
}

#[derive(Debug, Clone, Copy)]
enum TimerKind {
    /// Re-send the head of the task's update queue.
    Retry,
    /// A scripted virtual task ends.
    End(Outcome),
}

/// Every timer of an agent, in deadline order: one sleep serves them all, so a timer costs a map
/// entry rather than a tokio task.
#[derive(Debug, Default)]
struct Timers {
    map: BTreeMap<TimerKey, Timer>,
    seq: u64,
}

impl Timers {
    fn schedule(&mut self, at: Instant, timer: Timer) -> TimerKey {
        self.seq += 1;
        let key = (at, self.seq);
        self.map.insert(key, timer);
        key
    }

    fn cancel(&mut self, key: TimerKey) {
        self.map.remove(&key);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.map.first_key_value().map(|((at, _), _)| *at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<(TimerKey, Timer)> {
        let (key, _) = self.map.first_key_value()?;
        if key.0 > now {
            return None;
        }
        self.map.pop_first()
    }
}
