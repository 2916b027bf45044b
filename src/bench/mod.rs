//! `mesos-reconciler bench <scenario>`: figures of the controller and the dev cluster, measured
//! from outside, as an operator would see them.
//!
//! Every run of a scenario starts from nothing: a temporary workspace, this binary as a dev
//! cluster of virtual agents (`devcluster --virtual-agents`) and, for the controller scenarios,
//! this binary as the controller (`run`), each its own process so that `/proc` tells their CPU
//! time and memory apart. The bench only writes spec files, polls HTTP endpoints (the master's
//! task counts, the controller's status server) and reads `/proc`; it never looks inside either
//! process. A run ends by killing both (SIGKILL) and removing the workspace, whatever happened.
//!
//! Code map: [`Env`] here is one run's world and its waits; `scenarios.rs` holds the controller
//! scenarios, `accept.rs` the master-only one; `procs.rs` starts and watches the processes;
//! `probe.rs` asks the master and the status server; `report.rs` aggregates and prints.

mod accept;
mod probe;
mod procs;
mod report;
mod scenarios;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::{BenchArgs, BenchScenario, exit};
use probe::{MasterProbe, Source, StatusServer, TaskCounts};
use procs::{Cluster, Proc, Workspace};
use report::{Figures, ScenarioReport};

/// How often the master is asked while waiting for many tasks (more when it answers slowly).
const POLL: Duration = Duration::from_millis(50);
/// How often the controller is asked while waiting for its status server and readiness.
const POLL_READY: Duration = Duration::from_millis(10);
/// Any single HTTP request of the bench.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Spec ids of the main set are `svc-NNNNNN`.
const SPEC_PREFIX: &str = "svc";
/// The allocation interval of the dev cluster in the controller scenarios.
const ALLOCATION_INTERVAL: &str = "1s";
/// What each spec asks for: small, so that 100,000 fit on 100 agents.
const SPEC_CPUS: f64 = 0.01;
const SPEC_MEM_MIB: u64 = 1;

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// `--timeout` passed while waiting for the condition described.
    #[error("timed out waiting for {0}")]
    TimedOut(String),
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    pub fn failed(message: impl Into<String>) -> Self {
        BenchError::Failed(message.into())
    }
}

impl From<reqwest::Error> for BenchError {
    fn from(e: reqwest::Error) -> Self {
        BenchError::Failed(crate::http::error_text(&e))
    }
}

impl From<io::Error> for BenchError {
    fn from(e: io::Error) -> Self {
        BenchError::Failed(e.to_string())
    }
}

/// The settings every run reads.
#[derive(Debug, Clone)]
struct Options {
    exe: PathBuf,
    specs: usize,
    samples: Option<u32>,
    idle: Duration,
    timeout: Duration,
    agents: u32,
    http: reqwest::Client,
}

/// Runs the scenario (or all of them) and prints one report each; 1 if a run failed.
pub async fn run(args: BenchArgs) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(exe) if exe.is_file() => exe,
        Ok(exe) => {
            eprintln!(
                "error: bench starts this binary again, but {} is not a file",
                exe.display()
            );
            return exit::FAILURE;
        }
        Err(e) => {
            eprintln!("error: bench cannot find its own binary: {e}");
            return exit::FAILURE;
        }
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; figures worth comparing come from `cargo build --release`"
        );
    }
    let http = match crate::http::client_builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot set up an HTTP client: {e}");
            return exit::FAILURE;
        }
    };
    let options = Options {
        exe,
        specs: args.specs,
        samples: args.samples,
        idle: Duration::from_secs(args.idle_secs),
        timeout: args.timeout,
        agents: args.agents,
        http,
    };
    let scenarios = match args.scenario {
        BenchScenario::All => vec![
            BenchScenario::Converge,
            BenchScenario::Cold,
            BenchScenario::Latency,
            BenchScenario::Restart,
            BenchScenario::Recover,
            BenchScenario::Idle,
            BenchScenario::Status,
            BenchScenario::Master,
        ],
        one => vec![one],
    };
    let mut code = exit::OK;
    for scenario in scenarios {
        let report = run_scenario(&options, scenario, args.runs).await;
        if args.json {
            println!("{}", report.json());
        } else {
            println!("{}", report.table());
        }
        if report.error.is_some() {
            code = exit::FAILURE;
        }
    }
    code
}

/// Removes the workspaces of the runs that are over (see `procs::Workspace`): when the bench
/// ends, or is interrupted and its run under way dropped.
pub async fn remove_workspaces() {
    tokio::task::spawn_blocking(procs::remove_workspaces)
        .await
        .unwrap_or_else(|e| eprintln!("bench: removing the workspaces: {e}"));
}

fn scenario_name(scenario: BenchScenario) -> &'static str {
    match scenario {
        BenchScenario::Converge => "converge",
        BenchScenario::Cold => "cold",
        BenchScenario::Latency => "latency",
        BenchScenario::Restart => "restart",
        BenchScenario::Recover => "recover",
        BenchScenario::Idle => "idle",
        BenchScenario::Status => "status",
        BenchScenario::Master => "master",
        BenchScenario::All => "all",
    }
}

/// `runs` runs of one scenario; a run that times out or fails ends the scenario.
async fn run_scenario(options: &Options, scenario: BenchScenario, runs: u32) -> ScenarioReport {
    let name = scenario_name(scenario);
    let mut report = ScenarioReport {
        scenario: name,
        specs: options.specs,
        runs_asked: runs,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        master_source: Source::Unknown.name(),
        runs: Vec::new(),
        timed_out: None,
        error: None,
    };
    for run in 1..=runs {
        eprintln!("bench {name}: run {run} of {runs}, {} specs", options.specs);
        let deadline = Instant::now() + options.timeout;
        let mut source = Source::Unknown;
        // The waits check the deadline themselves and say what they were waiting for; this
        // outer limit only catches a request that never returns.
        let outcome = tokio::time::timeout(
            options.timeout + REQUEST_TIMEOUT,
            one_run(options, scenario, deadline, &mut source),
        )
        .await;
        if source != Source::Unknown {
            report.master_source = source.name();
        }
        match outcome {
            Ok(Ok(figures)) => report.runs.push(figures),
            Ok(Err(BenchError::TimedOut(what))) => {
                eprintln!("bench {name}: run {run} timed out waiting for {what}");
                report.timed_out = Some(what);
                break;
            }
            Ok(Err(BenchError::Failed(e))) => {
                eprintln!("bench {name}: run {run} failed: {e}");
                report.error = Some(e);
                break;
            }
            Err(_) => {
                report.timed_out = Some("an HTTP request that never ended".into());
                break;
            }
        }
    }
    report
}

/// One run in a fresh world, which is torn down (processes killed, workspace removed) on return.
async fn one_run(
    options: &Options,
    scenario: BenchScenario,
    deadline: Instant,
    source: &mut Source,
) -> Result<Figures, BenchError> {
    let interval = match scenario {
        BenchScenario::Master => accept::ALLOCATION_INTERVAL,
        _ => ALLOCATION_INTERVAL,
    };
    let mut env = Env::start(options, scenario, interval, deadline).await?;
    let result = match scenario {
        BenchScenario::Converge => scenarios::converge(&mut env).await,
        BenchScenario::Cold => scenarios::cold(&mut env).await,
        BenchScenario::Latency => scenarios::latency(&mut env).await,
        BenchScenario::Restart => scenarios::restart(&mut env).await,
        BenchScenario::Recover => scenarios::recover(&mut env).await,
        BenchScenario::Idle => scenarios::idle(&mut env).await,
        BenchScenario::Status => scenarios::status(&mut env).await,
        BenchScenario::Master | BenchScenario::All => accept::master(&mut env).await,
    };
    *source = env.master.source();
    if let Err(BenchError::Failed(_)) = &result {
        env.print_log_tails();
    }
    result
}

/// Agent resources for `tasks` specs over `agents` agents: twice the even share (the controller
/// packs offers as they come, not evenly), plus room.
fn agent_resources(tasks: usize, agents: u32) -> String {
    let share = tasks.div_ceil(agents.max(1) as usize) * 2 + 10;
    let cpus = (share as f64 * SPEC_CPUS).ceil() as u64 + 1;
    let mem = share as u64 * SPEC_MEM_MIB + 64;
    format!("cpus:{cpus};mem:{mem};disk:1000;ports:[31000-32000]")
}

/// One spec: a virtual task that runs until it is killed (virtual agents run no command; only the
/// `devcluster.*` labels would script an end, and there are none).
fn spec_text() -> String {
    format!(
        "# written by mesos-reconciler bench\ncommand = \"sleep 3600\"\ncpus = {SPEC_CPUS}\nmem = {SPEC_MEM_MIB}\nrestart = \"always\"\n"
    )
}

/// Writes `<prefix>-NNNNNN.toml` for each number, each through a hidden temporary file and a
/// rename, as a careful sync tool does (the controller ignores `.*` files).
fn write_specs(dir: &Path, prefix: &str, numbers: std::ops::Range<usize>) -> io::Result<()> {
    let text = spec_text();
    for i in numbers {
        let name = format!("{prefix}-{i:06}");
        let tmp = dir.join(format!(".{name}.toml.tmp"));
        std::fs::write(&tmp, &text)?;
        std::fs::rename(&tmp, dir.join(format!("{name}.toml")))?;
    }
    Ok(())
}

/// CPU times at the start of a measured window.
#[derive(Debug, Clone, Copy)]
struct Mark {
    controller: Option<(u32, f64)>,
    master_cpu_s: f64,
}

/// One run's world: its workspace, the dev cluster, the controller once started, and the
/// run's deadline. Fields drop in order: the processes before the workspace they use.
#[derive(Debug)]
struct Env {
    controller: Option<Proc>,
    status: Option<StatusServer>,
    cluster: Cluster,
    master: MasterProbe,
    options: Options,
    deadline: Instant,
    ws: Workspace,
}

impl Env {
    async fn start(
        options: &Options,
        scenario: BenchScenario,
        allocation_interval: &str,
        deadline: Instant,
    ) -> Result<Env, BenchError> {
        let ws = Workspace::create()?;
        let extra = match scenario {
            BenchScenario::Latency => {
                options.samples.unwrap_or(scenarios::LATENCY_SAMPLES) as usize
            }
            _ => 0,
        };
        let cluster = Cluster::start(
            &options.exe,
            &ws,
            options.agents,
            &agent_resources(options.specs + extra, options.agents),
            allocation_interval,
            deadline,
        )
        .await?;
        Ok(Env {
            controller: None,
            status: None,
            master: MasterProbe::new(options.http.clone(), &cluster.url),
            cluster,
            options: options.clone(),
            deadline,
            ws,
        })
    }

    fn specs(&self) -> usize {
        self.options.specs
    }

    /// Between two polls: an error if a process died or the deadline passed (`what` says what
    /// was awaited), else a pause of `pause`.
    async fn tick(
        &mut self,
        pause: Duration,
        what: impl FnOnce() -> String,
    ) -> Result<(), BenchError> {
        self.cluster.proc.check_alive()?;
        if let Some(controller) = &mut self.controller {
            controller.check_alive()?;
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Err(BenchError::TimedOut(what()));
        }
        tokio::time::sleep(pause.min(self.deadline - now)).await;
        Ok(())
    }

    /// Writes the main set of spec files (`svc-000000` ...) on a blocking thread.
    async fn write_specs(&self, count: usize) -> Result<Duration, BenchError> {
        let dir = self.ws.desired.clone();
        let started = Instant::now();
        tokio::task::spawn_blocking(move || write_specs(&dir, SPEC_PREFIX, 0..count))
            .await
            .map_err(|e| BenchError::failed(format!("the spec writer: {e}")))??;
        Ok(started.elapsed())
    }

    /// Starts a controller (its log is `<log>.log`) and waits for its status server's address.
    async fn start_controller(&mut self, log: &str) -> Result<(), BenchError> {
        self.status = None;
        self.controller = Some(procs::start_controller(
            &self.options.exe,
            &self.ws,
            &self.cluster.url,
            log,
        )?);
        loop {
            if let Some(addr) = procs::status_addr(&self.ws.state) {
                self.status = Some(StatusServer::new(self.options.http.clone(), addr));
                return Ok(());
            }
            self.tick(POLL_READY, || "the controller's status address".into())
                .await?;
        }
    }

    fn status(&self) -> Result<&StatusServer, BenchError> {
        self.status
            .as_ref()
            .ok_or_else(|| BenchError::failed("no controller is running"))
    }

    /// Kills the controller with SIGKILL, as `kill -9` would.
    async fn kill_controller(&mut self) -> Result<(), BenchError> {
        self.status = None;
        match self.controller.take() {
            Some(mut controller) => controller.kill().await,
            None => Ok(()),
        }
    }

    /// Until the controller's `/readyz` answers 200.
    async fn wait_ready(&mut self) -> Result<(), BenchError> {
        loop {
            if self.status()?.ready().await {
                return Ok(());
            }
            self.tick(POLL_READY, || {
                "the controller's /readyz to answer 200".into()
            })
            .await?;
        }
    }

    /// Until at least `n` tasks are TASK_RUNNING in the master.
    async fn wait_running(&mut self, n: usize) -> Result<TaskCounts, BenchError> {
        loop {
            let counts = self.master.counts().await?;
            if counts.running >= n as u64 {
                return Ok(counts);
            }
            let pause = self.master.interval(POLL);
            self.tick(pause, || {
                format!(
                    "{n} tasks TASK_RUNNING in the master (last seen: {} running, {} launched)",
                    counts.running, counts.launched
                )
            })
            .await?;
        }
    }

    /// The main set running: the files written first, then the controller started, until all
    /// are RUNNING. How long that took is `setup_s`.
    async fn steady(&mut self, figures: &mut Figures) -> Result<(), BenchError> {
        let started = Instant::now();
        self.write_specs(self.specs()).await?;
        self.start_controller("controller").await?;
        self.wait_ready().await?;
        self.wait_running(self.specs()).await?;
        figures.secs("setup_s", started.elapsed());
        Ok(())
    }

    fn mark(&self) -> Mark {
        Mark {
            controller: self
                .controller
                .as_ref()
                .and_then(|c| Some((c.pid(), c.stats()?.cpu_s))),
            master_cpu_s: self.cluster.proc.stats().map_or(0.0, |s| s.cpu_s),
        }
    }

    /// The CPU time each process used since `mark` (all of it for a controller started since),
    /// and their memory now.
    fn finish(&self, mark: Mark, figures: &mut Figures) {
        if let Some(controller) = &self.controller
            && let Some(stats) = controller.stats()
        {
            let before = match mark.controller {
                Some((pid, cpu)) if pid == controller.pid() => cpu,
                _ => 0.0,
            };
            figures.set("controller_cpu_s", stats.cpu_s - before);
            figures.set("controller_rss_mib", stats.rss_mib);
            figures.set("controller_hwm_mib", stats.hwm_mib);
        }
        if let Some(stats) = self.cluster.proc.stats() {
            figures.set("master_cpu_s", stats.cpu_s - mark.master_cpu_s);
            figures.set("master_rss_mib", stats.rss_mib);
            figures.set("master_hwm_mib", stats.hwm_mib);
        }
    }

    fn print_log_tails(&self) {
        if let Some(controller) = &self.controller {
            eprintln!(
                "--- end of the controller's log:\n{}",
                controller.log_tail()
            );
        }
        eprintln!(
            "--- end of the dev cluster's log:\n{}",
            self.cluster.proc.log_tail()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_hold_a_hundred_thousand_specs() {
        assert_eq!(
            agent_resources(100_000, 100),
            "cpus:22;mem:2074;disk:1000;ports:[31000-32000]"
        );
        let ws = Workspace::create().unwrap();
        write_specs(&ws.desired, SPEC_PREFIX, 0..3).unwrap();
        let snapshot = crate::spec::load_dir(&ws.desired).unwrap();
        assert_eq!(snapshot.specs.len(), 3, "{:?}", snapshot.errors);
        assert!(snapshot.errors.is_empty() && snapshot.ignored.is_empty());
        let root = ws.desired.parent().unwrap().to_owned();
        drop(ws);
        assert!(root.exists(), "kept until the bench ends");
        procs::remove_workspaces();
        assert!(!root.exists());
    }
}
