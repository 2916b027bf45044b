//! Health checks of process tasks, as the Mesos command executor runs them (API notes §9).
//!
//! Three parts: [`HealthCheckSpec`] (the `HealthCheck` message with its defaults applied), a
//! [`Prober`] (a tokio task that waits `delay_seconds`, then probes every `interval_seconds`, each
//! probe bounded by `timeout_seconds`) and a pure [`HealthTracker`] that turns probe results into
//! updates and the kill decision: failures during `grace_period_seconds` from the start count only
//! once the task has been healthy; an update goes out on the first counted result and on every
//! change; `consecutive_failures` failures in a row kill the task.
//!
//! Probes: COMMAND runs the command (shell or argv) in the sandbox with the task's environment
//! plus the check's own, exit 0 is healthy; HTTP sends `GET <path>` to `127.0.0.1:<port>`, a status
//! in 200..=399 (or in `statuses` when given) is healthy; TCP connects to `127.0.0.1:<port>`. HTTPS
//! is not supported yet: such a check fails every probe, saying so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::process::{GroupGuard, command_of, command_variables, describe_exit, signal_group};
use crate::mesos::proto::v1 as pb;
use pb::health_check::Type;

/// A health check with Mesos' defaults applied.
#[derive(Debug, Clone)]
pub(crate) struct HealthCheckSpec {
    pub(crate) probe: Probe,
    pub(crate) delay: Duration,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) consecutive_failures: u32,
    pub(crate) grace: Duration,
}

#[derive(Debug, Clone)]
pub(crate) enum Probe {
    Command {
        command: pb::CommandInfo,
        env: Vec<(String, String)>,
        cwd: PathBuf,
    },
    Http {
        port: u16,
        path: String,
        statuses: Vec<u32>,
    },
    Tcp {
        port: u16,
    },
    /// A check this agent cannot run: every probe fails with this message.
    Unsupported(String),
}

impl HealthCheckSpec {
    /// Reads a `HealthCheck`; `task_env` and `sandbox` are where a COMMAND check runs.
    pub(crate) fn from_proto(
        check: &pb::HealthCheck,
        task_env: &[(String, String)],
        sandbox: &Path,
    ) -> Self {
        Self {
            probe: probe_of(check, task_env, sandbox),
            delay: seconds(check.delay_seconds, 15.0),
            interval: seconds(check.interval_seconds, 10.0),
            timeout: seconds(check.timeout_seconds, 20.0),
            consecutive_failures: check.consecutive_failures.unwrap_or(3).max(1),
            grace: seconds(check.grace_period_seconds, 10.0),
        }
    }
}

fn seconds(value: Option<f64>, default: f64) -> Duration {
    Duration::try_from_secs_f64(value.unwrap_or(default)).unwrap_or(Duration::ZERO)
}

fn probe_of(check: &pb::HealthCheck, task_env: &[(String, String)], sandbox: &Path) -> Probe {
    // The master infers COMMAND or HTTP from the sub-message when `type` is unset.
    let kind = match check.r#type.map(Type::try_from) {
        Some(Ok(kind)) if kind != Type::Unknown => kind,
        _ if check.command.is_some() => Type::Command,
        _ if check.http.is_some() => Type::Http,
        _ if check.tcp.is_some() => Type::Tcp,
        _ => return Probe::Unsupported("the health check has no type".to_owned()),
    };
    let port = |port: u32| u16::try_from(port).ok().filter(|p| *p != 0);
    match kind {
        Type::Command => match &check.command {
            Some(command) => {
                let mut env = task_env.to_vec();
                env.extend(command_variables(command));
                Probe::Command {
                    command: command.clone(),
                    env,
                    cwd: sandbox.to_owned(),
                }
            }
            None => Probe::Unsupported("a COMMAND health check needs `command`".to_owned()),
        },
        Type::Http => match &check.http {
            Some(http) => {
                let scheme = http.scheme.as_deref().unwrap_or("http");
                match port(http.port) {
                    _ if scheme != "http" => Probe::Unsupported(format!(
                        "HTTP health checks with scheme '{scheme}' are not supported by this agent"
                    )),
                    None => Probe::Unsupported(format!("invalid health check port {}", http.port)),
                    Some(port) => {
                        let path = http.path.clone().unwrap_or_else(|| "/".to_owned());
                        Probe::Http {
                            port,
                            path: if path.starts_with('/') {
                                path
                            } else {
                                format!("/{path}")
                            },
                            statuses: http.statuses.clone(),
                        }
                    }
                }
            }
            None => Probe::Unsupported("an HTTP health check needs `http`".to_owned()),
        },
        Type::Tcp => match check.tcp.as_ref().map(|t| port(t.port)) {
            Some(Some(port)) => Probe::Tcp { port },
            Some(None) => Probe::Unsupported("invalid health check port".to_owned()),
            None => Probe::Unsupported("a TCP health check needs `tcp`".to_owned()),
        },
        Type::Unknown => Probe::Unsupported("the health check has no type".to_owned()),
    }
}

/// Probes in the background; dropping it stops the probing (and kills a probe command).
#[derive(Debug)]
pub(crate) struct Prober {
    results: mpsc::Receiver<Result<(), String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Prober {
    /// The next probe result; None only if the prober stopped.
    pub(crate) async fn next(&mut self) -> Option<Result<(), String>> {
        self.results.recv().await
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts probing after the check's delay.
pub(crate) fn start(spec: HealthCheckSpec) -> Prober {
    let (tx, results) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        tokio::time::sleep(spec.delay).await;
        loop {
            let result = match tokio::time::timeout(spec.timeout, probe(&spec.probe)).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "health check timed out after {}s",
                    spec.timeout.as_secs_f64()
                )),
            };
            if tx.send(result).await.is_err() {
                return;
            }
            tokio::time::sleep(spec.interval).await;
        }
    });
    Prober { results, task }
}

/// One probe: Ok if healthy, else why not.
async fn probe(probe: &Probe) -> Result<(), String> {
    match probe {
        Probe::Command { command, env, cwd } => probe_command(command, env, cwd).await,
        Probe::Http {
            port,
            path,
            statuses,
        } => probe_http(*port, path, statuses).await,
        Probe::Tcp { port } => TcpStream::connect(("127.0.0.1", *port))
            .await
            .map(drop)
            .map_err(|e| format!("TCP health check on port {port} failed: {e}")),
        Probe::Unsupported(why) => Err(why.clone()),
    }
}

async fn probe_command(
    command: &pb::CommandInfo,
    env: &[(String, String)],
    cwd: &Path,
) -> Result<(), String> {
    let mut cmd = command_of(command).map_err(|e| format!("invalid health check command: {e}"))?;
    let mut child = cmd
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("failed to run the health check command: {e}"))?;
    // A probe that times out is dropped mid-wait: the guard kills what the command started.
    let mut group = GroupGuard { pgid: child.id() };
    let status = child.wait().await;
    if let Some(pgid) = group.pgid.take() {
        signal_group(pgid, "KILL").await;
    }
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("health check command {}", describe_exit(status))),
        Err(e) => Err(format!("failed to wait for the health check command: {e}")),
    }
}

/// The HTTP client of every probe: no redirect is followed (a 3xx answer is healthy, as upstream's
/// curl-based checker sees it) and no connection is kept, so each probe is a fresh look at the task.
static PROBE_CLIENT: LazyLock<Result<reqwest::Client, String>> = LazyLock::new(|| {
    crate::http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent("mesos-devcluster-health-check")
        .build()
        .map_err(|e| e.to_string())
});

async fn probe_http(port: u16, path: &str, statuses: &[u32]) -> Result<(), String> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let fail = |why: String| format!("HTTP health check on {url} failed: {why}");
    let client = PROBE_CLIENT.as_ref().map_err(|e| fail(e.clone()))?;
    // Only the status matters; the body is never read.
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| fail(crate::http::error_text(&e)))?;
    let code = u32::from(response.status().as_u16());
    let healthy = if statuses.is_empty() {
        (200..400).contains(&code)
    } else {
        statuses.contains(&code)
    };
    if healthy {
        Ok(())
    } else {
        Err(fail(format!("status {code}")))
    }
}

/// Turns probe results into health updates and the kill decision.
#[derive(Debug)]
pub(crate) struct HealthTracker {
    started: Instant,
    grace: Duration,
    threshold: u32,
    consecutive_failures: u32,
    /// The health last reported; None before the first counted result.
    reported: Option<bool>,
    /// True until the first success: failures in the grace period are ignored meanwhile.
    initializing: bool,
}

/// What one probe result calls for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Send a TASK_RUNNING update with `healthy` and this message.
    pub(crate) report: Option<(bool, Option<String>)>,
    /// Kill the task, for this reason.
    pub(crate) kill: Option<String>,
}

impl HealthTracker {
    pub(crate) fn new(spec: &HealthCheckSpec, started: Instant) -> Self {
        Self {
            started,
            grace: spec.grace,
            threshold: spec.consecutive_failures,
            consecutive_failures: 0,
            reported: None,
            initializing: true,
        }
    }

    pub(crate) fn record(&mut self, result: Result<(), String>, now: Instant) -> Verdict {
        let mut verdict = Verdict::default();
        match result {
            Ok(()) => {
                self.initializing = false;
                self.consecutive_failures = 0;
                if self.reported != Some(true) {
                    self.reported = Some(true);
                    verdict.report = Some((true, None));
                }
            }
            Err(why) => {
                if self.initializing && now.duration_since(self.started) < self.grace {
                    return verdict;
                }
                self.consecutive_failures += 1;
                if self.reported != Some(false) {
                    self.reported = Some(false);
                    verdict.report = Some((false, Some(why.clone())));
                }
                if self.consecutive_failures >= self.threshold {
                    verdict.kill = Some(format!(
                        "its health check failed {} consecutive times (last: {why})",
                        self.consecutive_failures
                    ));
                }
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(grace: f64, failures: u32) -> HealthCheckSpec {
        HealthCheckSpec::from_proto(
            &pb::HealthCheck {
                grace_period_seconds: Some(grace),
                consecutive_failures: Some(failures),
                tcp: Some(pb::health_check::TcpCheckInfo {
                    port: 80,
                    protocol: None,
                }),
                ..Default::default()
            },
            &[],
            Path::new("/"),
        )
    }

    #[test]
    fn defaults_and_inferred_type() {
        let s = HealthCheckSpec::from_proto(
            &pb::HealthCheck {
                http: Some(pb::health_check::HttpCheckInfo {
                    port: 8080,
                    path: Some("health".to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &[],
            Path::new("/"),
        );
        assert_eq!(s.delay, Duration::from_secs(15));
        assert_eq!(s.interval, Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(20));
        assert_eq!(s.grace, Duration::from_secs(10));
        assert_eq!(s.consecutive_failures, 3);
        assert!(
            matches!(&s.probe, Probe::Http { port: 8080, path, .. } if path == "/health"),
            "{:?}",
            s.probe
        );
        let s = spec(0.25, 1);
        assert_eq!(s.grace, Duration::from_millis(250));
        assert!(matches!(s.probe, Probe::Tcp { port: 80 }));
    }

    #[test]
    fn https_is_refused_with_a_reason() {
        let s = HealthCheckSpec::from_proto(
            &pb::HealthCheck {
                r#type: Some(Type::Http as i32),
                http: Some(pb::health_check::HttpCheckInfo {
                    port: 443,
                    scheme: Some("https".to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &[],
            Path::new("/"),
        );
        assert!(matches!(s.probe, Probe::Unsupported(why) if why.contains("https")));
    }

    #[test]
    fn reports_first_result_and_changes_only() {
        let t0 = Instant::now();
        let mut tracker = HealthTracker::new(&spec(0.0, 3), t0);
        assert_eq!(tracker.record(Ok(()), t0).report, Some((true, None)));
        assert_eq!(tracker.record(Ok(()), t0), Verdict::default());
        let v = tracker.record(Err("down".to_owned()), t0);
        assert_eq!(v.report, Some((false, Some("down".to_owned()))));
        assert_eq!(v.kill, None);
        assert_eq!(
            tracker.record(Err("down".to_owned()), t0),
            Verdict::default()
        );
        assert_eq!(tracker.record(Ok(()), t0).report, Some((true, None)));
    }

    #[test]
    fn consecutive_failures_kill() {
        let t0 = Instant::now();
        let mut tracker = HealthTracker::new(&spec(0.0, 2), t0);
        assert!(tracker.record(Err("a".to_owned()), t0).kill.is_none());
        let v = tracker.record(Err("b".to_owned()), t0);
        assert!(v.report.is_none());
        assert!(v.kill.unwrap().contains("2 consecutive times (last: b)"));
    }

    #[test]
    fn grace_period_ignores_early_failures_until_healthy() {
        let t0 = Instant::now();
        let mut tracker = HealthTracker::new(&spec(10.0, 1), t0);
        let early = t0 + Duration::from_secs(5);
        assert_eq!(
            tracker.record(Err("x".to_owned()), early),
            Verdict::default()
        );
        // After a success, failures count even within the grace period.
        tracker.record(Ok(()), early);
        assert!(tracker.record(Err("x".to_owned()), early).kill.is_some());

        let mut tracker = HealthTracker::new(&spec(10.0, 1), t0);
        let late = t0 + Duration::from_secs(11);
        assert!(tracker.record(Err("x".to_owned()), late).kill.is_some());
    }
}
