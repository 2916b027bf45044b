//! In-process agents of the dev cluster: they run tasks and report their status, as a Mesos agent
//! with the command executor does.
//!
//! The master and the agents talk only through the messages in this file: the master sends an
//! [`AgentCommand`] to an agent's [`AgentHandle`]; the agent sends [`AgentUpdate`]s back on the
//! channel it was spawned with. Resource accounting belongs to the master (as in Mesos, where the
//! master's allocator tracks what is used); an agent only runs what it is given.
//!
//! Status updates follow the agent's delivery contract (API notes §10): every update an agent
//! produces carries a fresh 16-byte UUID, the agent keeps an ordered queue per task and only sends
//! the oldest unacknowledged update, re-sending it with backoff (initial, doubling, capped) until an
//! [`AgentCommand::Acknowledge`] for exactly that uuid arrives; only then does the next update of the
//! task go out.
//!
//! Code map: `runtime.rs` is the agent's actor (task table, update queues, timers, commands);
//! `updates.rs` builds statuses and holds the pure per-task delivery queue; `virtual_task.rs`
//! reads the labels that script a virtual task; `process.rs` runs one process task (container
//! checks, sandbox, command, kill); `fetcher.rs` fetches `CommandInfo.uris`; `health.rs` runs
//! health checks. Tasks always run as the agent's own user (see `process.rs`). `http.rs` is the
//! agent's own HTTP server (`/state`, `/files/*` from `files.rs`, `/api/v1`), `api.rs` the
//! HTTP rules the v1 APIs share.

pub(crate) mod api;
mod fetcher;
pub(crate) mod files;
mod health;
pub mod http;
mod process;
mod runtime;
mod updates;
mod virtual_task;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::mesos::proto::v1 as pb;

/// Task labels that script a task on a virtual agent (and are ignored by process agents).
pub mod labels {
    /// How long the virtual task runs before it ends by itself, e.g. `"2s"` or `"500ms"`.
    /// Without it the task runs until killed.
    pub const RUN_FOR: &str = "devcluster.run_for";
    /// How a virtual task that ends by itself ends: `"finished"` (default), `"failed"`, `"error"`
    /// or `"lost"`.
    pub const OUTCOME: &str = "devcluster.outcome";
}

/// How an agent runs tasks.
#[derive(Debug, Clone)]
pub enum AgentKind {
    /// Real child processes, each in a sandbox directory under `work_dir`.
    Process { work_dir: PathBuf },
    /// No process: a task runs until killed, or as its labels ([`labels`]) script it.
    Virtual,
}

/// Everything an agent needs to start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `<master-uuid>-S<n>`, assigned by the master.
    pub id: String,
    pub hostname: String,
    /// The IP the agent reports in `ContainerStatus.network_infos` (always loopback here).
    pub ip: String,
    pub kind: AgentKind,
    /// First re-send delay of an unacknowledged update (Mesos: 10 s).
    pub status_retry_initial: Duration,
    /// Cap of the doubling re-send delay (Mesos: 10 min).
    pub status_retry_max: Duration,
}

/// What the master asks of an agent.
#[derive(Debug)]
pub enum AgentCommand {
    /// Run this task (already validated by the master; `task.agent_id` is this agent).
    /// `framework_user` is `FrameworkInfo.user`, used when the command sets no `user`.
    Launch {
        framework_id: String,
        framework_user: String,
        task: Box<pb::TaskInfo>,
    },
    /// [`AgentCommand::Launch`] with the TaskInfo protobuf-encoded, as the master sends it: a
    /// launch waiting in the agent's queue then takes its encoded size (a few hundred bytes)
    /// rather than a decoded TaskInfo's (some 3 KB), which matters with 100,000 launches in
    /// flight, and the agent keeps these very bytes.
    LaunchEncoded {
        framework_id: String,
        framework_user: String,
        task: bytes::Bytes,
    },
    /// Kill a task: SIGTERM, then SIGKILL after `grace` (the call's kill policy, else the task's,
    /// else 3 s as the command executor does). Unknown tasks are ignored.
    Kill {
        framework_id: String,
        task_id: String,
        grace: Option<Duration>,
    },
    /// The scheduler acknowledged this update; a uuid that is not the oldest pending one of the
    /// task is ignored.
    Acknowledge {
        framework_id: String,
        task_id: String,
        uuid: Vec<u8>,
    },
    /// Re-send at once the oldest unacknowledged update of every task of this framework (the
    /// framework re-subscribed), then continue with the usual backoff.
    ResendUnacknowledged { framework_id: String },
    /// Kill every task of the framework (it was torn down or removed) and forget it.
    ShutdownFramework { framework_id: String },
    /// Report the tasks this agent runs (for re-registration after a master restart or a partition).
    ListTasks {
        reply: oneshot::Sender<Vec<TaskReport>>,
    },
    /// Report the sandbox of every task this agent runs, and of the last tasks it ran (for the
    /// agent's `/state` and the files endpoints).
    Sandboxes {
        reply: oneshot::Sender<Vec<SandboxReport>>,
    },
    /// Kill every task and stop (dev cluster shutdown, or the fault API killing the agent).
    Stop { done: oneshot::Sender<()> },
}

/// Where one task's sandbox is (an executor in Mesos's words: the command executor of a task
/// has the task's id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxReport {
    pub framework_id: String,
    pub task_id: String,
    /// The sandbox directory (absolute); None on a virtual agent, whose tasks run no process.
    pub directory: Option<PathBuf>,
    /// The state of the task's latest update (`TaskState` as an `i32`), if any.
    pub state: Option<i32>,
    /// The task has ended and been forgotten; its sandbox is kept on disk.
    pub completed: bool,
}

/// One task an agent knows, with the latest state it reached (acknowledged or not).
#[derive(Debug, Clone)]
pub struct TaskReport {
    pub framework_id: String,
    pub task: pb::TaskInfo,
    pub latest: pb::TaskStatus,
}

/// A status update produced by an agent, for the master to forward to the framework.
#[derive(Debug, Clone)]
pub struct AgentUpdate {
    pub agent_id: String,
    pub framework_id: String,
    /// The `TaskStatus`, protobuf-encoded: the very bytes the agent keeps, so that the master can
    /// keep them too without a copy of its own, and a queue of 100,000 updates after a big
    /// launch takes their encoded size (a decoded status is three or four times larger).
    pub encoded: bytes::Bytes,
    /// The state of the task's newest update, which may be later than the one sent when older
    /// updates wait for their acknowledgement (upstream's `StatusUpdate.latest_state`: the
    /// master takes the task's state from it, not from the status it forwards).
    pub latest_state: Option<i32>,
}

impl AgentUpdate {
    /// The update, fully filled in: task_id, state, source, reason/message where relevant,
    /// agent_id, executor_id, timestamp, uuid (16 bytes), healthy and container_status where
    /// relevant.
    pub fn status(&self) -> Result<pb::TaskStatus, prost::DecodeError> {
        prost::Message::decode(&self.encoded[..])
    }
}

/// The master's handle on a running agent.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    tx: mpsc::UnboundedSender<AgentCommand>,
}

impl AgentHandle {
    /// Sends a command; a stopped agent silently drops it, as a dead agent would.
    pub fn send(&self, cmd: AgentCommand) {
        let _ = self.tx.send(cmd);
    }

    /// Resolves once the agent has stopped (its command channel is closed).
    pub async fn closed(&self) {
        self.tx.closed().await;
    }

    /// Builds a handle from a command sender (used by `spawn`).
    pub fn from_sender(tx: mpsc::UnboundedSender<AgentCommand>) -> Self {
        Self { tx }
    }
}

/// The status factory of an agent, for tests elsewhere in the crate to build the statuses agents
/// send.
#[cfg(test)]
pub(crate) fn test_status_factory(agent_id: &str, ip: &str) -> updates::StatusFactory {
    updates::StatusFactory::new(agent_id, ip)
}

/// Starts an agent on the current tokio runtime.
pub fn spawn(config: AgentConfig, updates: mpsc::UnboundedSender<AgentUpdate>) -> AgentHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(runtime::run(config, rx, updates));
    AgentHandle::from_sender(tx)
}
