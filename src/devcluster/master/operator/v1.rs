//! `POST /api/v1`: the v1 operator API (upstream's `Master::Http::api`), in JSON and protobuf.
//! The checks come in upstream's order and with its status codes: 405 for another method, 400
//! without `Content-Type`, 415 for a type other than `application/json` or
//! `application/x-protobuf`, 400 for a body that does not parse or a call without a type, 406 for
//! an `Accept` that allows neither encoding; then the call. The answer is a `Response` in the
//! accepted encoding (JSON whenever acceptable), and `SUBSCRIBE` answers with a RecordIO stream
//! of `Event`s (`subscribe.rs`).
//!
//! Calls answered: GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS, GET_MASTER, GET_STATE,
//! GET_AGENTS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS, GET_ROLES and SUBSCRIBE. UNKNOWN is a
//! 501 as upstream's; every other call (maintenance, quota, reservations, volumes, logging, files,
//! weights, agent draining, TEARDOWN, MARK_AGENT_GONE) is a 501 that says the dev cluster does
//! not implement it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::super::http::{BUILD_DATE, BUILD_TIME, BUILD_USER, GIT_SHA};
use super::super::state::{MESOS_VERSION, Master};
use super::roles::DEFAULT_WEIGHT;
use super::{Ops, ask, stopped};
use crate::devcluster::agent::api::{self, read_typed_call, text};
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::master::{Call, Response as ApiResponse, call, response};

pub(super) async fn post(
    State(ops): State<Ops>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A type number this master does not know decodes as an unknown field upstream: no type.
    let read = read_typed_call(&method, &headers, &body, "master::Call", |c: &Call| {
        c.r#type.and_then(|t| call::Type::try_from(t).ok())
    });
    let (_, ty, encoding) = match read {
        Ok(read) => read,
        Err(refused) => return *refused,
    };
    if ty == call::Type::Subscribe {
        let interval = ops.settings.heartbeat_interval;
        return match ask(&ops.tx, move |m| m.operator_subscribe(encoding, interval)).await {
            Some(body) => {
                let mut answer = Response::new(body);
                answer.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(encoding.content_type()),
                );
                answer
            }
            None => stopped(),
        };
    }
    let answer = match ty {
        call::Type::Unknown => return StatusCode::NOT_IMPLEMENTED.into_response(),
        call::Type::GetHealth => Some(health()),
        call::Type::GetVersion => Some(version()),
        call::Type::GetFlags
        | call::Type::GetMetrics
        | call::Type::GetMaster
        | call::Type::GetState
        | call::Type::GetAgents
        | call::Type::GetFrameworks
        | call::Type::GetExecutors
        | call::Type::GetTasks
        | call::Type::GetRoles => match ask(&ops.tx, move |m| m.operator_read(ty)).await {
            Some(answer) => answer,
            None => return stopped(),
        },
        _ => None,
    };
    match answer {
        Some(message) => api::answer(encoding, &message),
        None => text(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "{} is not implemented by the dev cluster (see the README's devcluster section)",
                ty.as_str_name()
            ),
        ),
    }
}

fn health() -> ApiResponse {
    ApiResponse {
        r#type: Some(response::Type::GetHealth as i32),
        get_health: Some(response::GetHealth { healthy: true }),
        ..Default::default()
    }
}

fn version() -> ApiResponse {
    ApiResponse {
        r#type: Some(response::Type::GetVersion as i32),
        get_version: Some(response::GetVersion {
            version_info: pb::VersionInfo {
                version: MESOS_VERSION.to_owned(),
                build_date: Some(BUILD_DATE.to_owned()),
                build_time: Some(BUILD_TIME),
                build_user: Some(BUILD_USER.to_owned()),
                git_sha: Some(GIT_SHA.to_owned()),
                git_branch: None,
                git_tag: Some(MESOS_VERSION.to_owned()),
            },
        }),
        ..Default::default()
    }
}

impl Master {
    /// The answer to a call that reads the state; None for a call that is not a read.
    fn operator_read(&self, ty: call::Type) -> Option<ApiResponse> {
        let mut answer = ApiResponse::default();
        let response_type = match ty {
            call::Type::GetFlags => {
                answer.get_flags = Some(response::GetFlags {
                    flags: self
                        .flags()
                        .into_iter()
                        .map(|(name, value)| pb::Flag {
                            name: name.to_owned(),
                            value: Some(value),
                        })
                        .collect(),
                });
                response::Type::GetFlags
            }
            call::Type::GetMetrics => {
                let snapshot = self.metrics_snapshot();
                let metrics = snapshot
                    .as_object()
                    .map(|all| {
                        all.iter()
                            .map(|(name, value)| pb::Metric {
                                name: name.clone(),
                                value: value.as_f64(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                answer.get_metrics = Some(response::GetMetrics { metrics });
                response::Type::GetMetrics
            }
            call::Type::GetMaster => {
                answer.get_master = Some(response::GetMaster {
                    master_info: Some(self.info.clone()),
                    start_time: Some(self.start_time),
                    elected_time: Some(self.start_time),
                });
                response::Type::GetMaster
            }
            call::Type::GetState => {
                answer.get_state = Some(self.get_state());
                response::Type::GetState
            }
            call::Type::GetAgents => {
                answer.get_agents = Some(self.get_agents());
                response::Type::GetAgents
            }
            call::Type::GetFrameworks => {
                answer.get_frameworks = Some(self.get_frameworks());
                response::Type::GetFrameworks
            }
            call::Type::GetExecutors => {
                answer.get_executors = Some(self.get_executors());
                response::Type::GetExecutors
            }
            call::Type::GetTasks => {
                answer.get_tasks = Some(self.get_tasks());
                response::Type::GetTasks
            }
            call::Type::GetRoles => {
                let roles = self
                    .role_facts()
                    .into_iter()
                    .map(|(name, facts)| {
                        let mut resources = facts.allocated.to_pb(&Default::default());
                        resources.extend(facts.offered.to_pb(&Default::default()));
                        pb::Role {
                            name,
                            weight: DEFAULT_WEIGHT,
                            frameworks: facts
                                .frameworks
                                .into_iter()
                                .map(|value| pb::FrameworkId { value })
                                .collect(),
                            resources,
                        }
                    })
                    .collect();
                answer.get_roles = Some(response::GetRoles { roles });
                response::Type::GetRoles
            }
            _ => return None,
        };
        answer.r#type = Some(response_type as i32);
        Some(answer)
    }
}
