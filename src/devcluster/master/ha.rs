//! A dev cluster of several masters contending through ZooKeeper (`devcluster --zk ... --masters
//! 3`): one HTTP front per master, each on its own address with its own ZooKeeper session
//! (`election.rs`), and the fault API's `kill_master` and `start_master`.
//!
//! The masters share one actor, which holds the state of whichever master leads: an elected
//! master starts from nothing and learns the agents, their tasks and the frameworks from the
//! agents re-registering (the registry is not persisted, see ARCHITECTURE.md). A front that does
//! not lead answers as upstream's `Master::Http` does: the scheduler and operator endpoints
//! redirect to the leader (`307`, `Location: //<leader host>:<port><path>`), or `503 No leader
//! elected`; the leader answers the APIs `503` until it has recovered; `/redirect` and
//! `/master/redirect` always redirect to the leader's base URL.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::election::{self, Role, ZkSpec};
use super::state::{LeaderChange, Msg, Settings, master_info};
use super::{FaultError, StartError};

/// How long a restarted master waits for its address to be free again.
const REBIND_DEADLINE: Duration = Duration::from_secs(10);

/// The masters of a ZooKeeper dev cluster.
#[derive(Debug)]
pub(super) struct Masters {
    zk: ZkSpec,
    tx: mpsc::UnboundedSender<Msg>,
    /// The settings every front starts from (its own port set).
    settings: Arc<Settings>,
    /// The address of each master, ports resolved (a restarted master takes the same one).
    addrs: Vec<SocketAddr>,
    fronts: Vec<Mutex<Front>>,
    detector: std::sync::Mutex<Option<Running>>,
    this: Weak<Masters>,
}

#[derive(Debug)]
struct Front {
    role: Arc<watch::Sender<Role>>,
    running: Option<Running>,
    /// The server of a killed master, still closing its connections.
    closing: Option<JoinHandle<()>>,
}

/// A running task with its clean stop; aborting it instead is a crash.
#[derive(Debug)]
struct Running {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
    server: Option<(JoinHandle<()>, oneshot::Sender<()>)>,
}

impl Masters {
    /// Binds every address, then starts each master's server and contender, and the agents'
    /// detector.
    pub async fn start(
        zk: ZkSpec,
        listen: &[SocketAddr],
        tx: mpsc::UnboundedSender<Msg>,
        settings: Arc<Settings>,
    ) -> Result<Arc<Masters>, StartError> {
        let mut listeners = Vec::new();
        for addr in listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: *addr,
                    source,
                })?;
            listeners.push(listener);
        }
        let addrs = listeners
            .iter()
            .zip(listen)
            .map(|(l, addr)| {
                l.local_addr().map_err(|source| StartError::Bind {
                    addr: *addr,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let masters = Arc::new_cyclic(|this| Masters {
            zk: zk.clone(),
            tx: tx.clone(),
            settings,
            addrs: addrs.clone(),
            fronts: addrs
                .iter()
                .map(|_| {
                    Mutex::new(Front {
                        role: Arc::new(watch::channel(Role::NoLeader).0),
                        running: None,
                        closing: None,
                    })
                })
                .collect(),
            detector: std::sync::Mutex::new(None),
            this: this.clone(),
        });
        for (index, listener) in listeners.into_iter().enumerate() {
            let mut front = masters.fronts[index].lock().await;
            front.running = Some(masters.run_front(index, listener, front.role.clone()));
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(election::detect_for_agents(zk, tx, stopped));
        *masters.detector.lock().expect("not poisoned") = Some(Running {
            task,
            stop,
            server: None,
        });
        Ok(masters)
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The master that leads and has recovered, if any.
    pub async fn leader(&self) -> Option<usize> {
        for (index, front) in self.fronts.iter().enumerate() {
            let role = front.lock().await.role.borrow().clone();
            if role == (Role::Leader { recovered: true }) {
                return Some(index);
            }
        }
        None
    }

    fn run_front(
        &self,
        index: usize,
        listener: tokio::net::TcpListener,
        role: Arc<watch::Sender<Role>>,
    ) -> Running {
        let addr = self.addrs[index];
        let settings = Arc::new(Settings {
            port: addr.port(),
            ..(*self.settings).clone()
        });
        let guard = Guard {
            role: role.subscribe(),
            masters: self.this.clone(),
            hostname: settings.hostname.clone(),
            port: addr.port(),
        };
        let app: Router = super::http::router(self.tx.clone(), settings.clone())
            .layer(axum::middleware::from_fn_with_state(guard, guard_request));
        let (server, stop_server) = super::serve(listener, app);
        let mut info = master_info(&uuid::Uuid::new_v4().to_string(), &settings);
        if let std::net::IpAddr::V4(ip) = addr.ip() {
            info.ip = u32::from_le_bytes(ip.octets());
            info.pid = Some(format!("master@{ip}:{}", addr.port()));
            if let Some(address) = info.address.as_mut() {
                address.ip = Some(ip.to_string());
            }
        }
        tracing::info!(%addr, master_id = %info.id, "dev cluster master contending");
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(election::contend(
            self.zk.clone(),
            info,
            role,
            self.tx.clone(),
            stop_rx,
        ));
        Running {
            task,
            stop,
            server: Some((server, stop_server)),
        }
    }

    /// Kills a master (the leader if `index` is None) as a crash would: its server stops
    /// (listener closed, streams cut) and its session is abandoned without being closed, so its
    /// node vanishes only when ZooKeeper expires the session. Returns its index.
    pub async fn kill(&self, index: Option<usize>) -> Result<usize, FaultError> {
        let index = match index {
            Some(i) => self.check(i)?,
            None => self.leading().await.ok_or(FaultError::NoLeader)?,
        };
        let mut front = self.fronts[index].lock().await;
        let running = front
            .running
            .take()
            .ok_or(FaultError::MasterNotRunning(index))?;
        // Dropping the detached session's client sends nothing: the server expires it later.
        running.task.abort();
        front.role.send_replace(Role::Stopped);
        let port = self.addrs[index].port();
        let _ = self
            .tx
            .send(Msg::Leadership(LeaderChange::Deposed { port }));
        if let Some((server, stop)) = running.server {
            let _ = stop.send(());
            front.closing = Some(server);
        }
        tracing::warn!(master = index, %port, "master killed");
        Ok(index)
    }

    /// Starts a killed master again, as a new contender with a new session.
    pub async fn start_master(&self, index: usize) -> Result<(), FaultError> {
        let index = self.check(index)?;
        let mut front = self.fronts[index].lock().await;
        if front.running.is_some() {
            return Err(FaultError::MasterRunning(index));
        }
        if let Some(closing) = front.closing.take() {
            let _ = tokio::time::timeout(REBIND_DEADLINE, closing).await;
        }
        let addr = self.addrs[index];
        let deadline = tokio::time::Instant::now() + REBIND_DEADLINE;
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%addr, error = %e, "address not free yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(FaultError::MasterBind {
                        addr,
                        error: e.to_string(),
                    });
                }
            }
        };
        front.role.send_replace(Role::NoLeader);
        let role = front.role.clone();
        front.running = Some(self.run_front(index, listener, role));
        tracing::info!(master = index, %addr, "master started again");
        Ok(())
    }

    /// Stops every master cleanly: nodes deleted, sessions closed, servers stopped.
    pub async fn shutdown(&self) {
        let mut stopping = Vec::new();
        for front in &self.fronts {
            if let Some(running) = front.lock().await.running.take() {
                stopping.push(running);
            }
        }
        if let Some(detector) = self.detector.lock().expect("not poisoned").take() {
            stopping.push(detector);
        }
        for running in stopping {
            let _ = running.stop.send(true);
            if tokio::time::timeout(Duration::from_secs(5), running.task)
                .await
                .is_err()
            {
                tracing::debug!("a ZooKeeper session did not close in time");
            }
            if let Some((server, stop)) = running.server {
                let _ = stop.send(());
                let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
            }
        }
    }

    /// Aborts every task (a dev cluster dropped without `shutdown`).
    pub fn abort(&self) {
        for front in &self.fronts {
            if let Ok(mut front) = front.try_lock()
                && let Some(running) = front.running.take()
            {
                running.task.abort();
                if let Some((server, _)) = running.server {
                    server.abort();
                }
            }
        }
        if let Ok(mut detector) = self.detector.lock()
            && let Some(running) = detector.take()
        {
            running.task.abort();
        }
    }

    fn check(&self, index: usize) -> Result<usize, FaultError> {
        if index < self.fronts.len() {
            Ok(index)
        } else {
            Err(FaultError::UnknownMaster {
                index,
                masters: self.fronts.len(),
            })
        }
    }

    /// The master that leads (recovered or not).
    async fn leading(&self) -> Option<usize> {
        for (index, front) in self.fronts.iter().enumerate() {
            if matches!(*front.lock().await.role.borrow(), Role::Leader { .. }) {
                return Some(index);
            }
        }
        None
    }
}

/// What a front's middleware needs: its role, and the masters for the two master faults.
#[derive(Debug, Clone)]
struct Guard {
    role: watch::Receiver<Role>,
    masters: Weak<Masters>,
    hostname: String,
    port: u16,
}

/// Upstream's `Master::Http::redirect` and the `elected()`/`recovered()` checks before the
/// handlers, plus the two faults that concern the masters themselves.
async fn guard_request(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if let Some(name @ ("kill_master" | "start_master")) = path.strip_prefix("/devcluster/faults/")
    {
        return master_fault(&guard, name, request).await;
    }
    let role = guard.role.borrow().clone();
    let leader = match &role {
        Role::Leader { .. } => Some((guard.hostname.clone(), guard.port)),
        Role::Follower { hostname, port } => Some((hostname.clone(), *port)),
        Role::NoLeader | Role::Stopped => None,
    };
    let redirect_endpoint = path == "/redirect" || path == "/master/redirect";
    let leading = matches!(role, Role::Leader { .. });
    if redirect_endpoint || (!leading && redirects(&path)) {
        let Some((host, port)) = leader else {
            return text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected");
        };
        let base = format!("//{host}:{port}");
        if path.starts_with("/redirect/") || path.starts_with("/master/redirect/") {
            return StatusCode::NOT_FOUND.into_response();
        }
        let location = if redirect_endpoint {
            base
        } else {
            let target = request
                .uri()
                .path_and_query()
                .map_or(path.as_str(), |p| p.as_str());
            format!("{base}{target}")
        };
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return response;
    }
    if role == (Role::Leader { recovered: false }) && is_api(&path) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Master has not finished recovery",
        );
    }
    next.run(request).await
}

/// The endpoints upstream redirects to the leader from a master that does not lead: the v1
/// APIs and the operator endpoints, under `/master/` or not, with a trailing slash or `.json`.
fn redirects(path: &str) -> bool {
    const REDIRECTED: &[&str] = &[
        "api/v1",
        "api/v1/scheduler",
        "state",
        "state-summary",
        "frameworks",
        "slaves",
        "tasks",
        "roles",
        "teardown",
        "quota",
        "weights",
        "reserve",
        "unreserve",
        "create-volumes",
        "destroy-volumes",
        "maintenance/schedule",
        "maintenance/status",
        "machine/down",
        "machine/up",
    ];
    let name = path.strip_prefix("/master").unwrap_or(path);
    let name = name.trim_start_matches('/').trim_end_matches('/');
    let name = name.strip_suffix(".json").unwrap_or(name);
    REDIRECTED.contains(&name)
}

/// The v1 APIs, which a leader that has not recovered yet answers with 503.
fn is_api(path: &str) -> bool {
    let name = path.strip_prefix("/master").unwrap_or(path);
    matches!(name.trim_end_matches('/'), "/api/v1" | "/api/v1/scheduler")
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MasterFaultBody {
    master: Option<usize>,
}

/// `POST /devcluster/faults/kill_master` (`{"master": i}`, the leader by default) and
/// `start_master` (`{"master": i}`).
async fn master_fault(guard: &Guard, name: &str, request: Request) -> Response {
    let bytes = match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid fault body: {e}")),
    };
    let body: MasterFaultBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        MasterFaultBody::default()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(b) => b,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid fault body (expected {{\"master\": <index>}}): {e}"),
                );
            }
        }
    };
    let Some(masters) = guard.masters.upgrade() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down");
    };
    let result = match (name, body.master) {
        ("kill_master", index) => masters.kill(index).await,
        ("start_master", Some(index)) => masters.start_master(index).await.map(|()| index),
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "fault start_master needs \"master\" in its JSON body",
            );
        }
    };
    match result {
        Ok(index) => axum::Json(serde_json::json!({"ok": true, "master": index})).into_response(),
        Err(e) => text(StatusCode::CONFLICT, e.to_string()),
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut response = Response::new(Body::from(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apis_and_operator_endpoints_redirect_the_rest_does_not() {
        for path in [
            "/api/v1/scheduler",
            "/master/api/v1/scheduler",
            "/master/state",
            "/master/state.json",
            "/state",
            "/master/frameworks/",
            "/master/slaves",
            "/master/tasks.json",
        ] {
            assert!(redirects(path), "{path}");
        }
        for path in [
            "/health",
            "/version",
            "/metrics/snapshot",
            "/files/read",
            "/devcluster/faults/kill_agent",
        ] {
            assert!(!redirects(path), "{path}");
        }
        assert!(is_api("/api/v1/scheduler"));
        assert!(is_api("/master/api/v1"));
        assert!(!is_api("/master/state"));
    }
}
