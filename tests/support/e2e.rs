//! Shared helpers for the controller's in-process end-to-end tests: a dev cluster with process or
//! virtual agents and a short allocation interval, spec files written atomically, the controller
//! run in the test's own tokio runtime with a temporary state directory and a status listener on
//! port 0, a per-test capture of tracing events, and polling waits whose failures say what was
//! awaited and dump what was seen instead.
//!
//! Included by path (`#[path = "support/e2e.rs"] mod e2e;`), so that each test binary takes only
//! the helpers it needs. Tests run on the default current-thread runtime: every task of the dev
//! cluster and the controller then runs on the test's thread, which is what lets the log capture
//! (a thread-local default subscriber) see all of them.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesos_reconciler::controller::{ControllerConfig, ControllerError};
use mesos_reconciler::devcluster::{AgentSpec, AgentSpecKind, DevCluster, DevClusterConfig};
use mesos_reconciler::mesos::client::ClientConfig;
use mesos_reconciler::mesos::convert::FrameworkSettings;
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::status::{Snapshot, SpecStatus};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing_subscriber::layer::SubscriberExt as _;

/// How long any single wait may take: generous, for a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How often waits poll.
const POLL: Duration = Duration::from_millis(100);
/// What every test agent offers: 4 cpus, plenty of memory and a port range.
pub const AGENT_RESOURCES: &str = "cpus:4;mem:8192;disk:20000;ports:[31000-32000]";

// ---------------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------------

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "mesos-reconciler-e2e-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Log capture
// ---------------------------------------------------------------------------------------------

/// One tracing event: where it came from, its level, message and other fields as text.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub target: String,
    pub level: tracing::Level,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

impl LogEvent {
    /// `LEVEL target: message k=v ...`, as a line for failure messages.
    pub fn line(&self) -> String {
        let mut s = format!("{} {}: {}", self.level, self.target, self.message);
        for (k, v) in &self.fields {
            let _ = write!(s, " {k}={v}");
        }
        s
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// The events recorded by this test's subscriber (all threads that use it as default).
#[derive(Debug, Clone, Default)]
pub struct Logs {
    events: Arc<Mutex<Vec<LogEvent>>>,
}

impl Logs {
    pub fn all(&self) -> Vec<LogEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Events whose message contains `text`.
    pub fn matching(&self, text: &str) -> Vec<LogEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.message.contains(text))
            .cloned()
            .collect()
    }

    /// The last `n` events at INFO or above, as lines.
    pub fn tail(&self, n: usize) -> String {
        let events = self.events.lock().unwrap();
        let important: Vec<&LogEvent> = events
            .iter()
            .filter(|e| e.level <= tracing::Level::INFO)
            .collect();
        let skip = important.len().saturating_sub(n);
        important[skip..]
            .iter()
            .map(|e| e.line())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

struct Capture {
    logs: Logs,
    echo: bool,
}

struct Visitor<'a> {
    message: &'a mut String,
    fields: &'a mut BTreeMap<String, String>,
}

impl Visitor<'_> {
    /// An event given both a format string and a field named `message` records `message` twice;
    /// the fmt subscriber prints both, so keep both too.
    fn message_part(&mut self, part: &str) {
        if !self.message.is_empty() {
            self.message.push_str(" | ");
        }
        self.message.push_str(part);
    }
}

impl tracing::field::Visit for Visitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message_part(value);
        } else {
            self.fields
                .insert(field.name().to_owned(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message_part(&format!("{value:?}"));
        } else {
            self.fields
                .insert(field.name().to_owned(), format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    /// Spans are recorded as events whose message is `span <name>` (e.g. the controller's
    /// `pass` span, with the `why` of each pass).
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = attrs.metadata();
        let mut message = String::new();
        let mut fields = BTreeMap::new();
        attrs.record(&mut Visitor {
            message: &mut message,
            fields: &mut fields,
        });
        self.logs.events.lock().unwrap().push(LogEvent {
            target: meta.target().to_owned(),
            level: *meta.level(),
            message: format!("span {}", meta.name()),
            fields,
        });
    }

    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        let mut message = String::new();
        let mut fields = BTreeMap::new();
        event.record(&mut Visitor {
            message: &mut message,
            fields: &mut fields,
        });
        let e = LogEvent {
            target: meta.target().to_owned(),
            level: *meta.level(),
            message,
            fields,
        };
        if self.echo {
            eprintln!("{}", e.line());
        }
        self.logs.events.lock().unwrap().push(e);
    }
}

/// Installs a capturing subscriber as this thread's default (debug and above of this crate).
/// `E2E_LOG=1` also prints every event to stderr (shown by libtest for failing tests).
fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("mesos_reconciler", tracing::Level::DEBUG);
    let subscriber = tracing_subscriber::registry().with(filter).with(Capture {
        logs: logs.clone(),
        echo: std::env::var_os("E2E_LOG").is_some(),
    });
    let guard = tracing::subscriber::set_default(subscriber);
    (logs, guard)
}

// ---------------------------------------------------------------------------------------------
// The world of one test: cluster, directories, logs
// ---------------------------------------------------------------------------------------------

/// A process agent with [`AGENT_RESOURCES`].
pub fn process_agent() -> AgentSpec {
    AgentSpec::parse(AgentSpecKind::Process, AGENT_RESOURCES, "rack:r1").unwrap()
}

/// A virtual agent with [`AGENT_RESOURCES`].
pub fn virtual_agent() -> AgentSpec {
    AgentSpec::parse(AgentSpecKind::Virtual, AGENT_RESOURCES, "rack:r1").unwrap()
}

/// An agent of `kind` that reports `hostname`.
pub fn agent_named(kind: AgentSpecKind, hostname: &str) -> AgentSpec {
    let mut a = AgentSpec::parse(kind, AGENT_RESOURCES, "rack:r1").unwrap();
    a.hostname = Some(hostname.to_owned());
    a
}

/// Everything one test works with. Dropping it stops the cluster's actor (tasks of process agents
/// are killed when the runtime drops them); [`World::shutdown`] does it cleanly.
#[derive(Debug)]
pub struct World {
    pub cluster: DevCluster,
    /// Everything on disk: `desired/`, `state/`, `cluster/` (sandboxes), `out/` (files tasks write).
    pub root: TempDir,
    pub desired: PathBuf,
    pub state: PathBuf,
    pub out: PathBuf,
    pub logs: Logs,
    _log_guard: Option<tracing::subscriber::DefaultGuard>,
}

/// Starts a dev cluster with `agents` (allocation every 50 ms, heartbeats every second, fast
/// status-update retries) and creates the directories.
pub async fn world(label: &str, agents: Vec<AgentSpec>) -> World {
    let (logs, guard) = capture_logs();
    let root = TempDir::new(label);
    let desired = root.path().join("desired");
    let state = root.path().join("state");
    let out = root.path().join("out");
    for d in [&desired, &state, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    let cluster = DevCluster::start(DevClusterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        agents,
        allocation_interval: Duration::from_millis(50),
        heartbeat_interval: Duration::from_secs(1),
        status_retry_initial: Duration::from_millis(500),
        status_retry_max: Duration::from_secs(2),
        reregister_delay: Duration::from_millis(500),
        work_dir: root.path().join("cluster"),
        ..DevClusterConfig::default()
    })
    .await
    .expect("the dev cluster starts");
    World {
        cluster,
        root,
        desired,
        state,
        out,
        logs,
        _log_guard: Some(guard),
    }
}

impl World {
    /// Stops the cluster (and with it every task it runs).
    pub async fn shutdown(self) {
        let World { cluster, .. } = self;
        cluster.shutdown().await;
    }

    // ---- spec files ----

    /// Writes `desired/<id>.toml` atomically: a dot-file in the same directory, then a rename.
    pub fn write_spec(&self, id: &str, text: &str) {
        write_spec_in(&self.desired, id, text);
    }

    pub fn delete_spec(&self, id: &str) {
        std::fs::remove_file(self.desired.join(format!("{id}.toml"))).expect("delete a spec file");
    }

    /// Wakes the controller's loop without changing the desired set: an ignored file changes,
    /// the watcher sends a hint, the loop runs one pass.
    pub fn nudge(&self) {
        let path = self.desired.join("_nudge.txt");
        std::fs::write(&path, uuid::Uuid::new_v4().to_string()).unwrap();
    }

    // ---- the controller ----

    /// Starts the controller with a one-week failover timeout.
    pub async fn start_controller(&self) -> Controller {
        self.start_controller_with(Duration::from_secs(7 * 24 * 3600))
            .await
    }

    /// Starts the controller in this runtime with the given failover timeout.
    pub async fn start_controller_with(&self, failover_timeout: Duration) -> Controller {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let status_url = format!("http://{}", listener.local_addr().unwrap());
        let config = ControllerConfig {
            desired: self.desired.clone(),
            state_dir: self.state.clone(),
            client: ClientConfig::new(vec![self.cluster.url().parse().unwrap()]),
            framework: FrameworkSettings {
                name: "e2e".to_owned(),
                user: current_user(),
                roles: vec![],
                principal: None,
                failover_timeout,
                hostname: None,
                webui_url: None,
            },
            role: "*".to_owned(),
            status: Some(listener),
            framework_id: None,
            takeover: false,
            status_token: None,
            spec_policy: Default::default(),
            leadership: None,
            // Every snapshot is partial until a request asks for the rows: the tests read the
            // status through the path a large controller takes (a test's few specs are all in
            // the partial snapshot's first page, so reads are answered from it at once).
            rows_on_demand_from: 0,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(mesos_reconciler::controller::run(config, async move {
            let _ = stopped.await;
        }));
        let ctl = Controller {
            stop: Some(stop),
            task: Some(task),
            status_url,
        };
        ctl.wait_status("the controller to subscribe and reconcile", |s| {
            if s.ready && s.connected {
                Ok(())
            } else {
                Err(format!("ready={} connected={}", s.ready, s.connected))
            }
        })
        .await;
        ctl
    }

    // ---- the cluster as the master sees it ----

    /// Every task of every framework the master knows (live and completed).
    pub async fn master_tasks(&self) -> Vec<MasterTask> {
        master_tasks_of(&self.cluster.state().await)
    }

    /// Non-terminal tasks named `spec` (the task name is the spec id).
    pub async fn live_tasks(&self, spec: &str) -> Vec<MasterTask> {
        self.master_tasks()
            .await
            .into_iter()
            .filter(|t| t.name == spec && !t.is_terminal())
            .collect()
    }

    /// Waits until the master shows exactly `n` tasks of `spec`, all TASK_RUNNING (nothing
    /// staging, nothing being killed), and returns them sorted by id.
    pub async fn wait_running(&self, ctl: &Controller, spec: &str, n: usize) -> Vec<MasterTask> {
        self.wait(ctl, &format!("{n} running task(s) of {spec}"), async || {
            let live = self.live_tasks(spec).await;
            let running = live.iter().filter(|t| t.state == "TASK_RUNNING").count();
            if running == n && live.len() == n {
                Ok(live)
            } else {
                Err(format!(
                    "{running} running, {} live: {}",
                    live.len(),
                    describe_tasks(&live)
                ))
            }
        })
        .await
    }

    /// Polls `probe` until it returns `Ok`, at most [`DEADLINE`]. On timeout, panics with what
    /// was awaited, the probe's last answer, the master's tasks, the controller's view of the
    /// specs and the last log lines.
    pub async fn wait<T>(
        &self,
        ctl: &Controller,
        what: &str,
        probe: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        self.wait_inner(Some(ctl), what, probe).await
    }

    /// [`World::wait`] while no controller runs.
    pub async fn wait_cluster<T>(
        &self,
        what: &str,
        probe: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        self.wait_inner(None, what, probe).await
    }

    async fn wait_inner<T>(
        &self,
        ctl: Option<&Controller>,
        what: &str,
        mut probe: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < DEADLINE {
            match probe().await {
                Ok(v) => return v,
                Err(seen) => last = seen,
            }
            tokio::time::sleep(POLL).await;
        }
        let controller = match ctl {
            Some(ctl) => describe_snapshot(&ctl.status().await),
            None => "(not running)".to_owned(),
        };
        panic!(
            "timed out after {DEADLINE:?} waiting for {what}\n--- last seen:\n{last}\n--- master tasks:\n{}\n--- controller:\n{controller}\n--- log:\n{}",
            describe_tasks(&self.master_tasks().await),
            self.logs.tail(40)
        );
    }

    /// Runs `n` more passes of the controller, each woken by a nudge, and returns the snapshot
    /// after them. Used to show that something does *not* happen: the controller has looked at
    /// the state several times and decided nothing.
    pub async fn settle(&self, ctl: &Controller, n: u64) -> Snapshot {
        let mut snap = ctl.status().await;
        for i in 0..n {
            let before = snap.counters.passes;
            self.nudge();
            snap = self
                .wait(
                    ctl,
                    &format!("settling pass {} of {n}", i + 1),
                    async || {
                        let s = ctl.status().await;
                        if s.counters.passes > before {
                            Ok(s)
                        } else {
                            Err(format!("passes = {}", s.counters.passes))
                        }
                    },
                )
                .await;
        }
        snap
    }
}

/// Writes `<dir>/<id>.toml` atomically (dot-file, then rename), creating subdirectories.
pub fn write_spec_in(dir: &Path, id: &str, text: &str) {
    let path = dir.join(format!("{id}.toml"));
    let parent = path.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    let tmp = parent.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// The name of the user running the tests (the framework's user, so that process agents do not
/// complain about switching users).
pub fn current_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".to_owned())
}

// ---------------------------------------------------------------------------------------------
// The controller, run in-process
// ---------------------------------------------------------------------------------------------

/// A controller running in the test's runtime. Stop it with [`Controller::stop`]; dropping it
/// aborts it.
#[derive(Debug)]
pub struct Controller {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ControllerError>>>,
    pub status_url: String,
}

impl Controller {
    /// Completes the shutdown future and waits for `run` to return; panics if it fails.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        match tokio::time::timeout(DEADLINE, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("the controller stopped with an error: {e}"),
            Ok(Err(e)) => panic!("the controller task failed: {e}"),
            Err(_) => panic!("the controller did not stop within {DEADLINE:?}"),
        }
    }

    /// The latest snapshot (panics if the status server does not answer).
    pub async fn status(&self) -> Snapshot {
        mesos_reconciler::status::fetch_status(&self.status_url)
            .await
            .expect("the status server answers")
    }

    /// Waits until `check` accepts a snapshot; on timeout panics with its last complaint and
    /// the snapshot.
    pub async fn wait_status<T>(
        &self,
        what: &str,
        mut check: impl FnMut(&Snapshot) -> Result<T, String>,
    ) -> T {
        let start = Instant::now();
        let mut last = String::new();
        let mut snap = Snapshot::default();
        while start.elapsed() < DEADLINE {
            if let Ok(s) = mesos_reconciler::status::fetch_status(&self.status_url).await {
                match check(&s) {
                    Ok(v) => return v,
                    Err(seen) => last = seen,
                }
                snap = s;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "timed out after {DEADLINE:?} waiting for {what}\n--- last seen: {last}\n--- controller:\n{}",
            describe_snapshot(&snap)
        );
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The spec `id` in a snapshot.
pub fn spec_of<'a>(snap: &'a Snapshot, id: &str) -> Option<&'a SpecStatus> {
    snap.specs.iter().find(|s| s.id == id)
}

// ---------------------------------------------------------------------------------------------
// The master's view
// ---------------------------------------------------------------------------------------------

/// A task from `/master/state`.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterTask {
    pub id: String,
    pub name: String,
    pub state: String,
    pub agent: String,
    pub framework: String,
    pub labels: BTreeMap<String, String>,
}

impl MasterTask {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.state.as_str(),
            "TASK_FINISHED"
                | "TASK_FAILED"
                | "TASK_KILLED"
                | "TASK_ERROR"
                | "TASK_LOST"
                | "TASK_DROPPED"
                | "TASK_GONE"
                | "TASK_GONE_BY_OPERATOR"
        )
    }

    /// The generation label the controller puts on its tasks.
    pub fn generation(&self) -> &str {
        self.labels
            .get("mesos-reconciler.generation")
            .map_or("", String::as_str)
    }
}

/// Every task in a `/master/state` document: `tasks`, `unreachable_tasks` and `completed_tasks`
/// of live and completed frameworks, de-duplicated by id (the live entry wins).
pub fn master_tasks_of(state: &Value) -> Vec<MasterTask> {
    let mut out: BTreeMap<String, MasterTask> = BTreeMap::new();
    let frameworks = ["frameworks", "completed_frameworks"]
        .iter()
        .flat_map(|k| state[*k].as_array().cloned().unwrap_or_default());
    for f in frameworks {
        for list in ["completed_tasks", "unreachable_tasks", "tasks"] {
            for t in f[list].as_array().cloned().unwrap_or_default() {
                let labels = t["labels"]
                    .as_array()
                    .map(|ls| {
                        ls.iter()
                            .filter_map(|l| {
                                Some((
                                    l["key"].as_str()?.to_owned(),
                                    l["value"].as_str()?.to_owned(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let task = MasterTask {
                    id: t["id"].as_str().unwrap_or_default().to_owned(),
                    name: t["name"].as_str().unwrap_or_default().to_owned(),
                    state: t["state"].as_str().unwrap_or_default().to_owned(),
                    agent: t["slave_id"].as_str().unwrap_or_default().to_owned(),
                    framework: t["framework_id"].as_str().unwrap_or_default().to_owned(),
                    labels,
                };
                out.insert(task.id.clone(), task);
            }
        }
    }
    out.into_values().collect()
}

/// One line per task.
pub fn describe_tasks(tasks: &[MasterTask]) -> String {
    if tasks.is_empty() {
        return "(none)".to_owned();
    }
    tasks
        .iter()
        .map(|t| format!("  {} {} on {} [{}]", t.id, t.state, t.agent, t.name))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The parts of a snapshot a failing test wants to see.
pub fn describe_snapshot(s: &Snapshot) -> String {
    let mut out = format!(
        "ready={} connected={} framework={:?} desired_error={:?} guard={:?}\ncounters={:?}\n",
        s.ready, s.connected, s.framework_id, s.desired_error, s.guard, s.counters
    );
    for spec in &s.specs {
        let _ = writeln!(
            out,
            "spec {} gen={:?} instances={} running={} error={:?} rollout={:?}",
            spec.id, spec.generation, spec.instances, spec.running, spec.error, spec.rollout
        );
        for p in &spec.pending {
            let _ = writeln!(out, "  pending #{}: {}", p.instance, p.reason);
        }
        for a in spec.history.iter().take(6) {
            let _ = writeln!(
                out,
                "  attempt #{} {} {} {:?} started={} ended={:?}",
                a.instance, a.task_id, a.state, a.reason, a.started_ms, a.ended_ms
            );
        }
    }
    for t in &s.tasks {
        let _ = writeln!(
            out,
            "task {} {} #{} {}",
            t.task_id, t.spec, t.instance, t.state
        );
    }
    out
}

/// The labels of a TaskInfo as a map.
pub fn labels_of(info: &pb::TaskInfo) -> BTreeMap<String, String> {
    info.labels
        .iter()
        .flat_map(|ls| ls.labels.iter())
        .map(|l| (l.key.clone(), l.value.clone().unwrap_or_default()))
        .collect()
}

/// The shell command of a TaskInfo (empty for argv commands).
pub fn command_of(info: &pb::TaskInfo) -> String {
    info.command
        .as_ref()
        .and_then(|c| c.value.clone())
        .unwrap_or_default()
}

/// A future that never completes, for `select!` arms that must not fire.
pub async fn never() {
    std::future::pending::<()>().await
}

/// Awaits `fut` at most [`DEADLINE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not complete within {DEADLINE:?}"))
}
