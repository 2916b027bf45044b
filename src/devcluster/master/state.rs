//! The master actor: the one task that owns all master state (frameworks, agents, tasks, offers,
//! filters, timers) and the closed [`Msg`] enum that drives it.
//!
//! Axum handlers, agents and the fault API never touch the state: they send a `Msg` (with a
//! oneshot for the answer where one is needed). Timers live in one ordered map consumed by the
//! same `select!`, so every trigger of a state change is visible in [`Master::run`]. The behaviour
//! itself is split by concern: `calls.rs` (scheduler calls), `allocator.rs` (offers and filters),
//! `agents.rs` (status updates, agent faults, re-registration), `reconcile.rs`, `state_json.rs`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::StatusCode;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::metrics::Metrics;
use super::resources::Resources;
use super::streams::{self, EventStream};
pub(super) use super::tasks::{Task, TaskKey, TaskTable};
use super::{AgentSpec, FaultError, FaultReply};
use crate::devcluster::agent::{AgentHandle, AgentUpdate, TaskReport};
use crate::mesos::encoding::Encoding;
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::{Call, Event};
use pb::framework_info::capability::Type as Capability;

/// The version this master reports (`/version`, `MasterInfo.version`, `/master/state`).
pub(super) const MESOS_VERSION: &str = "1.11.0";

/// Completed frameworks remembered (upstream `--max_completed_frameworks`).
pub(super) const MAX_COMPLETED_FRAMEWORKS: usize = 50;
/// Completed tasks remembered per framework (upstream `--max_completed_tasks_per_framework`).
pub(super) const MAX_COMPLETED_TASKS: usize = 1000;

/// Everything that can change the master's state.
#[derive(Debug)]
pub(super) enum Msg {
    /// A SUBSCRIBE that passed the HTTP-level checks; the reply carries the stream id and body.
    Subscribe {
        call: Box<Call>,
        encoding: Encoding,
        reply: oneshot::Sender<(String, Body)>,
    },
    /// Any other call that passed the HTTP-level checks (§3.1 steps 12 onward happen here).
    Call {
        call: Box<Call>,
        stream_id: Option<String>,
        reply: oneshot::Sender<CallResult>,
    },
    /// A stream body was dropped (client gone, or the master closed it).
    StreamClosed {
        framework_id: String,
        stream_id: String,
    },
    /// An agent answered `ListTasks` and re-registers with these tasks.
    Reregistered {
        agent_id: String,
        epoch: u64,
        tasks: Vec<TaskReport>,
        reply: Option<oneshot::Sender<Result<FaultReply, FaultError>>>,
    },
    Fault {
        fault: Fault,
        reply: oneshot::Sender<Result<FaultReply, FaultError>>,
    },
    /// `GET /master/state`: the JSON document.
    State {
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// `GET /master/frameworks`: the JSON document, of one framework if given.
    Frameworks {
        framework_id: Option<String>,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// `GET /master/slaves`: the JSON document.
    Slaves {
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// The agent whose pid is `slave(<n>)@...`, for its `/slave(<n>)/state`.
    AgentByPid {
        n: u64,
        reply: oneshot::Sender<Option<super::files::AgentLookup>>,
    },
    /// `GET /metrics/snapshot`.
    Metrics {
        reply: oneshot::Sender<serde_json::Value>,
    },
    TaskInfos {
        reply: oneshot::Sender<Vec<pb::TaskInfo>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// The ZooKeeper election changed (dev clusters of several masters only, see `election.rs`).
    Leadership(LeaderChange),
}

/// What the election tells the actor, which holds the state of whichever master leads.
#[derive(Debug)]
pub(super) enum LeaderChange {
    /// The master listening on `port` was elected: the actor forgets everything, as a fresh
    /// master does, and answers once it has "recovered" (its empty registry).
    Elected {
        port: u16,
        master_id: String,
        reply: oneshot::Sender<()>,
    },
    /// The master on `port` stopped leading (killed, or its session lost): streams cut, state gone.
    Deposed { port: u16 },
    /// The agents' detector sees the master on `port` leading (None: no leader known).
    AgentsDetected { port: Option<u16> },
}

/// The fault API, as the actor sees it.
#[derive(Debug)]
pub(super) enum Fault {
    KillAgent(String),
    PartitionAgent(String),
    HealAgent(String),
    RestartMaster,
    DropFrameworkStream(String),
    DelayStatusUpdates(Duration),
    DuplicateStatusUpdates(bool),
    RescindOffers,
    AddAgent(AgentSpec),
}

/// The HTTP answer to a non-SUBSCRIBE call.
#[derive(Debug)]
pub(super) struct CallResult {
    pub status: StatusCode,
    pub body: String,
}

impl CallResult {
    pub fn new(status: StatusCode, body: impl Into<String>) -> Self {
        CallResult {
            status,
            body: body.into(),
        }
    }
}

/// Fixed settings of the master, from the configuration.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub heartbeat_interval: Duration,
    pub allocation_interval: Duration,
    pub status_retry_initial: Duration,
    pub status_retry_max: Duration,
    pub reregister_delay: Duration,
    pub work_dir: std::path::PathBuf,
    pub hostname: String,
    pub port: u16,
}

#[derive(Debug)]
pub(super) enum Conn {
    Connected(EventStream),
    /// Stream gone; the failover timer runs.
    Disconnected,
    /// Known only from re-registering agents after a master restart.
    Recovered,
}

#[derive(Debug)]
pub(super) struct Framework {
    pub id: String,
    pub info: pb::FrameworkInfo,
    pub conn: Conn,
    pub suppressed: HashSet<String>,
    /// Decline/accept filters, by agent id.
    pub filters: HashMap<String, Vec<Filter>>,
    // Its live tasks (and terminal ones whose terminal update is not acknowledged yet) are in
    // `Master::tasks`, under (framework id, task id).
    pub unreachable_tasks: TaskTable<String>,
    /// (task id, task), oldest first.
    pub completed_tasks: VecDeque<(String, Task)>,
    pub offers: HashSet<String>,
    /// Custom and default executors running for this framework, by (agent id, executor id), in
    /// that order so that one agent's executors are read without scanning the others.
    pub executors: BTreeMap<(String, String), Executor>,
    pub registered_time: f64,
    pub unregistered_time: Option<f64>,
    /// Bumped on every (re)subscription so a stale failover timer is recognisable.
    pub failover_epoch: u64,
}

impl Framework {
    pub fn new(id: String, info: pb::FrameworkInfo, conn: Conn) -> Self {
        Framework {
            id,
            info,
            conn,
            suppressed: HashSet::new(),
            filters: HashMap::new(),
            unreachable_tasks: TaskTable::default(),
            completed_tasks: VecDeque::new(),
            offers: HashSet::new(),
            executors: BTreeMap::new(),
            registered_time: now_secs(),
            unregistered_time: None,
            failover_epoch: 0,
        }
    }

    pub fn has(&self, capability: Capability) -> bool {
        has_capability(&self.info, capability)
    }

    pub fn partition_aware(&self) -> bool {
        self.has(Capability::PartitionAware)
    }

    /// The roles the framework is subscribed to (`roles` with MULTI_ROLE, else `role`).
    pub fn roles(&self) -> Vec<String> {
        framework_roles(&self.info)
    }

    pub fn stream(&self) -> Option<&EventStream> {
        match &self.conn {
            Conn::Connected(stream) => Some(stream),
            _ => None,
        }
    }

    pub fn push_completed(&mut self, task_id: String, task: Task) {
        if self.completed_tasks.len() >= MAX_COMPLETED_TASKS {
            self.completed_tasks.pop_front();
        }
        self.completed_tasks.push_back((task_id, task));
    }
}

#[derive(Debug, Clone)]
pub(super) struct Filter {
    pub role: String,
    pub resources: Resources,
    pub until: Instant,
}

#[derive(Debug, Clone)]
pub(super) struct Executor {
    pub resources: Resources,
    pub live_tasks: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum AgentState {
    Registered,
    /// Known from before a master restart, not re-registered yet.
    Recovered,
    /// Partitioned away; `since` is the unreachable time (seconds since the epoch).
    Unreachable {
        since: f64,
    },
    /// Killed: removed for good (a new agent with a new id may take its place).
    Gone,
}

#[derive(Debug)]
pub(super) struct Agent {
    pub id: String,
    /// The id again, for task records to share.
    pub shared_id: Arc<str>,
    pub hostname: String,
    pub spec: AgentSpec,
    pub total: Resources,
    pub used: Resources,
    pub offered: Resources,
    pub state: AgentState,
    pub handle: Option<AgentHandle>,
    pub tasks: HashSet<TaskKey>,
    pub registered_time: f64,
    /// The `slave(N)` number in the agent's pid and offer URL.
    pub pid: u64,
}

impl Agent {
    pub fn is_registered(&self) -> bool {
        self.state == AgentState::Registered
    }

    /// The handle, only while registered: commands to a partitioned, recovering or dead agent
    /// are dropped, as the real master drops messages to agents it is not connected to.
    pub fn connected_handle(&self) -> Option<&AgentHandle> {
        self.handle.as_ref().filter(|_| self.is_registered())
    }
}

/// How many received TaskInfos the master keeps for inspection.
pub(super) const RECEIVED_TASK_INFOS_KEPT: usize = 20_000;

#[derive(Debug, Clone)]
pub(super) struct OfferRec {
    pub framework_id: String,
    pub agent_id: String,
    pub role: String,
    pub resources: Resources,
}

#[derive(Debug)]
pub(super) enum Timer {
    Heartbeat {
        framework_id: String,
        stream_id: String,
    },
    FailoverTimeout {
        framework_id: String,
        epoch: u64,
    },
    Reregister {
        agent_id: String,
        epoch: u64,
    },
    DelayedUpdate(Box<AgentUpdate>),
}

/// The master's whole state. Only [`Master::run`] and the methods it calls touch it.
#[derive(Debug)]
pub(super) struct Master {
    pub settings: Arc<Settings>,
    pub master_id: String,
    pub info: pb::MasterInfo,
    /// Bumped on every master restart; messages and timers of an older epoch are ignored.
    pub epoch: u64,
    pub next_framework: u64,
    pub next_offer: u64,
    pub next_agent: u64,
    pub next_agent_pid: u64,
    pub next_group: u64,
    pub start_time: f64,
    pub frameworks: HashMap<String, Framework>,
    /// Ids (and `/master/state` snapshots) of removed frameworks, oldest first.
    /// Ids (and `/master/state` JSON) of removed frameworks, oldest first.
    pub completed_frameworks: VecDeque<(String, Box<[u8]>)>,
    pub agents: BTreeMap<String, Agent>,
    pub tasks: TaskTable<TaskKey>,
    pub offers: HashMap<String, OfferRec>,
    pub timers: BTreeMap<(Instant, u64), Timer>,
    pub timer_seq: u64,
    /// The TaskInfos received in ACCEPTs, exactly as sent, for tests to inspect: the latest
    /// [`RECEIVED_TASK_INFOS_KEPT`], so a long-running `dev` cluster does not grow without bound,
    /// protobuf-encoded (a decoded TaskInfo takes some 3 KB).
    pub received_task_infos: VecDeque<Box<[u8]>>,
    pub delay_updates: Duration,
    pub duplicate_updates: bool,
    /// Rotates which framework the allocator serves first.
    pub allocation_cursor: usize,
    /// Agents an immediate allocation run was asked for (see `allocator.rs`).
    pub allocation_candidates: super::allocator::Candidates,
    /// The counters of `/metrics/snapshot` (its gauges are read from the state itself).
    pub metrics: Metrics,
    /// Role names, for task records to share.
    pub role_names: HashSet<Arc<str>>,
    pub self_tx: mpsc::UnboundedSender<Msg>,
    pub updates_tx: mpsc::UnboundedSender<AgentUpdate>,
    /// Whether a master leads (always, without ZooKeeper); while none does, the state is empty
    /// and the agents wait as "recovered".
    pub leading: bool,
    /// The port of the master the agents' detector sees leading (ZooKeeper only).
    pub agents_follow: Option<u16>,
}

impl Master {
    pub fn new(
        settings: Arc<Settings>,
        self_tx: mpsc::UnboundedSender<Msg>,
        updates_tx: mpsc::UnboundedSender<AgentUpdate>,
    ) -> Self {
        let master_id = uuid::Uuid::new_v4().to_string();
        let info = master_info(&master_id, &settings);
        Master {
            settings,
            master_id,
            info,
            epoch: 0,
            next_framework: 0,
            next_offer: 0,
            next_agent: 0,
            next_agent_pid: 1,
            next_group: 0,
            start_time: now_secs(),
            frameworks: HashMap::new(),
            completed_frameworks: VecDeque::new(),
            agents: BTreeMap::new(),
            tasks: TaskTable::default(),
            offers: HashMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            received_task_infos: VecDeque::new(),
            delay_updates: Duration::ZERO,
            duplicate_updates: false,
            allocation_cursor: 0,
            allocation_candidates: super::allocator::Candidates::default(),
            metrics: Metrics::default(),
            role_names: HashSet::new(),
            self_tx,
            updates_tx,
            leading: true,
            agents_follow: None,
        }
    }

    /// The actor loop: one closed set of triggers, handled one at a time.
    pub async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Msg>,
        mut updates: mpsc::UnboundedReceiver<AgentUpdate>,
    ) {
        let mut allocation = tokio::time::interval(self.settings.allocation_interval);
        allocation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.keys().next().map(|(at, _)| *at);
            tokio::select! {
                msg = inbox.recv() => {
                    let Some(msg) = msg else { break };
                    if let Msg::Shutdown { reply } = msg {
                        self.shutdown().await;
                        let _ = reply.send(());
                        break;
                    }
                    self.handle(msg);
                }
                Some(update) = updates.recv() => self.on_agent_update(update),
                _ = allocation.tick() => self.allocate_periodically(),
                _ = sleep_until_opt(next_timer) => self.fire_due_timers(),
            }
            // Upstream dispatches `generateOffers` to the allocator: it runs right after the
            // trigger, whatever the allocation interval.
            self.run_requested_allocation();
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Subscribe {
                call,
                encoding,
                reply,
            } => {
                let answer = self.subscribe(*call, encoding);
                let _ = reply.send(answer);
            }
            Msg::Call {
                call,
                stream_id,
                reply,
            } => {
                let answer = self.call(*call, stream_id);
                let _ = reply.send(answer);
            }
            Msg::StreamClosed {
                framework_id,
                stream_id,
            } => self.stream_closed(&framework_id, &stream_id),
            Msg::Reregistered {
                agent_id,
                epoch,
                tasks,
                reply,
            } => {
                let result = self.reregister_agent(&agent_id, epoch, tasks);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Msg::Fault { fault, reply } => self.fault(fault, reply),
            Msg::State { reply } => {
                let _ = reply.send(self.state_json());
            }
            Msg::Frameworks {
                framework_id,
                reply,
            } => {
                let _ = reply.send(self.frameworks_json(framework_id.as_deref()));
            }
            Msg::Metrics { reply } => {
                let _ = reply.send(self.metrics_snapshot());
            }
            Msg::Slaves { reply } => {
                let _ = reply.send(self.slaves_json());
            }
            Msg::AgentByPid { n, reply } => {
                let _ = reply.send(self.agent_by_pid(n));
            }
            Msg::TaskInfos { reply } => {
                let infos = self
                    .received_task_infos
                    .iter()
                    .filter_map(|bytes| prost::Message::decode(&**bytes).ok())
                    .collect();
                let _ = reply.send(infos);
            }
            Msg::Leadership(change) => self.leadership(change),
            Msg::Shutdown { .. } => unreachable!("handled in run"),
        }
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            match timer {
                Timer::Heartbeat {
                    framework_id,
                    stream_id,
                } => self.heartbeat(&framework_id, &stream_id),
                Timer::FailoverTimeout {
                    framework_id,
                    epoch,
                } => self.failover_timeout(&framework_id, epoch),
                Timer::Reregister { agent_id, epoch } => {
                    self.start_reregistration(&agent_id, epoch, None);
                }
                Timer::DelayedUpdate(update) => self.process_agent_update(*update),
            }
        }
    }

    pub fn schedule(&mut self, after: Duration, timer: Timer) {
        self.timer_seq += 1;
        self.timers
            .insert((Instant::now() + after, self.timer_seq), timer);
    }

    fn heartbeat(&mut self, framework_id: &str, stream_id: &str) {
        let Some(stream) = self
            .frameworks
            .get(framework_id)
            .and_then(Framework::stream)
        else {
            return;
        };
        if stream.id != stream_id {
            return;
        }
        stream.send(&streams::heartbeat());
        let timer = Timer::Heartbeat {
            framework_id: framework_id.to_owned(),
            stream_id: stream_id.to_owned(),
        };
        self.schedule(self.settings.heartbeat_interval, timer);
    }

    /// The role name as task records share it.
    pub fn shared_role(&mut self, role: &str) -> Arc<str> {
        if let Some(shared) = self.role_names.get(role) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(role);
        self.role_names.insert(shared.clone());
        shared
    }

    /// Sends an event to a framework if it is connected; events for a disconnected framework are
    /// lost, as upstream does not queue them.
    pub fn send_event(&self, framework_id: &str, event: &Event) {
        if let Some(stream) = self
            .frameworks
            .get(framework_id)
            .and_then(Framework::stream)
        {
            stream.send(event);
        }
    }

    /// Sends a master-generated status update (no uuid, sent once).
    pub fn send_master_update(&self, framework_id: &str, status: pb::TaskStatus) {
        tracing::debug!(
            framework_id,
            task_id = %status.task_id.value,
            state = state_name(status.state),
            "master-generated status update"
        );
        self.send_event(framework_id, &streams::update(status));
    }

    async fn shutdown(&mut self) {
        for framework in self.frameworks.values_mut() {
            framework.conn = Conn::Disconnected;
        }
        let mut waits = Vec::new();
        for agent in self.agents.values_mut() {
            if let Some(handle) = agent.handle.take() {
                let (done, wait) = oneshot::channel();
                handle.send(crate::devcluster::agent::AgentCommand::Stop { done });
                waits.push(wait);
            }
        }
        for wait in waits {
            // A generous bound: process agents wait out their tasks' kill grace periods.
            let _ = tokio::time::timeout(Duration::from_secs(30), wait).await;
        }
        tracing::info!("dev cluster master stopped");
    }
}

/// Seconds since the Unix epoch, as Mesos writes timestamps.
pub(super) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub(super) fn has_capability(info: &pb::FrameworkInfo, capability: Capability) -> bool {
    info.capabilities
        .iter()
        .any(|c| c.r#type == Some(capability as i32))
}

pub(super) fn framework_roles(info: &pb::FrameworkInfo) -> Vec<String> {
    if has_capability(info, Capability::MultiRole) {
        info.roles.clone()
    } else {
        #[expect(
            deprecated,
            reason = "non-MULTI_ROLE frameworks still use FrameworkInfo.role"
        )]
        let role = info.role.clone().unwrap_or_else(|| "*".to_owned());
        vec![role]
    }
}

pub(super) fn state_name(state: i32) -> &'static str {
    pb::TaskState::try_from(state).map_or("TASK_UNKNOWN_STATE", |s| s.as_str_name())
}

pub(super) use crate::mesos::proto::is_terminal_state as is_terminal;

/// A master-generated TaskStatus: SOURCE_MASTER, a timestamp, no uuid.
pub(super) fn master_status(
    task_id: &str,
    agent_id: Option<&str>,
    state: pb::TaskState,
    reason: pb::task_status::Reason,
    message: impl Into<String>,
) -> pb::TaskStatus {
    pb::TaskStatus {
        task_id: pb::TaskId {
            value: task_id.to_owned(),
        },
        state: state as i32,
        message: Some(message.into()),
        source: Some(pb::task_status::Source::Master as i32),
        reason: Some(reason as i32),
        agent_id: agent_id.map(|a| pb::AgentId {
            value: a.to_owned(),
        }),
        timestamp: Some(now_secs()),
        ..Default::default()
    }
}

pub(super) fn time_info(secs: f64) -> pb::TimeInfo {
    pb::TimeInfo {
        nanoseconds: (secs * 1e9) as i64,
    }
}

/// The MasterInfo of a master listening on 127.0.0.1.
pub(super) fn master_info(master_id: &str, settings: &Settings) -> pb::MasterInfo {
    use pb::master_info::capability::Type as MasterCapability;
    // MasterInfo.ip is the IPv4 address in network byte order read as a little-endian integer.
    let ip = u32::from_le_bytes([127, 0, 0, 1]);
    pb::MasterInfo {
        id: master_id.to_owned(),
        ip,
        port: u32::from(settings.port),
        pid: Some(format!("master@127.0.0.1:{}", settings.port)),
        hostname: Some(settings.hostname.clone()),
        version: Some(MESOS_VERSION.to_owned()),
        address: Some(pb::Address {
            hostname: Some(settings.hostname.clone()),
            ip: Some("127.0.0.1".to_owned()),
            port: i32::from(settings.port),
        }),
        domain: None,
        capabilities: [
            MasterCapability::AgentUpdate,
            MasterCapability::AgentDraining,
            MasterCapability::QuotaV2,
        ]
        .into_iter()
        .map(|t| pb::master_info::Capability {
            r#type: Some(t as i32),
        })
        .collect(),
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
