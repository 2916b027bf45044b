//! Process tasks: one runner per task that prepares its sandbox, runs its command as a child
//! process and reports its updates to the agent's runtime.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use super::updates::StatusFactory;
use crate::mesos::proto::v1 as pb;
use pb::task_status::{Reason, Source};

/// What the runtime asks of a runner.
#[derive(Debug)]
pub(crate) enum Control {
    Kill { grace: Option<Duration> },
}

/// What a runner tells the runtime.
#[derive(Debug)]
pub(crate) struct RunnerEvent {
    pub(crate) runner: u64,
    pub(crate) kind: RunnerEventKind,
}

#[derive(Debug)]
pub(crate) enum RunnerEventKind {
    Update(pb::TaskStatus),
    /// The runner is done: its last update was sent before this.
    Exited,
}

/// A runner's way to report to the runtime.
#[derive(Debug)]
pub(crate) struct Emitter {
    runner: u64,
    tx: mpsc::UnboundedSender<RunnerEvent>,
}

impl Emitter {
    pub(crate) fn new(runner: u64, tx: mpsc::UnboundedSender<RunnerEvent>) -> Self {
        Self { runner, tx }
    }

    fn emit(&self, kind: RunnerEventKind) {
        let _ = self.tx.send(RunnerEvent {
            runner: self.runner,
            kind,
        });
    }

    pub(crate) fn update(&self, status: pb::TaskStatus) {
        self.emit(RunnerEventKind::Update(status));
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        self.emit(RunnerEventKind::Exited);
    }
}

/// Everything a runner needs.
#[derive(Debug)]
pub(crate) struct ProcessLaunch {
    pub(crate) framework_id: String,
    pub(crate) framework_user: String,
    pub(crate) task: Box<pb::TaskInfo>,
    pub(crate) work_dir: PathBuf,
    pub(crate) agent_id: String,
    pub(crate) factory: StatusFactory,
}

/// Runs one process task to its end.
pub(crate) async fn run(
    launch: ProcessLaunch,
    control: mpsc::UnboundedReceiver<Control>,
    emit: Emitter,
) {
    let _ = control;
    emit.update(launch.factory.status(
        &launch.task.task_id.value,
        pb::TaskState::TaskFailed,
        Source::Agent,
        Some(Reason::ContainerLaunchFailed),
        Some("Failed to launch container: process agents are not implemented yet".to_owned()),
    ));
}
