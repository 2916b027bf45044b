//! The master's read-only operator endpoints as the controller reads them. For now one:
//! `GET /master/frameworks` (Mesos 1.11's v0 JSON, `Master::ReadOnlyHandler::frameworks`), which
//! lists every framework with its tasks and their labels. A controller that lost its state finds
//! its framework there by name, and every controller learns there the tasks of its framework
//! that its ledger does not know (status updates carry no labels).
//!
//! Only the fields the controller uses are read; anything else in the document is ignored, and a
//! missing optional field is no error, so the documents of other Mesos versions read as well.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::mesos::client::{ClientError, SchedulerClient};
use crate::model::{MasterFramework, MasterTask, TaskId, TaskState};

/// The most ports one task's ranges are expanded to (a task holds a handful).
const MAX_PORTS_PER_TASK: u64 = 4096;

/// The frameworks could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot list the frameworks on the master: {0}")]
    Client(#[from] ClientError),
    #[error("the master's /master/frameworks document does not read: {0}")]
    Json(#[from] serde_json::Error),
}

/// Every framework the master knows (registered ones, then completed ones), or only the one
/// named `framework_id`.
pub async fn frameworks(
    client: &SchedulerClient,
    framework_id: Option<&str>,
) -> Result<Vec<MasterFramework>, OperatorError> {
    let path = match framework_id {
        Some(id) => format!("master/frameworks?framework_id={}", query_escape(id)),
        None => "master/frameworks".to_owned(),
    };
    let body = client.get(&path).await?;
    // Parsing 100,000 tasks takes a while: not on the runtime's threads.
    let parsed = tokio::task::spawn_blocking(move || parse_frameworks(&body))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    Ok(parsed)
}

/// Reads a `/master/frameworks` (or `/master/state`) document.
pub fn parse_frameworks(body: &[u8]) -> Result<Vec<MasterFramework>, serde_json::Error> {
    let doc: Doc = serde_json::from_slice(body)?;
    let registered = doc.frameworks.into_iter().map(|f| f.into_model(false));
    let completed = doc
        .completed_frameworks
        .into_iter()
        .map(|f| f.into_model(true));
    Ok(registered.chain(completed).collect())
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    frameworks: Vec<Framework>,
    #[serde(default)]
    completed_frameworks: Vec<Framework>,
}

#[derive(Deserialize)]
struct Framework {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    connected: Option<bool>,
    #[serde(default)]
    recovered: bool,
    #[serde(default)]
    registered_time: Option<f64>,
    #[serde(default)]
    unregistered_time: Option<f64>,
    #[serde(default)]
    tasks: Vec<Task>,
    #[serde(default)]
    unreachable_tasks: Vec<Task>,
}

impl Framework {
    fn into_model(self, completed: bool) -> MasterFramework {
        let tasks = if completed {
            Vec::new()
        } else {
            self.tasks
                .into_iter()
                .chain(self.unreachable_tasks)
                .map(Task::into_model)
                .collect()
        };
        MasterFramework {
            id: self.id,
            name: self.name,
            principal: self.principal.filter(|p| !p.is_empty()),
            hostname: self.hostname.filter(|h| !h.is_empty()),
            // Masters before 1.0 had no `connected`; `active` meant the same for them.
            connected: !completed && self.connected.unwrap_or(self.active),
            recovered: self.recovered,
            completed,
            registered_time: self.registered_time.filter(|t| *t > 0.0),
            unregistered_time: self.unregistered_time.filter(|t| *t > 0.0),
            tasks,
        }
    }
}

#[derive(Deserialize)]
struct Task {
    id: String,
    #[serde(default)]
    name: String,
    state: String,
    #[serde(default)]
    slave_id: Option<String>,
    #[serde(default)]
    labels: Vec<Label>,
    #[serde(default)]
    resources: TaskResources,
    #[serde(default)]
    statuses: Vec<Status>,
    #[serde(default)]
    unreachable_time: Option<TimeInfo>,
}

#[derive(Deserialize)]
struct Label {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize, Default)]
struct TaskResources {
    /// Upstream writes ranges as text: `[31000-31001, 31005-31005]`.
    #[serde(default)]
    ports: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    state: String,
    #[serde(default)]
    timestamp: Option<f64>,
    #[serde(default)]
    healthy: Option<bool>,
}

#[derive(Deserialize)]
struct TimeInfo {
    nanoseconds: i64,
}

impl Task {
    fn into_model(self) -> MasterTask {
        // A state this build does not know (a newer Mesos) is treated as unknown: reconciliation
        // answers for the task tell what it is.
        let state = TaskState::from_mesos_name(&self.state).unwrap_or(TaskState::Unknown);
        let first_status_ms = self.statuses.first().and_then(|s| s.timestamp).map(ms);
        let running_since_ms = self
            .statuses
            .iter()
            .find(|s| s.state == "TASK_RUNNING")
            .and_then(|s| s.timestamp)
            .map(ms);
        let healthy = self.statuses.iter().rev().find_map(|s| s.healthy);
        let unreachable_since_ms = self
            .unreachable_time
            .map(|t| u64::try_from(t.nanoseconds / 1_000_000).unwrap_or(0))
            .or_else(|| {
                (state == TaskState::Unreachable)
                    .then(|| self.statuses.last().and_then(|s| s.timestamp).map(ms))
                    .flatten()
            });
        MasterTask {
            task_id: TaskId(self.id),
            name: self.name,
            state,
            agent_id: self.slave_id.filter(|a| !a.is_empty()),
            labels: self
                .labels
                .into_iter()
                .map(|l| (l.key, l.value.unwrap_or_default()))
                .collect::<BTreeMap<_, _>>(),
            ports: self
                .resources
                .ports
                .as_deref()
                .map(parse_ports)
                .unwrap_or_default(),
            first_status_ms,
            running_since_ms,
            unreachable_since_ms,
            healthy,
        }
    }
}

/// Seconds since the epoch (a status timestamp) in milliseconds.
fn ms(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0) as u64
    } else {
        0
    }
}

/// `[31000-31001, 31005-31005]` as the ports it holds, ascending; what does not read is skipped.
fn parse_ports(text: &str) -> Vec<u64> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let mut ports = Vec::new();
    for range in inner.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let (begin, end) = range.split_once('-').unwrap_or((range, range));
        let (Ok(begin), Ok(end)) = (begin.trim().parse::<u64>(), end.trim().parse::<u64>()) else {
            continue;
        };
        let end = end.min(begin.saturating_add(MAX_PORTS_PER_TASK));
        ports.extend(begin..=end);
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// A framework id as a query value: ids are `<uuid>-<4 digits>`, but anything else is escaped.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frameworks_document_reads_into_the_model() {
        let doc = serde_json::json!({
            "frameworks": [{
                "id": "m-0001",
                "name": "mesos-reconciler",
                "principal": "ops",
                "hostname": "ctl-1",
                "active": false,
                "connected": false,
                "recovered": false,
                "registered_time": 1700000000.5,
                "unregistered_time": 1700000100.0,
                "some_future_field": {"x": 1},
                "tasks": [{
                    "id": "web.0.g1f2e3d4c.0123456789abcdef0123456789abcdef",
                    "name": "web",
                    "framework_id": "m-0001",
                    "slave_id": "m-S0",
                    "state": "TASK_RUNNING",
                    "resources": {"cpus": 0.1, "mem": 32.0, "ports": "[31000-31001, 31005-31005]"},
                    "statuses": [
                        {"state": "TASK_STARTING", "timestamp": 1700000001.0},
                        {"state": "TASK_RUNNING", "timestamp": 1700000002.25, "healthy": true}
                    ],
                    "labels": [
                        {"key": "mesos-reconciler.spec", "value": "web"},
                        {"key": "flag"}
                    ]
                }],
                "unreachable_tasks": [{
                    "id": "t2", "name": "web", "slave_id": "m-S1", "state": "TASK_UNREACHABLE",
                    "unreachable_time": {"nanoseconds": 1700000050000000000i64}
                }],
                "completed_tasks": [{"id": "old", "state": "TASK_FINISHED"}]
            }],
            "completed_frameworks": [{"id": "m-0000", "name": "mesos-reconciler", "active": false,
                                      "tasks": [{"id": "x", "state": "TASK_KILLED"}]}],
            "unregistered_frameworks": []
        });
        let fws = parse_frameworks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(fws.len(), 2);
        let f = &fws[0];
        assert_eq!(f.id, "m-0001");
        assert_eq!(f.principal.as_deref(), Some("ops"));
        assert_eq!(f.hostname.as_deref(), Some("ctl-1"));
        assert!(!f.connected && !f.completed && !f.recovered);
        assert_eq!(
            f.tasks.len(),
            2,
            "live and unreachable tasks, not completed ones"
        );
        let t = &f.tasks[0];
        assert_eq!(t.state, TaskState::Running);
        assert_eq!(t.agent_id.as_deref(), Some("m-S0"));
        assert_eq!(t.ports, vec![31000, 31001, 31005]);
        assert_eq!(t.first_status_ms, Some(1_700_000_001_000));
        assert_eq!(t.running_since_ms, Some(1_700_000_002_250));
        assert_eq!(t.healthy, Some(true));
        assert_eq!(t.labels["mesos-reconciler.spec"], "web");
        assert_eq!(t.labels["flag"], "");
        let u = &f.tasks[1];
        assert_eq!(u.state, TaskState::Unreachable);
        assert_eq!(u.unreachable_since_ms, Some(1_700_000_050_000));
        assert_eq!(u.ports, Vec::<u64>::new());
        let c = &fws[1];
        assert!(c.completed && !c.connected && c.tasks.is_empty());
    }

    #[test]
    fn old_masters_without_connected_use_active() {
        let doc = r#"{"frameworks":[{"id":"a","name":"n","active":true,"hostname":""}]}"#;
        let fws = parse_frameworks(doc.as_bytes()).unwrap();
        assert!(fws[0].connected);
        assert_eq!(fws[0].hostname, None);
    }

    #[test]
    fn unknown_states_are_unknown_and_bad_documents_are_errors() {
        let doc = r#"{"frameworks":[{"id":"a","tasks":[{"id":"t","state":"TASK_NEW_IN_2030"}]}]}"#;
        let fws = parse_frameworks(doc.as_bytes()).unwrap();
        assert_eq!(fws[0].tasks[0].state, TaskState::Unknown);
        assert!(parse_frameworks(b"<html>").is_err());
        assert!(parse_frameworks(br#"{"frameworks":[{"name":"no id"}]}"#).is_err());
    }

    #[test]
    fn ports_and_query_values() {
        assert_eq!(parse_ports("[]"), Vec::<u64>::new());
        assert_eq!(parse_ports("[5-5]"), vec![5]);
        assert_eq!(parse_ports("[3-4, 1-1, x-2]"), vec![1, 3, 4]);
        assert_eq!(parse_ports("[1-18446744073709551615]").len(), 4097);
        assert_eq!(query_escape("ab-0000"), "ab-0000");
        assert_eq!(query_escape("a b&c"), "a%20b%26c");
    }
}
