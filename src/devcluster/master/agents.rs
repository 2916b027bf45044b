//! Agents as the master sees them: registration, status updates coming from them (forwarded only
//! to connected frameworks, since the agent retries), the fault API (kill, partition, heal,
//! master restart, delayed or duplicated updates, rescinds) and re-registration with running
//! tasks after a partition heals or the master restarts.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use std::time::Duration;

use tokio::sync::oneshot;

use super::resources::Resources;
use super::state::{
    Agent, AgentState, Conn, Executor, Fault, Framework, LeaderChange, Master, Settings, Task,
    TaskKey, Timer, is_terminal, master_info, master_status, now_secs, state_name, time_info,
};
use super::tasks::NewTask;
use super::{AgentSpec, AgentSpecKind, FaultError, FaultReply, streams};
use crate::devcluster::agent::{
    self, AgentCommand, AgentConfig, AgentKind, AgentUpdate, TaskReport,
};
use crate::mesos::proto::v1 as pb;
use pb::task_status::Reason;

/// How the master lost an agent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Loss {
    Unreachable,
    Gone,
}

type FaultReplyTx = oneshot::Sender<Result<FaultReply, FaultError>>;

impl Master {
    /// Spawns an agent and registers it; returns its id.
    pub(super) fn add_agent(&mut self, spec: AgentSpec) -> String {
        let id = format!("{}-S{}", self.master_id, self.next_agent);
        self.next_agent += 1;
        let pid = self.next_agent_pid;
        self.next_agent_pid += 1;
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| self.settings.hostname.clone());
        let kind = match spec.kind {
            AgentSpecKind::Process => AgentKind::Process {
                work_dir: self.settings.work_dir.join("agents").join(&id),
            },
            AgentSpecKind::Virtual => AgentKind::Virtual,
        };
        let config = AgentConfig {
            id: id.clone(),
            hostname: hostname.clone(),
            ip: "127.0.0.1".to_owned(),
            kind,
            status_retry_initial: self.settings.status_retry_initial,
            status_retry_max: self.settings.status_retry_max,
        };
        let handle = agent::spawn(config, self.updates_tx.clone());
        let total = Resources::from_pb(&spec.resources).unwrap_or_default();
        tracing::info!(agent_id = %id, resources = %total, "agent registered");
        self.agents.insert(
            id.clone(),
            Agent {
                id: id.clone(),
                shared_id: Arc::from(id.as_str()),
                hostname,
                spec,
                total,
                used: Resources::default(),
                offered: Resources::default(),
                state: AgentState::Registered,
                handle: Some(handle),
                tasks: HashSet::new(),
                registered_time: now_secs(),
                pid,
            },
        );
        self.metrics.slave_registrations += 1;
        // Upstream `addSlave` allocates the new agent's resources at once.
        self.request_allocation_on(&id);
        id
    }

    pub(super) fn on_agent_update(&mut self, update: AgentUpdate) {
        if self.delay_updates.is_zero() {
            self.process_agent_update(update);
        } else {
            self.schedule(self.delay_updates, Timer::DelayedUpdate(Box::new(update)));
        }
    }

    /// An update from an agent: forwarded to the framework if it is connected (dropped
    /// otherwise: the agent re-sends it), and recorded on the task.
    pub(super) fn process_agent_update(&mut self, update: AgentUpdate) {
        let AgentUpdate {
            agent_id,
            framework_id,
            encoded,
            latest_state,
        } = update;
        let Ok(status) = pb::TaskStatus::decode(&encoded[..]) else {
            // Agents encode valid messages: this cannot happen.
            tracing::warn!(agent_id, framework_id, "undecodable agent update dropped");
            return;
        };
        let task_id = status.task_id.value.clone();
        self.metrics.messages_status_update += 1;
        if !self.agents.get(&agent_id).is_some_and(Agent::is_registered) {
            tracing::debug!(
                agent_id,
                task_id,
                "update from an unregistered agent dropped"
            );
            self.metrics.invalid_status_updates += 1;
            return;
        }
        let key = (framework_id.clone(), task_id.clone());
        if self
            .tasks
            .get(&key)
            .is_none_or(|t| *t.agent_id != *agent_id)
        {
            tracing::debug!(
                agent_id,
                framework_id,
                task_id,
                "update for an unknown task dropped"
            );
            self.metrics.invalid_status_updates += 1;
            return;
        }
        let connected = self
            .frameworks
            .get(&framework_id)
            .is_some_and(|f| f.stream().is_some());
        // Upstream counts an update for a disconnected framework as invalid.
        if connected {
            self.metrics.valid_status_updates += 1;
        } else {
            self.metrics.invalid_status_updates += 1;
        }
        // As upstream's `Master::updateTask`: the task takes the agent's latest state, which is
        // ahead of the forwarded status while older updates wait for their acknowledgement.
        let state = latest_state.unwrap_or(status.state);
        let was = self
            .tasks
            .set_state(&key, state, &mut self.metrics.tasks_ended);
        let was_terminal = was.is_some_and(is_terminal);
        if let Some(task) = self.tasks.get_mut(&key) {
            task.status_update_state = Some(status.state);
            task.status_update_uuid = status.uuid.as_deref().map(Box::from);
            // The record shares the agent's bytes of the update rather than copying it.
            task.push_status(&status, Some(&encoded));
            task.set_latest(encoded);
        }
        if connected {
            let event = streams::update(status);
            self.send_event(&framework_id, &event);
            if self.duplicate_updates {
                self.send_event(&framework_id, &event);
            }
        } else {
            tracing::debug!(
                framework_id,
                task_id,
                "framework not connected: update dropped"
            );
        }
        if is_terminal(state) {
            tracing::info!(
                framework_id,
                task_id,
                state = state_name(state),
                "task reached a terminal state"
            );
            if !was_terminal {
                self.release_task(&key);
            }
        } else {
            tracing::debug!(
                framework_id,
                task_id,
                state = state_name(state),
                "task update"
            );
        }
    }

    /// Returns a task's resources (and its executor's, with the executor's last task) to its
    /// agent. Called once, when the task turns terminal.
    pub(super) fn release_task(&mut self, key: &TaskKey) {
        let Some(task) = self.tasks.get(key) else {
            return;
        };
        let mut freed = task.resources.clone();
        if let Some(executor_id) = &task.extras().executor_id
            && let Some(framework) = self.frameworks.get_mut(&key.0)
        {
            let executor_key = (task.agent_id.to_string(), executor_id.clone());
            if let Some(executor) = framework.executors.get_mut(&executor_key) {
                executor.live_tasks = executor.live_tasks.saturating_sub(1);
                if executor.live_tasks == 0 {
                    freed.add(&executor.resources);
                    framework.executors.remove(&executor_key);
                }
            }
        }
        if let Some(agent) = self.agents.get_mut(&*task.agent_id) {
            agent.used.subtract(&freed);
        }
    }

    pub(super) fn fault(&mut self, fault: Fault, reply: FaultReplyTx) {
        tracing::info!(?fault, "fault injected");
        let result = match fault {
            Fault::KillAgent(id) => self.kill_agent(&id),
            Fault::PartitionAgent(id) => self.registered(&id).map(|()| {
                self.lose_agent(&id, Loss::Unreachable);
                FaultReply::Done
            }),
            Fault::HealAgent(id) => return self.heal_agent(&id, reply),
            Fault::RestartMaster => {
                self.restart();
                Ok(FaultReply::Done)
            }
            Fault::DropFrameworkStream(id) => {
                if self
                    .frameworks
                    .get(&id)
                    .is_some_and(|f| f.stream().is_some())
                {
                    // Dropping the stream (inside `disconnect`) ends the HTTP response.
                    self.disconnect(&id);
                    Ok(FaultReply::Done)
                } else {
                    Err(FaultError::FrameworkNotConnected(id))
                }
            }
            Fault::DelayStatusUpdates(delay) => {
                self.delay_updates = delay;
                Ok(FaultReply::Done)
            }
            Fault::DuplicateStatusUpdates(on) => {
                self.duplicate_updates = on;
                Ok(FaultReply::Done)
            }
            Fault::RescindOffers => {
                let ids: Vec<String> = self.offers.keys().cloned().collect();
                for id in ids {
                    self.rescind_offer(&id);
                }
                Ok(FaultReply::Done)
            }
            Fault::AddAgent(spec) => match Resources::from_pb(&spec.resources) {
                Ok(_) => Ok(FaultReply::Agent(self.add_agent(spec))),
                Err(e) => Err(FaultError::InvalidAgent(e.to_string())),
            },
        };
        let _ = reply.send(result);
    }

    fn registered(&self, agent_id: &str) -> Result<(), FaultError> {
        match self.agents.get(agent_id) {
            None => Err(FaultError::UnknownAgent(agent_id.to_owned())),
            Some(a) if a.is_registered() => Ok(()),
            Some(_) => Err(FaultError::AgentNotRegistered(agent_id.to_owned())),
        }
    }

    fn kill_agent(&mut self, agent_id: &str) -> Result<FaultReply, FaultError> {
        let agent = self
            .agents
            .get_mut(agent_id)
            .ok_or_else(|| FaultError::UnknownAgent(agent_id.to_owned()))?;
        if let Some(handle) = agent.handle.take() {
            let (done, _wait) = oneshot::channel();
            handle.send(AgentCommand::Stop { done });
        }
        if agent.state != AgentState::Gone {
            self.lose_agent(agent_id, Loss::Gone);
        }
        Ok(FaultReply::Done)
    }

    /// The master stops seeing an agent: its offers are rescinded, frameworks get FAILURE, and
    /// every live task gets a master-generated update as upstream's agent removal sends it:
    /// unreachable -> TASK_UNREACHABLE (PARTITION_AWARE) or TASK_LOST, with `unreachable_time`;
    /// gone -> TASK_GONE_BY_OPERATOR (PARTITION_AWARE) or TASK_LOST.
    fn lose_agent(&mut self, agent_id: &str, loss: Loss) {
        self.rescind_agent_offers(agent_id);
        let now = now_secs();
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        agent.state = match loss {
            Loss::Unreachable => AgentState::Unreachable { since: now },
            Loss::Gone => AgentState::Gone,
        };
        agent.used = Resources::default();
        agent.offered = Resources::default();
        let keys: Vec<TaskKey> = agent.tasks.drain().collect();
        let hostname = agent.hostname.clone();
        tracing::info!(agent_id, ?loss, tasks = keys.len(), "agent lost");
        for key in keys {
            let Some(framework) = self.frameworks.get_mut(&key.0) else {
                self.tasks.remove(&key);
                continue;
            };
            let Some(current) = self.tasks.get(&key).map(Task::state) else {
                continue;
            };
            if is_terminal(current) {
                if let Some(task) = self.tasks.remove(&key) {
                    forget_executor(framework, agent_id, &task);
                    framework.push_completed(key.1, task);
                }
                continue;
            }
            let partition_aware = framework.partition_aware();
            let (state, reason, message) = match (loss, partition_aware) {
                (Loss::Unreachable, true) => (
                    pb::TaskState::TaskUnreachable,
                    Reason::AgentRemoved,
                    format!("Agent {hostname} is unreachable"),
                ),
                (Loss::Gone, true) => (
                    pb::TaskState::TaskGoneByOperator,
                    Reason::AgentRemovedByOperator,
                    format!("Agent {hostname} has been removed"),
                ),
                (Loss::Unreachable, false) => (
                    pb::TaskState::TaskLost,
                    Reason::AgentRemoved,
                    format!("Agent {hostname} is unreachable"),
                ),
                (Loss::Gone, false) => (
                    pb::TaskState::TaskLost,
                    Reason::AgentRemoved,
                    format!("Agent {hostname} has been removed"),
                ),
            };
            // As upstream's `__removeSlave`/`_markUnreachable`: the update first (counted by the
            // table), then the removal.
            self.tasks
                .set_state(&key, state as i32, &mut self.metrics.tasks_ended);
            let Some(mut task) = self.tasks.remove(&key) else {
                continue;
            };
            forget_executor(framework, agent_id, &task);
            let mut status = master_status(&key.1, Some(agent_id), state, reason, message);
            if loss == Loss::Unreachable {
                status.unreachable_time = Some(time_info(now));
                task.extras_mut().unreachable_time = Some(now);
            }
            task.push_status(&status, None);
            match loss {
                Loss::Unreachable => {
                    framework.unreachable_tasks.insert(key.1.clone(), task);
                }
                Loss::Gone => framework.push_completed(key.1.clone(), task),
            }
            self.send_master_update(&key.0, status);
        }
        let failure = streams::agent_failure(agent_id);
        for framework in self.frameworks.values() {
            if let Some(stream) = framework.stream() {
                stream.send(&failure);
            }
        }
    }

    /// Heal: a partitioned or recovering agent re-registers with its tasks (the reply waits for
    /// that); a killed agent is replaced by a fresh, empty one with a new id.
    fn heal_agent(&mut self, agent_id: &str, reply: FaultReplyTx) {
        let Some(agent) = self.agents.get(agent_id) else {
            let _ = reply.send(Err(FaultError::UnknownAgent(agent_id.to_owned())));
            return;
        };
        match agent.state {
            AgentState::Registered => {
                let _ = reply.send(Ok(FaultReply::Agent(agent_id.to_owned())));
            }
            AgentState::Gone => {
                let spec = agent.spec.clone();
                let id = self.add_agent(spec);
                let _ = reply.send(Ok(FaultReply::Agent(id)));
            }
            AgentState::Unreachable { .. } | AgentState::Recovered => {
                self.start_reregistration(agent_id, self.epoch, Some(reply));
            }
        }
    }

    /// Asks the agent for its tasks; the answer comes back as `Msg::Reregistered`.
    pub(super) fn start_reregistration(
        &mut self,
        agent_id: &str,
        epoch: u64,
        reply: Option<FaultReplyTx>,
    ) {
        let Some(handle) = self
            .agents
            .get(agent_id)
            .filter(|a| epoch == self.epoch && !a.is_registered())
            .and_then(|a| a.handle.clone())
        else {
            if let Some(reply) = reply {
                let _ = reply.send(Err(FaultError::AgentNotRegistered(agent_id.to_owned())));
            }
            return;
        };
        let master = self.self_tx.clone();
        let agent_id = agent_id.to_owned();
        tokio::spawn(async move {
            let (list, tasks) = oneshot::channel();
            handle.send(AgentCommand::ListTasks { reply: list });
            match tasks.await {
                Ok(tasks) => {
                    let _ = master.send(super::state::Msg::Reregistered {
                        agent_id,
                        epoch,
                        tasks,
                        reply,
                    });
                }
                Err(_) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(FaultError::AgentSilent(agent_id)));
                    }
                }
            }
        });
    }

    /// The agent is back with these tasks. Tasks that were unreachable get their current state
    /// with REASON_AGENT_REREGISTERED; frameworks this master does not know are recovered.
    pub(super) fn reregister_agent(
        &mut self,
        agent_id: &str,
        epoch: u64,
        reports: Vec<TaskReport>,
    ) -> Result<FaultReply, FaultError> {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return Err(FaultError::UnknownAgent(agent_id.to_owned()));
        };
        if epoch != self.epoch || agent.is_registered() || agent.state == AgentState::Gone {
            return Err(FaultError::AgentNotRegistered(agent_id.to_owned()));
        }
        agent.state = AgentState::Registered;
        agent.used = Resources::default();
        agent.offered = Resources::default();
        agent.tasks.clear();
        agent.registered_time = now_secs();
        let handle = agent.handle.clone();
        self.metrics.slave_reregistrations += 1;
        tracing::info!(agent_id, tasks = reports.len(), "agent re-registered");
        let mut reported: HashSet<TaskKey> = HashSet::new();
        for report in reports {
            let framework_id = report.framework_id.clone();
            if self
                .completed_frameworks
                .iter()
                .any(|(c, _)| *c == framework_id)
            {
                if let Some(handle) = &handle {
                    handle.send(AgentCommand::ShutdownFramework { framework_id });
                }
                continue;
            }
            let key = (framework_id.clone(), report.task.task_id.value.clone());
            reported.insert(key.clone());
            self.frameworks
                .entry(framework_id.clone())
                .or_insert_with(|| recovered_framework(&framework_id));
            self.readd_task(agent_id, key, report);
        }
        // As a re-registered Mesos agent resumes its status update manager: the pending
        // updates of every framework go out at once instead of after the retry backoff.
        if let Some(handle) = &handle {
            let frameworks: HashSet<&String> = reported.iter().map(|(f, _)| f).collect();
            for framework_id in frameworks {
                handle.send(AgentCommand::ResendUnacknowledged {
                    framework_id: framework_id.clone(),
                });
            }
        }
        // Unreachable tasks of this agent that it no longer has are gone: nothing will ever
        // report them again.
        for framework in self.frameworks.values_mut() {
            let stale: Vec<String> = framework
                .unreachable_tasks
                .iter()
                .filter(|(id, t)| {
                    *t.agent_id == *agent_id
                        && !reported.contains(&(framework.id.clone(), (*id).clone()))
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in stale {
                if let Some(task) = framework.unreachable_tasks.remove(&id) {
                    framework.push_completed(id, task);
                }
            }
        }
        // Re-registration adds the agent to the allocator again (`addSlave`): its free
        // resources are offered at once.
        self.request_allocation_on(agent_id);
        Ok(FaultReply::Agent(agent_id.to_owned()))
    }

    fn readd_task(&mut self, agent_id: &str, key: TaskKey, report: TaskReport) {
        let state = report.latest.state;
        let resources = Resources::from_pb(&report.task.resources).unwrap_or_default();
        let executor_id = report
            .task
            .executor
            .as_ref()
            .map(|e| e.executor_id.value.clone());
        let Some(framework) = self.frameworks.get_mut(&key.0) else {
            return;
        };
        let was_unreachable = framework.unreachable_tasks.remove(&key.1);
        let role = was_unreachable
            .as_ref()
            .map(|t| t.role.clone())
            .or_else(|| framework.roles().into_iter().next().map(Arc::from))
            .unwrap_or_else(|| Arc::from("*"));
        let group = was_unreachable.as_ref().and_then(|t| t.extras().group);
        let mut executor_resources = Resources::default();
        if !is_terminal(state)
            && let Some(executor) = &report.task.executor
        {
            let entry = framework
                .executors
                .entry((agent_id.to_owned(), executor.executor_id.value.clone()))
                .or_insert_with(|| {
                    let resources = Resources::from_pb(&executor.resources).unwrap_or_default();
                    executor_resources = resources.clone();
                    Executor {
                        resources,
                        live_tasks: 0,
                    }
                });
            entry.live_tasks += 1;
        }
        let notify = was_unreachable.is_some();
        let statuses = was_unreachable.map(|t| t.statuses).unwrap_or_default();
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.tasks.insert(key.clone());
            if !is_terminal(state) {
                agent.used.add(&resources);
                agent.used.add(&executor_resources);
            }
        }
        if notify {
            let mut status = master_status(
                &key.1,
                Some(agent_id),
                pb::TaskState::try_from(state).unwrap_or(pb::TaskState::TaskRunning),
                Reason::AgentReregistered,
                format!("Agent {agent_id} reregistered"),
            );
            status.healthy = report.latest.healthy;
            status.container_status = report.latest.container_status.clone();
            self.send_master_update(&key.0, status);
        }
        let role = self.shared_role(&role);
        let mut task = Task::new(NewTask {
            info: &report.task,
            agent_id: self
                .agents
                .get(agent_id)
                .map_or_else(|| Arc::from(agent_id), |a| a.shared_id.clone()),
            state,
            resources,
            executor_id,
            group,
            role,
        });
        task.statuses = statuses;
        let encoded = Bytes::from(report.latest.encode_to_vec());
        task.push_status(&report.latest, Some(&encoded));
        task.set_latest(encoded);
        self.tasks.insert(key, task);
    }

    /// A master failover: all streams close, frameworks, tasks and offers are forgotten, agents
    /// become "recovered" and re-register with their tasks after `reregister_delay`. Unreachable
    /// and gone agents stay so (upstream keeps them in the registry).
    fn restart(&mut self) {
        tracing::info!("master restarting (failover to a fresh master)");
        let recovering = self.forget_everything();
        self.schedule_reregistrations(recovering);
    }

    /// What the ZooKeeper election tells the actor (see `election.rs`). The actor holds the
    /// state of whichever master leads: a newly elected one starts from nothing and learns
    /// the agents, their tasks and the frameworks from the agents re-registering, once their
    /// detector sees it lead.
    pub(super) fn leadership(&mut self, change: LeaderChange) {
        match change {
            LeaderChange::Elected {
                port,
                master_id,
                reply,
            } => {
                tracing::info!(
                    port,
                    master_id,
                    "master elected: recovering from the agents"
                );
                self.settings = Arc::new(Settings {
                    port,
                    ..(*self.settings).clone()
                });
                let recovering = self.forget_everything();
                // The id this master wrote in its ZooKeeper node.
                self.info = master_info(&master_id, &self.settings);
                self.master_id = master_id;
                self.leading = true;
                if self.agents_follow == Some(port) {
                    self.schedule_reregistrations(recovering);
                }
                let _ = reply.send(());
            }
            LeaderChange::Deposed { port } => {
                if self.leading && self.settings.port == port {
                    tracing::warn!(port, "the leading master is gone: its state with it");
                    self.forget_everything();
                    self.leading = false;
                }
            }
            LeaderChange::AgentsDetected { port } => {
                self.agents_follow = port;
                if self.leading && port == Some(self.settings.port) {
                    let waiting = self
                        .agents
                        .values()
                        .filter(|a| a.state == AgentState::Recovered)
                        .map(|a| a.id.clone())
                        .collect();
                    self.schedule_reregistrations(waiting);
                }
            }
        }
    }

    /// A fresh master: every stream closed (dropping them ends the responses), frameworks,
    /// tasks, offers and timers forgotten, a new master id. Returns the agents that now wait to
    /// re-register (registered ones, and those still waiting from before).
    fn forget_everything(&mut self) -> Vec<String> {
        self.frameworks.clear();
        self.completed_frameworks.clear();
        self.tasks.clear();
        self.offers.clear();
        self.timers.clear();
        self.epoch += 1;
        self.master_id = uuid::Uuid::new_v4().to_string();
        self.info = master_info(&self.master_id, &self.settings);
        self.next_framework = 0;
        self.next_offer = 0;
        self.next_agent = 0;
        self.start_time = now_secs();
        // A fresh master process: its metrics start from zero.
        self.metrics = Default::default();
        let mut recovering = Vec::new();
        for agent in self.agents.values_mut() {
            agent.used = Resources::default();
            agent.offered = Resources::default();
            agent.tasks.clear();
            if matches!(agent.state, AgentState::Registered | AgentState::Recovered) {
                agent.state = AgentState::Recovered;
                recovering.push(agent.id.clone());
            }
        }
        recovering
    }

    fn schedule_reregistrations(&mut self, agent_ids: Vec<String>) {
        let delay: Duration = self.settings.reregister_delay;
        for agent_id in agent_ids {
            let epoch = self.epoch;
            self.schedule(delay, Timer::Reregister { agent_id, epoch });
        }
    }
}

/// The task's executor is gone with its agent.
fn forget_executor(framework: &mut Framework, agent_id: &str, task: &Task) {
    if let Some(executor_id) = &task.extras().executor_id {
        framework
            .executors
            .remove(&(agent_id.to_owned(), executor_id.clone()));
    }
}

/// A framework known only from an agent's report after a master restart: calls get 403 until
/// it subscribes again.
fn recovered_framework(framework_id: &str) -> Framework {
    let info = pb::FrameworkInfo {
        id: Some(streams::framework_id_pb(framework_id)),
        ..Default::default()
    };
    let mut framework = Framework::new(framework_id.to_owned(), info, Conn::Recovered);
    framework.registered_time = now_secs();
    framework
}
