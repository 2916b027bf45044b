//! The controller: the one loop that owns desired and observed state.
//!
//! Every trigger is an [`Event`]: a hint that the spec directory changed, something the Mesos
//! session reported, an operator command from the status server, or a timer. Whatever woke it, the
//! loop then runs one *pass*: `plan` compares the whole desired set with the whole observed set and
//! returns actions, which the loop applies through the Mesos client. State is never shared: the
//! status server reads the snapshot the loop publishes after each pass.
//!
//! Durability (design brief, "what the ledger must guarantee") is kept here, in this order:
//! - the framework id is flushed as soon as SUBSCRIBED arrives, and sent on every SUBSCRIBE;
//! - a launch is written to the ledger and flushed before its ACCEPT is sent;
//! - a status update is written and flushed before it is acknowledged;
//! - after every subscription, every non-terminal task is reconciled before anything that could
//!   duplicate it is launched;
//! - with no framework id stored, the framework is looked for on the master before one is
//!   registered (`discover.rs`), and nothing is launched or killed before every task of the
//!   framework is known, read from the master if the ledger lacks it (`adopt.rs`);
//! - nothing is launched or killed while the state directory cannot be written (`health.rs`).

mod acks;
mod adopt;
mod apply;
mod desired;
mod discover;
mod events;
mod ha;
mod health;
mod ledger;
mod origin;
mod planned;
mod preview;
mod reconcile;
mod session;
mod state;
mod updates;
mod upkeep;
mod view;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::mesos::client::{ClientConfig, SchedulerClient};
use crate::mesos::convert::FrameworkSettings;
use crate::status::{ControlCommand, Snapshot};
use crate::store::Store;

pub use ha::{CONTENDER_LABEL, ContenderInfo};
pub use state::{Clock, ROWS_ON_DEMAND_FROM};

/// The file in the state directory holding the status server's address (`127.0.0.1:9797`).
pub const STATUS_ADDR_FILE: &str = "status-addr";

/// While the desired directory cannot be watched (it did not exist at start), how often to try
/// again. Until then only the periodic re-read would notice changes, every 30 s.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// At most this many queued session events are handled before a pass.
const MAX_EVENTS_PER_PASS: usize = 1024;

/// Everything `run` needs.
#[derive(Debug)]
pub struct ControllerConfig {
    pub desired: PathBuf,
    pub state_dir: PathBuf,
    pub client: ClientConfig,
    /// Name, user, principal, failover timeout, ... (roles are computed from the specs).
    pub framework: FrameworkSettings,
    /// The framework's default role: specs without `role` use it.
    pub role: String,
    /// The status server's listener; `None` runs without one (tests).
    pub status: Option<tokio::net::TcpListener>,
    /// Adopt this framework when no framework id is stored (`--framework-id`).
    pub framework_id: Option<String>,
    /// Fail over the framework even if another scheduler is connected to it (`--takeover`).
    pub takeover: bool,
    /// The status server's bearer token (`--token-file`): its mutating endpoints need it.
    pub status_token: Option<crate::status::auth::Token>,
    /// What spec files may ask for (`--allowed-users`, limits).
    pub spec_policy: crate::spec::SpecPolicy,
    /// `run --ha`: act only while leading this election (see `ha.rs`).
    pub leadership: Option<crate::zk::election::Leadership>,
    /// From this many specs and ledger records on, the status snapshot carries the rows of specs
    /// without a problem only while a reader asks for them ([`ROWS_ON_DEMAND_FROM`]).
    pub rows_on_demand_from: usize,
}

/// A controller failure that ends `run`.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot create the mesos client: {0}")]
    Client(#[from] crate::mesos::client::ClientError),
    #[error("cannot watch the desired directory: {0}")]
    Watch(#[from] crate::watch::WatchError),
    #[error("status server: {0}")]
    Status(#[from] std::io::Error),
    /// The controller must not go on as configured; the message says what the operator can do.
    #[error("{0}")]
    Refused(String),
    /// Another scheduler subscribed with this controller's framework id and Mesos failed this one
    /// over.
    #[error("{0}")]
    FailedOver(String),
    /// `run --ha`: the ZooKeeper session ended, so another controller may lead.
    #[error("{0}")]
    LostLeadership(String),
}

impl ControllerError {
    /// A configuration the operator must change (exit 64), rather than a failure at run time.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ControllerError::Refused(_)
                | ControllerError::Store(crate::store::StoreError::Locked { .. })
        )
    }
}

/// What woke the loop. One closed enum, so every trigger is visible here.
#[derive(Debug)]
pub enum Event {
    /// Files under the desired directory changed (a hint: the loop re-reads everything).
    DesiredChanged,
    /// The Mesos session reported something.
    Session(session::SessionEvent),
    /// An operator command from the status server.
    Control(ControlCommand),
    /// A deadline passed (backoff, rollout, reconciliation retry, resubscription, periodic work).
    Timer,
    /// `run --ha`: this controller's role in the election changed.
    Leadership,
}

impl Event {
    fn why(&self) -> &'static str {
        match self {
            Event::DesiredChanged => "desired changed",
            Event::Session(session::SessionEvent::Subscribed { .. }) => "subscribed",
            Event::Session(session::SessionEvent::Offers(_)) => "offers",
            Event::Session(session::SessionEvent::Rescind(_)) => "offer rescinded",
            Event::Session(session::SessionEvent::Update(_)) => "status update",
            Event::Session(session::SessionEvent::Error { .. }) => "mesos error",
            Event::Session(session::SessionEvent::Disconnected(_)) => "disconnected",
            Event::Session(session::SessionEvent::Unreachable(_)) => "master unreachable",
            Event::Session(session::SessionEvent::Frameworks(_)) => "frameworks listed",
            Event::Session(session::SessionEvent::MasterTasks { .. }) => "framework tasks listed",
            Event::Control(_) => "operator command",
            Event::Timer => "timer",
            Event::Leadership => "leadership",
        }
    }
}

/// Runs the controller until `shutdown` completes. On shutdown it stops launching, flushes the
/// store and returns, leaving the tasks running: they belong to the cluster, not to this process.
pub async fn run(
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ControllerError> {
    let store = open_store(&config.state_dir)?;
    run_with_store(config, store, shutdown).await
}

/// Creates the state directory if needed and opens the store in it. Fails at once with
/// [`crate::store::StoreError::Locked`] when another controller holds the directory.
pub fn open_store(state_dir: &std::path::Path) -> Result<Store, ControllerError> {
    std::fs::create_dir_all(state_dir).map_err(ControllerError::Status)?;
    Ok(Store::open(state_dir)?)
}

/// [`run`] with the store already open (`mesos-reconciler run` opens it before binding the
/// status server, so that a second controller on the same directory is told so first).
pub async fn run_with_store(
    config: ControllerConfig,
    store: Store,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ControllerError> {
    let client = SchedulerClient::new(config.client.clone())?;
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::default()));
    let (control_tx, mut control_rx) = mpsc::channel::<ControlCommand>(16);
    let (session_tx, mut session_rx) = mpsc::channel(1024);

    let (server_stop_tx, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task_events = crate::status::events::channel();
    let server = match config.status {
        Some(listener) => {
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "status server listening");
            // With `--listen 127.0.0.1:0` this file is how scripts (and the crash tests) find the
            // port. Written after binding, so its presence means the server is up.
            std::fs::write(config.state_dir.join(STATUS_ADDR_FILE), addr.to_string())?;
            Some(tokio::spawn(crate::status::serve_with_events(
                listener,
                snapshot_rx,
                control_tx,
                task_events.clone(),
                crate::status::auth::Access {
                    token: config.status_token.clone(),
                    policy: Arc::new(config.spec_policy.clone()),
                },
                async move {
                    let _ = server_stop_rx.await;
                },
            )))
        }
        None => None,
    };

    let desired_dir = config.desired.clone();
    let mut watcher = match crate::watch::watch(&desired_dir) {
        Ok(w) => Some(w),
        Err(e) => {
            // A missing directory is reported, never taken as the empty set; the loop retries the
            // watch every WATCH_RETRY and re-reads the directory once it is watched.
            tracing::error!(dir = %config.desired.display(), error = %e, "cannot watch the desired directory");
            None
        }
    };

    let mut ctl = state::Controller::load(
        store,
        client,
        config.framework,
        config.role,
        config.desired,
        session_tx,
        snapshot_tx,
        Clock::new(),
    )?;
    ctl.explicit_framework_id = config.framework_id;
    ctl.takeover = config.takeover;
    ctl.spec_policy = Arc::new(config.spec_policy);
    ctl.rows_on_demand_from = config.rows_on_demand_from;
    // A spec in force from before `--allowed-users` was narrowed is read and checked again: it
    // shows as invalid (its running tasks are left alone, as for any invalid edit).
    let disallowed: Vec<_> = ctl
        .desired
        .specs
        .values()
        .filter(|spec| {
            spec.user
                .as_deref()
                .is_some_and(|u| !ctl.spec_policy.allows_user(u))
        })
        .map(|spec| spec.id.clone())
        .collect();
    for id in &disallowed {
        ctl.dir_cache.forget(id);
    }
    ctl.task_events = task_events;
    let mut leadership = config.leadership.clone();
    ctl.leadership = config.leadership;
    ctl.start().await;

    tokio::pin!(shutdown);
    let mut failed = None;
    loop {
        if let Some(e) = ctl.fatal.take() {
            failed = Some(e);
            break;
        }
        let wake = ctl.next_wakeup();
        let retry_watch = if watcher.is_none() {
            Instant::now() + WATCH_RETRY
        } else {
            wake
        };
        let event = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(ev) = session_rx.recv() => Event::Session(ev),
            Some(cmd) = control_rx.recv() => Event::Control(cmd),
            () = leadership_changed(&mut leadership) => Event::Leadership,
            Some(()) = next_hint(&mut watcher) => Event::DesiredChanged,
            () = tokio::time::sleep_until(wake.min(retry_watch)) => Event::Timer,
        };
        // Before anything is handled: a controller that has just lost its lease (it may have been
        // paused past it) must not act on what woke it.
        ctl.follow_leadership();
        if let Some(e) = ctl.fatal.take() {
            failed = Some(e);
            break;
        }
        if watcher.is_none() {
            if let Ok(w) = crate::watch::watch(&desired_dir) {
                tracing::info!(dir = %desired_dir.display(), "watching the desired directory");
                watcher = Some(w);
                // Whatever woke the loop, the directory is re-read now that it can be watched.
                ctl.handle(Event::DesiredChanged).await;
            }
        }
        let why = event.why();
        ctl.handle(event).await;
        if let Some(w) = &watcher {
            w.note_scan_cost(ctl.last_scan);
        }
        // Coalesce: everything already queued is handled before one pass looks at the result.
        // Bounded, so a steady stream of events still gets passes (and acknowledgements).
        for _ in 0..MAX_EVENTS_PER_PASS {
            let Ok(ev) = session_rx.try_recv() else {
                break;
            };
            ctl.handle(Event::Session(ev)).await;
        }
        // One flush for the whole burst of status updates, then their acknowledgements.
        ctl.flush_and_acknowledge().await;
        ctl.pass(why).await;
    }

    tracing::info!("shutting down: no more launches; tasks keep running on the cluster");
    let flushed = ctl.shutdown().await;
    let _ = server_stop_tx.send(());
    if let Some(server) = server {
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }
    match failed {
        Some(e) => Err(e),
        None => flushed,
    }
}

async fn leadership_changed(leadership: &mut Option<crate::zk::election::Leadership>) {
    match leadership {
        Some(l) => l.changed().await,
        None => std::future::pending().await,
    }
}

async fn next_hint(watcher: &mut Option<crate::watch::Watcher>) -> Option<()> {
    match watcher {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// The instant a deadline in epoch milliseconds falls on, on the loop's clock.
pub(crate) fn instant_at(clock: &Clock, at_ms: u64) -> Instant {
    let now = clock.now_ms();
    Instant::now() + Duration::from_millis(at_ms.saturating_sub(now))
}
