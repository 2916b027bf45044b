//! `GET /`: the dev master's overview page, in the spirit of the Mesos web UI's: the leader, the
//! agents with used and total resources, the frameworks, and the tasks with their state and
//! links to their sandbox files on their agent (a process agent's `/files/download` of `stdout`
//! and `stderr`, and `/files/browse` of the sandbox, by upstream's virtual path). Server-rendered
//! HTML with a small inline style: no script, nothing fetched from elsewhere; reload to refresh.
//!
//! Lists are bounded so that a cluster of 100,000 tasks still answers quickly: the first
//! [`MAX_TASK_ROWS`] live tasks in framework and task id order, then the most recent
//! [`MAX_COMPLETED_ROWS`] completed ones, each with a count of what was left out.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::super::AgentSpecKind;
use super::super::resources::Resources;
use super::super::state::{Agent, Framework, MESOS_VERSION, Master, Task, is_terminal, state_name};
use super::{Ops, ask, stopped};
use crate::status::html::escape;

const MAX_TASK_ROWS: usize = 1000;
const MAX_COMPLETED_ROWS: usize = 200;

pub(super) async fn get(State(ops): State<Ops>) -> Response {
    match ask(&ops.tx, |m| m.overview_page()).await {
        Some(page) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response(),
        None => stopped(),
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin-bottom:1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:.9em}\
th{background:#f0f0f0}.state-TASK_RUNNING{color:#080}.state-TASK_FAILED,.state-TASK_ERROR,\
.state-TASK_LOST{color:#b00}.muted{color:#777}code{font-size:.95em}";

/// `used / total` of one scalar.
fn usage(used: &Resources, total: &Resources, name: &str) -> String {
    format!("{} / {}", used.scalar(name), total.scalar(name))
}

impl Master {
    pub(in super::super) fn overview_page(&self) -> String {
        let mut page = String::with_capacity(16 * 1024);
        let leader = format!("master@127.0.0.1:{}", self.settings.port);
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
             <title>Mesos dev cluster</title><style>{STYLE}</style></head>\n<body>\n\
             <h1>Mesos dev cluster</h1>\n\
             <p>Leader: <code>{}</code> · master id <code>{}</code> · version {MESOS_VERSION} · \
             <a href=\"/master/state\">state</a> · <a href=\"/metrics/snapshot\">metrics</a> · \
             <a href=\"/master/flags\">flags</a></p>\n",
            escape(&leader),
            escape(&self.master_id),
        );
        self.write_agents(&mut page);
        let mut frameworks: Vec<&Framework> = self.frameworks.values().collect();
        frameworks.sort_by(|a, b| a.id.cmp(&b.id));
        self.write_frameworks(&mut page, &frameworks);
        self.write_tasks(&mut page, &frameworks);
        page.push_str("</body>\n</html>\n");
        page
    }

    fn write_agents(&self, page: &mut String) {
        let registered: Vec<&Agent> = self.agents.values().filter(|a| a.is_registered()).collect();
        let _ = write!(
            page,
            "<h2>Agents ({})</h2>\n<table>\n<tr><th>id</th><th>host</th><th>pid</th>\
             <th>kind</th><th>tasks</th><th>cpus used / total</th><th>mem used / total</th>\
             <th>disk used / total</th></tr>\n",
            registered.len()
        );
        for agent in registered {
            let kind = match agent.spec.kind {
                AgentSpecKind::Process => "process",
                AgentSpecKind::Virtual => "virtual",
            };
            let _ = writeln!(
                page,
                "<tr><td><code>{id}</code></td><td>{host}</td><td><a href=\"{url}/state\">\
                 <code>slave({n})@127.0.0.1:{port}</code></a></td><td>{kind}</td><td>{tasks}</td>\
                 <td>{cpus}</td><td>{mem}</td><td>{disk}</td></tr>",
                id = escape(&agent.id),
                host = escape(&agent.hostname),
                url = agent_url(agent),
                n = agent.pid,
                port = agent.http_port,
                tasks = agent.tasks.len(),
                cpus = usage(&agent.used, &agent.total, "cpus"),
                mem = usage(&agent.used, &agent.total, "mem"),
                disk = usage(&agent.used, &agent.total, "disk"),
            );
        }
        page.push_str("</table>\n");
    }

    fn write_frameworks(&self, page: &mut String, frameworks: &[&Framework]) {
        let _ = write!(
            page,
            "<h2>Frameworks ({})</h2>\n<table>\n<tr><th>id</th><th>name</th><th>user</th>\
             <th>roles</th><th>connected</th><th>live tasks</th><th>cpus used</th>\
             <th>mem used</th></tr>\n",
            frameworks.len()
        );
        for framework in frameworks {
            let mut used = Resources::default();
            let mut live = 0;
            for (_, task) in self.tasks.of_framework(&framework.id) {
                if !is_terminal(task.state()) {
                    used.add(&task.resources);
                    live += 1;
                }
            }
            let _ = writeln!(
                page,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{live}</td><td>{}</td><td>{}</td></tr>",
                escape(&framework.id),
                escape(&framework.info.name),
                escape(&framework.info.user),
                escape(&framework.roles().join(", ")),
                if framework.stream().is_some() {
                    "yes"
                } else {
                    "no"
                },
                used.scalar("cpus"),
                used.scalar("mem"),
            );
        }
        if !self.completed_frameworks.is_empty() {
            let _ = writeln!(
                page,
                "<tr><td colspan=\"8\" class=\"muted\">and {} completed (see \
                 <a href=\"/master/frameworks\">/master/frameworks</a>)</td></tr>",
                self.completed_frameworks.len()
            );
        }
        page.push_str("</table>\n");
    }

    fn write_tasks(&self, page: &mut String, frameworks: &[&Framework]) {
        let live_total = self.tasks.len();
        let _ = write!(
            page,
            "<h2>Tasks ({live_total} live)</h2>\n<table>\n<tr><th>id</th><th>name</th>\
             <th>framework</th><th>agent</th><th>state</th><th>sandbox</th></tr>\n"
        );
        for (shown, ((framework_id, task_id), task)) in self.tasks.iter().enumerate() {
            if shown == MAX_TASK_ROWS {
                let _ = writeln!(
                    page,
                    "<tr><td colspan=\"6\" class=\"muted\">and {} more (see \
                     <a href=\"/master/tasks?limit=-1\">/master/tasks</a>)</td></tr>",
                    live_total - MAX_TASK_ROWS
                );
                break;
            }
            self.write_task_row(page, framework_id, task_id, task);
        }
        page.push_str(
            "</table>\n<h2>Completed tasks</h2>\n<table>\n<tr><th>id</th>\
                       <th>name</th><th>framework</th><th>agent</th><th>state</th>\
                       <th>sandbox</th></tr>\n",
        );
        let completed: Vec<(&str, &str, &Task)> = frameworks
            .iter()
            .flat_map(|f| {
                f.completed_tasks
                    .iter()
                    .map(|(id, task)| (f.id.as_str(), id.as_str(), task))
            })
            .collect();
        let skipped = completed.len().saturating_sub(MAX_COMPLETED_ROWS);
        for (framework_id, task_id, task) in completed.iter().rev().take(MAX_COMPLETED_ROWS) {
            self.write_task_row(page, framework_id, task_id, task);
        }
        if skipped > 0 {
            let _ = writeln!(
                page,
                "<tr><td colspan=\"6\" class=\"muted\">and {skipped} older</td></tr>"
            );
        }
        page.push_str("</table>\n");
    }

    fn write_task_row(&self, page: &mut String, framework_id: &str, task_id: &str, task: &Task) {
        let state = state_name(task.state());
        let agent = self.agents.get(&*task.agent_id);
        let links = match agent {
            Some(agent) if agent.spec.kind == AgentSpecKind::Process && agent.handle.is_some() => {
                let sandbox = format!("/frameworks/{framework_id}/executors/{task_id}/runs/latest");
                let url = agent_url(agent);
                let q = |path: &str| utf8_percent_encode(path, NON_ALPHANUMERIC).to_string();
                format!(
                    "<a href=\"{url}/files/download?path={}\">stdout</a> · \
                     <a href=\"{url}/files/download?path={}\">stderr</a> · \
                     <a href=\"{url}/files/browse?path={}\">files</a>",
                    q(&format!("{sandbox}/stdout")),
                    q(&format!("{sandbox}/stderr")),
                    q(&sandbox),
                )
            }
            Some(_) => "<span class=\"muted\">virtual: no sandbox</span>".to_owned(),
            None => String::new(),
        };
        let _ = writeln!(
            page,
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td>\
             <td><code>{}</code></td><td class=\"state-{state}\">{state}</td><td>{links}</td></tr>",
            escape(task_id),
            escape(&task.name),
            escape(framework_id),
            escape(&task.agent_id),
        );
    }
}

/// `http://127.0.0.1:<port>` of the agent's own server.
fn agent_url(agent: &Agent) -> String {
    format!("http://127.0.0.1:{}", agent.http_port)
}
