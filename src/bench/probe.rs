//! What the bench reads over HTTP: the master's task counts, and the controller's status server.
//!
//! The master is asked `GET /metrics/snapshot` first (upstream's `master/tasks_*` gauges, cheap at
//! any size); a master without it (404) is asked `GET /master/state` instead, whose tasks are
//! counted here. The state of a master with many tasks is large, so the poll interval grows with
//! the time the last answer took ([`MasterProbe::interval`]): the bench's own polling never takes
//! more than about a quarter of the master's time.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;

use super::BenchError;

/// How the master is asked about its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Not known yet: the first request finds out.
    Unknown,
    /// `GET /metrics/snapshot`.
    Metrics,
    /// `GET /master/state`.
    State,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Unknown => "unknown",
            Source::Metrics => "metrics/snapshot",
            Source::State => "master/state",
        }
    }
}

/// Task counts of the master, over all frameworks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// TASK_RUNNING.
    pub running: u64,
    /// TASK_STAGING + TASK_STARTING + TASK_RUNNING: every launch the master accepted and that has
    /// not ended.
    pub launched: u64,
}

/// A task as `/master/state` lists it; the rest of the document is skipped.
#[derive(Debug, Clone, Deserialize)]
pub struct StateTask {
    pub id: String,
    pub state: String,
}

#[derive(Debug, Deserialize)]
struct StateDoc {
    #[serde(default)]
    frameworks: Vec<StateFramework>,
}

/// A registered framework as `/master/frameworks` lists it (tasks skipped).
#[derive(Debug, Clone, Deserialize)]
pub struct FrameworkSummary {
    pub id: String,
    #[serde(default)]
    pub active: bool,
}

#[derive(Debug, Deserialize)]
struct FrameworksDoc {
    #[serde(default)]
    frameworks: Vec<FrameworkSummary>,
}

#[derive(Debug, Deserialize)]
struct StateFramework {
    #[serde(default)]
    tasks: Vec<StateTask>,
}

/// States of `frameworks[].tasks[]` that are not over.
const LIVE_STATES: [&str; 5] = [
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_UNREACHABLE",
];

/// Asks the master about its tasks.
#[derive(Debug)]
pub struct MasterProbe {
    http: reqwest::Client,
    url: String,
    source: Source,
    last: Duration,
}

impl MasterProbe {
    pub fn new(http: reqwest::Client, url: &str) -> Self {
        MasterProbe {
            http,
            url: url.trim_end_matches('/').to_owned(),
            source: Source::Unknown,
            last: Duration::ZERO,
        }
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// How long to wait before the next request: `base`, or three times the last request's
    /// duration if that is longer.
    pub fn interval(&self, base: Duration) -> Duration {
        base.max(self.last * 3)
    }

    /// Running and launched tasks, from whichever endpoint the master has.
    pub async fn counts(&mut self) -> Result<TaskCounts, BenchError> {
        if self.source != Source::State {
            if let Some(metrics) = self.metrics_snapshot().await? {
                let gauge = |key: &str| metrics.get(key).copied().unwrap_or(0.0) as u64;
                let running = gauge("master/tasks_running");
                return Ok(TaskCounts {
                    running,
                    launched: gauge("master/tasks_staging")
                        + gauge("master/tasks_starting")
                        + running,
                });
            }
        }
        let tasks = self.state_tasks().await?;
        let count = |states: &[&str]| {
            tasks
                .iter()
                .filter(|t| states.contains(&t.state.as_str()))
                .count() as u64
        };
        Ok(TaskCounts {
            running: count(&["TASK_RUNNING"]),
            launched: count(&LIVE_STATES[..3]),
        })
    }

    /// The tasks of `/master/state` (always that endpoint; for questions the gauges cannot answer).
    pub async fn state_tasks(&mut self) -> Result<Vec<StateTask>, BenchError> {
        let started = Instant::now();
        let doc: StateDoc = self.get_json("/master/state").await?;
        self.last = started.elapsed();
        if self.source == Source::Unknown {
            self.source = Source::State;
        }
        Ok(doc.frameworks.into_iter().flat_map(|f| f.tasks).collect())
    }

    /// The registered frameworks (`/master/frameworks`).
    pub async fn frameworks(&mut self) -> Result<Vec<FrameworkSummary>, BenchError> {
        let doc: FrameworksDoc = self.get_json("/master/frameworks").await?;
        Ok(doc.frameworks)
    }

    /// `GET <master><path>`, 2xx, decoded from JSON.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, BenchError> {
        let url = format!("{}{path}", self.url);
        let response = self.http.get(&url).send().await?;
        if !response.status().is_success() {
            return Err(BenchError::failed(format!(
                "GET {url}: {}",
                response.status()
            )));
        }
        let body = response.bytes().await?;
        serde_json::from_slice(&body).map_err(|e| BenchError::failed(format!("GET {url}: {e}")))
    }

    /// `/metrics/snapshot` as key -> value, or `None` if the master does not serve it (404; from
    /// then on it is not asked again).
    async fn metrics_snapshot(&mut self) -> Result<Option<BTreeMap<String, f64>>, BenchError> {
        let started = Instant::now();
        let url = format!("{}/metrics/snapshot", self.url);
        let response = self.http.get(&url).send().await?;
        if response.status() == StatusCode::NOT_FOUND {
            self.source = Source::State;
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(BenchError::failed(format!(
                "GET {url}: {}",
                response.status()
            )));
        }
        let body = response.bytes().await?;
        let values: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|e| BenchError::failed(format!("GET {url}: {e}")))?;
        self.last = started.elapsed();
        self.source = Source::Metrics;
        Ok(Some(
            values
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_f64()?)))
                .collect(),
        ))
    }
}

/// The live tasks of a state listing, and how many of them are a second copy of the same spec
/// instance (as the task id names it, see `task_ids`).
pub fn live_and_duplicates(tasks: &[StateTask]) -> (u64, u64) {
    let mut seen = HashSet::new();
    let mut live = 0;
    let mut duplicates = 0;
    for task in tasks
        .iter()
        .filter(|t| LIVE_STATES.contains(&t.state.as_str()))
    {
        live += 1;
        // Anything else: all but the last dot-separated part (a uuid).
        let instance = match crate::task_ids::parse(&task.id) {
            Some(p) => format!("{:?}#{}", p.spec, p.instance),
            None => task
                .id
                .rsplit_once('.')
                .map_or(task.id.as_str(), |(i, _)| i)
                .to_owned(),
        };
        if !seen.insert(instance) {
            duplicates += 1;
        }
    }
    (live, duplicates)
}

/// The controller's status server.
#[derive(Debug, Clone)]
pub struct StatusServer {
    http: reqwest::Client,
    pub url: String,
}

impl StatusServer {
    pub fn new(http: reqwest::Client, addr: std::net::SocketAddr) -> Self {
        StatusServer {
            http,
            url: format!("http://{addr}"),
        }
    }

    /// `GET /readyz` answered 200.
    pub async fn ready(&self) -> bool {
        match self.http.get(format!("{}/readyz", self.url)).send().await {
            Ok(r) => r.status() == StatusCode::OK,
            Err(_) => false,
        }
    }

    /// The samples of `GET /metrics` without labels, by name without the `mesos_reconciler_`
    /// prefix (`launches_total`, `passes_total`, ...).
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>, BenchError> {
        let (_, body) = self.get("/metrics").await?;
        let text = String::from_utf8_lossy(&body);
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains('{'))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                let name = name.strip_prefix(crate::status::metrics::PREFIX)?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// One `GET`, whole body read: how long it took and the body. Anything but 200 is an error.
    pub async fn get(&self, path: &str) -> Result<(Duration, bytes::Bytes), BenchError> {
        let started = Instant::now();
        let url = format!("{}{path}", self.url);
        let response = self.http.get(&url).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let took = started.elapsed();
        if status != StatusCode::OK {
            return Err(BenchError::failed(format!("GET {url}: {status}")));
        }
        Ok((took, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, state: &str) -> StateTask {
        StateTask {
            id: id.into(),
            state: state.into(),
        }
    }

    /// A master on 127.0.0.1:0 with a state document of three tasks, and with or without the
    /// gauges.
    async fn fake_master(with_metrics: bool) -> String {
        use axum::Json;
        use axum::routing::get;
        let state = serde_json::json!({"frameworks": [{"id": "f", "tasks": [
            {"id": "a.0.1", "state": "TASK_RUNNING", "statuses": []},
            {"id": "b.0.2", "state": "TASK_STAGING"},
            {"id": "c.0.3", "state": "TASK_KILLING"},
        ]}]});
        let mut router = axum::Router::new().route(
            "/master/state",
            get(move || {
                let state = state.clone();
                async move { Json(state) }
            }),
        );
        if with_metrics {
            router = router.route(
                "/metrics/snapshot",
                get(|| async {
                    Json(serde_json::json!({
                        "master/tasks_running": 7.0,
                        "master/tasks_staging": 2.0,
                        "master/tasks_starting": 1.0,
                        "master/tasks_finished": 40.0,
                        "master/uptime_secs": 12.5,
                    }))
                }),
            );
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }

    fn http() -> reqwest::Client {
        crate::http::client_builder().build().unwrap()
    }

    #[tokio::test]
    async fn counts_from_the_gauges_when_the_master_has_them() {
        let mut probe = MasterProbe::new(http(), &fake_master(true).await);
        let counts = probe.counts().await.unwrap();
        assert_eq!(probe.source(), Source::Metrics);
        assert_eq!(
            counts,
            TaskCounts {
                running: 7,
                launched: 10
            }
        );
    }

    #[tokio::test]
    async fn counts_from_the_state_when_the_gauges_are_404() {
        let mut probe = MasterProbe::new(http(), &fake_master(false).await);
        let counts = probe.counts().await.unwrap();
        assert_eq!(probe.source(), Source::State);
        assert_eq!(
            counts,
            TaskCounts {
                running: 1,
                launched: 2
            }
        );
        let (live, duplicates) = live_and_duplicates(&probe.state_tasks().await.unwrap());
        assert_eq!((live, duplicates), (3, 0));
    }

    #[test]
    fn duplicates_are_second_copies_of_an_instance() {
        let tasks = [
            task("svc-1.0.aaaa", "TASK_RUNNING"),
            task("svc-1.0.bbbb", "TASK_STAGING"),
            task("svc-2.0.cccc", "TASK_RUNNING"),
            task("svc-2.1.dddd", "TASK_RUNNING"),
            task("svc-3.0.eeee", "TASK_FINISHED"),
        ];
        assert_eq!(live_and_duplicates(&tasks), (4, 1));
        // Current ids: two generations of one instance are two copies of it.
        let tasks = [
            task(
                "svc-1.0.g11111111.0123456789abcdef0123456789abcdef",
                "TASK_RUNNING",
            ),
            task(
                "svc-1.0.g22222222.1123456789abcdef0123456789abcdef",
                "TASK_RUNNING",
            ),
            task(
                "svc-1.1.g11111111.2123456789abcdef0123456789abcdef",
                "TASK_RUNNING",
            ),
        ];
        assert_eq!(live_and_duplicates(&tasks), (3, 1));
    }
}
