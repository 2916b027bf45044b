//! Helpers for the process-level tests (`tests/crash.rs`, `tests/recover.rs`): a dev cluster
//! started in the test process, the real `mesos-reconciler run` binary as a child process against
//! it (stderr captured to a file that is printed when a test fails), SIGKILL/SIGTERM of that
//! child, restarts with the same state directory (or a lost, restored or second one), and checks
//! of the cluster's tasks against the specs.
//!
//! Every wait here is a condition polled until a deadline, never a fixed sleep: the machine that
//! runs these tests is small and loaded, and a timeout says what was last seen.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use mesos_reconciler::controller::STATUS_ADDR_FILE;
use mesos_reconciler::devcluster::{AgentSpec, AgentSpecKind, DevCluster, DevClusterConfig};
use mesos_reconciler::status::{Snapshot, fetch_status};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The deadline of an ordinary wait: generous for a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(100);
/// How much of the controller's log is printed when a test fails (the whole file is kept).
const LOG_TAIL_LINES: usize = 300;
/// SIGABRT, what `std::process::abort` (the failpoints) ends the process with.
pub const SIGABRT: i32 = 6;
/// SIGKILL, what `Child::kill` sends.
pub const SIGKILL: i32 = 9;

/// A dev cluster of `agents` virtual agents with `resources` each, with short intervals so that
/// offers and re-sent status updates come quickly.
pub async fn start_cluster(agents: usize, resources: &str) -> DevCluster {
    DevCluster::start(cluster_config(agents, resources))
        .await
        .expect("the dev cluster starts")
}

/// The configuration [`start_cluster`] starts, for tests that change more of it.
pub fn cluster_config(agents: usize, resources: &str) -> DevClusterConfig {
    let agent = AgentSpec::parse(AgentSpecKind::Virtual, resources, "").expect("agent spec parses");
    DevClusterConfig {
        agents: vec![agent; agents],
        allocation_interval: Duration::from_millis(50),
        heartbeat_interval: Duration::from_secs(1),
        status_retry_initial: Duration::from_millis(300),
        status_retry_max: Duration::from_secs(2),
        ..DevClusterConfig::default()
    }
}

/// A spec that runs forever on a virtual agent, small enough that many fit on one agent.
pub fn service_spec(instances: u32) -> String {
    format!(
        "command = \"sleep 3600\"\ncpus = 0.1\nmem = 32\ninstances = {instances}\nrestart = \"always\"\n"
    )
}

/// Polls `check` until it returns `Ok`, or panics after `deadline` with `what` and the last reason
/// `check` gave. A check that hangs (a controller that stopped answering) counts against the
/// deadline too.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let end = Instant::now() + deadline;
    let mut last = "nothing yet".to_owned();
    loop {
        match tokio::time::timeout_at(end, check()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(reason)) => last = reason,
            Err(_) => last = format!("the check itself hung; before that: {last}"),
        }
        if Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One test's directories (specs, controller state, log) and how to start the controller in them.
/// Dropped during a panic, it prints the end of the controller's log and keeps the directory.
#[derive(Debug)]
pub struct Fixture {
    root: PathBuf,
    pub desired: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
    master: String,
    starts: u32,
}

impl Fixture {
    /// Creates `<tmp>/mesos-reconciler-crash-<name>-<uuid>/{desired,state}`.
    pub fn new(name: &str, master: &str) -> Fixture {
        let root = std::env::temp_dir().join(format!(
            "mesos-reconciler-crash-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let desired = root.join("desired");
        let state = root.join("state");
        fs::create_dir_all(&desired).expect("create the desired dir");
        fs::create_dir_all(&state).expect("create the state dir");
        let log = root.join("controller.log");
        Fixture {
            root,
            desired,
            state,
            log,
            master: master.to_owned(),
            starts: 0,
        }
    }

    /// Writes `desired/<id>.toml` atomically: a hidden temporary file (which the controller
    /// ignores) renamed over the target, so the controller never reads half a file.
    pub fn write_spec(&self, id: &str, body: &str) {
        let target = self.desired.join(format!("{id}.toml"));
        let parent = target.parent().expect("a spec file has a parent");
        fs::create_dir_all(parent).expect("create the spec's directory");
        let tmp = parent.join(format!(".{}.partial", uuid::Uuid::new_v4().simple()));
        fs::write(&tmp, body).expect("write the spec");
        fs::rename(&tmp, &target).expect("rename the spec into place");
    }

    /// Writes one service spec per entry (`spec id -> instances`), each atomically.
    pub fn write_specs(&self, specs: &BTreeMap<String, u32>) {
        for (id, &instances) in specs {
            self.write_spec(id, &service_spec(instances));
        }
    }

    /// The whole controller log so far (every start), for assertions on what it said.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Deletes the state directory and creates it empty (a lost disk, a wrong `--state`).
    pub fn lose_state(&self) {
        fs::remove_dir_all(&self.state).expect("delete the state dir");
        fs::create_dir_all(&self.state).expect("create the state dir");
    }

    /// Copies the state directory to `<root>/<name>` (a backup; take it while no controller runs).
    pub fn back_up_state(&self, name: &str) -> PathBuf {
        let to = self.root.join(name);
        copy_dir(&self.state, &to);
        to
    }

    /// Replaces the state directory with the copy at `from`.
    pub fn restore_state(&self, from: &Path) {
        fs::remove_dir_all(&self.state).expect("delete the state dir");
        copy_dir(from, &self.state);
    }

    /// Another state directory under this fixture's root, for a second controller.
    pub fn other_state(&self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).expect("create another state dir");
        dir
    }

    /// Starts `mesos-reconciler run` against the master, with this fixture's directories, a status
    /// server on a free port and, if given, the failpoint that aborts it. Its stderr is appended to
    /// the fixture's log under a header naming the start.
    pub fn spawn(&mut self, failpoint: Option<&str>) -> ControllerProc {
        self.spawn_with(Spawn {
            failpoint,
            ..Spawn::default()
        })
    }

    /// [`Fixture::spawn`] with more choices: another state directory, more arguments, more
    /// environment.
    pub fn spawn_with(&mut self, how: Spawn<'_>) -> ControllerProc {
        let Spawn {
            failpoint,
            state,
            args,
            env,
        } = how;
        let state = state.unwrap_or(&self.state).to_owned();
        self.starts += 1;
        // A stale address file would point at the previous (dead) process.
        let addr_file = state.join(STATUS_ADDR_FILE);
        match fs::remove_file(&addr_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove {}: {e}", addr_file.display()),
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the controller log");
        writeln!(
            log,
            "===== start {} (failpoint: {}, state: {}, args: {args:?}) =====",
            self.starts,
            failpoint.unwrap_or("none"),
            state.display()
        )
        .expect("write the log header");
        let mut command = Command::new(env!("CARGO_BIN_EXE_mesos-reconciler"));
        command
            .arg("run")
            .arg("--master")
            .arg(&self.master)
            .arg("--desired")
            .arg(&self.desired)
            .arg("--state")
            .arg(&state)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .env("MESOS_RECONCILER_LOG", "info")
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone the log handle")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        match failpoint {
            Some(name) => command.env("MESOS_RECONCILER_FAILPOINT", name),
            None => command.env_remove("MESOS_RECONCILER_FAILPOINT"),
        };
        let child = command.spawn().expect("spawn mesos-reconciler run");
        ControllerProc {
            child,
            addr_file,
            status_url: OnceLock::new(),
            desired: self.desired.clone(),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // CRASH_SHOW_LOGS=1 shows (and keeps) the logs of passing tests too, to see what they did.
        if std::thread::panicking() || std::env::var_os("CRASH_SHOW_LOGS").is_some() {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL_LINES);
            eprintln!(
                "----- controller log (last {} of {} lines; whole file kept at {}) -----",
                lines.len() - from,
                lines.len(),
                self.log.display()
            );
            for line in &lines[from..] {
                eprintln!("{line}");
            }
            eprintln!("----- end of controller log -----");
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// How [`Fixture::spawn_with`] starts the controller; the default is [`Fixture::spawn`]`(None)`.
#[derive(Debug, Default)]
pub struct Spawn<'a> {
    /// `MESOS_RECONCILER_FAILPOINT`.
    pub failpoint: Option<&'a str>,
    /// Another state directory than the fixture's.
    pub state: Option<&'a Path>,
    /// More arguments of `run` (`--takeover`, ...).
    pub args: &'a [&'a str],
    /// More environment variables.
    pub env: &'a [(&'a str, &'a str)],
}

/// Copies a directory tree (files and subdirectories).
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the copy's directory");
    for entry in fs::read_dir(from).expect("read the directory to copy") {
        let entry = entry.expect("read a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// A running (or exited) controller process.
#[derive(Debug)]
pub struct ControllerProc {
    child: Child,
    addr_file: PathBuf,
    status_url: OnceLock<String>,
    /// The desired directory, where [`ControllerProc::nudge`] writes.
    desired: PathBuf,
}

impl ControllerProc {
    pub fn pid(&self) -> u32 {
        self.child
            .id()
            .expect("the controller has not been reaped yet")
    }

    /// `http://<status-addr>`: waits until the controller has written `<state>/status-addr`, and
    /// fails at once if the process exits first.
    pub async fn status_url(&mut self) -> String {
        if let Some(url) = self.status_url.get() {
            return url.clone();
        }
        let file = self.addr_file.clone();
        let child = &mut self.child;
        let url = wait_for("the controller's status-addr file", DEADLINE, || {
            if let Some(status) = child.try_wait().expect("poll the controller") {
                panic!(
                    "the controller exited ({}) before writing its status address",
                    describe_exit(status)
                );
            }
            std::future::ready(read_addr(&file))
        })
        .await;
        self.status_url.get_or_init(|| url).clone()
    }

    /// The controller's latest published snapshot; `Err` while it is not listening yet or does
    /// not answer.
    pub async fn status(&self) -> Result<Snapshot, String> {
        let url = match self.status_url.get() {
            Some(url) => url.clone(),
            None => {
                let url = read_addr(&self.addr_file)?;
                self.status_url.get_or_init(|| url).clone()
            }
        };
        fetch_status(&url).await.map_err(|e| format!("{url}: {e}"))
    }

    /// `GET /readyz`: its status code and body.
    pub async fn readyz(&mut self) -> Result<(u16, String), String> {
        let url = self.status_url().await;
        let http = mesos_reconciler::http::client_builder()
            .build()
            .map_err(|e| e.to_string())?;
        let response = http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let code = response.status().as_u16();
        Ok((code, response.text().await.map_err(|e| e.to_string())?))
    }

    /// Waits until `/readyz` answers `code` with a body containing `needle`; returns the body.
    pub async fn wait_readyz(&mut self, code: u16, needle: &str) -> String {
        let what = format!("/readyz to answer {code} with {needle:?}");
        let end = Instant::now() + DEADLINE;
        loop {
            let last = match self.readyz().await {
                Ok((c, body)) if c == code && body.contains(needle) => return body,
                Ok((c, body)) => format!("{c}: {body}"),
                Err(e) => e,
            };
            assert!(Instant::now() < end, "{what}: last {last}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wakes the controller's loop without changing the desired set: an ignored file changes, the
    /// watcher sends a hint, the loop runs a pass and publishes it (an idle controller whose
    /// snapshot is not cheap to build publishes its pass counter only once a minute).
    pub fn nudge(&self) {
        fs::write(
            self.desired.join("_nudge.txt"),
            uuid::Uuid::new_v4().to_string(),
        )
        .expect("write the nudge file");
    }

    /// SIGKILL, and waits for the process to be gone (its sled lock is released with it).
    pub async fn kill9(&mut self) -> ExitStatus {
        self.child.kill().await.expect("SIGKILL the controller");
        self.wait_exit(DEADLINE).await
    }

    /// SIGTERM (through the shell's `kill`, since the tests may not use `unsafe` for libc).
    pub fn sigterm(&self) {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {}", self.pid()))
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => status.expect("wait for the controller"),
            Err(_) => panic!("the controller did not exit within {deadline:?}"),
        }
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll the controller")
    }
}

fn read_addr(file: &Path) -> Result<String, String> {
    let text = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    // Written with a plain write: a read may see it half-written, so parse before trusting it.
    let addr: std::net::SocketAddr = text
        .trim()
        .parse()
        .map_err(|e| format!("{}: {text:?}: {e}", file.display()))?;
    Ok(format!("http://{addr}"))
}

/// The signal that ended a process, described for assertion messages.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => format!("{status}"),
    }
}

/// One framework as `GET /master/state` shows it.
#[derive(Debug, Clone)]
pub struct FrameworkView {
    pub id: String,
    pub active: bool,
    /// Seconds, as the framework registered it.
    pub failover_timeout: f64,
    /// Non-terminal tasks (what the master lists under `tasks`).
    pub tasks: Vec<TaskView>,
}

/// One task as `GET /master/state` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TaskView {
    pub id: String,
    /// The task name, which the controller sets to the spec id.
    pub name: String,
    pub state: String,
}

impl TaskView {
    /// The instance number the task id names (`mesos_reconciler::task_ids`).
    pub fn instance(&self) -> Option<u32> {
        mesos_reconciler::task_ids::parse(&self.id).map(|p| p.instance)
    }
}

/// The frameworks the master knows (connected or within their failover timeout).
pub async fn frameworks(cluster: &DevCluster) -> Vec<FrameworkView> {
    let state = cluster.state().await;
    frameworks_of(&state)
}

pub fn frameworks_of(state: &serde_json::Value) -> Vec<FrameworkView> {
    let Some(list) = state["frameworks"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|f| FrameworkView {
            id: f["id"].as_str().unwrap_or_default().to_owned(),
            active: f["active"].as_bool().unwrap_or(false),
            failover_timeout: f["failover_timeout"].as_f64().unwrap_or(0.0),
            tasks: f["tasks"]
                .as_array()
                .map(|tasks| {
                    tasks
                        .iter()
                        .map(|t| TaskView {
                            id: t["id"].as_str().unwrap_or_default().to_owned(),
                            name: t["name"].as_str().unwrap_or_default().to_owned(),
                            state: t["state"].as_str().unwrap_or_default().to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// The ids of the tasks in TASK_RUNNING, across all frameworks.
pub fn running_ids(frameworks: &[FrameworkView]) -> BTreeSet<String> {
    frameworks
        .iter()
        .flat_map(|f| &f.tasks)
        .filter(|t| t.state == "TASK_RUNNING")
        .map(|t| t.id.clone())
        .collect()
}

/// Checks the cluster against the specs (`spec id -> instances`) and the controller's snapshot:
/// exactly one framework; every non-terminal task RUNNING; exactly one running task per wanted
/// instance (none missing, none duplicated); no running task of a spec that does not exist or of
/// an instance beyond `instances`; every running task known to the controller (no orphan).
/// `Err` says the first thing that does not hold.
pub fn check_converged(
    frameworks: &[FrameworkView],
    snapshot: &Snapshot,
    specs: &BTreeMap<String, u32>,
) -> Result<(), String> {
    if frameworks.len() != 1 {
        let ids: Vec<&str> = frameworks.iter().map(|f| f.id.as_str()).collect();
        return Err(format!(
            "the master shows {} frameworks ({ids:?}), expected 1",
            frameworks.len()
        ));
    }
    let tasks = &frameworks[0].tasks;
    if let Some(t) = tasks.iter().find(|t| t.state != "TASK_RUNNING") {
        return Err(format!("task {} is {} (not running yet)", t.id, t.state));
    }
    let mut by_instance: BTreeMap<(String, u32), Vec<&str>> = BTreeMap::new();
    for t in tasks {
        let instance = t
            .instance()
            .ok_or_else(|| format!("task id {} does not name an instance", t.id))?;
        match specs.get(&t.name) {
            None => return Err(format!("task {} belongs to no spec ({})", t.id, t.name)),
            Some(&n) if instance >= n => {
                return Err(format!(
                    "task {} is instance {instance} of {}, which wants {n}",
                    t.id, t.name
                ));
            }
            Some(_) => {}
        }
        by_instance
            .entry((t.name.clone(), instance))
            .or_default()
            .push(&t.id);
    }
    for ((spec, instance), ids) in &by_instance {
        if ids.len() > 1 {
            return Err(format!(
                "{spec}#{instance} runs {} times: {ids:?}",
                ids.len()
            ));
        }
    }
    for (spec, &n) in specs {
        for instance in 0..n {
            if !by_instance.contains_key(&(spec.clone(), instance)) {
                return Err(format!("{spec}#{instance} is not running"));
            }
        }
    }
    let known: BTreeSet<&str> = snapshot.tasks.iter().map(|t| t.task_id.as_str()).collect();
    if let Some(t) = tasks.iter().find(|t| !known.contains(t.id.as_str())) {
        return Err(format!(
            "task {} runs in the master but the controller does not list it (orphan)",
            t.id
        ));
    }
    Ok(())
}

/// Waits until the controller is ready (reconciled after subscribing) and has run `more` passes
/// since, so that offers made after the re-subscription have been planned on. Returns the
/// snapshot then.
pub async fn wait_ready_and_passes(proc: &ControllerProc, more: u64) -> Snapshot {
    let ready = wait_for("the controller to be ready", DEADLINE, || {
        let status = proc.status();
        async move {
            let s = status.await?;
            if s.ready && s.connected {
                Ok(s)
            } else {
                Err(format!("ready={} connected={}", s.ready, s.connected))
            }
        }
    })
    .await;
    let target = ready.counters.passes + more;
    wait_for("a few more passes", DEADLINE, || {
        proc.nudge();
        let status = proc.status();
        async move {
            let s = status.await?;
            if s.counters.passes >= target {
                Ok(s)
            } else {
                Err(format!(
                    "{} passes, waiting for {target}",
                    s.counters.passes
                ))
            }
        }
    })
    .await
}

/// Waits until the cluster matches the specs and the controller knows every running task.
pub async fn wait_converged(
    cluster: &DevCluster,
    proc: &ControllerProc,
    specs: &BTreeMap<String, u32>,
    deadline: Duration,
) -> (Vec<FrameworkView>, Snapshot) {
    wait_for("the cluster to converge on the specs", deadline, || {
        let status = proc.status();
        async move {
            let snapshot = status.await?;
            let fws = frameworks(cluster).await;
            check_converged(&fws, &snapshot, specs)?;
            Ok((fws, snapshot))
        }
    })
    .await
}
