//! The dev cluster's Mesos-compatible master: the public face ([`DevClusterConfig`],
//! [`DevCluster::start`], the [`Faults`] handle) used by `mesos-reconciler dev` and by tests.
//!
//! The master speaks the v1 scheduler HTTP API as Apache Mesos 1.11 does (see
//! `shared/mesos-v1-api.md`): `POST /api/v1/scheduler` in protobuf and JSON, RecordIO event
//! streams, offers every allocation interval, filters, status-update forwarding and
//! reconciliation, plus `GET /master/state`, `/master/frameworks` (and the other operator
//! endpoints in `operator/`), `/metrics/snapshot`, `/version`, `/health` and `/master/redirect`. It runs its agents in-process (`super::agent`). The fault API (`Faults`,
//! and `POST /devcluster/faults/<name>` over HTTP, a path real Mesos does not use) lets tests
//! kill or partition agents, restart the master and disturb status updates. With ZooKeeper
//! ([`ZkMasters`]) several masters contend for leadership (`election.rs`, `ha.rs`), and the fault
//! API can kill and start them.
//!
//! Inside, one actor task (`state.rs`) owns every piece of state; the HTTP layer (`http.rs`) only
//! checks what needs no state and forwards the rest as messages.

mod agents;
mod allocator;
mod calls;
mod election;
mod files;
mod frameworks;
mod ha;
mod http;
mod launch;
mod metrics;
mod operator;
mod parse;
mod reconcile;
mod resources;
mod state;
mod state_json;
mod streams;
mod tasks;
pub mod tls;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use parse::{ParseError, parse_attributes, parse_resources};

use crate::mesos::proto::v1 as pb;
use state::{Fault, Master, Msg, Settings};

/// What `cpus:4;mem:8192;disk:20000;ports:[31000-32000]` gives: the default agent's resources.
pub const DEFAULT_AGENT_RESOURCES: &str = "cpus:4;mem:8192;disk:20000;ports:[31000-32000]";

/// How the dev cluster is set up.
#[derive(Debug, Clone)]
pub struct DevClusterConfig {
    /// Where the master listens (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The agents started with the master, in order (ids `<master-id>-S0`, `-S1`, ...).
    pub agents: Vec<AgentSpec>,
    /// HEARTBEAT period on subscription streams (Mesos: 15 s, fixed).
    pub heartbeat_interval: Duration,
    /// How often offers are made (Mesos: 1 s).
    pub allocation_interval: Duration,
    /// First re-send delay of an unacknowledged status update (Mesos agent: 10 s).
    pub status_retry_initial: Duration,
    /// Cap of the doubling re-send delay (Mesos agent: 10 min).
    pub status_retry_max: Duration,
    /// After a master restart, how long agents take to re-register with their tasks.
    pub reregister_delay: Duration,
    /// Sandboxes of process agents live under `<work_dir>/agents/<agent-id>/`.
    pub work_dir: PathBuf,
    /// The hostname the master and its agents report (offers, MasterInfo, redirects).
    pub hostname: String,
    /// Serve HTTPS with this configuration ([`tls::server_config`]) instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Several masters contending through ZooKeeper instead of one (`listen` is then unused).
    pub zk: Option<ZkMasters>,
}

/// A dev cluster of several masters electing their leader through ZooKeeper, as production Mesos
/// does (`devcluster --zk zk://... --masters 3 --listen a,b,c`).
#[derive(Debug, Clone)]
pub struct ZkMasters {
    /// Where the masters contend: each creates a `json.info_` child of the URL's path.
    pub url: crate::zk::ZkUrl,
    /// One address per master (`127.0.0.1:0` picks a free port).
    pub listen: Vec<SocketAddr>,
    /// The session timeout each master asks for (ZooKeeper bounds it by 2 to 20 ticks): a
    /// killed master's node vanishes, and another master leads, after about this long.
    pub session_timeout: Duration,
}

impl Default for DevClusterConfig {
    /// One virtual agent with [`DEFAULT_AGENT_RESOURCES`], Mesos's intervals, port chosen by the OS.
    fn default() -> Self {
        DevClusterConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            agents: vec![AgentSpec::default()],
            heartbeat_interval: Duration::from_secs(15),
            allocation_interval: Duration::from_secs(1),
            status_retry_initial: Duration::from_secs(10),
            status_retry_max: Duration::from_secs(600),
            reregister_delay: Duration::from_secs(1),
            work_dir: std::env::temp_dir().join("mesos-reconciler-dev"),
            hostname: "127.0.0.1".to_owned(),
            tls: None,
            zk: None,
        }
    }
}

/// One agent: what it offers and how it runs tasks.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub resources: Vec<pb::Resource>,
    pub attributes: Vec<pb::Attribute>,
    pub kind: AgentSpecKind,
    /// Defaults to the cluster's hostname.
    pub hostname: Option<String>,
}

/// How an agent runs tasks (the sandbox directory of process agents is chosen by the master).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentSpecKind {
    /// Real child processes, each in a sandbox directory.
    Process,
    /// Scripted tasks without a process (see `agent::labels`).
    Virtual,
}

impl AgentSpec {
    /// An agent from `--resources`/`--attributes`-style strings.
    pub fn parse(
        kind: AgentSpecKind,
        resources: &str,
        attributes: &str,
    ) -> Result<Self, ParseError> {
        Ok(AgentSpec {
            resources: parse_resources(resources)?,
            attributes: parse_attributes(attributes)?,
            kind,
            hostname: None,
        })
    }
}

impl Default for AgentSpec {
    /// A virtual agent with [`DEFAULT_AGENT_RESOURCES`] and no attributes.
    fn default() -> Self {
        AgentSpec::parse(AgentSpecKind::Virtual, DEFAULT_AGENT_RESOURCES, "")
            .expect("the default agent resources parse")
    }
}

/// The dev cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the dev cluster work directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid agent resources: {0}")]
    AgentResources(String),
    #[error("{0}: several masters need at least one address to listen on")]
    NoMasterAddress(String),
}

/// A fault could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    #[error("agent {0} is not registered (already partitioned, killed or recovering)")]
    AgentNotRegistered(String),
    #[error("agent {0} did not answer while re-registering")]
    AgentSilent(String),
    #[error("framework {0} is not connected")]
    FrameworkNotConnected(String),
    #[error("invalid agent: {0}")]
    InvalidAgent(String),
    #[error("the dev cluster master has stopped")]
    Stopped,
    #[error(
        "this dev cluster runs one master without ZooKeeper; kill_master and start_master need several masters (--zk ... --masters N)"
    )]
    NoMasters,
    #[error("no master {index}: the masters are numbered 0 to {}", .masters - 1)]
    UnknownMaster { index: usize, masters: usize },
    #[error("master {0} is not running (start it with start_master)")]
    MasterNotRunning(usize),
    #[error("master {0} is running already")]
    MasterRunning(usize),
    #[error("no master leads right now; name one: {{\"master\": <index>}}")]
    NoLeader,
    #[error("master cannot listen on {addr} again: {error}")]
    MasterBind { addr: SocketAddr, error: String },
}

/// What a fault answers: nothing, or the id of the agent it (re)started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultReply {
    Done,
    Agent(String),
}

/// A running dev cluster: the master's HTTP server, its actor and its agents.
#[derive(Debug)]
pub struct DevCluster {
    addr: SocketAddr,
    /// Whether the master serves HTTPS.
    tls: bool,
    tx: mpsc::UnboundedSender<Msg>,
    /// The masters, with ZooKeeper (the server fields below are then unused).
    masters: Option<Arc<ha::Masters>>,
    actor: Option<JoinHandle<()>>,
    server: Option<JoinHandle<()>>,
    stop_server: Option<oneshot::Sender<()>>,
}

impl DevCluster {
    /// Binds the listener, starts the master and its agents.
    pub async fn start(config: DevClusterConfig) -> Result<DevCluster, StartError> {
        if let Some(zk) = &config.zk
            && zk.listen.is_empty()
        {
            return Err(StartError::NoMasterAddress(zk.url.to_string()));
        }
        let listener =
            match &config.zk {
                Some(_) => None,
                None => Some(tokio::net::TcpListener::bind(config.listen).await.map_err(
                    |source| StartError::Bind {
                        addr: config.listen,
                        source,
                    },
                )?),
            };
        let addr = match &listener {
            Some(l) => l.local_addr().map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?,
            None => config.listen,
        };
        if config
            .agents
            .iter()
            .any(|a| a.kind == AgentSpecKind::Process)
        {
            std::fs::create_dir_all(&config.work_dir).map_err(|source| StartError::WorkDir {
                path: config.work_dir.clone(),
                source,
            })?;
        }
        for spec in &config.agents {
            resources::Resources::from_pb(&spec.resources)
                .map_err(|e| StartError::AgentResources(e.to_string()))?;
        }
        let settings = Arc::new(Settings {
            heartbeat_interval: config.heartbeat_interval,
            allocation_interval: config.allocation_interval,
            status_retry_initial: config.status_retry_initial,
            status_retry_max: config.status_retry_max,
            reregister_delay: config.reregister_delay,
            work_dir: config.work_dir.clone(),
            hostname: config.hostname.clone(),
            port: addr.port(),
        });
        let (tx, inbox) = mpsc::unbounded_channel();
        let (updates_tx, updates) = mpsc::unbounded_channel();
        let mut master = Master::new(settings.clone(), tx.clone(), updates_tx);
        for spec in config.agents {
            master.add_agent(spec);
        }
        let Some(listener) = listener else {
            let zk = config.zk.expect("no listener only with ZooKeeper");
            // Nobody leads until a master is elected; the agents then re-register with it.
            master.leading = false;
            let actor = tokio::spawn(master.run(inbox, updates));
            let spec = election::ZkSpec {
                url: zk.url,
                session_timeout: zk.session_timeout,
            };
            let masters = ha::Masters::start(spec, &zk.listen, tx.clone(), settings).await?;
            return Ok(DevCluster {
                addr: masters.addrs()[0],
                tls: false,
                tx,
                masters: Some(masters),
                actor: Some(actor),
                server: None,
                stop_server: None,
            });
        };
        tracing::info!(%addr, master_id = %master.master_id, "dev cluster master started");
        let actor = tokio::spawn(master.run(inbox, updates));
        let app = http::router(tx.clone(), settings);
        let tls = config.tls.is_some();
        let (server, stop_server) = match config.tls {
            None => serve(listener, app),
            Some(tls) => serve(
                tls::TlsListener::new(listener, tls)
                    .map_err(|source| StartError::Bind { addr, source })?,
                app,
            ),
        };
        Ok(DevCluster {
            addr,
            tls,
            tx,
            masters: None,
            actor: Some(actor),
            server: Some(server),
            stop_server: Some(stop_server),
        })
    }

    /// The address of each master (one without ZooKeeper).
    pub fn master_addrs(&self) -> Vec<SocketAddr> {
        match &self.masters {
            Some(masters) => masters.addrs().to_vec(),
            None => vec![self.addr],
        }
    }

    /// `http://<addr>` of each master, comma-separated: a controller's plain `--master` list.
    pub fn master_list(&self) -> String {
        let scheme = self.scheme();
        self.master_addrs()
            .iter()
            .map(|a| format!("{scheme}://{a}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Which master leads and has recovered (always 0 without ZooKeeper).
    pub async fn leader(&self) -> Option<usize> {
        match &self.masters {
            Some(masters) => masters.leader().await,
            None => Some(0),
        }
    }

    /// The address the master listens on (the first master's, with ZooKeeper).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (`https://` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// A cloneable handle on the fault API.
    pub fn faults(&self) -> Faults {
        Faults {
            tx: self.tx.clone(),
            masters: self.masters.clone(),
        }
    }

    /// The same document as `GET /master/state`.
    pub async fn state(&self) -> serde_json::Value {
        let (reply, answer) = oneshot::channel();
        let _ = self.tx.send(Msg::State { reply });
        answer
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Every TaskInfo the master received in ACCEPT calls, exactly as the scheduler sent it, in
    /// arrival order (valid or not).
    pub async fn received_task_infos(&self) -> Vec<pb::TaskInfo> {
        let (reply, answer) = oneshot::channel();
        let _ = self.tx.send(Msg::TaskInfos { reply });
        answer.await.unwrap_or_default()
    }

    /// The ids of the agents currently registered, in id order.
    pub async fn agent_ids(&self) -> Vec<String> {
        let state = self.state().await;
        state["slaves"]
            .as_array()
            .map(|slaves| {
                slaves
                    .iter()
                    .filter_map(|s| s["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops every agent (which kills its tasks), closes the streams and the HTTP server.
    pub async fn shutdown(mut self) {
        if let Some(masters) = self.masters.take() {
            masters.shutdown().await;
        }
        let (reply, done) = oneshot::channel();
        if self.tx.send(Msg::Shutdown { reply }).is_ok() {
            let _ = done.await;
        }
        if let Some(actor) = self.actor.take() {
            let _ = actor.await;
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            // Open streams have ended with the actor; a client that keeps a plain connection
            // open must not hold the shutdown up for long.
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                tracing::debug!("dev cluster http server did not stop in time");
            }
        }
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        // Without `shutdown` (a test that panicked), at least stop serving.
        if let Some(masters) = self.masters.take() {
            masters.abort();
        }
        if let Some(actor) = self.actor.take() {
            actor.abort();
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Serves `app` on `listener` until the returned sender is used (or dropped): then the listener
/// closes at once and open connections end after their current response.
fn serve<L>(listener: L, app: axum::Router) -> (JoinHandle<()>, oneshot::Sender<()>)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "dev cluster http server failed");
        }
    });
    (server, stop)
}

/// The fault API: a cheap, cloneable handle whose methods return once the fault is applied.
#[derive(Debug, Clone)]
pub struct Faults {
    tx: mpsc::UnboundedSender<Msg>,
    masters: Option<Arc<ha::Masters>>,
}

impl Faults {
    /// Stops the agent and its tasks; the master removes it (tasks become TASK_LOST, or
    /// TASK_GONE_BY_OPERATOR for PARTITION_AWARE frameworks).
    pub async fn kill_agent(&self, agent_id: &str) -> Result<(), FaultError> {
        self.apply(Fault::KillAgent(agent_id.to_owned()))
            .await
            .map(drop)
    }

    /// Cuts the agent off: the master marks it unreachable (TASK_UNREACHABLE, or TASK_LOST for
    /// frameworks that are not PARTITION_AWARE); its tasks keep running.
    pub async fn partition_agent(&self, agent_id: &str) -> Result<(), FaultError> {
        self.apply(Fault::PartitionAgent(agent_id.to_owned()))
            .await
            .map(drop)
    }

    /// Brings an agent back and returns the id it is registered under: a partitioned (or
    /// still recovering) agent re-registers with its tasks under the same id; a killed agent
    /// comes back empty under a new id, as a rebooted Mesos agent would.
    pub async fn heal_agent(&self, agent_id: &str) -> Result<String, FaultError> {
        match self.apply(Fault::HealAgent(agent_id.to_owned())).await? {
            FaultReply::Agent(id) => Ok(id),
            FaultReply::Done => Ok(agent_id.to_owned()),
        }
    }

    /// Fails the master over to a fresh one: all streams close, frameworks are forgotten until
    /// they re-subscribe, agents re-register with their tasks after `reregister_delay`.
    pub async fn restart_master(&self) -> Result<(), FaultError> {
        self.apply(Fault::RestartMaster).await.map(drop)
    }

    /// Closes the framework's subscription stream from the server side: the framework becomes
    /// disconnected and its failover timer starts.
    pub async fn drop_framework_stream(&self, framework_id: &str) -> Result<(), FaultError> {
        self.apply(Fault::DropFrameworkStream(framework_id.to_owned()))
            .await
            .map(drop)
    }

    /// Holds every agent status update this long before the master processes it (zero: off).
    pub async fn delay_status_updates(&self, delay: Duration) -> Result<(), FaultError> {
        self.apply(Fault::DelayStatusUpdates(delay)).await.map(drop)
    }

    /// Forwards every agent status update twice while on.
    pub async fn duplicate_status_updates(&self, on: bool) -> Result<(), FaultError> {
        self.apply(Fault::DuplicateStatusUpdates(on))
            .await
            .map(drop)
    }

    /// Rescinds every outstanding offer (RESCIND events, resources back without a filter).
    pub async fn rescind_offers(&self) -> Result<(), FaultError> {
        self.apply(Fault::RescindOffers).await.map(drop)
    }

    /// Starts one more agent and returns its id.
    pub async fn add_agent(&self, spec: AgentSpec) -> Result<String, FaultError> {
        match self.apply(Fault::AddAgent(spec)).await? {
            FaultReply::Agent(id) => Ok(id),
            FaultReply::Done => Err(FaultError::Stopped),
        }
    }

    /// Kills a master as a crash would (the leader if `master` is None): it stops serving (listener
    /// closed, streams cut) and abandons its ZooKeeper session without closing it, so another
    /// master leads once the session expires. Returns the index of the master killed.
    pub async fn kill_master(&self, master: Option<usize>) -> Result<usize, FaultError> {
        let masters = self.masters.as_ref().ok_or(FaultError::NoMasters)?;
        masters.kill(master).await
    }

    /// Starts a killed master again: a new contender with a new session (so it does not lead
    /// while another master does).
    pub async fn start_master(&self, master: usize) -> Result<(), FaultError> {
        let masters = self.masters.as_ref().ok_or(FaultError::NoMasters)?;
        masters.start_master(master).await
    }

    async fn apply(&self, fault: Fault) -> Result<FaultReply, FaultError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Fault { fault, reply })
            .map_err(|_| FaultError::Stopped)?;
        answer.await.map_err(|_| FaultError::Stopped)?
    }
}
