//! Third-party client proof: pymesos (the Python Mesos client of the original tutorial), unchanged,
//! against the dev cluster. Each test starts a DevCluster in-process with one process agent, runs a
//! script from `tests/pymesos/` as a child (`python3 <script> <master host:port> <args>`), and checks
//! both the script's `STATUS <task> <state>` lines and the master's own state.
//!
//! pymesos must be importable: `.ci/install-pymesos` installs it (`.ci/test` runs it first). The
//! interpreter is `$PYTHON` or `python3`, as in that script.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use mesos_reconciler::devcluster::{AgentSpec, AgentSpecKind, DevCluster, DevClusterConfig};
use serde_json::Value;

/// How long one script run may take: generous for a loaded 2-core machine (they need ~1 s).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);
/// How long the master may take to show what a script did in its state.
const STATE_DEADLINE: Duration = Duration::from_secs(30);

/// The tutorial's framework: `echo HelloWorld` and `mkdir -p <tmp>/HelloMesos` both finish, the
/// directory exists, and the driver's stop tore the framework down.
#[tokio::test]
async fn tutorial_framework_runs_both_tasks_to_finished() {
    let tmp = TempDir::new("tutorial");
    let cluster = start_cluster(&tmp).await;
    let out = run_script("tutorial.py", &[&master(&cluster), path_str(&tmp.0)]).await;

    for line in [
        "STATUS taskHelloWorld TASK_FINISHED",
        "STATUS taskDIR TASK_FINISHED",
        "DONE",
    ] {
        assert_line(&out, line);
    }
    assert!(
        tmp.0.join("HelloMesos").is_dir(),
        "taskDIR finished but {}/HelloMesos does not exist",
        tmp.0.display()
    );

    // The master received the tutorial's TaskInfos as written (addict Dicts sent as JSON).
    let commands: Vec<String> = cluster
        .received_task_infos()
        .await
        .into_iter()
        .filter_map(|t| t.command.and_then(|c| c.value))
        .collect();
    let mkdir = format!("mkdir -p {}/HelloMesos", tmp.0.display());
    assert_eq!(commands, ["echo HelloWorld", mkdir.as_str()]);

    // driver.stop() without failover sends TEARDOWN: the framework is completed, tasks included.
    let framework_id = field(&out, "REGISTERED");
    let state = wait_for_state(&cluster, "the framework's removal", |s| {
        framework(s, "completed_frameworks", &framework_id).is_some()
    })
    .await;
    let completed = framework(&state, "completed_frameworks", &framework_id).unwrap();
    let finished = completed["completed_tasks"]
        .as_array()
        .map(|ts| ts.iter().filter(|t| t["state"] == "TASK_FINISHED").count());
    assert_eq!(finished, Some(2), "{completed:#}");
    cluster.shutdown().await;
}

/// A framework leaves without TEARDOWN, a second process re-subscribes with its id, reconciles
/// its `sleep 300` task (TASK_RUNNING), kills it (TASK_KILLED) and tears down.
#[tokio::test]
async fn resubscribed_framework_reconciles_and_kills_its_task() {
    let tmp = TempDir::new("resubscribe");
    let cluster = start_cluster(&tmp).await;
    let master = master(&cluster);

    let first = run_script("resubscribe.py", &[&master, "launch"]).await;
    assert_line(&first, "DONE");
    let framework_id = field(&first, "FRAMEWORK");
    let task_id = field(&first, "TASK");

    // The scheduler is gone but its failover timeout keeps the framework and its task. The
    // master notices the closed stream on its own schedule (at the latest when a heartbeat fails).
    let state = wait_for_state(&cluster, "the framework's disconnection", |s| {
        framework(s, "frameworks", &framework_id).is_some_and(|f| f["active"] == false)
    })
    .await;
    let away = framework(&state, "frameworks", &framework_id).unwrap();
    assert_eq!(task_state(away, "tasks", &task_id), "TASK_RUNNING");

    let second = run_script(
        "resubscribe.py",
        &[&master, "resume", &framework_id, &task_id],
    )
    .await;
    for line in [
        format!("RESUBSCRIBED {framework_id}"),
        format!("STATUS {task_id} TASK_RUNNING REASON_RECONCILIATION"),
        "DONE".to_owned(),
    ] {
        assert_line(&second, &line);
    }
    assert!(
        stdout(&second).contains(&format!("STATUS {task_id} TASK_KILLED")),
        "no TASK_KILLED\n{}",
        describe(&second)
    );

    let state = wait_for_state(&cluster, "the framework's removal", |s| {
        framework(s, "completed_frameworks", &framework_id).is_some()
    })
    .await;
    let gone = framework(&state, "completed_frameworks", &framework_id).unwrap();
    assert_eq!(task_state(gone, "completed_tasks", &task_id), "TASK_KILLED");
    cluster.shutdown().await;
}

async fn start_cluster(tmp: &TempDir) -> DevCluster {
    let agent = AgentSpec::parse(
        AgentSpecKind::Process,
        "cpus:4;mem:8192;disk:20000;ports:[31000-32000]",
        "",
    )
    .expect("agent resources parse");
    DevCluster::start(DevClusterConfig {
        agents: vec![agent],
        allocation_interval: Duration::from_millis(50),
        heartbeat_interval: Duration::from_secs(1),
        work_dir: tmp.0.join("work"),
        ..DevClusterConfig::default()
    })
    .await
    .expect("dev cluster starts")
}

/// `host:port`, the form pymesos takes instead of a `zk://` URL.
fn master(cluster: &DevCluster) -> String {
    cluster.addr().to_string()
}

/// Runs `tests/pymesos/<script>` to completion and fails the test (with the script's output)
/// unless it exits 0 within [`SCRIPT_DEADLINE`].
async fn run_script(script: &str, args: &[&str]) -> Output {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pymesos")
        .join(script);
    let child = tokio::process::Command::new(&python)
        .arg(&path)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        // A timed-out run is killed when its future is dropped.
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(SCRIPT_DEADLINE, child).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("cannot run {python} {}: {e}", path.display()),
        Err(_) => panic!("{script} {args:?} did not exit within {SCRIPT_DEADLINE:?}"),
    };
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}); if pymesos is missing, run .ci/install-pymesos\n{}",
        out.status,
        describe(&out)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_line(out: &Output, line: &str) {
    assert!(
        stdout(out).lines().any(|l| l == line),
        "no line {line:?}\n{}",
        describe(out)
    );
}

/// The word after `<key> ` on the script's first line starting with it.
fn field(out: &Output, key: &str) -> String {
    let prefix = format!("{key} ");
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {key} line\n{}", describe(out)))
}

/// Polls `GET /master/state` (in-process) until `check` holds; fails the test after
/// [`STATE_DEADLINE`] with the last state.
async fn wait_for_state(cluster: &DevCluster, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + STATE_DEADLINE;
    loop {
        let state = cluster.state().await;
        if check(&state) {
            return state;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("no {what} within {STATE_DEADLINE:?}; master state: {state:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The framework `id` in the state's `frameworks` or `completed_frameworks`.
fn framework<'a>(state: &'a Value, list: &str, id: &str) -> Option<&'a Value> {
    state[list]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["id"] == id))
}

fn task_state<'a>(framework: &'a Value, list: &str, task_id: &str) -> &'a str {
    framework[list]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["id"] == task_id))
        .and_then(|t| t["state"].as_str())
        .unwrap_or_else(|| panic!("task {task_id} not in {list}: {framework:#}"))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A directory under the system temp dir, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "mesos-reconciler-pymesos-{name}-{}",
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
