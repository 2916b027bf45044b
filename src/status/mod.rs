//! The status server: an HTML page, the JSON API, Prometheus `/metrics`, `/healthz` and `/readyz`,
//! and the operator's one command (releasing kills held by the mass-deletion guard).
//!
//! It never blocks the controller loop and never touches its state: the loop publishes an
//! `Arc<Snapshot>` through a `tokio::sync::watch` channel after each pass, and every request reads
//! the latest one. The only way back into the loop is a [`ControlCommand`] over a bounded channel,
//! which the loop handles like any other event.
//!
//! Readiness latches (as linkerd2-proxy's admin server does): once any snapshot said `ready`,
//! `/readyz` answers 200 for the life of the process. A controller that was ready and then loses
//! its master is still doing its job (tasks keep running, it will resubscribe); taking it out of
//! rotation would help nobody.

pub mod html;
pub mod metrics;
pub mod snapshot;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot, watch};

pub use snapshot::{
    AttemptRow, ControlCommand, Counters, GuardStatus, PassInfo, PendingRow, Snapshot,
    SpecErrorView, SpecStatus, TaskStatusRow,
};

/// How long `POST /api/v1/approve-deletions` waits for the controller's answer before giving up
/// with 503. The loop answers between passes, so a healthy one answers well within this.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// The path of the approve-deletions command, shared by the server and [`approve_deletions`].
pub const APPROVE_DELETIONS_PATH: &str = "/api/v1/approve-deletions";

/// The path of the JSON snapshot, shared by the server and [`fetch_status`].
pub const STATUS_PATH: &str = "/api/v1/status";

/// Serves the status endpoints on `listener` until `shutdown` completes, then finishes the
/// requests in flight and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    control: mpsc::Sender<ControlCommand>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = ServerState::new(snapshots, control);
    // Requests latch readiness when they see it, but a `ready` snapshot replaced before any
    // request came would be missed; this task looks at every snapshot the channel keeps.
    let latch = tokio::spawn(latch_readiness(
        state.snapshots.clone(),
        Arc::clone(&state.ready),
    ));
    let result = axum::serve(listener, router_with(state))
        .with_graceful_shutdown(shutdown)
        .await;
    latch.abort();
    result
}

/// The routes, for embedding in another server or testing without a socket.
pub fn router(
    snapshots: watch::Receiver<Arc<Snapshot>>,
    control: mpsc::Sender<ControlCommand>,
) -> Router {
    router_with(ServerState::new(snapshots, control))
}

/// What went wrong talking to a status server from the CLI.
#[derive(Debug, thiserror::Error)]
pub enum StatusClientError {
    #[error("cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot reach the status server at {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the status server at {url} answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the status server at {url} sent a status this version cannot read: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Asks the controller behind `status_url` (e.g. `http://127.0.0.1:9090`) to release the kills
/// held by the mass-deletion guard, and returns its summary. Talks to that URL only, never
/// through a proxy from the environment.
pub async fn approve_deletions(status_url: &str) -> Result<String, StatusClientError> {
    let url = join_url(status_url, APPROVE_DELETIONS_PATH);
    let response =
        client()?
            .post(&url)
            .send()
            .await
            .map_err(|source| StatusClientError::Request {
                url: url.clone(),
                source,
            })?;
    text_of(url, response).await
}

/// Fetches the controller's latest snapshot from `status_url`.
pub async fn fetch_status(status_url: &str) -> Result<Snapshot, StatusClientError> {
    let url = join_url(status_url, STATUS_PATH);
    let response =
        client()?
            .get(&url)
            .send()
            .await
            .map_err(|source| StatusClientError::Request {
                url: url.clone(),
                source,
            })?;
    let body = text_of(url.clone(), response).await?;
    serde_json::from_str(&body).map_err(|source| StatusClientError::Decode { url, source })
}

#[derive(Clone)]
struct ServerState {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    control: mpsc::Sender<ControlCommand>,
    ready: Arc<AtomicBool>,
}

impl ServerState {
    fn new(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        control: mpsc::Sender<ControlCommand>,
    ) -> Self {
        ServerState {
            snapshots,
            control,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The latest snapshot and the latched readiness. The `watch` borrow is released at once, so
    /// the publisher is never held up by a slow client.
    fn read(&self) -> (Arc<Snapshot>, bool) {
        let snapshot = Arc::clone(&self.snapshots.borrow());
        if snapshot.ready {
            self.ready.store(true, Ordering::Relaxed);
        }
        let ready = self.ready.load(Ordering::Relaxed);
        (snapshot, ready)
    }
}

fn router_with(state: ServerState) -> Router {
    Router::new()
        .route("/", get(page))
        .route(STATUS_PATH, get(status_json))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(APPROVE_DELETIONS_PATH, post(approve))
        .with_state(state)
}

async fn latch_readiness(mut snapshots: watch::Receiver<Arc<Snapshot>>, ready: Arc<AtomicBool>) {
    loop {
        if snapshots.borrow_and_update().ready {
            ready.store(true, Ordering::Relaxed);
            return;
        }
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

async fn page(State(state): State<ServerState>) -> Response {
    let (snapshot, ready) = state.read();
    let body = html::render(&snapshot, ready, now_ms());
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

async fn status_json(State(state): State<ServerState>) -> Response {
    let (snapshot, _) = state.read();
    match serde_json::to_vec(&*snapshot) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the status snapshot: {err}\n"),
        )
            .into_response(),
    }
}

async fn metrics_text(State(state): State<ServerState>) -> Response {
    let (snapshot, ready) = state.read();
    let body = metrics::render(&snapshot, ready);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

async fn readyz(State(state): State<ServerState>) -> Response {
    let (snapshot, ready) = state.read();
    if ready {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let mut reasons = vec!["the first reconciliation pass has not succeeded yet".to_owned()];
    if !snapshot.connected {
        reasons.push("not connected to a Mesos master".to_owned());
    }
    if let Some(error) = &snapshot.desired_error {
        reasons.push(format!("desired directory: {error}"));
    }
    let body = format!("not ready: {}\n", reasons.join("; "));
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

async fn approve(State(state): State<ServerState>) -> Response {
    let (reply, answer) = oneshot::channel();
    let asked = async {
        state
            .control
            .send(ControlCommand::ApproveDeletions { reply })
            .await
            .ok()?;
        answer.await.ok()
    };
    match tokio::time::timeout(CONTROL_TIMEOUT, asked).await {
        Ok(Some(summary)) => (StatusCode::OK, ensure_newline(summary)).into_response(),
        Ok(None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller is not running, so nothing was approved\n",
        )
            .into_response(),
        Err(_elapsed) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the controller did not answer within {} s; nothing is known to be approved\n",
                CONTROL_TIMEOUT.as_secs()
            ),
        )
            .into_response(),
    }
}

fn ensure_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn now_ms() -> u64 {
    // A clock before 1970 is a broken machine; showing times relative to 0 is harmless there.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn join_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

fn client() -> Result<reqwest::Client, StatusClientError> {
    reqwest::Client::builder()
        .no_proxy()
        // Longer than the server's own wait for the controller, so its 503 explains the failure.
        .timeout(CONTROL_TIMEOUT + Duration::from_secs(20))
        .build()
        .map_err(StatusClientError::Client)
}

async fn text_of(url: String, response: reqwest::Response) -> Result<String, StatusClientError> {
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|source| StatusClientError::Request {
            url: url.clone(),
            source,
        })?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(StatusClientError::Refused {
            url,
            status: status.as_u16(),
            body: body.trim_end().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! The approve-deletions handler's waiting rules, on tokio's paused clock (no sockets).

    use super::*;

    fn state() -> (ServerState, mpsc::Receiver<ControlCommand>) {
        let (_publisher, snapshots) = watch::channel(Arc::new(Snapshot::default()));
        let (control, commands) = mpsc::channel(1);
        (ServerState::new(snapshots, control), commands)
    }

    #[tokio::test(start_paused = true)]
    async fn approve_gives_up_with_503_when_the_controller_does_not_answer() {
        let (state, mut commands) = state();
        let started = tokio::time::Instant::now();
        // The controller takes the command but sits on the reply.
        let holder = tokio::spawn(async move {
            let command = commands.recv().await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(command);
        });
        let response = approve(State(state)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() >= CONTROL_TIMEOUT);
        assert!(started.elapsed() < CONTROL_TIMEOUT + Duration::from_secs(1));
        holder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn approve_answers_503_at_once_when_the_controller_drops_the_reply() {
        let (state, mut commands) = state();
        tokio::spawn(async move { drop(commands.recv().await) });
        let started = tokio::time::Instant::now();
        let response = approve(State(state)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < CONTROL_TIMEOUT);
    }

    #[test]
    fn readiness_latches_in_the_server_state() {
        let (publisher, snapshots) = watch::channel(Arc::new(Snapshot::default()));
        let (control, _commands) = mpsc::channel(1);
        let state = ServerState::new(snapshots, control);
        assert!(!state.read().1);
        publisher.send_replace(Arc::new(Snapshot {
            ready: true,
            ..Snapshot::default()
        }));
        assert!(state.read().1);
        publisher.send_replace(Arc::new(Snapshot::default()));
        assert!(state.read().1, "readiness must not flap back");
    }

    #[test]
    fn urls_join_with_or_without_a_trailing_slash() {
        assert_eq!(
            join_url("http://127.0.0.1:9/", STATUS_PATH),
            "http://127.0.0.1:9/api/v1/status"
        );
        assert_eq!(
            join_url("http://127.0.0.1:9", STATUS_PATH),
            "http://127.0.0.1:9/api/v1/status"
        );
    }
}
