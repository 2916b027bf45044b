//! What agents serve about their sandboxes, also on the master's port as `mesos-local` does (its
//! agents share the master's libprocess): `GET /slave(N)/state` and `/files/read|browse|download`
//! over every agent's sandboxes by their real directory. Each agent serves the same on its own
//! port (`agent/http.rs`), which is where its pid in `/master/slaves` points, and where tools go
//! first; these remain for clients that build agent URLs from the master's address.
//!
//! Here the master only finds the agent and hands over to the agent's code (`agent/http.rs`,
//! `agent/files.rs`). It also starts each agent's own server (`serve_agent`).

use std::collections::BTreeMap;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::AgentSpec;
use super::http::App;
use super::resources::Resources;
use super::state::{Agent, MESOS_VERSION, Master, Msg};
use super::state_json::attribute_value;
use crate::devcluster::agent::files::{self, Attached};
use crate::devcluster::agent::http::{self as agent_http, AgentIdentity};
use crate::devcluster::agent::{AgentCommand, AgentHandle};

/// An agent as `/slave(N)/state` needs it.
#[derive(Debug)]
pub(super) struct AgentLookup {
    pub identity: AgentIdentity,
    pub handle: Option<AgentHandle>,
}

impl Master {
    /// The agent whose pid is `slave(<n>)@...`.
    pub(super) fn agent_by_pid(&self, n: u64) -> Option<AgentLookup> {
        self.agents
            .values()
            .find(|a| a.pid == n)
            .map(|a| AgentLookup {
                identity: self.identity(a),
                handle: a.handle.clone(),
            })
    }

    fn identity(&self, agent: &Agent) -> AgentIdentity {
        identity(
            &self.settings.work_dir,
            &agent.id,
            &agent.hostname,
            agent.pid,
            agent.http_port,
            &agent.spec,
            &agent.total,
        )
    }

    /// Starts the agent's own HTTP server on a free loopback port and returns the port; on
    /// failure (no port left) the agent is named with the master's port, whose `/slave(N)/...`
    /// paths answer for it too.
    pub(super) fn serve_agent(
        &self,
        id: &str,
        hostname: &str,
        pid: u64,
        spec: &AgentSpec,
        total: &Resources,
        handle: &AgentHandle,
    ) -> u16 {
        let bound = std::net::TcpListener::bind(("127.0.0.1", 0)).and_then(|listener| {
            let port = listener.local_addr()?.port();
            let identity = identity(
                &self.settings.work_dir,
                id,
                hostname,
                pid,
                port,
                spec,
                total,
            );
            agent_http::serve(listener, identity, handle.clone())?;
            Ok(port)
        });
        match bound {
            Ok(port) => port,
            Err(e) => {
                tracing::warn!(agent_id = id, error = %e, "agent http server not started; the master's port answers for it");
                self.settings.port
            }
        }
    }
}

fn identity(
    work_dir: &std::path::Path,
    id: &str,
    hostname: &str,
    pid: u64,
    port: u16,
    spec: &AgentSpec,
    total: &Resources,
) -> AgentIdentity {
    let mut resources = Vec::new();
    total.write_state_json(&mut resources);
    let attributes: BTreeMap<&str, serde_json::Value> = spec
        .attributes
        .iter()
        .map(|a| (a.name.as_str(), attribute_value(a)))
        .collect();
    AgentIdentity {
        id: id.to_owned(),
        hostname: hostname.to_owned(),
        process: format!("slave({pid})"),
        pid: format!("slave({pid})@127.0.0.1:{port}"),
        version: MESOS_VERSION.to_owned(),
        work_dir: (spec.kind == super::AgentSpecKind::Process)
            .then(|| work_dir.join("agents").join(id)),
        resources: serde_json::from_slice(&resources).unwrap_or_default(),
        attributes: serde_json::to_value(attributes).unwrap_or_default(),
    }
}

/// `GET /slave(N)/state` (and `/slave(N)/state.json`).
pub(super) async fn agent_state(
    State(app): State<App>,
    UrlPath((process, endpoint)): UrlPath<(String, String)>,
) -> Response {
    let number = process
        .strip_prefix("slave(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|n| n.parse::<u64>().ok());
    let (Some(n), "state" | "state.json") = (number, endpoint.as_str()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (reply, answer) = oneshot::channel();
    if app.tx.send(Msg::AgentByPid { n, reply }).is_err() {
        return super::http::stopped();
    }
    let Ok(Some(agent)) = answer.await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(handle) = &agent.handle else {
        // A killed agent's process is gone: nothing answers at its address.
        return (StatusCode::SERVICE_UNAVAILABLE, "agent is not running\n").into_response();
    };
    let (reply, answer) = oneshot::channel();
    handle.send(AgentCommand::Sandboxes { reply });
    let Ok(sandboxes) = answer.await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "agent is not running\n").into_response();
    };
    axum::Json(agent_http::state_document(&agent.identity, &sandboxes)).into_response()
}

/// Every sandbox of the cluster, by its real directory.
fn everything(app: &App) -> Attached {
    Attached {
        root: Some(app.settings.work_dir.clone()),
        sandboxes: Vec::new(),
    }
}

/// `GET /files/read`.
pub(super) async fn read(State(app): State<App>, RawQuery(raw): RawQuery) -> Response {
    files::read(everything(&app), raw).await
}

/// `GET /files/browse`.
pub(super) async fn browse(State(app): State<App>, RawQuery(raw): RawQuery) -> Response {
    files::browse(everything(&app), raw).await
}

/// `GET /files/download`.
pub(super) async fn download(State(app): State<App>, RawQuery(raw): RawQuery) -> Response {
    files::download(everything(&app), raw).await
}
