//! The master's HTTP surface: the scheduler endpoint with the §3.1 checks that need no state
//! (method, Content-Type, body, Call validation, Accept, stream-id header on SUBSCRIBE), the
//! read-only endpoints (`/master/state`, `/metrics/snapshot`, `/version`, `/health`,
//! `/master/redirect`; the operator endpoints such as `/master/frameworks` are in `operator/`) and the fault API under `/devcluster/faults/<name>`. Everything stateful
//! is a message to the actor.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::state::{Fault, Msg, Settings};
use super::{AgentSpec, AgentSpecKind, FaultReply, validate};
use crate::mesos::encoding::Encoding;
use crate::mesos::json;
use crate::mesos::proto::v1::scheduler::{Call, call};

pub(super) const BUILD_DATE: &str = "2020-11-19 17:14:09";
pub(super) const BUILD_TIME: f64 = 1_605_806_049.0;
pub(super) const BUILD_USER: &str = "mesos-reconciler-devcluster";
pub(super) const GIT_SHA: &str = "1f8eb4d1b55b7b4e5a8d1b2e6e10ad6e3cfd17bd";

const STREAM_ID: &str = "mesos-stream-id";

/// The largest request body accepted.
const MAX_BODY: usize = 256 * 1024 * 1024;

/// How many scheduler calls may be decoded and waiting for the master actor at once. A decoded
/// ACCEPT of 1,000 tasks takes some 3 MB (ten times its wire size), and the actor handles calls
/// one at a time anyway: without a bound, a scheduler with many calls in flight makes the
/// process hold all of them decoded at once, and the memory stays with the allocator after.
const CALLS_IN_DECODE: usize = 8;

#[derive(Clone)]
pub(super) struct App {
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    pub(super) settings: Arc<Settings>,
    decoding: Arc<Semaphore>,
}

pub(super) fn router(tx: mpsc::UnboundedSender<Msg>, settings: Arc<Settings>) -> Router {
    Router::new()
        .route("/api/v1/scheduler", any(scheduler))
        .route("/master/api/v1/scheduler", any(scheduler))
        .route("/master/state", get(state))
        .route("/master/state.json", get(state))
        .route("/state", get(state))
        .route("/state.json", get(state))
        .route("/metrics/snapshot", get(metrics))
        .route("/health", get(health))
        .route("/master/health", get(health))
        .route("/version", get(version))
        .route("/master/redirect", get(redirect))
        // What agents serve about their sandboxes (see `files.rs`).
        .route("/master/slaves", get(super::files::slaves))
        .route("/{process}/{endpoint}", get(super::files::agent_state))
        .route("/files/read", get(super::files::read))
        .route("/files/read.json", get(super::files::read))
        .route("/files/browse", get(super::files::browse))
        .route("/files/browse.json", get(super::files::browse))
        .route("/files/download", get(super::files::download))
        .route("/files/download.json", get(super::files::download))
        .route("/redirect", get(redirect))
        .route("/devcluster/faults/{name}", post(fault))
        // An ACCEPT launching thousands of tasks is far above axum's 2 MiB default; the real
        // master has no such limit of its own.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(App {
            tx: tx.clone(),
            settings,
            decoding: Arc::new(Semaphore::new(CALLS_IN_DECODE)),
        })
        .merge(super::operator::router(tx))
}

/// `POST /api/v1/scheduler`, §3.1 in order.
async fn scheduler(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Expecting one of {{ 'POST' }}, but received '{method}'"),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return text(
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present",
        );
    };
    // Byte-for-byte, as upstream compares: a `; charset=` suffix is a 415.
    let encoding = match content_type.as_bytes() {
        b"application/x-protobuf" => Encoding::Protobuf,
        b"application/json" => Encoding::Json,
        _ => {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expecting 'Content-Type' of application/json or application/x-protobuf",
            );
        }
    };
    // Held until the actor has answered; it only delays calls, never changes their answer.
    let Ok(_decoding) = app.decoding.acquire().await else {
        return stopped();
    };
    let call = match decode_call(encoding, &body) {
        Ok(call) => call,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let ty = match validate::call(&call) {
        Ok(ty) => ty,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to validate scheduler::Call: {e}"),
            );
        }
    };
    let mut event_encoding = Encoding::Json;
    if matches!(ty, call::Type::Subscribe | call::Type::ReconcileOperations) {
        match negotiate(&headers) {
            Some(e) => event_encoding = e,
            None => {
                return text(
                    StatusCode::NOT_ACCEPTABLE,
                    "Expecting 'Accept' to allow 'application/json' or 'application/x-protobuf'",
                );
            }
        }
    }
    if ty == call::Type::Subscribe {
        if headers.contains_key(STREAM_ID) {
            return text(
                StatusCode::BAD_REQUEST,
                "Subscribe calls should not include the 'Mesos-Stream-Id' header",
            );
        }
        let (reply, answer) = oneshot::channel();
        let msg = Msg::Subscribe {
            call: Box::new(call),
            encoding: event_encoding,
            reply,
        };
        if app.tx.send(msg).is_err() {
            return stopped();
        }
        let Ok((stream_id, body)) = answer.await else {
            return stopped();
        };
        return streaming(event_encoding, &stream_id, body);
    }
    // A header that is not valid text can never match a stream id: keep it as a mismatch.
    let stream_id = headers
        .get(STREAM_ID)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (reply, answer) = oneshot::channel();
    let msg = Msg::Call {
        call: Box::new(call),
        stream_id,
        reply,
    };
    if app.tx.send(msg).is_err() {
        return stopped();
    }
    match answer.await {
        Ok(result) if result.body.is_empty() => result.status.into_response(),
        Ok(result) => text(result.status, result.body),
        Err(_) => stopped(),
    }
}

/// Step 6: the body must parse, including every proto2 required field (prost does not check
/// them, so the protobuf path asks the descriptor-based check in `mesos::json`).
fn decode_call(encoding: Encoding, body: &[u8]) -> Result<Call, String> {
    match encoding {
        Encoding::Protobuf => {
            let call: Call = encoding
                .decode(body)
                .map_err(|e| format!("Failed to parse body into Call protobuf: {e}"))?;
            match json::missing_required_field::<Call>(body) {
                Ok(None) => Ok(call),
                Ok(Some(path)) => Err(format!(
                    "Failed to parse body into Call protobuf: missing required field {path}"
                )),
                Err(e) => Err(format!("Failed to parse body into Call protobuf: {e}")),
            }
        }
        Encoding::Json => json::from_slice::<Call>(body)
            .map_err(|e| format!("Failed to convert JSON into Call protobuf: {e}")),
    }
}

/// Which encoding the event stream uses (§1): JSON whenever acceptable, else protobuf, else
/// none (406). No `Accept` header accepts everything.
pub(super) fn negotiate(headers: &HeaderMap) -> Option<Encoding> {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return Some(Encoding::Json);
    }
    let ranges: Vec<(String, f64)> = values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            Some((media, q))
        })
        .collect();
    let accepts = |media: &str| {
        let (kind, _) = media.split_once('/').unwrap_or((media, ""));
        // The most specific matching range decides.
        let exact = ranges.iter().find(|(m, _)| m == media);
        let wildcard_subtype = ranges.iter().find(|(m, _)| *m == format!("{kind}/*"));
        let any = ranges.iter().find(|(m, _)| m == "*/*");
        exact
            .or(wildcard_subtype)
            .or(any)
            .is_some_and(|(_, q)| *q > 0.0)
    };
    if accepts("application/json") {
        Some(Encoding::Json)
    } else if accepts("application/x-protobuf") {
        Some(Encoding::Protobuf)
    } else {
        None
    }
}

fn streaming(encoding: Encoding, stream_id: &str, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(stream_id) {
        headers.insert("Mesos-Stream-Id", value);
    }
    response
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

pub(super) fn stopped() -> Response {
    text(StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down")
}

async fn state(State(app): State<App>) -> Response {
    let (reply, answer) = oneshot::channel();
    if app.tx.send(Msg::State { reply }).is_err() {
        return stopped();
    }
    match answer.await {
        Ok(json) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response(),
        Err(_) => stopped(),
    }
}

/// `GET /metrics/snapshot` (upstream's query parameters `timeout` and `jsonp` are not needed:
/// the snapshot never waits on anything slow).
async fn metrics(State(app): State<App>) -> Response {
    let (reply, answer) = oneshot::channel();
    if app.tx.send(Msg::Metrics { reply }).is_err() {
        return stopped();
    }
    match answer.await {
        Ok(value) => axum::Json(value).into_response(),
        Err(_) => stopped(),
    }
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn version() -> Response {
    axum::Json(serde_json::json!({
        "build_date": BUILD_DATE,
        "build_time": BUILD_TIME,
        "build_user": BUILD_USER,
        "git_sha": GIT_SHA,
        "git_tag": super::state::MESOS_VERSION,
        "version": super::state::MESOS_VERSION,
    }))
    .into_response()
}

/// `/master/redirect`: 307 to the leader (always this master), protocol-relative.
async fn redirect(State(app): State<App>) -> Response {
    let location = format!("//{}:{}", app.settings.hostname, app.settings.port);
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The JSON body of `POST /devcluster/faults/<name>`; each fault reads the fields it needs.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FaultBody {
    agent_id: Option<String>,
    framework_id: Option<String>,
    /// For `delay_status_updates`.
    millis: Option<u64>,
    /// For `duplicate_status_updates`.
    enabled: Option<bool>,
    /// For `add_agent`: `--resources`/`--attributes` strings and `process` or `virtual`.
    resources: Option<String>,
    attributes: Option<String>,
    kind: Option<String>,
    hostname: Option<String>,
}

async fn fault(State(app): State<App>, Path(name): Path<String>, body: Bytes) -> Response {
    let parsed: FaultBody = if body.iter().all(u8::is_ascii_whitespace) {
        FaultBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid fault body: {e}")),
        }
    };
    let fault = match build_fault(&name, parsed) {
        Ok(f) => f,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let (reply, answer) = oneshot::channel();
    if app.tx.send(Msg::Fault { fault, reply }).is_err() {
        return stopped();
    }
    match answer.await {
        Ok(Ok(FaultReply::Done)) => axum::Json(serde_json::json!({"ok": true})).into_response(),
        Ok(Ok(FaultReply::Agent(id))) => {
            axum::Json(serde_json::json!({"ok": true, "agent_id": id})).into_response()
        }
        Ok(Err(e)) => text(StatusCode::CONFLICT, e.to_string()),
        Err(_) => stopped(),
    }
}

fn build_fault(name: &str, body: FaultBody) -> Result<Fault, String> {
    let need = |v: Option<String>, field: &str| {
        v.ok_or_else(|| format!("fault {name} needs \"{field}\" in its JSON body"))
    };
    Ok(match name {
        "kill_agent" => Fault::KillAgent(need(body.agent_id, "agent_id")?),
        "partition_agent" => Fault::PartitionAgent(need(body.agent_id, "agent_id")?),
        "heal_agent" => Fault::HealAgent(need(body.agent_id, "agent_id")?),
        "restart_master" => Fault::RestartMaster,
        "drop_framework_stream" => {
            Fault::DropFrameworkStream(need(body.framework_id, "framework_id")?)
        }
        "delay_status_updates" => {
            Fault::DelayStatusUpdates(Duration::from_millis(body.millis.unwrap_or(0)))
        }
        "duplicate_status_updates" => Fault::DuplicateStatusUpdates(body.enabled.unwrap_or(true)),
        "rescind_offers" => Fault::RescindOffers,
        // Served by the masters' middleware when there are several (`ha.rs`).
        "kill_master" | "start_master" => return Err(super::FaultError::NoMasters.to_string()),
        "add_agent" => {
            let kind = match body.kind.as_deref() {
                None | Some("virtual") => AgentSpecKind::Virtual,
                Some("process") => AgentSpecKind::Process,
                Some(other) => {
                    return Err(format!(
                        "unknown agent kind {other:?}; expected process or virtual"
                    ));
                }
            };
            let resources = body
                .resources
                .unwrap_or_else(|| super::DEFAULT_AGENT_RESOURCES.to_owned());
            let mut spec =
                AgentSpec::parse(kind, &resources, body.attributes.as_deref().unwrap_or(""))
                    .map_err(|e| e.to_string())?;
            spec.hostname = body.hostname;
            Fault::AddAgent(spec)
        }
        other => {
            return Err(format!(
                "unknown fault {other:?}; known: kill_agent, partition_agent, heal_agent, restart_master, drop_framework_stream, delay_status_updates, duplicate_status_updates, rescind_offers, add_agent, kill_master, start_master"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn json_wins_whenever_acceptable() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Encoding::Json));
        assert_eq!(negotiate(&accept("*/*")), Some(Encoding::Json));
        assert_eq!(
            negotiate(&accept("application/x-protobuf")),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            negotiate(&accept("application/x-protobuf, application/json;q=0.1")),
            Some(Encoding::Json)
        );
        assert_eq!(
            negotiate(&accept("application/json;q=0, application/x-protobuf")),
            Some(Encoding::Protobuf)
        );
        assert_eq!(negotiate(&accept("text/html")), None);
    }
}
