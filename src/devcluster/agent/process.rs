//! Process tasks: one runner (a tokio task) per task that does what the Mesos containerizer and
//! command executor do for a command task, and reports every update to the agent's runtime.
//!
//! The sequence: check the container type (only what the Mesos containerizer with no image
//! providers can run), create the sandbox `<work_dir>/<framework_id>/<task_id>-<short uuid>/`,
//! fetch the URIs into it, send TASK_STARTING, spawn the command (`/bin/sh -c <value>` in shell
//! mode, `value` with argv `arguments` otherwise) with `stdout`/`stderr` files in the sandbox, send
//! TASK_RUNNING, run the health checks, and end with TASK_FINISHED, TASK_FAILED or TASK_KILLED.
//!
//! Kills: SIGTERM to the task's process group, SIGKILL after the grace period (the kill's, else the
//! task's kill policy's, else 3 s). The command runs in its own process group so that a kill reaches
//! the processes it started; when the command exits the rest of its group is killed, as Mesos
//! destroys the container of a finished executor. Signals are sent with the system `kill` binary
//! (the crate forbids `unsafe` and has no libc binding); a guard kills the group on drop as well, so
//! a runner dropped with its runtime leaves no process behind. (A process that leaves the group on
//! purpose, with `setsid`, escapes; a real agent's cgroups would still catch it.)
//!
//! Users: a real agent switches to the task's `user` (or the framework's). This agent does not
//! drop privileges: every task runs as the agent's own user, and a different requested user is only
//! logged.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::fetcher;
use super::health::{self, HealthTracker};
use super::updates::StatusFactory;
use crate::mesos::proto::v1 as pb;
use pb::task_status::{Reason, Source};

/// What the runtime asks of a runner. A closed control channel means "kill with the task's
/// grace" (the framework or the agent is going away).
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
    Update(Box<pb::TaskStatus>),
    /// The runner is done; every update it produced was sent before this.
    Exited,
}

/// A runner's way to report to the runtime. Dropping it reports the runner gone, even when the
/// runner panicked, so that the runtime never waits for a task nobody runs.
#[derive(Debug)]
pub(crate) struct Emitter {
    runner: u64,
    tx: mpsc::UnboundedSender<RunnerEvent>,
}

impl Emitter {
    pub(crate) fn new(runner: u64, tx: mpsc::UnboundedSender<RunnerEvent>) -> Self {
        Self { runner, tx }
    }

    fn update(&self, status: pb::TaskStatus) {
        self.emit(RunnerEventKind::Update(Box::new(status)));
    }

    fn emit(&self, kind: RunnerEventKind) {
        let _ = self.tx.send(RunnerEvent {
            runner: self.runner,
            kind,
        });
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
    /// A fresh uuid: the container's id, the last part of the sandbox's name.
    pub(crate) container_id: String,
}

/// The sandbox of a task: `<work_dir>/<framework_id>/<task_id>-<first 8 of container id>`,
/// absolute.
pub(crate) fn sandbox_dir(
    work_dir: &Path,
    framework_id: &str,
    task_id: &str,
    container_id: &str,
) -> PathBuf {
    let dir = work_dir.join(framework_id).join(format!(
        "{task_id}-{}",
        container_id.get(..8).unwrap_or(container_id)
    ));
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The command executor's grace period when neither the kill nor the task gives one.
const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// Runs one process task to its end.
pub(crate) async fn run(
    launch: ProcessLaunch,
    control: mpsc::UnboundedReceiver<Control>,
    emit: Emitter,
) {
    let container_id = launch.container_id.clone();
    let runner = Runner {
        task_id: launch.task.task_id.value.clone(),
        default_grace: task_grace(&launch.task),
        container_id,
        launch,
        emit,
    };
    runner.run(control).await;
}

struct Runner {
    launch: ProcessLaunch,
    task_id: String,
    container_id: String,
    default_grace: Duration,
    emit: Emitter,
}

/// A kill in progress.
#[derive(Debug, Clone, Copy)]
struct Killing {
    /// When SIGKILL follows the SIGTERM.
    deadline: Instant,
    escalated: bool,
}

impl Runner {
    async fn run(self, mut control: mpsc::UnboundedReceiver<Control>) {
        let task = &self.launch.task;
        if let Err(why) = check_container(task) {
            return self.fail_launch(why);
        }
        let Some(command) = task.command.clone() else {
            return self.fail_launch(
                "custom executors are not supported by this agent: give the task a CommandInfo"
                    .to_owned(),
            );
        };
        let sandbox = match self.create_sandbox() {
            Ok(sandbox) => sandbox,
            Err(why) => return self.fail_launch(why),
        };

        // The fetch belongs to the container's launch: a kill meanwhile (or already waiting)
        // ends the task before the executor ever starts.
        tokio::select! {
            biased;
            _ = control.recv() => {
                info!(agent_id = %self.launch.agent_id, task_id = %self.task_id, "task killed during launch");
                self.emit.update(self.launch.factory.status(
                    &self.task_id,
                    pb::TaskState::TaskKilled,
                    Source::Agent,
                    Some(Reason::TaskKilledDuringLaunch),
                    Some("Task killed before it was launched".to_owned()),
                ));
                return;
            }
            fetched = fetcher::fetch_all(&command.uris, &sandbox) => {
                if let Err(error) = fetched {
                    return self.fail_launch(format!(
                        "Failed to fetch all URIs for container '{}': {error}",
                        self.container_id
                    ));
                }
            }
        }

        self.emit.update(self.launch.factory.status(
            &self.task_id,
            pb::TaskState::TaskStarting,
            Source::Executor,
            None,
            None,
        ));
        let env = task_environment(&self.launch, &command, &sandbox);
        self.note_user(&command);
        let child = match spawn_command(&command, &sandbox, &env) {
            Ok(child) => child,
            Err(error) => {
                let message = format!("Failed to launch task subprocess: {error}");
                append_to(&sandbox.join("stderr"), &message);
                self.emit.update(self.launch.factory.status(
                    &self.task_id,
                    pb::TaskState::TaskFailed,
                    Source::Executor,
                    None,
                    Some(message),
                ));
                return;
            }
        };
        self.supervise(child, control, &sandbox, &env).await;
    }

    /// Watches a running command: kills, health checks, and its exit.
    async fn supervise(
        &self,
        mut child: Child,
        mut control: mpsc::UnboundedReceiver<Control>,
        sandbox: &Path,
        env: &[(String, String)],
    ) {
        let pid = child.id();
        let mut group = GroupGuard { pgid: pid };
        self.emit.update(
            self.launch
                .factory
                .running(&self.task_id, &self.container_id, pid),
        );

        let mut prober = self.launch.task.health_check.as_ref().map(|check| {
            let spec = health::HealthCheckSpec::from_proto(check, env, sandbox);
            (
                HealthTracker::new(&spec, Instant::now()),
                health::start(spec),
            )
        });
        let mut killing: Option<Killing> = None;
        let mut killed_by_health: Option<String> = None;
        let mut control_open = true;
        let far = Instant::now() + Duration::from_secs(86_400 * 365);

        let exit = loop {
            let escalate_at = killing.filter(|k| !k.escalated).map(|k| k.deadline);
            tokio::select! {
                exit = child.wait() => break exit,
                message = control.recv(), if control_open => {
                    let grace = match message {
                        Some(Control::Kill { grace }) => grace,
                        None => {
                            control_open = false;
                            None
                        }
                    };
                    self.kill(&mut killing, grace, pid).await;
                }
                result = next_probe(&mut prober), if prober.is_some() && killing.is_none() => {
                    let Some(result) = result else {
                        prober = None;
                        continue;
                    };
                    let Some((tracker, _)) = prober.as_mut() else { continue };
                    let verdict = tracker.record(result, Instant::now());
                    if let Some((healthy, message)) = verdict.report {
                        self.emit.update(self.launch.factory.health(
                            &self.task_id,
                            &self.container_id,
                            pid,
                            healthy,
                            message,
                        ));
                    }
                    if let Some(why) = verdict.kill {
                        info!(agent_id = %self.launch.agent_id, task_id = %self.task_id, %why, "killing unhealthy task");
                        killed_by_health = Some(why);
                        self.kill(&mut killing, None, pid).await;
                    }
                }
                () = tokio::time::sleep_until(escalate_at.unwrap_or(far)), if escalate_at.is_some() => {
                    debug!(agent_id = %self.launch.agent_id, task_id = %self.task_id, "grace period over: SIGKILL");
                    if let Some(pgid) = pid {
                        signal_group(pgid, "KILL").await;
                    }
                    let _ = child.start_kill();
                    if let Some(k) = killing.as_mut() {
                        k.escalated = true;
                    }
                }
            }
        };
        // The command is gone; whatever it left running in its group goes with it.
        drop(prober);
        if let Some(pgid) = pid {
            signal_group(pgid, "KILL").await;
        }
        group.pgid = None;
        self.emit
            .update(self.terminal(exit, killing.is_some(), killed_by_health));
    }

    /// Starts a kill (SIGTERM now, SIGKILL at the deadline), or shortens one in progress.
    async fn kill(&self, killing: &mut Option<Killing>, grace: Option<Duration>, pid: Option<u32>) {
        let grace = grace.unwrap_or(self.default_grace);
        let deadline = Instant::now() + grace;
        match killing {
            None => {
                info!(agent_id = %self.launch.agent_id, task_id = %self.task_id, ?grace, "killing task");
                if let Some(pgid) = pid {
                    signal_group(pgid, "TERM").await;
                }
                *killing = Some(Killing {
                    deadline,
                    escalated: false,
                });
            }
            Some(k) => k.deadline = k.deadline.min(deadline),
        }
    }

    fn terminal(
        &self,
        exit: std::io::Result<ExitStatus>,
        killed: bool,
        killed_by_health: Option<String>,
    ) -> pb::TaskStatus {
        let (state, message) = match exit {
            Err(error) => (
                pb::TaskState::TaskFailed,
                format!("Failed to wait for the task subprocess: {error}"),
            ),
            Ok(status) => {
                let message = format!("Command {}", describe_exit(status));
                let state = if killed {
                    pb::TaskState::TaskKilled
                } else if status.success() {
                    pb::TaskState::TaskFinished
                } else {
                    pb::TaskState::TaskFailed
                };
                (state, message)
            }
        };
        let message = match &killed_by_health {
            Some(why) => format!("{message}; the task was killed because {why}"),
            None => message,
        };
        let mut status =
            self.launch
                .factory
                .status(&self.task_id, state, Source::Executor, None, Some(message));
        if killed_by_health.is_some() {
            status.healthy = Some(false);
        }
        status
    }

    /// The agent could not launch the container: TASK_FAILED from the agent, no TASK_STARTING.
    fn fail_launch(&self, why: String) {
        warn!(agent_id = %self.launch.agent_id, task_id = %self.task_id, %why, "task launch failed");
        self.emit.update(self.launch.factory.status(
            &self.task_id,
            pb::TaskState::TaskFailed,
            Source::Agent,
            Some(Reason::ContainerLaunchFailed),
            Some(format!("Failed to launch container: {why}")),
        ));
    }

    fn create_sandbox(&self) -> Result<PathBuf, String> {
        let dir = sandbox_dir(
            &self.launch.work_dir,
            &self.launch.framework_id,
            &self.task_id,
            &self.container_id,
        );
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("failed to create the sandbox '{}': {e}", dir.display()))?;
        debug!(agent_id = %self.launch.agent_id, task_id = %self.task_id, sandbox = %dir.display(), "sandbox created");
        Ok(dir)
    }

    fn note_user(&self, command: &pb::CommandInfo) {
        let wanted = command
            .user
            .as_deref()
            .unwrap_or(&self.launch.framework_user);
        if wanted.is_empty() {
            return;
        }
        let current = current_user();
        if current.as_deref() != Some(wanted) {
            info!(
                agent_id = %self.launch.agent_id,
                task_id = %self.task_id,
                requested = wanted,
                running_as = current.as_deref().unwrap_or("?"),
                "this agent does not switch users: the task runs as the agent's user"
            );
        }
    }
}

async fn next_probe(
    prober: &mut Option<(HealthTracker, health::Prober)>,
) -> Option<Result<(), String>> {
    match prober {
        Some((_, prober)) => prober.next().await,
        None => std::future::pending().await,
    }
}

/// What the Mesos containerizer (`--containerizers=mesos`, no image providers) can launch.
fn check_container(task: &pb::TaskInfo) -> Result<(), String> {
    use pb::container_info::Type;
    let Some(container) = &task.container else {
        return Ok(());
    };
    match Type::try_from(container.r#type) {
        Ok(Type::Docker) => Err(
            "None of the enabled containerizers (mesos) could create a container for the \
             provided TaskInfo/ExecutorInfo message: the docker containerizer is not enabled on \
             this agent (--containerizers=mesos)"
                .to_owned(),
        ),
        Ok(Type::Mesos) => match container.mesos.as_ref().and_then(|m| m.image.as_ref()) {
            Some(_) => Err(
                "image provisioning is not supported by this agent (no image providers and no \
                 network access); run the task without an image"
                    .to_owned(),
            ),
            None => Ok(()),
        },
        Err(_) => Err(format!("unknown container type {}", container.r#type)),
    }
}

/// The grace period of the task's own kill policy, else the command executor's default.
fn task_grace(task: &pb::TaskInfo) -> Duration {
    task.kill_policy
        .as_ref()
        .and_then(|p| p.grace_period.as_ref())
        .map_or(DEFAULT_GRACE, |d| {
            Duration::from_nanos(u64::try_from(d.nanoseconds).unwrap_or(0))
        })
}

/// The environment of the task: the agent's own (inherited), then the `MESOS_*` variables, the
/// `PORT*` variables of its `ports` resource, and the command's own VALUE variables, which win.
pub(crate) fn task_environment(
    launch: &ProcessLaunch,
    command: &pb::CommandInfo,
    sandbox: &Path,
) -> Vec<(String, String)> {
    let task_id = &launch.task.task_id.value;
    let sandbox = sandbox.display().to_string();
    let mut env = vec![
        ("MESOS_TASK_ID".to_owned(), task_id.clone()),
        ("MESOS_EXECUTOR_ID".to_owned(), task_id.clone()),
        ("MESOS_FRAMEWORK_ID".to_owned(), launch.framework_id.clone()),
        ("MESOS_AGENT_ID".to_owned(), launch.agent_id.clone()),
        ("MESOS_SANDBOX".to_owned(), sandbox.clone()),
        ("MESOS_DIRECTORY".to_owned(), sandbox),
    ];
    let ports = task_ports(&launch.task.resources);
    for (i, port) in ports.iter().enumerate() {
        env.push((format!("PORT{i}"), port.to_string()));
    }
    if let Some(first) = ports.first() {
        env.push(("PORT".to_owned(), first.to_string()));
        let all: Vec<String> = ports.iter().map(u64::to_string).collect();
        env.push(("PORTS".to_owned(), all.join(",")));
    }
    env.extend(command_variables(command));
    env
}

/// The VALUE variables of a command's environment. SECRET variables need a secret resolver,
/// which this agent does not have: they are left out (and logged).
pub(crate) fn command_variables(command: &pb::CommandInfo) -> Vec<(String, String)> {
    use pb::environment::variable::Type;
    let Some(environment) = &command.environment else {
        return Vec::new();
    };
    let mut vars = Vec::new();
    for var in &environment.variables {
        match var.r#type.map(Type::try_from) {
            None | Some(Ok(Type::Value)) => {
                vars.push((var.name.clone(), var.value.clone().unwrap_or_default()));
            }
            _ => {
                warn!(name = %var.name, "secret environment variables are not supported: left out")
            }
        }
    }
    vars
}

/// The ports of the task's `ports` resources, in order (capped, as a guard against a task that
/// was given a whole range).
fn task_ports(resources: &[pb::Resource]) -> Vec<u64> {
    const MAX_PORTS: usize = 1024;
    resources
        .iter()
        .filter(|r| r.name == "ports")
        .filter_map(|r| r.ranges.as_ref())
        .flat_map(|ranges| ranges.range.iter())
        .flat_map(|range| range.begin..=range.end)
        .take(MAX_PORTS)
        .collect()
}

/// Builds the command of a CommandInfo: `/bin/sh -c <value>` in shell mode (the default), else
/// `value` run with `arguments` as its whole argv (`arguments[0]` is what the process sees as its
/// name).
pub(crate) fn command_of(command: &pb::CommandInfo) -> std::io::Result<Command> {
    let value = command.value.clone().unwrap_or_default();
    if command.shell.unwrap_or(true) {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(value);
        return Ok(cmd);
    }
    if value.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "argv mode needs the executable in CommandInfo.value",
        ));
    }
    let mut cmd = Command::new(&value);
    if let Some((argv0, rest)) = command.arguments.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    Ok(cmd)
}

fn spawn_command(
    command: &pb::CommandInfo,
    sandbox: &Path,
    env: &[(String, String)],
) -> std::io::Result<Child> {
    let stdout = std::fs::File::create(sandbox.join("stdout"))?;
    let stderr = std::fs::File::create(sandbox.join("stderr"))?;
    let mut cmd = command_of(command)?;
    cmd.current_dir(sandbox)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    cmd.spawn()
}

fn append_to(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

/// Mesos' `WSTRINGIFY`: "exited with status N" or "terminated with signal <strsignal>".
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("terminated with signal {}", signal_description(signal)),
        (None, None) => "exited for an unknown reason".to_owned(),
    }
}

/// `strsignal(3)` on Linux for the signals a task is usually killed by.
fn signal_description(signal: i32) -> String {
    let text = match signal {
        1 => "Hangup",
        2 => "Interrupt",
        3 => "Quit",
        4 => "Illegal instruction",
        5 => "Trace/breakpoint trap",
        6 => "Aborted",
        7 => "Bus error",
        8 => "Floating point exception",
        9 => "Killed",
        10 => "User defined signal 1",
        11 => "Segmentation fault",
        12 => "User defined signal 2",
        13 => "Broken pipe",
        14 => "Alarm clock",
        15 => "Terminated",
        _ => return format!("Unknown signal {signal}"),
    };
    text.to_owned()
}

/// Sends a signal to a process group with the `kill` binary; a group already gone is not an error.
pub(crate) async fn signal_group(pgid: u32, signal: &str) {
    let result = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(error) = result {
        warn!(pgid, signal, %error, "could not run kill");
    }
}

/// Kills a process group when dropped, unless disarmed (`pgid = None`). This runs when a runner
/// is dropped mid-way (its runtime shut down): `kill_on_drop` only reaches the direct child.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    pub(crate) pgid: Option<u32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .arg("--")
                .arg(format!("-{pgid}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The name of the user this process runs as, from `/proc` and `/etc/passwd`.
fn current_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(ranges: &[(u64, u64)]) -> pb::Resource {
        pb::Resource {
            name: "ports".to_owned(),
            r#type: pb::value::Type::Ranges as i32,
            ranges: Some(pb::value::Ranges {
                range: ranges
                    .iter()
                    .map(|&(begin, end)| pb::value::Range { begin, end })
                    .collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ports_come_in_range_order() {
        let got = task_ports(&[ports(&[(31000, 31001), (31005, 31005)])]);
        assert_eq!(got, [31000, 31001, 31005]);
        assert!(task_ports(&[]).is_empty());
    }

    #[test]
    fn grace_comes_from_the_kill_policy() {
        let mut task = pb::TaskInfo::default();
        assert_eq!(task_grace(&task), DEFAULT_GRACE);
        task.kill_policy = Some(pb::KillPolicy {
            grace_period: Some(pb::DurationInfo {
                nanoseconds: 1_500_000_000,
            }),
        });
        assert_eq!(task_grace(&task), Duration::from_millis(1500));
    }

    #[test]
    fn docker_and_images_are_refused() {
        use pb::container_info::{MesosInfo, Type};
        let mut task = pb::TaskInfo::default();
        assert!(check_container(&task).is_ok());
        task.container = Some(pb::ContainerInfo {
            r#type: Type::Docker as i32,
            ..Default::default()
        });
        assert!(
            check_container(&task)
                .unwrap_err()
                .contains("docker containerizer")
        );
        task.container = Some(pb::ContainerInfo {
            r#type: Type::Mesos as i32,
            ..Default::default()
        });
        assert!(check_container(&task).is_ok());
        task.container = Some(pb::ContainerInfo {
            r#type: Type::Mesos as i32,
            mesos: Some(MesosInfo {
                image: Some(pb::Image::default()),
            }),
            ..Default::default()
        });
        assert!(
            check_container(&task)
                .unwrap_err()
                .contains("image provisioning")
        );
    }

    #[test]
    fn exits_are_described_as_mesos_does() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "terminated with signal Killed"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(15)),
            "terminated with signal Terminated"
        );
    }
}
