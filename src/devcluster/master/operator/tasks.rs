//! `GET /master/tasks`: upstream's `Master::ReadOnlyHandler::tasks`. The document is
//! `{"tasks": [...]}`, each task as in `/master/state`: the live, unreachable and completed tasks
//! of registered and of completed frameworks, sorted by the timestamp of each task's first status
//! (tasks without a status count as the oldest), newest first unless `order=asc`, then cut to
//! `limit` tasks (default 100) from `offset` (default 0).
//!
//! As upstream, `limit` and `offset` are read as C `int`s and used as sizes: `limit=-1` (what
//! `mesos task list` sends) means every task, a value that is not a number means the default.
//! `framework_id` and `task_id` keep only matching tasks.

use std::cmp::Ordering;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::Value;

use super::super::state::{Master, Task};
use super::super::state_json::{Arr, Obj, value, write_task};
use super::{Ops, ask, json_response, query_value, stopped};

/// Upstream's `TASK_LIMIT`.
const DEFAULT_LIMIT: usize = 100;

/// The query, as upstream reads it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TasksQuery {
    pub limit: usize,
    pub offset: usize,
    pub ascending: bool,
    pub framework_id: Option<String>,
    pub task_id: Option<String>,
}

impl TasksQuery {
    pub fn parse(raw: Option<&str>) -> TasksQuery {
        // `numify<int>` then a conversion to `size_t`: a negative number wraps around.
        let size = |name: &str, default: usize| {
            query_value(raw, name)
                .and_then(|v| v.parse::<i32>().ok())
                .map_or(default, |n| n as usize)
        };
        TasksQuery {
            limit: size("limit", DEFAULT_LIMIT),
            offset: size("offset", 0),
            ascending: query_value(raw, "order").as_deref() == Some("asc"),
            framework_id: query_value(raw, "framework_id"),
            task_id: query_value(raw, "task_id"),
        }
    }
}

pub(super) async fn get(State(ops): State<Ops>, RawQuery(query): RawQuery) -> Response {
    let q = TasksQuery::parse(query.as_deref());
    let jsonp = query_value(query.as_deref(), "jsonp");
    match ask(&ops.tx, move |m| m.tasks_json(&q)).await {
        Some(body) => json_response(body, jsonp),
        None => stopped(),
    }
}

/// A task to list: a record of a registered framework, or one kept in a completed framework's
/// document.
enum Listed<'a> {
    Live {
        framework_id: &'a str,
        task_id: &'a str,
        task: &'a Task,
    },
    Kept(Value),
}

impl Listed<'_> {
    /// The timestamp of the first status, which the order follows.
    fn first_timestamp(&self) -> Option<f64> {
        match self {
            Listed::Live { task, .. } => task.statuses.first().map(|s| s.timestamp),
            Listed::Kept(doc) => doc["statuses"][0]["timestamp"].as_f64(),
        }
    }
}

/// Upstream's `TaskComparator::ascending`: tasks without a status first.
fn ascending(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

impl Master {
    pub(super) fn tasks_json(&self, q: &TasksQuery) -> Vec<u8> {
        let framework_ok = |id: &str| q.framework_id.as_deref().is_none_or(|f| f == id);
        let task_ok = |id: &str| q.task_id.as_deref().is_none_or(|t| t == id);
        let mut listed: Vec<Listed<'_>> = Vec::new();
        let mut frameworks: Vec<_> = self
            .frameworks
            .values()
            .filter(|f| framework_ok(&f.id))
            .collect();
        frameworks.sort_by(|a, b| a.id.cmp(&b.id));
        for framework in frameworks {
            let framework_id = framework.id.as_str();
            let live = self.tasks.of_framework(framework_id);
            let unreachable = framework
                .unreachable_tasks
                .iter()
                .map(|(id, task)| (id.as_str(), task));
            let completed = framework
                .completed_tasks
                .iter()
                .map(|(id, task)| (id.as_str(), task));
            for (task_id, task) in live.chain(unreachable).chain(completed) {
                if task_ok(task_id) {
                    listed.push(Listed::Live {
                        framework_id,
                        task_id,
                        task,
                    });
                }
            }
        }
        for (id, snapshot) in &self.completed_frameworks {
            if !framework_ok(id) {
                continue;
            }
            let Ok(mut doc) = serde_json::from_slice::<Value>(snapshot) else {
                continue;
            };
            for list in ["tasks", "unreachable_tasks", "completed_tasks"] {
                if let Value::Array(tasks) = doc[list].take() {
                    listed.extend(
                        tasks
                            .into_iter()
                            .filter(|t| t["id"].as_str().is_some_and(task_ok))
                            .map(Listed::Kept),
                    );
                }
            }
        }
        listed.sort_by(|a, b| {
            let order = ascending(a.first_timestamp(), b.first_timestamp());
            if q.ascending { order } else { order.reverse() }
        });
        let end = q.offset.saturating_add(q.limit).min(listed.len());
        let window = listed.get(q.offset..end).unwrap_or_default();
        let mut out = Vec::with_capacity(64 + window.len() * 600);
        let mut doc = Obj::new(&mut out);
        let mut tasks = Arr::new(doc.field("tasks"));
        for entry in window {
            match entry {
                Listed::Live {
                    framework_id,
                    task_id,
                    task,
                } => write_task(tasks.item(), framework_id, task_id, task),
                Listed::Kept(task) => value(tasks.item(), task),
            }
        }
        tasks.end();
        doc.end();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_as_upstream_reads_it() {
        let q = TasksQuery::parse(Some("order=asc&limit=-1"));
        assert!(q.ascending);
        assert_eq!(q.limit, usize::MAX);
        assert_eq!(q.offset, 0);
        let q = TasksQuery::parse(Some("limit=ten&offset=2&order=desc&task_id=a%2Fb"));
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert_eq!(q.offset, 2);
        assert!(!q.ascending);
        assert_eq!(q.task_id.as_deref(), Some("a/b"));
        assert_eq!(TasksQuery::parse(None).limit, DEFAULT_LIMIT);
    }

    #[test]
    fn tasks_without_a_status_sort_as_the_oldest() {
        let mut times = vec![Some(2.0), None, Some(1.0)];
        times.sort_by(|a, b| ascending(*a, *b));
        assert_eq!(times, [None, Some(1.0), Some(2.0)]);
        times.sort_by(|a, b| ascending(*a, *b).reverse());
        assert_eq!(times, [Some(2.0), Some(1.0), None]);
    }
}
