//! `GET /master/state-summary`: upstream's `Master::ReadOnlyHandler::stateSummary`, what the web
//! UI's overview polls. `hostname`, then `slaves` (each as in `/master/state`, plus a count of
//! tasks per state and the `framework_ids` with tasks there) and `frameworks` (upstream's summary
//! of a framework: `id`, `name`, resources, `capabilities`, `hostname`, `webui_url`, `active`,
//! `connected`, `recovered`, plus the counts per state and the `slave_ids`).
//!
//! As upstream, the counts cover the live, unreachable and completed tasks of the registered
//! frameworks (not those of removed ones), and only the states upstream lists.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::super::resources::Resources;
use super::super::state::{Master, Task, is_terminal};
use super::super::state_json::{Obj, value};
use super::{Ops, ask, json_response, query_value, stopped};
use crate::mesos::proto::v1::TaskState as S;

/// The states upstream's summary shows, in its order.
const SUMMARY_STATES: [S; 10] = [
    S::TaskStaging,
    S::TaskStarting,
    S::TaskRunning,
    S::TaskKilling,
    S::TaskFinished,
    S::TaskKilled,
    S::TaskFailed,
    S::TaskLost,
    S::TaskError,
    S::TaskUnreachable,
];

pub(super) async fn get(State(ops): State<Ops>, RawQuery(query): RawQuery) -> Response {
    let jsonp = query_value(query.as_deref(), "jsonp");
    match ask(&ops.tx, |m| m.state_summary_json()).await {
        Some(body) => json_response(body, jsonp),
        None => stopped(),
    }
}

/// Tasks per state, and the other side of the agent/framework relation.
#[derive(Default)]
struct Tally<'a> {
    states: BTreeMap<i32, u64>,
    others: BTreeSet<&'a str>,
}

impl<'a> Tally<'a> {
    fn count(&mut self, task: &Task, other: &'a str) {
        *self.states.entry(task.state()).or_default() += 1;
        self.others.insert(other);
    }

    fn write(&self, o: &mut Obj<'_>, others_field: &str) {
        for state in SUMMARY_STATES {
            let n = self.states.get(&(state as i32)).copied().unwrap_or(0);
            value(o.field(state.as_str_name()), n);
        }
        value(o.field(others_field), &self.others);
    }
}

impl Master {
    pub(in super::super) fn state_summary_json(&self) -> Vec<u8> {
        let mut by_agent: BTreeMap<&str, Tally<'_>> = BTreeMap::new();
        let mut by_framework: BTreeMap<&str, Tally<'_>> = BTreeMap::new();
        let mut frameworks: Vec<_> = self.frameworks.values().collect();
        frameworks.sort_by(|a, b| a.id.cmp(&b.id));
        for framework in &frameworks {
            let id = framework.id.as_str();
            let live = self.tasks.of_framework(id).map(|(_, t)| t);
            let unreachable = framework.unreachable_tasks.iter().map(|(_, t)| t);
            let completed = framework.completed_tasks.iter().map(|(_, t)| t);
            for task in live.chain(unreachable).chain(completed) {
                by_agent.entry(&task.agent_id).or_default().count(task, id);
                by_framework
                    .entry(id)
                    .or_default()
                    .count(task, &task.agent_id);
            }
        }
        let empty = Tally::default();
        let mut out = Vec::with_capacity(1024 * (self.agents.len() + frameworks.len() + 1));
        let mut doc = Obj::new(&mut out);
        value(doc.field("hostname"), &self.settings.hostname);
        {
            let list = doc.field("slaves");
            list.push(b'[');
            let mut first = true;
            for agent in self.agents.values().filter(|a| a.is_registered()) {
                if !first {
                    list.push(b',');
                }
                first = false;
                let mut written = Vec::with_capacity(1024);
                self.write_agent(&mut written, agent);
                // Reopen the agent's object to add its counts.
                written.pop();
                list.extend_from_slice(&written);
                let mut rest = Vec::new();
                let mut o = Obj::new(&mut rest);
                by_agent
                    .get(agent.id.as_str())
                    .unwrap_or(&empty)
                    .write(&mut o, "framework_ids");
                o.end();
                list.push(b',');
                list.extend_from_slice(&rest[1..]);
            }
            list.push(b']');
        }
        {
            let list = doc.field("frameworks");
            list.push(b'[');
            for (i, framework) in frameworks.iter().enumerate() {
                if i > 0 {
                    list.push(b',');
                }
                let mut used = Resources::default();
                for (_, task) in self.tasks.of_framework(&framework.id) {
                    if !is_terminal(task.state()) {
                        used.add(&task.resources);
                    }
                }
                let mut offered = Resources::default();
                for offer in framework.offers.iter().filter_map(|id| self.offers.get(id)) {
                    offered.add(&offer.resources);
                }
                let capabilities: Vec<&str> = framework
                    .info
                    .capabilities
                    .iter()
                    .filter_map(|c| c.r#type)
                    .filter_map(|t| {
                        crate::mesos::proto::v1::framework_info::capability::Type::try_from(t).ok()
                    })
                    .map(|t| t.as_str_name())
                    .collect();
                let connected = framework.stream().is_some();
                let mut o = Obj::new(list);
                value(o.field("id"), &framework.id);
                value(o.field("name"), &framework.info.name);
                used.write_state_json(o.field("used_resources"));
                offered.write_state_json(o.field("offered_resources"));
                value(o.field("capabilities"), capabilities);
                value(
                    o.field("hostname"),
                    framework.info.hostname.as_deref().unwrap_or(""),
                );
                value(
                    o.field("webui_url"),
                    framework.info.webui_url.as_deref().unwrap_or(""),
                );
                value(o.field("active"), connected);
                value(o.field("connected"), connected);
                value(
                    o.field("recovered"),
                    matches!(framework.conn, super::super::state::Conn::Recovered),
                );
                by_framework
                    .get(framework.id.as_str())
                    .unwrap_or(&empty)
                    .write(&mut o, "slave_ids");
                o.end();
            }
            list.push(b']');
        }
        doc.end();
        out
    }
}
