//! The status server: an HTML page, the JSON API, Prometheus `/metrics`, `/healthz` and `/readyz`,
//! and the operator's one command (releasing kills held by the mass-deletion guard).
//!
//! It never blocks the controller loop and never touches its state: the loop publishes an
//! `Arc<Snapshot>` through a `tokio::sync::watch` channel after each pass, and every request reads
//! the latest one. The only way back into the loop is a [`ControlCommand`] over a bounded channel,
//! which the loop handles like any other event.
//!
//! A snapshot can hold 100,000 specs and tasks, so no request costs the whole of it: what is
//! derived from a snapshot (orders, states, the summary; [`index`]) is built once per snapshot,
//! on a blocking thread as soon as it is published, and the JSON API and the page serve one page
//! of spec ids at a time, chosen by the parameters in [`query`].
//!
//! Readiness latches (as linkerd2-proxy's admin server does): once any snapshot said `ready`,
//! `/readyz` answers 200 for the life of the process. A controller that was ready and then loses
//! its master is still doing its job (tasks keep running, it will resubscribe); taking it out of
//! rotation would help nobody. The exception is a controller that cannot write its state
//! directory (`Snapshot::halted`): it stops launching and killing, and `/readyz` says why with
//! 503 until it can write again.

pub mod auth;
pub mod events;
pub mod html;
mod html_git;
pub mod index;
pub mod links;
pub mod metrics;
pub mod outcome;
pub mod plan_api;
pub mod query;
pub mod snapshot;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use events::{EVENTS_PATH, TaskEvent};
pub use index::{Indexed, SpecState, Summary};
pub use query::{DEFAULT_LIMIT, MAX_LIMIT, Order, Query, QueryError};
pub use snapshot::{
    AttemptRow, CommitView, ControlCommand, Counters, GitStatus, GuardStatus, MasterErrorView,
    PassInfo, PendingKind, PendingRow, RefusedView, Snapshot, SpecErrorView, SpecStatus, SyncView,
    TaskStatusRow,
};

/// How long `POST /api/v1/approve-deletions` waits for the controller's answer before giving up
/// with 503. The loop answers between passes, so a healthy one answers well within this.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// The path of the approve-deletions command, shared by the server and [`approve_deletions`].
pub const APPROVE_DELETIONS_PATH: &str = "/api/v1/approve-deletions";

/// The path of the re-read command, shared by the server and [`reread`](reread_now).
pub const REREAD_PATH: &str = "/api/v1/reread";

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
    serve_with_events(
        listener,
        snapshots,
        control,
        events::channel(),
        auth::Access::default(),
        shutdown,
    )
    .await
}

/// [`serve`], with the task transitions the controller sends on `events` streamed to the
/// clients of `GET /api/v1/events`, and what `access` says: with a token, the mutating endpoints
/// are closed to requests without it ([`auth`]).
pub async fn serve_with_events(
    listener: tokio::net::TcpListener,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    control: mpsc::Sender<ControlCommand>,
    events: broadcast::Sender<TaskEvent>,
    access: auth::Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut state = ServerState::new(snapshots, control);
    state.events = events;
    state.access = access;
    // Requests latch readiness when they see it, but a `ready` snapshot replaced before any
    // request came would be missed; this task looks at every snapshot the channel keeps.
    let latch = tokio::spawn(latch_readiness(
        state.snapshots.clone(),
        Arc::clone(&state.ready),
    ));
    let warm = tokio::spawn(warm_index(
        state.snapshots.clone(),
        Arc::clone(&state.index),
    ));
    let result = axum::serve(listener, router_with(state))
        .with_graceful_shutdown(shutdown)
        .await;
    latch.abort();
    warm.abort();
    result
}

/// The routes, for embedding in another server or testing without a socket.
pub fn router(
    snapshots: watch::Receiver<Arc<Snapshot>>,
    control: mpsc::Sender<ControlCommand>,
) -> Router {
    router_with(ServerState::new(snapshots, control))
}

/// [`router`] with a channel of task transitions for `GET /api/v1/events`.
pub fn router_with_events(
    snapshots: watch::Receiver<Arc<Snapshot>>,
    control: mpsc::Sender<ControlCommand>,
    events: broadcast::Sender<TaskEvent>,
) -> Router {
    let mut state = ServerState::new(snapshots, control);
    state.events = events;
    router_with(state)
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
    #[error("the status server at {url} pages wrongly: {message}")]
    Paging { url: String, message: String },
}

/// Asks the controller behind `status_url` (e.g. `http://127.0.0.1:9090`) to release the kills
/// held by the mass-deletion guard, and returns its summary. Talks to that URL only, never
/// through a proxy from the environment.
pub async fn approve_deletions(status_url: &str) -> Result<String, StatusClientError> {
    approve_deletions_with(status_url, None).await
}

/// [`approve_deletions`] with the server's bearer token (`--token-file`).
pub async fn approve_deletions_with(
    status_url: &str,
    token: Option<&auth::Token>,
) -> Result<String, StatusClientError> {
    let url = join_url(status_url, APPROVE_DELETIONS_PATH);
    let request = with_token(client()?.post(&url), token);
    text_of(url, request).await
}

/// Adds `Authorization: Bearer` when there is a token.
fn with_token(
    request: reqwest::RequestBuilder,
    token: Option<&auth::Token>,
) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.header(reqwest::header::AUTHORIZATION, token.header_value()),
        None => request,
    }
}

/// How many times [`fetch_status`] starts over when the controller publishes a new snapshot while
/// it reads the pages of one; after that it returns pages of successive snapshots.
const FETCH_ATTEMPTS: usize = 4;

/// Fetches the controller's latest snapshot from `status_url`, all of it: it follows the pages of
/// `GET /api/v1/status` (the largest page size) and puts them together. The pages normally come
/// from one snapshot: when the server says the snapshot changed in between, it starts over, up to
/// [`FETCH_ATTEMPTS`] times. A server without paging answers in one page.
pub async fn fetch_status(status_url: &str) -> Result<Snapshot, StatusClientError> {
    fetch_status_matching(status_url, "").await
}

/// [`fetch_status`] of the spec ids that match `filters`: query parameters of
/// `GET /api/v1/status` other than the paging ones, already encoded (`spec=team-a%2F&state=problem`;
/// empty for all). The snapshot's other fields (guard, counters, ...) are the whole snapshot's.
pub async fn fetch_status_matching(
    status_url: &str,
    filters: &str,
) -> Result<Snapshot, StatusClientError> {
    let client = client()?;
    let mut attempt = 0;
    'attempts: loop {
        attempt += 1;
        let mut whole: Option<Snapshot> = None;
        let mut first_seq = None;
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{}?limit={MAX_LIMIT}", join_url(status_url, STATUS_PATH));
            if !filters.is_empty() {
                url.push('&');
                url.push_str(filters);
            }
            if let Some(after) = &after {
                url.push_str("&after=");
                url.push_str(&query::encode(after));
            }
            let body = text_of(url.clone(), client.get(&url)).await?;
            let decode = |source| StatusClientError::Decode {
                url: url.clone(),
                source,
            };
            let page: Snapshot = serde_json::from_str(&body).map_err(decode)?;
            let paging: PagingOnly = serde_json::from_str(&body).map_err(decode)?;
            let seq = paging.page.map(|p| p.snapshot);
            if first_seq.is_none() {
                first_seq = seq;
            } else if seq != first_seq && attempt < FETCH_ATTEMPTS {
                continue 'attempts;
            }
            match &mut whole {
                None => whole = Some(page),
                Some(whole) => {
                    whole.specs.extend(page.specs);
                    whole.tasks.extend(page.tasks);
                }
            }
            match paging.next {
                None => return Ok(whole.unwrap_or_default()),
                Some(next) => {
                    if after.as_ref().is_some_and(|after| next <= *after) {
                        return Err(StatusClientError::Paging {
                            url,
                            message: format!("`next` went back from {after:?} to {next:?}"),
                        });
                    }
                    after = Some(next);
                }
            }
        }
    }
}

/// The paging fields of a `GET /api/v1/status` answer (the rest is a [`Snapshot`]).
#[derive(Debug, Deserialize)]
struct PagingOnly {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    page: Option<PageSeq>,
}

#[derive(Debug, Deserialize)]
struct PageSeq {
    snapshot: u64,
}

/// The body of `GET /api/v1/status`: the snapshot's fields (their names and meaning unchanged,
/// `specs` and `tasks` cut to the page), the summary of the whole snapshot, and the paging.
#[derive(Debug, Serialize)]
struct StatusPage<'a> {
    ready: bool,
    halted: &'a Option<String>,
    standby: &'a Option<String>,
    recovery: &'a Option<String>,
    connected: bool,
    framework_id: &'a Option<String>,
    master: &'a Option<String>,
    master_error: &'a Option<MasterErrorView>,
    desired_dir: &'a str,
    desired_error: &'a Option<String>,
    git: &'a Option<GitStatus>,
    /// The page's specs (a deleted spec id on the page has tasks here but no spec).
    specs: Vec<&'a SpecStatus>,
    /// The tasks of the page's spec ids, grouped by spec.
    tasks: Vec<&'a TaskStatusRow>,
    guard: &'a Option<GuardStatus>,
    counters: &'a Counters,
    last_pass: &'a Option<PassInfo>,
    summary: &'a Summary,
    /// What to pass as `after` for the next page; null on the last page.
    next: Option<String>,
    page: PageInfo,
}

/// How the page relates to the whole.
#[derive(Debug, Serialize)]
struct PageInfo {
    order: &'static str,
    limit: usize,
    after: Option<String>,
    spec: Option<String>,
    state: Option<String>,
    /// Spec ids matching the filters, on all pages.
    matched: usize,
    /// Spec ids on this page (specs plus deleted ids).
    returned: usize,
    /// Changes when the server sees a new snapshot: pages with the same number come from the
    /// same snapshot.
    snapshot: u64,
}

/// The server's derived view of the latest snapshot, built at most once per snapshot (by
/// [`warm_index`] when the snapshot is published, or by the first request that needs it). The
/// `Arc<Snapshot>` is kept, so pointer equality identifies the snapshot.
#[derive(Debug)]
struct CachedIndex {
    seq: u64,
    snapshot: Arc<Snapshot>,
    indexed: OnceLock<Indexed>,
}

impl CachedIndex {
    /// Builds the index on first use; requests arriving meanwhile wait for the same build.
    fn get(&self) -> &Indexed {
        self.indexed
            .get_or_init(|| Indexed::new(Arc::clone(&self.snapshot)))
    }
}

#[derive(Debug, Default)]
struct IndexCache {
    latest: Mutex<Option<Arc<CachedIndex>>>,
    seq: AtomicU64,
}

impl IndexCache {
    /// The cache entry of `snapshot` (a new one if it is not the cached one), and the entry it
    /// replaced: freeing a large snapshot takes a while, so the caller drops that one off the
    /// request's path (see [`drop_later`]).
    fn for_snapshot(
        &self,
        snapshot: Arc<Snapshot>,
    ) -> (Arc<CachedIndex>, Option<Arc<CachedIndex>>) {
        // Nothing panics while the lock is held; a poisoned lock still holds a valid value.
        let mut latest = self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*latest {
            Some(cached) if Arc::ptr_eq(&cached.snapshot, &snapshot) => (Arc::clone(cached), None),
            _ => {
                let cached = Arc::new(CachedIndex {
                    seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
                    snapshot,
                    indexed: OnceLock::new(),
                });
                let replaced = latest.replace(Arc::clone(&cached));
                (cached, replaced)
            }
        }
    }
}

/// Drops a replaced cache entry on a blocking thread (it may hold the last reference to a
/// snapshot of 100,000 specs).
fn drop_later(replaced: Option<Arc<CachedIndex>>) {
    if let Some(replaced) = replaced {
        tokio::task::spawn_blocking(move || drop(replaced));
    }
}

#[derive(Clone)]
struct ServerState {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    control: mpsc::Sender<ControlCommand>,
    ready: Arc<AtomicBool>,
    index: Arc<IndexCache>,
    /// Task transitions from the controller, for `GET /api/v1/events`.
    events: broadcast::Sender<TaskEvent>,
    /// The token of the mutating endpoints, and the spec policy of `plan`.
    access: auth::Access,
    /// When the controller was last asked for every row ([`ServerState::read_rows`]).
    rows_asked: Arc<Mutex<Option<tokio::time::Instant>>>,
}

/// How long a request that shows rows waits for a controller that publishes partial snapshots
/// to publish every row.
const ROWS_WAIT: Duration = Duration::from_secs(30);
/// While rows are read, the controller is reminded that they are at most this often (it keeps
/// them for two minutes after the last reminder).
const ROWS_REMIND_EVERY: Duration = Duration::from_secs(20);

impl ServerState {
    fn new(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        control: mpsc::Sender<ControlCommand>,
    ) -> Self {
        ServerState {
            snapshots,
            control,
            ready: Arc::new(AtomicBool::new(false)),
            index: Arc::default(),
            events: events::channel(),
            access: auth::Access::default(),
            rows_asked: Arc::default(),
        }
    }

    /// Like [`ServerState::read_indexed`], for a request that shows spec or task rows. A large
    /// controller publishes partial snapshots (the problems and a summary) while nobody reads the
    /// rows: then this asks it for every row and waits for a snapshot with them. While they are
    /// published, it reminds the controller now and then that they are still read. None when the
    /// controller did not publish them within [`ROWS_WAIT`].
    async fn read_rows(&self) -> Option<(Arc<CachedIndex>, bool)> {
        let deadline = tokio::time::Instant::now() + ROWS_WAIT;
        let mut snapshots = self.snapshots.clone();
        let mut asked = false;
        loop {
            let partial = snapshots.borrow_and_update().partial.is_some();
            if !partial {
                let (cached, ready) = self.read_indexed().await;
                if cached.snapshot.partial.is_none() {
                    if !asked {
                        self.remind();
                    }
                    return Some((cached, ready));
                }
                // Replaced by a partial one meanwhile: seen by the next borrow.
                continue;
            }
            if !asked {
                asked = true;
                self.note_asked();
                let sent =
                    tokio::time::timeout_at(deadline, self.control.send(ControlCommand::WantRows))
                        .await;
                if !matches!(sent, Ok(Ok(()))) {
                    return None;
                }
            }
            if !matches!(
                tokio::time::timeout_at(deadline, snapshots.changed()).await,
                Ok(Ok(()))
            ) {
                return None;
            }
        }
    }

    /// Like [`ServerState::read_rows`], for a request that shows the page of `query`: when the
    /// latest snapshot is partial but has that page whole (the default first page, or problems
    /// alone; see [`index::Indexed::answers`]), it answers at once, and the controller is asked
    /// for every row for the requests that are likely to follow (the next page, a filter).
    async fn read_rows_for(&self, query: &Query) -> Option<(Arc<CachedIndex>, bool)> {
        let (cached, ready) = self.read_indexed().await;
        // A whole snapshot answers everything.
        if cached.get().answers(query) {
            self.remind();
            return Some((cached, ready));
        }
        drop(cached);
        self.read_rows().await
    }

    /// Tells the controller that the rows are still read, unless it was told lately.
    fn remind(&self) {
        let due = self
            .rows_asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none_or(|at| tokio::time::Instant::now() >= at + ROWS_REMIND_EVERY);
        if due && self.control.try_send(ControlCommand::WantRows).is_ok() {
            self.note_asked();
        }
    }

    fn note_asked(&self) {
        *self
            .rows_asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tokio::time::Instant::now());
    }

    /// The latest snapshot with its index built, and the latched readiness. When the index is
    /// not built yet (the request came before [`warm_index`] was done), this builds it, or waits
    /// for the build under way, on a blocking thread rather than on the runtime's.
    async fn read_indexed(&self) -> (Arc<CachedIndex>, bool) {
        let (snapshot, ready) = self.read();
        let (cached, replaced) = self.index.for_snapshot(snapshot);
        drop_later(replaced);
        if cached.indexed.get().is_none() {
            let building = Arc::clone(&cached);
            // A build that panics panics again in the caller's `get`, which reports it.
            let _ = tokio::task::spawn_blocking(move || {
                building.get();
            })
            .await;
        }
        (cached, ready)
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
    // Every route that changes the controller's state or makes it work is behind the token.
    let guarded = |route: axum::routing::MethodRouter<ServerState>| {
        route.route_layer(axum::middleware::from_fn_with_state(
            state.access.token.clone(),
            auth::require_token,
        ))
    };
    Router::new()
        .route("/", get(page))
        .route(STATUS_PATH, get(status_json))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(APPROVE_DELETIONS_PATH, guarded(post(approve)))
        .route(EVENTS_PATH, get(events::events))
        .route(REREAD_PATH, guarded(post(reread)))
        .route("/tasks/{task_id}/{file}", get(links::task_file))
        .route("/specs/{*id}", get(links::spec_file))
        .route(
            plan_api::PLAN_PATH,
            guarded(
                post(plan_api::plan).layer(axum::extract::DefaultBodyLimit::max(
                    plan_api::MAX_PLAN_BODY,
                )),
            ),
        )
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

/// Builds the index of each snapshot as soon as it is published, on a blocking thread, so that
/// requests find it built. One build at a time: snapshots replaced while a build runs are skipped
/// (the channel keeps only the latest). A request that comes first builds it itself, once.
async fn warm_index(mut snapshots: watch::Receiver<Arc<Snapshot>>, cache: Arc<IndexCache>) {
    loop {
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        let (cached, replaced) = cache.for_snapshot(snapshot);
        let built = tokio::task::spawn_blocking(move || {
            cached.get();
            drop(replaced);
        });
        // A build that panics would panic in the request too, which reports it; stop here.
        if built.await.is_err() || snapshots.changed().await.is_err() {
            return;
        }
    }
}

async fn page(State(state): State<ServerState>, RawQuery(raw): RawQuery) -> Response {
    let query = match Query::parse(raw.as_deref(), query::PAGE_DEFAULT_LIMIT, Order::Problems) {
        Ok(query) => query,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html::render_error(&err),
            )
                .into_response();
        }
    };
    let Some((cached, ready)) = state.read_rows_for(&query).await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html::render_unavailable(&rows_unavailable_text()),
        )
            .into_response();
    };
    let indexed = cached.get();
    let selection = indexed.select(&query);
    let body = html::render(indexed, &query, &selection, ready, now_ms());
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

async fn status_json(State(state): State<ServerState>, RawQuery(raw): RawQuery) -> Response {
    let query = match Query::parse(raw.as_deref(), DEFAULT_LIMIT, Order::Id) {
        Ok(query) => query,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
    };
    let Some((cached, _)) = state.read_rows_for(&query).await else {
        return rows_unavailable();
    };
    let indexed = cached.get();
    let selection = indexed.select(&query);
    match serde_json::to_vec(&status_page(indexed, &query, selection, cached.seq)) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the status snapshot: {err}\n"),
        )
            .into_response(),
    }
}

/// Why a request that shows rows got none: the controller did not publish them in time.
fn rows_unavailable_text() -> String {
    format!(
        "the controller did not publish its status rows within {} s: it is busy (a pass over 100,000 specs takes seconds) or stopping; try again",
        ROWS_WAIT.as_secs()
    )
}

fn rows_unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{}\n", rows_unavailable_text()),
    )
        .into_response()
}

fn status_page<'a>(
    indexed: &'a Indexed,
    query: &Query,
    selection: index::Selection,
    seq: u64,
) -> StatusPage<'a> {
    let s = indexed.snapshot();
    let mut specs = Vec::with_capacity(selection.len());
    let mut tasks = Vec::new();
    for row in indexed.rows(&selection) {
        specs.extend(row.spec);
        tasks.extend(row.tasks());
    }
    StatusPage {
        ready: s.ready,
        halted: &s.halted,
        standby: &s.standby,
        recovery: &s.recovery,
        connected: s.connected,
        framework_id: &s.framework_id,
        master: &s.master,
        master_error: &s.master_error,
        desired_dir: &s.desired_dir,
        desired_error: &s.desired_error,
        git: &s.git,
        specs,
        tasks,
        guard: &s.guard,
        counters: &s.counters,
        last_pass: &s.last_pass,
        summary: indexed.summary(),
        page: PageInfo {
            order: query.order.name(),
            limit: query.limit,
            after: query.after.as_ref().map(ToString::to_string),
            spec: query.spec.as_ref().map(|spec| spec.text().to_owned()),
            state: query.state.as_ref().map(|state| state.text()),
            matched: selection.matched,
            returned: selection.len(),
            snapshot: seq,
        },
        next: selection.next,
    }
}

async fn metrics_text(State(state): State<ServerState>) -> Response {
    let (cached, ready) = state.read_indexed().await;
    let body = metrics::render(cached.get(), ready);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

async fn readyz(State(state): State<ServerState>) -> Response {
    let (snapshot, ready) = state.read();
    // The one exception to the latch: a controller that cannot write its state directory
    // launches and kills nothing, which whoever watches readiness must learn.
    // A standby (`run --ha`) acts on nothing, which a load balancer or an operator must learn
    // even from a controller that led (and was ready) before.
    if let Some(why) = &snapshot.standby {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
    }
    if let Some(why) = &snapshot.halted {
        let body = format!("not ready: {why}\n");
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    if ready {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let mut reasons = vec!["the first reconciliation pass has not succeeded yet".to_owned()];
    if !snapshot.connected {
        match &snapshot.master_error {
            Some(e) => reasons.push(format!(
                "not connected to a Mesos master: {} (at {}, {} failed attempts)",
                e.message,
                crate::timefmt::utc(e.at_ms),
                e.attempts
            )),
            None => reasons.push("not connected to a Mesos master".to_owned()),
        }
    }
    if let Some(recovery) = &snapshot.recovery {
        reasons.push(recovery.clone());
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

/// `POST /api/v1/reread`: `{"read_ms": N}` once the controller has read the directory.
async fn reread(State(state): State<ServerState>) -> Response {
    let (reply, answer) = oneshot::channel();
    let asked = async {
        state
            .control
            .send(ControlCommand::Reread { reply })
            .await
            .ok()?;
        answer.await.ok()
    };
    match tokio::time::timeout(CONTROL_TIMEOUT, asked).await {
        Ok(Some(read_ms)) => axum::Json(serde_json::json!({ "read_ms": read_ms })).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller did not read the desired directory\n",
        )
            .into_response(),
    }
}

/// Asks the controller behind `status_url` to read its desired directory now; returns when it
/// was read (ms since the Unix epoch). A pass that ends at or after that time has seen it.
pub async fn reread_now(status_url: &str) -> Result<u64, StatusClientError> {
    reread_now_with(status_url, None).await
}

/// [`reread_now`] with the server's bearer token (`--token-file`).
pub async fn reread_now_with(
    status_url: &str,
    token: Option<&auth::Token>,
) -> Result<u64, StatusClientError> {
    let url = join_url(status_url, REREAD_PATH);
    let body = text_of(url.clone(), with_token(client()?.post(&url), token)).await?;
    #[derive(Deserialize)]
    struct Read {
        read_ms: u64,
    }
    serde_json::from_str::<Read>(&body)
        .map(|r| r.read_ms)
        .map_err(|source| StatusClientError::Decode { url, source })
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
    crate::http::client_builder()
        // Longer than the server's own wait for the controller, so its 503 explains the failure.
        .timeout(CONTROL_TIMEOUT + Duration::from_secs(20))
        .build()
        .map_err(StatusClientError::Client)
}

/// Sends `request` to `url` and returns the body of a successful answer.
async fn text_of(
    url: String,
    request: reqwest::RequestBuilder,
) -> Result<String, StatusClientError> {
    let response = request
        .send()
        .await
        .map_err(|source| StatusClientError::Request {
            url: url.clone(),
            source,
        })?;
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

    /// A snapshot of `n` healthy specs (one running task each), and its partial form.
    fn full_and_partial(n: usize) -> (Snapshot, Snapshot) {
        let specs = (0..n)
            .map(|i| SpecStatus {
                id: format!("svc-{i:04}"),
                instances: 1,
                running: 1,
                ..SpecStatus::default()
            })
            .collect();
        let tasks = (0..n)
            .map(|i| TaskStatusRow {
                task_id: format!("svc-{i:04}.0.t"),
                spec: format!("svc-{i:04}"),
                state: "TASK_RUNNING".to_owned(),
                ..TaskStatusRow::default()
            })
            .collect();
        let full = Snapshot {
            ready: true,
            specs,
            tasks,
            ..Snapshot::default()
        };
        let partial = Indexed::new(Arc::new(full.clone())).into_partial();
        let kept = n.min(index::PARTIAL_HEAD);
        assert_eq!((partial.specs.len(), partial.tasks.len()), (kept, kept));
        (full, partial)
    }

    /// More healthy specs than a partial snapshot keeps.
    const BEYOND_HEAD: usize = index::PARTIAL_HEAD + 3;

    /// A query that a partial snapshot of healthy specs cannot answer.
    fn every_healthy() -> RawQuery {
        RawQuery(Some(format!("state=healthy&limit={MAX_LIMIT}")))
    }

    async fn body_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// A server whose latest snapshot is `snapshot`, its publisher and the controller's end of
    /// the control channel.
    fn serving(
        snapshot: Snapshot,
    ) -> (
        ServerState,
        watch::Sender<Arc<Snapshot>>,
        mpsc::Receiver<ControlCommand>,
    ) {
        let (publisher, snapshots) = watch::channel(Arc::new(snapshot));
        let (control, commands) = mpsc::channel(8);
        (ServerState::new(snapshots, control), publisher, commands)
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_for_rows_asks_the_controller_and_waits_for_them() {
        let (full, partial) = full_and_partial(BEYOND_HEAD);
        let (state, publisher, mut commands) = serving(partial);
        // The controller: publishes every row when asked, a while later.
        let controller = tokio::spawn(async move {
            let command = commands.recv().await;
            assert!(matches!(command, Some(ControlCommand::WantRows)));
            tokio::time::sleep(Duration::from_secs(2)).await;
            publisher.send_replace(Arc::new(full));
            (publisher, commands)
        });
        let started = tokio::time::Instant::now();
        let response = status_json(State(state.clone()), every_healthy()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_secs(2));
        let body: serde_json::Value = serde_json::from_str(&body_of(response).await).unwrap();
        assert_eq!(body["specs"].as_array().unwrap().len(), BEYOND_HEAD);
        assert_eq!(body["tasks"].as_array().unwrap().len(), BEYOND_HEAD);
        assert_eq!(body["summary"]["specs"], BEYOND_HEAD);

        // Rows there: read at once; the controller is reminded once per 20 s of reading.
        let (_publisher, mut commands) = controller.await.unwrap();
        let last = format!("svc-{:04}", BEYOND_HEAD - 1);
        for _ in 0..5 {
            let query = RawQuery(Some(format!("order=id&after=svc-{:04}", BEYOND_HEAD - 2)));
            let response = page(State(state.clone()), query).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert!(body_of(response).await.contains(&last));
        }
        assert!(commands.try_recv().is_err(), "asked again within 20 s");
        tokio::time::advance(ROWS_REMIND_EVERY).await;
        let response = status_json(State(state), RawQuery(None)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(matches!(commands.try_recv(), Ok(ControlCommand::WantRows)));
        assert!(commands.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn rows_not_published_in_time_answer_503_and_metrics_do_not_wait() {
        let (_, partial) = full_and_partial(BEYOND_HEAD);
        let (state, _publisher, mut commands) = serving(partial);
        let holder = tokio::spawn(async move {
            let command = commands.recv().await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(command);
        });
        let started = tokio::time::Instant::now();
        let response = status_json(State(state.clone()), every_healthy()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body_of(response).await.contains("status rows"));
        assert!(started.elapsed() >= ROWS_WAIT);
        assert!(started.elapsed() < ROWS_WAIT + Duration::from_secs(1));

        // The metrics come from the partial snapshot's summary, without asking.
        let started = tokio::time::Instant::now();
        let response = metrics_text(State(state)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(started.elapsed(), Duration::ZERO);
        let text = body_of(response).await;
        assert!(
            text.lines().any(|l| l.starts_with(&format!(
                "mesos_reconciler_specs{{state=\"healthy\"}} {BEYOND_HEAD}"
            ))),
            "{text}"
        );
        holder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_pages_come_from_a_partial_snapshot_at_once_and_ask_for_the_rest() {
        let (_, partial) = full_and_partial(BEYOND_HEAD);
        let (state, _publisher, mut commands) = serving(partial);
        let started = tokio::time::Instant::now();
        let response = status_json(State(state.clone()), RawQuery(None)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(started.elapsed(), Duration::ZERO);
        let body: serde_json::Value = serde_json::from_str(&body_of(response).await).unwrap();
        assert_eq!(body["specs"].as_array().unwrap().len(), DEFAULT_LIMIT);
        assert_eq!(body["page"]["matched"], BEYOND_HEAD);
        assert_eq!(body["next"], format!("svc-{:04}", DEFAULT_LIMIT - 1));
        // The next page and the filters are likely to follow: the controller is asked for
        // every row now, once.
        assert!(matches!(commands.try_recv(), Ok(ControlCommand::WantRows)));

        let response = page(State(state.clone()), RawQuery(None)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(started.elapsed(), Duration::ZERO);
        let text = body_of(response).await;
        let last_shown = format!("svc-{:04}", query::PAGE_DEFAULT_LIMIT - 1);
        let first_hidden = format!("svc-{:04}", query::PAGE_DEFAULT_LIMIT);
        assert!(text.contains(&last_shown) && !text.contains(&first_hidden));
        let counted = format!(
            "1&ndash;{} of {BEYOND_HEAD} spec ids",
            query::PAGE_DEFAULT_LIMIT
        );
        assert!(text.contains(&counted), "the whole count: {text}");
        assert!(commands.try_recv().is_err(), "asked once");
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

    #[tokio::test]
    async fn the_index_is_built_once_per_snapshot() {
        let (publisher, snapshots) = watch::channel(Arc::new(Snapshot::default()));
        let (control, _commands) = mpsc::channel(1);
        let state = ServerState::new(snapshots, control);
        let (first, _) = state.read_indexed().await;
        assert!(first.indexed.get().is_some(), "built before it is used");
        let (again, _) = state.read_indexed().await;
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same snapshot, the same index"
        );

        publisher.send_replace(Arc::new(Snapshot {
            specs: vec![SpecStatus {
                id: "web".to_owned(),
                ..SpecStatus::default()
            }],
            ..Snapshot::default()
        }));
        let (second, _) = state.read_indexed().await;
        assert!(second.seq > first.seq);
        assert_eq!(second.get().summary().specs, 1);
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
