//! An agent's own HTTP server, on a loopback port of its own as a Mesos agent has (its pid
//! `slave(N)@127.0.0.1:PORT` names it, in `/master/slaves` and `/master/state`). It serves
//! what operators' tools and the web UI ask an agent:
//!
//! - `GET /state` (also `/slave(N)/state`, `state.json`): the agent's id, pid, resources and
//!   flags, its frameworks and their executors (a command executor per task, with the task's id)
//!   with each sandbox `directory`, live ones under `executors`, ended ones under
//!   `completed_executors`;
//! - `GET /files/read|browse|download` (`files.rs`): the sandboxes, by their real directory and
//!   by upstream's virtual path `/frameworks/<fw>/executors/<ex>/runs/latest`;
//! - `POST /api/v1` (also `/slave(N)/api/v1`): the v1 agent API, `GET_HEALTH`, `GET_FLAGS`,
//!   `GET_VERSION`, `GET_STATE` and `GET_CONTAINERS`, in JSON and protobuf, with the status rules
//!   of `api.rs`; other calls are 501;
//! - `GET /health`.
//!
//! The server stops when the agent does (killed by the fault API, or the cluster's shutdown):
//! then nothing answers at its address, as for a dead agent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::api::{self, read_typed_call, text};
use super::files::{self, Attached};
use super::{AgentCommand, AgentHandle, SandboxReport, TaskReport};
use crate::mesos::proto::is_terminal_state;
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::agent::{Call, Response as ApiResponse, call, response};

/// Who an agent is, as its endpoints show it.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub id: String,
    pub hostname: String,
    /// `slave(N)`.
    pub process: String,
    /// `slave(N)@127.0.0.1:PORT`.
    pub pid: String,
    /// The Mesos version reported.
    pub version: String,
    /// Where its sandboxes live (None for a virtual agent: no files).
    pub work_dir: Option<PathBuf>,
    /// `resources` and `attributes` as the master's state shows them.
    pub resources: Value,
    pub attributes: Value,
}

#[derive(Clone)]
struct AgentApp {
    identity: Arc<AgentIdentity>,
    handle: AgentHandle,
}

/// Serves the agent's endpoints on `listener` until the agent stops.
pub fn serve(
    listener: std::net::TcpListener,
    identity: AgentIdentity,
    handle: AgentHandle,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let mut app = Router::new();
    for path in ["/state", "/state/", "/state.json"] {
        app = app.route(path, get(state));
    }
    for (name, handler) in [
        ("read", get(read)),
        ("browse", get(browse)),
        ("download", get(download)),
    ] {
        app = app
            .route(&format!("/files/{name}"), handler.clone())
            .route(&format!("/files/{name}.json"), handler);
    }
    let app = app
        .route("/{process}/{endpoint}", get(own))
        .route("/{process}/api/v1", any(own_v1))
        .route("/api/v1", any(v1))
        .route("/health", get(|| async { StatusCode::OK }))
        .with_state(AgentApp {
            identity: Arc::new(identity),
            handle: handle.clone(),
        });
    tokio::spawn(async move {
        let stopped = async move { handle.closed().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(error = %e, "agent http server failed");
        }
    });
    Ok(())
}

/// `/slave(N)/state` and `/slave(N)/health`: the agent's process-prefixed paths.
async fn own(
    State(app): State<AgentApp>,
    UrlPath((process, endpoint)): UrlPath<(String, String)>,
) -> Response {
    if process != app.identity.process {
        return StatusCode::NOT_FOUND.into_response();
    }
    match endpoint.as_str() {
        "state" | "state.json" => state(State(app)).await,
        "health" => StatusCode::OK.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/slave(N)/api/v1`.
async fn own_v1(
    State(app): State<AgentApp>,
    UrlPath(process): UrlPath<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if process != app.identity.process {
        return StatusCode::NOT_FOUND.into_response();
    }
    v1(State(app), method, headers, body).await
}

/// Asks the agent for its sandboxes; None once it has stopped.
async fn sandboxes(handle: &AgentHandle) -> Option<Vec<SandboxReport>> {
    let (reply, answer) = oneshot::channel();
    handle.send(AgentCommand::Sandboxes { reply });
    answer.await.ok()
}

/// Asks the agent for its live tasks; None once it has stopped.
async fn tasks(handle: &AgentHandle) -> Option<Vec<TaskReport>> {
    let (reply, answer) = oneshot::channel();
    handle.send(AgentCommand::ListTasks { reply });
    answer.await.ok()
}

fn gone() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "agent is not running\n").into_response()
}

async fn state(State(app): State<AgentApp>) -> Response {
    match sandboxes(&app.handle).await {
        Some(list) => axum::Json(state_document(&app.identity, &list)).into_response(),
        None => gone(),
    }
}

/// The agent's `/state` document.
pub fn state_document(agent: &AgentIdentity, sandboxes: &[SandboxReport]) -> Value {
    #[derive(Default)]
    struct Framework {
        executors: Vec<Value>,
        completed: Vec<Value>,
    }
    let mut frameworks: BTreeMap<&str, Framework> = BTreeMap::new();
    for s in sandboxes {
        let state = s.state.map_or("TASK_STAGING", |state| {
            pb::TaskState::try_from(state).map_or("TASK_UNKNOWN_STATE", |s| s.as_str_name())
        });
        let task = json!({
            "id": s.task_id,
            "framework_id": s.framework_id,
            "executor_id": "",
            "slave_id": agent.id,
            "state": state,
        });
        let directory = s
            .directory
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let (tasks, completed_tasks) = if s.completed {
            (vec![], vec![task])
        } else {
            (vec![task], vec![])
        };
        let executor = json!({
            "id": s.task_id,
            "name": format!("Command Executor (Task: {})", s.task_id),
            "source": s.task_id,
            "directory": directory,
            "tasks": tasks,
            "queued_tasks": [],
            "completed_tasks": completed_tasks,
        });
        let framework = frameworks.entry(s.framework_id.as_str()).or_default();
        if s.completed {
            framework.completed.push(executor);
        } else {
            framework.executors.push(executor);
        }
    }
    let (mut live, mut gone) = (Vec::new(), Vec::new());
    for (id, f) in frameworks {
        let has_live = !f.executors.is_empty();
        let doc = json!({
            "id": id,
            "executors": f.executors,
            "completed_executors": f.completed,
        });
        if has_live {
            live.push(doc);
        } else {
            gone.push(doc);
        }
    }
    let work_dir = agent
        .work_dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    json!({
        "version": agent.version,
        "id": agent.id,
        "pid": agent.pid,
        "hostname": agent.hostname,
        "resources": agent.resources,
        "attributes": agent.attributes,
        "flags": { "work_dir": work_dir },
        "frameworks": live,
        "completed_frameworks": gone,
    })
}

async fn attached(app: &AgentApp) -> Option<Attached> {
    Some(Attached {
        root: app.identity.work_dir.clone(),
        sandboxes: sandboxes(&app.handle).await?,
    })
}

async fn read(State(app): State<AgentApp>, RawQuery(raw): RawQuery) -> Response {
    match attached(&app).await {
        Some(a) => files::read(a, raw).await,
        None => gone(),
    }
}

async fn browse(State(app): State<AgentApp>, RawQuery(raw): RawQuery) -> Response {
    match attached(&app).await {
        Some(a) => files::browse(a, raw).await,
        None => gone(),
    }
}

async fn download(State(app): State<AgentApp>, RawQuery(raw): RawQuery) -> Response {
    match attached(&app).await {
        Some(a) => files::download(a, raw).await,
        None => gone(),
    }
}

/// `POST /api/v1`.
async fn v1(
    State(app): State<AgentApp>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let read = read_typed_call(&method, &headers, &body, "agent::Call", |c: &Call| {
        c.r#type.and_then(|t| call::Type::try_from(t).ok())
    });
    let (_, ty, encoding) = match read {
        Ok(read) => read,
        Err(refused) => return *refused,
    };
    let mut answer = ApiResponse::default();
    let response_type = match ty {
        call::Type::Unknown => return StatusCode::NOT_IMPLEMENTED.into_response(),
        call::Type::GetHealth => {
            answer.get_health = Some(response::GetHealth { healthy: true });
            response::Type::GetHealth
        }
        call::Type::GetVersion => {
            answer.get_version = Some(response::GetVersion {
                version_info: pb::VersionInfo {
                    version: app.identity.version.clone(),
                    ..Default::default()
                },
            });
            response::Type::GetVersion
        }
        call::Type::GetFlags => {
            let work_dir = app
                .identity
                .work_dir
                .as_ref()
                .map(|d| d.display().to_string());
            answer.get_flags = Some(response::GetFlags {
                flags: [
                    ("hostname", Some(app.identity.hostname.clone())),
                    ("work_dir", work_dir),
                ]
                .into_iter()
                .map(|(name, value)| pb::Flag {
                    name: name.to_owned(),
                    value,
                })
                .collect(),
            });
            response::Type::GetFlags
        }
        call::Type::GetState | call::Type::GetContainers => {
            let (Some(live), Some(sandboxes)) =
                (tasks(&app.handle).await, sandboxes(&app.handle).await)
            else {
                return gone();
            };
            if ty == call::Type::GetState {
                answer.get_state = Some(get_state(&app.identity, &live, &sandboxes));
                response::Type::GetState
            } else {
                answer.get_containers = Some(get_containers(&live));
                response::Type::GetContainers
            }
        }
        other => {
            return text(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "{} is not implemented by the dev cluster's agents (see the README's devcluster section)",
                    other.as_str_name()
                ),
            );
        }
    };
    answer.r#type = Some(response_type as i32);
    api::answer(encoding, &answer)
}

fn command_executor(framework_id: &str, task_id: &str) -> pb::ExecutorInfo {
    pb::ExecutorInfo {
        executor_id: pb::ExecutorId {
            value: task_id.to_owned(),
        },
        framework_id: Some(pb::FrameworkId {
            value: framework_id.to_owned(),
        }),
        name: Some(format!("Command Executor (Task: {task_id})")),
        source: Some(task_id.to_owned()),
        ..Default::default()
    }
}

/// `GET_STATE`: the live tasks (launched, or terminated while their last update waits for its
/// acknowledgement) with their TaskInfo and latest status, the completed ones the agent
/// remembers, their command executors and their frameworks (known by id only: an agent keeps
/// no FrameworkInfo here).
fn get_state(
    agent: &AgentIdentity,
    live: &[TaskReport],
    sandboxes: &[SandboxReport],
) -> response::GetState {
    let mut tasks = response::GetTasks::default();
    let mut executors = response::GetExecutors::default();
    let mut live_frameworks = std::collections::BTreeSet::new();
    let mut all_frameworks = std::collections::BTreeSet::new();
    let agent_id = pb::AgentId {
        value: agent.id.clone(),
    };
    for report in live {
        let info = &report.task;
        let task = pb::Task {
            name: info.name.clone(),
            task_id: info.task_id.clone(),
            framework_id: pb::FrameworkId {
                value: report.framework_id.clone(),
            },
            executor_id: None,
            agent_id: agent_id.clone(),
            state: report.latest.state,
            resources: info.resources.clone(),
            statuses: vec![report.latest.clone()],
            labels: info.labels.clone(),
            discovery: info.discovery,
            container: info.container.clone(),
            health_check: info.health_check.clone(),
            kill_policy: info.kill_policy,
            ..Default::default()
        };
        if is_terminal_state(report.latest.state) {
            tasks.terminated_tasks.push(task);
        } else {
            tasks.launched_tasks.push(task);
        }
        executors.executors.push(response::get_executors::Executor {
            executor_info: command_executor(&report.framework_id, &info.task_id.value),
        });
        live_frameworks.insert(report.framework_id.clone());
        all_frameworks.insert(report.framework_id.clone());
    }
    for s in sandboxes.iter().filter(|s| s.completed) {
        tasks.completed_tasks.push(pb::Task {
            task_id: pb::TaskId {
                value: s.task_id.clone(),
            },
            framework_id: pb::FrameworkId {
                value: s.framework_id.clone(),
            },
            agent_id: agent_id.clone(),
            state: s.state.unwrap_or(pb::TaskState::TaskStaging as i32),
            ..Default::default()
        });
        executors
            .completed_executors
            .push(response::get_executors::Executor {
                executor_info: command_executor(&s.framework_id, &s.task_id),
            });
        all_frameworks.insert(s.framework_id.clone());
    }
    let framework = |id: &String| response::get_frameworks::Framework {
        framework_info: pb::FrameworkInfo {
            id: Some(pb::FrameworkId { value: id.clone() }),
            ..Default::default()
        },
    };
    let frameworks = response::GetFrameworks {
        frameworks: live_frameworks.iter().map(framework).collect(),
        completed_frameworks: all_frameworks
            .difference(&live_frameworks)
            .map(framework)
            .collect(),
    };
    response::GetState {
        get_tasks: Some(tasks),
        get_executors: Some(executors),
        get_frameworks: Some(frameworks),
    }
}

/// `GET_CONTAINERS`: the container of each live task, as its latest status names it.
fn get_containers(live: &[TaskReport]) -> response::GetContainers {
    let containers = live
        .iter()
        .filter(|r| !is_terminal_state(r.latest.state))
        .filter_map(|report| {
            let status = report.latest.container_status.clone()?;
            let container_id = status.container_id.clone()?;
            let task_id = &report.task.task_id.value;
            Some(response::get_containers::Container {
                framework_id: Some(pb::FrameworkId {
                    value: report.framework_id.clone(),
                }),
                executor_id: Some(pb::ExecutorId {
                    value: task_id.clone(),
                }),
                executor_name: Some(format!("Command Executor (Task: {task_id})")),
                container_id,
                container_status: Some(status),
            })
        })
        .collect();
    response::GetContainers { containers }
}
