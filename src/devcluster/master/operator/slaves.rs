//! `GET /master/slaves`: upstream's `Master::ReadOnlyHandler::slaves` (`SlavesWriter`). The
//! document has `slaves` (the registered agents, each as in `/master/state`, plus the
//! `*_resources_full` arrays: the resources in the protobuf JSON mapping, which operators feed to
//! `/reserve` and `/destroy-volumes`) and `recovered_slaves` (agents known from before a master
//! failover that have not re-registered yet: `id`, `hostname`, `port`, `attributes`).
//!
//! `slave_id=<id>` keeps only that agent. The agent's `pid` (`slave(N)@127.0.0.1:PORT`) is where
//! its own endpoints answer (`/slave(N)/state`, `/files/...`).

use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::super::resources::WireFormat;
use super::super::state::{AgentState, Master};
use super::super::state_json::{Arr, Obj, attribute_value, value};
use super::{Ops, ask, json_response, query_value, stopped};

pub(super) async fn get(State(ops): State<Ops>, RawQuery(query): RawQuery) -> Response {
    let slave_id = query_value(query.as_deref(), "slave_id");
    let jsonp = query_value(query.as_deref(), "jsonp");
    match ask(&ops.tx, move |m| m.slaves_json(slave_id.as_deref())).await {
        Some(body) => json_response(body, jsonp),
        None => stopped(),
    }
}

impl Master {
    /// The document, with only the agent `slave_id` when given.
    pub(in super::super) fn slaves_json(&self, slave_id: Option<&str>) -> Vec<u8> {
        let selected = |id: &str| slave_id.is_none_or(|wanted| wanted == id);
        // Endpoints show resources in the pre-refinement format (`role: "*"`), as upstream's
        // `convertResourceFormat(ENDPOINT)` writes unreserved ones.
        let endpoint_format = WireFormat::default();
        let mut out = Vec::with_capacity(1024 * (self.agents.len() + 1));
        let mut doc = Obj::new(&mut out);
        {
            let mut list = Arr::new(doc.field("slaves"));
            for agent in self
                .agents
                .values()
                .filter(|a| a.is_registered() && selected(&a.id))
            {
                let mut written = Vec::with_capacity(1024);
                self.write_agent(&mut written, agent);
                // Reopen the agent's object to add the full resources.
                written.pop();
                let item = list.item();
                item.extend_from_slice(&written);
                for (name, resources) in [
                    ("unreserved_resources_full", &agent.total),
                    ("used_resources_full", &agent.used),
                    ("offered_resources_full", &agent.offered),
                ] {
                    item.push(b',');
                    value(item, name);
                    item.push(b':');
                    let full: Vec<serde_json::Value> = resources
                        .to_pb(&endpoint_format)
                        .iter()
                        .map(crate::mesos::json::to_value)
                        .collect();
                    value(item, full);
                }
                item.extend_from_slice(b",\"reserved_resources_full\":{}}");
            }
            list.end();
        }
        {
            let mut list = Arr::new(doc.field("recovered_slaves"));
            for agent in self
                .agents
                .values()
                .filter(|a| a.state == AgentState::Recovered && selected(&a.id))
            {
                let mut o = Obj::new(list.item());
                value(o.field("id"), &agent.id);
                value(o.field("hostname"), &agent.hostname);
                value(o.field("port"), agent.http_port);
                let attributes: std::collections::BTreeMap<&str, serde_json::Value> = agent
                    .spec
                    .attributes
                    .iter()
                    .map(|a| (a.name.as_str(), attribute_value(a)))
                    .collect();
                value(o.field("attributes"), attributes);
                o.end();
            }
            list.end();
        }
        doc.end();
        out
    }
}
