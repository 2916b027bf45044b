//! The controller's state and how each event changes it. Only the loop in `mod.rs` calls into this
//! file, one event at a time, so nothing here needs a lock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::adopt::Adoption;
use super::desired::DesiredSet;
use super::ledger::Ledger;
use super::planned::Planned;
use super::reconcile::Reconciliation;
use super::session::{self, SessionEvent};
use super::{ControllerError, Event};
use crate::mesos::client::SchedulerClient;
use crate::mesos::convert::{self, FrameworkSettings};
use crate::mesos::proto::v1 as pb;
use crate::mesos::proto::v1::scheduler::{Call, call};
use crate::model::{Offer, Resources, TaskId, TaskRecord, TaskState, TaskUpdate};
use crate::plan::{Desired, InstanceKey, InstanceState, RolloutState};
use crate::spec::model::{Spec, SpecId};
use crate::status::{ControlCommand, Snapshot};
use crate::store::{Store, Tree};

/// What `spec_stamps` holds per spec id: the file's stamp, and the generation and instances of the
/// spec read from it.
type StampRecord = (crate::spec::dir::Stamp, String, u32);

/// See [`Controller::publish`].
const PUBLISH_COST_RATIO: u32 = 10;
const PUBLISH_MAX_DELAY: Duration = Duration::from_secs(2);
/// A snapshot that builds faster than this is rebuilt after every pass, changed or not.
const PUBLISH_CHEAP: Duration = Duration::from_millis(2);
/// With nothing changed, the snapshot is still rebuilt this often (its pass time and counters).
const PUBLISH_IDLE_REFRESH: Duration = Duration::from_secs(60);
/// After a reader last asked for the status rows ([`ControlCommand::WantRows`]), every snapshot
/// carries them for this long.
const ROWS_KEEP: Duration = Duration::from_secs(120);
/// A controller with fewer specs and ledger records than this always publishes every row: they
/// cost little, and a request never waits for them.
pub const ROWS_ON_DEMAND_FROM: usize = 2_000;

/// When the status snapshot was published and when the next one may be.
#[derive(Debug, Default)]
pub(super) struct Published {
    /// (ready, connected, guard holding, halted, master problem, every row) of the last snapshot
    /// published.
    flags: Option<(bool, bool, bool, bool, Option<u64>, bool)>,
    /// A reader asked for every row: snapshots carry them until then.
    pub rows_until: Option<Instant>,
    /// No regular publication before this.
    next_at: Option<Instant>,
    /// When the last one was built.
    last_at: Option<Instant>,
    /// A publication was deferred to this instant.
    pub due: Option<Instant>,
    /// Something shown changed since the last one.
    pub stale: bool,
    /// How long the last one took to build.
    cost: Duration,
    /// Snapshots built.
    pub builds: u64,
}

/// How long an offer counts toward "the largest offer in the last minute".
const OFFER_MEMORY_MS: u64 = 60_000;
/// A full re-read of the directory at least this often, in case a file event was lost...
const RESCAN_EVERY: Duration = Duration::from_secs(30);
/// ...or less often when a re-read is costly: it then waits this many times what the last one
/// took, so the safety net costs at most half a percent of a core (a re-read of 100,000 files
/// takes about 0.4 s: every 80 s instead of every 30)...
const RESCAN_COST_RATIO: u32 = 200;
/// ...but never less often than this.
const RESCAN_AT_MOST: Duration = Duration::from_secs(300);

/// When the next safety re-read is due after one that took `scan`.
pub(super) fn rescan_after(scan: Duration) -> Duration {
    (scan * RESCAN_COST_RATIO).clamp(RESCAN_EVERY, RESCAN_AT_MOST)
}

/// Milliseconds since the epoch, from tokio's clock so that tests on a paused clock control it.
#[derive(Debug, Clone)]
pub struct Clock {
    base_ms: u64,
    base: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Clock {
            base_ms,
            base: Instant::now(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.base_ms + u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// One finished or running attempt of an instance, for the history shown by `status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Attempt {
    pub task_id: String,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub state: TaskState,
    pub reason: Option<String>,
    pub agent_id: Option<String>,
    pub hostname: Option<String>,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default)]
pub(super) struct Counts {
    pub launches: u64,
    pub kills: u64,
    pub status_updates: u64,
    pub failures: u64,
    pub offers_declined: u64,
    pub passes: u64,
}

pub(super) struct Controller {
    pub store: Store,
    pub client: SchedulerClient,
    /// Sends ACKNOWLEDGE calls off the loop (see `acks.rs`).
    pub acker: super::acks::Acker,
    pub settings: FrameworkSettings,
    pub role: String,
    pub desired_dir: PathBuf,
    pub session_tx: mpsc::Sender<SessionEvent>,
    pub snapshot_tx: watch::Sender<Arc<Snapshot>>,
    pub clock: Clock,

    pub desired: DesiredSet,
    /// What the last scan of the directory saw of each file (see `spec::dir::scan_dir`).
    pub dir_cache: crate::spec::dir::DirCache,
    /// The specs in force as `plan` sees them (with their generation and previous version), kept
    /// in step with `desired` by `reread`.
    pub plan_desired: BTreeMap<SpecId, Desired>,
    /// How many specs in force name each role (other than the default).
    pub role_counts: BTreeMap<String, usize>,
    pub ledger: Ledger,
    pub planned: Planned,
    pub instances: BTreeMap<InstanceKey, InstanceState>,
    pub rollouts: BTreeMap<SpecId, RolloutState>,
    pub history: BTreeMap<String, VecDeque<Attempt>>,
    pub offers: BTreeMap<String, Offer>,
    /// The last offer seen from each agent: hostname and attributes for constraints.
    pub agents: BTreeMap<String, Offer>,
    /// The spec in force before the latest generation change of each spec (a stopped rollout
    /// relaunches lost instances from it).
    pub previous: BTreeMap<SpecId, Arc<Spec>>,
    /// Specs deleted whose tasks may still run (their kill grace is needed).
    pub retired: BTreeMap<SpecId, Arc<Spec>>,
    pub offer_log: VecDeque<(u64, Resources)>,

    pub framework_id: Option<String>,
    pub master: Option<String>,
    pub subscription: Option<tokio::task::JoinHandle<()>>,
    /// The roles the master knows this framework by: those of the last SUBSCRIBE or
    /// UPDATE_FRAMEWORK. A spec naming another role gets no offers until the master is told.
    pub subscribed_roles: Vec<String>,
    pub connected: bool,
    pub resubscribe_at: Option<Instant>,
    pub resubscribe_failures: u32,
    pub reconciliation: Reconciliation,
    pub last_reconcile_ms: u64,
    pub asked_stale: BTreeSet<TaskId>,
    pub suppressed: bool,
    pub deletions_approved: bool,
    pub ready: bool,
    pub next_rescan: Instant,
    /// How long the last scan of the directory took (the watcher spaces its mid-burst hints by
    /// it, see `watch::burst_limit`).
    pub last_scan: Duration,
    pub counts: Counts,
    pub last_pass: Option<(u64, &'static str, u64)>,
    pub guard: Option<crate::plan::GuardHold>,
    /// When the guard started holding the kills it holds now (ms since the epoch).
    pub guard_since_ms: Option<u64>,
    pub published: Published,
    /// Below this many specs and ledger records every snapshot carries every row; from it on,
    /// only while a reader asks for them ([`ROWS_ON_DEMAND_FROM`]).
    pub rows_on_demand_from: usize,
    /// Updates written to the store but not yet flushed and acknowledged (see `updates.rs`).
    pub pending_acks: Vec<TaskUpdate>,

    // Recovery from the master (`discover.rs`, `adopt.rs`).
    /// `--framework-id`: the framework to adopt when none is stored.
    pub explicit_framework_id: Option<String>,
    /// `--takeover`: fail over a framework another scheduler is connected to.
    pub takeover: bool,
    /// The operator's rules for spec files (`--allowed-users`, limits), applied on every re-read.
    pub spec_policy: Arc<crate::spec::SpecPolicy>,
    /// The framework found on the master, subscribed with until SUBSCRIBED stores its id.
    pub adopting: Option<String>,
    /// The master's frameworks being listed.
    pub finding: Option<tokio::task::JoinHandle<()>>,
    /// Why the frameworks could not be listed, while that lasts.
    pub find_error: Option<String>,
    pub adoption: Adoption,
    /// Set when the controller must stop; `run` returns it.
    pub fatal: Option<ControllerError>,
    /// Why nothing is launched or killed: the state directory cannot be written (`health.rs`).
    pub halted: Option<String>,
    pub next_store_probe: Option<Instant>,
    /// The git commits of the specs and of the desired directory (see `origin.rs`).
    pub origins: super::origin::Origins,
    /// Task transitions for `GET /api/v1/events` (see `events.rs`).
    pub task_events: tokio::sync::broadcast::Sender<crate::status::TaskEvent>,

    // Standby controllers (`ha.rs`).
    /// `run --ha`: the election this controller contends in.
    pub leadership: Option<crate::zk::election::Leadership>,
    /// Subscribing, passes and calls are allowed: always without `--ha`, while leading with it.
    pub acting: bool,
    /// [`Controller::begin`] ran (the first time this controller acted).
    pub began: bool,
    /// Why this controller does not act (shown, and `/readyz` 503).
    pub standby: Option<String>,
}

impl Controller {
    /// Loads everything the store remembers and reads the directory once.
    #[expect(clippy::too_many_arguments, reason = "built once, from run()")]
    pub fn load(
        store: Store,
        client: SchedulerClient,
        settings: FrameworkSettings,
        role: String,
        desired_dir: PathBuf,
        session_tx: mpsc::Sender<SessionEvent>,
        snapshot_tx: watch::Sender<Arc<Snapshot>>,
        clock: Clock,
    ) -> Result<Self, ControllerError> {
        let framework_id = store.framework_id()?;
        let applied: BTreeMap<SpecId, Arc<Spec>> = store
            .all::<Spec>(Tree::Specs)?
            .into_iter()
            .map(|(_, s)| (s.id.clone(), Arc::new(s)))
            .collect();
        let ledger = Ledger::from_records(
            store
                .all::<TaskRecord>(Tree::Ledger)?
                .into_iter()
                .map(|(_, r)| r),
        );
        let instances = store
            .all::<(InstanceKey, InstanceState)>(Tree::Backoff)?
            .into_iter()
            .map(|(_, kv)| kv)
            .collect();
        let mut history: BTreeMap<String, VecDeque<Attempt>> = store
            .all::<VecDeque<Attempt>>(Tree::History)?
            .into_iter()
            .collect();
        super::updates::restore_live_attempts(&mut history, &ledger);
        let rollouts = store
            .all::<(SpecId, RolloutState)>(Tree::Rollouts)?
            .into_iter()
            .map(|(_, kv)| kv)
            .collect();
        let previous: BTreeMap<SpecId, Arc<Spec>> = store
            .all::<Spec>(Tree::Previous)?
            .into_iter()
            .map(|(_, s)| (s.id.clone(), Arc::new(s)))
            .collect();
        let plan_desired: BTreeMap<SpecId, Desired> = applied
            .iter()
            .map(|(id, spec)| {
                let d = Desired::new(spec.clone());
                let d = match previous.get(id) {
                    Some(p) => d.with_previous(Arc::clone(p)),
                    None => d,
                };
                (id.clone(), d)
            })
            .collect();
        // A stamp is only trusted for the very spec it was recorded with (same generation and
        // instances): a crash between writing a spec and its stamp costs a re-read, never a stale
        // spec.
        let mut dir_cache = crate::spec::dir::DirCache::default();
        for (key, (stamp, generation, instances)) in store.all::<StampRecord>(Tree::Stamps)? {
            let matches = SpecId::new(key).ok().and_then(|id| {
                let d: &Desired = plan_desired.get(&id)?;
                (d.generation == generation && d.spec.instances == instances).then_some(id)
            });
            if let Some(id) = matches {
                dir_cache.seed(&id, stamp);
            }
        }
        let mut role_counts = BTreeMap::new();
        for spec in applied.values() {
            count_role(&mut role_counts, spec, 1);
        }
        let desired = DesiredSet {
            specs: applied,
            ..Default::default()
        };
        let origins = super::origin::Origins::load(&store, &ledger)?;
        Ok(Controller {
            store,
            acker: super::acks::Acker::new(client.clone()),
            client,
            settings,
            role,
            desired_dir,
            session_tx,
            snapshot_tx,
            clock,
            desired,
            dir_cache,
            plan_desired,
            role_counts,
            ledger,
            planned: Planned::default(),
            instances,
            rollouts,
            history,
            offers: BTreeMap::new(),
            agents: BTreeMap::new(),
            previous,
            retired: BTreeMap::new(),
            offer_log: VecDeque::new(),
            framework_id,
            master: None,
            subscription: None,
            subscribed_roles: Vec::new(),
            connected: false,
            resubscribe_at: None,
            resubscribe_failures: 0,
            reconciliation: Reconciliation::default(),
            last_reconcile_ms: 0,
            asked_stale: BTreeSet::new(),
            suppressed: false,
            deletions_approved: false,
            ready: false,
            next_rescan: Instant::now() + RESCAN_EVERY,
            last_scan: Duration::ZERO,
            counts: Counts::default(),
            last_pass: None,
            guard: None,
            guard_since_ms: None,
            published: Published::default(),
            rows_on_demand_from: ROWS_ON_DEMAND_FROM,
            pending_acks: Vec::new(),
            explicit_framework_id: None,
            takeover: false,
            spec_policy: Arc::default(),
            adopting: None,
            finding: None,
            find_error: None,
            adoption: Adoption::default(),
            fatal: None,
            halted: None,
            next_store_probe: None,
            origins,
            task_events: crate::status::events::channel(),
            leadership: None,
            acting: true,
            began: false,
            standby: None,
        })
    }

    /// The first re-read of the directory (files changed while the controller was down are applied
    /// from it) and, unless it stands by for another controller, the first subscription.
    pub async fn start(&mut self) {
        self.reread().await;
        if self.leadership.is_some() {
            self.acting = false;
            self.follow_leadership();
            self.publish();
            return;
        }
        self.begin();
        self.publish();
    }

    /// What a controller does the first time it acts: checks the framework id it was given
    /// against the stored one, and subscribes (or first finds its framework on the master).
    pub(super) fn begin(&mut self) {
        self.began = true;
        match (&self.framework_id, &self.explicit_framework_id) {
            (Some(stored), Some(explicit)) if stored != explicit => {
                self.fatal = Some(ControllerError::Refused(format!(
                    "the state directory holds framework {stored}, but --framework-id names                      {explicit}: remove --framework-id to go on with {stored}, or start with an                      empty state directory to adopt {explicit}"
                )));
                return;
            }
            (Some(id), _) => {
                tracing::info!(framework_id = %id, "re-subscribing with the stored framework id");
                // The ledger may be older than the cluster (a backup restored, another
                // scheduler ran the framework): its tasks are read from the master first.
                self.adoption.require();
            }
            (None, _) => {}
        }
        self.connect();
    }

    /// The earliest instant something is due by time alone.
    pub fn next_wakeup(&self) -> Instant {
        let mut wake = self.next_rescan;
        for at in [
            self.resubscribe_at,
            self.published.due,
            self.adoption.retry_at(),
            self.store_probe_at(),
        ]
        .into_iter()
        .flatten()
        {
            wake = wake.min(at);
        }
        for at_ms in [
            self.planned.next_wakeup_ms(),
            self.reconciliation.next_wakeup_ms(),
        ]
        .into_iter()
        .flatten()
        {
            wake = wake.min(super::instant_at(&self.clock, at_ms));
        }
        if self.connected {
            // Stale launches and periodic reconciliation are checked every few seconds.
            wake = wake.min(Instant::now() + Duration::from_secs(5));
        }
        // A leader stops acting the moment its lease runs out, even with nothing else to do.
        if let Some(until) = self.leadership.as_ref().and_then(|l| l.acting_until()) {
            wake = wake.min(until);
        }
        wake
    }

    /// Applies one event to the state. Calls that an event requires (acknowledgements,
    /// reconciliation) are sent from here; everything else waits for the pass.
    pub async fn handle(&mut self, event: Event) {
        match event {
            Event::DesiredChanged => {
                // A hint from the directory is shown (at least as one more pass), even when the
                // files did not change; the periodic re-read is not.
                self.published.stale = true;
                self.reread().await;
            }
            Event::Session(ev) => self.on_session(ev).await,
            Event::Control(ControlCommand::Reread { reply }) => {
                self.published.stale = true;
                self.reread().await;
                let _ = reply.send(self.clock.now_ms());
            }
            Event::Control(cmd) => self.on_control(cmd),
            Event::Timer => self.on_timer().await,
            // `follow_leadership` ran before this event was handled.
            Event::Leadership => {}
        }
    }

    pub(super) async fn reread(&mut self) {
        let dir = self.desired_dir.clone();
        let policy = Arc::clone(&self.spec_policy);
        let mut cache = std::mem::take(&mut self.dir_cache);
        let started = std::time::Instant::now();
        let scanned = tokio::task::spawn_blocking(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::spec::dir::scan_dir_with(&dir, &mut cache, &policy)
            }));
            (cache, result)
        })
        .await;
        self.last_scan = started.elapsed();
        self.next_rescan = Instant::now() + rescan_after(self.last_scan);
        let diff = match scanned {
            Ok((cache, Ok(Ok(diff)))) => {
                self.dir_cache = cache;
                diff
            }
            Ok((cache, Ok(Err(e)))) => {
                self.dir_cache = cache;
                let before = self.desired.dir_error.clone();
                self.desired.failed(&e);
                if self.desired.dir_error != before {
                    if let Some(message) = &self.desired.dir_error {
                        tracing::error!("{message}");
                    }
                }
                return;
            }
            // The cache is dropped: the next scan reads everything again.
            Ok((_, Err(_))) | Err(_) => {
                tracing::error!("re-reading the desired directory panicked");
                return;
            }
        };
        let old_errors = std::mem::take(&mut self.desired.errors);
        let count_before = self.desired.specs.len();
        let root = diff.root.clone();
        let read: Vec<SpecId> = diff.changed.keys().cloned().collect();
        let changes = self.desired.apply(diff);
        let changed_ids: Vec<SpecId> = changes.changed.iter().map(|(id, _)| id.clone()).collect();
        let removed_ids: Vec<SpecId> = changes.removed.iter().map(|(id, _)| id.clone()).collect();
        self.note_origins(&root, &read, &changed_ids, &removed_ids)
            .await;
        if old_errors != self.desired.errors {
            self.published.stale = true;
        }
        for (file, err) in &self.desired.errors {
            if !old_errors.get(file).is_some_and(|old| old == err) {
                tracing::error!(spec = %file, "invalid spec, previous version (if any) stays in force: {err}");
            }
        }
        for id in &changes.invalid {
            self.planned.mark(id.as_str());
        }
        if changes.changed.is_empty() && changes.removed.is_empty() {
            return;
        }
        // Persist the specs in force so that a spec deleted while the controller is down is
        // noticed, and so that an invalid edit after a restart still has its previous version.
        let write = self.store.update(
            Tree::Specs,
            changes
                .changed
                .iter()
                .filter_map(|(id, _)| self.desired.specs.get_key_value(id))
                .map(|(id, s)| (id.as_str(), s)),
            removed_ids.iter().map(SpecId::as_str),
        );
        if let Err(e) = write {
            tracing::error!(error = %e, "cannot record the applied specs");
        }
        for (id, old) in changes.removed {
            tracing::info!(spec = %id.as_str(), "spec file removed");
            count_role(&mut self.role_counts, &old, -1);
            self.planned.mark(id.as_str());
            self.plan_desired.remove(&id);
            if self.previous.remove(&id).is_some() {
                if let Err(e) = self.store.remove(Tree::Previous, id.as_str()) {
                    tracing::warn!(error = %e, "cannot forget the previous generation");
                }
            }
            self.retired.insert(id, old);
        }
        for (id, old) in changes.changed {
            let Some(spec) = self.desired.specs.get(&id) else {
                continue;
            };
            tracing::info!(spec = %id.as_str(), "spec applied");
            self.retired.remove(&id);
            self.planned.mark(id.as_str());
            count_role(&mut self.role_counts, spec, 1);
            let mut d = Desired::new(spec.clone());
            if let Some(old) = old {
                count_role(&mut self.role_counts, &old, -1);
                if old.content_hash().to_string() != d.generation {
                    if let Err(e) = self.store.put(Tree::Previous, id.as_str(), &old) {
                        tracing::warn!(error = %e, "cannot record the previous generation");
                    }
                    self.previous.insert(id.clone(), old);
                }
            }
            if let Some(previous) = self.previous.get(&id) {
                d = d.with_previous(previous.clone());
            }
            self.plan_desired.insert(id, d);
        }
        // The stamps of the files just applied, with the generation the plan view computed.
        let stamps: Vec<(&str, StampRecord)> = changed_ids
            .iter()
            .filter_map(|id| {
                let stamp = self.dir_cache.stamp(id)?;
                let d = self.plan_desired.get(id)?;
                Some((id.as_str(), (stamp, d.generation.clone(), d.spec.instances)))
            })
            .collect();
        let write = self.store.update(
            Tree::Stamps,
            stamps.iter().map(|(id, s)| (*id, s)),
            removed_ids.iter().map(SpecId::as_str),
        );
        if let Err(e) = write {
            tracing::warn!(error = %e, "cannot record the spec files' stamps");
        }
        // The held kills of the deletion guard were approved for the set the operator saw.
        let count_after = self.desired.specs.len();
        if count_before != count_after {
            self.deletions_approved = self.deletions_approved && count_after < count_before;
        }
        self.update_roles().await;
    }

    pub(super) fn subscribe(&mut self) {
        if let Some(old) = self.subscription.take() {
            old.abort();
        }
        let roles = self.roles();
        let info = convert::framework_info(
            &FrameworkSettings {
                roles: roles.clone(),
                ..self.settings.clone()
            },
            self.framework_id.as_deref().or(self.adopting.as_deref()),
        );
        self.subscribed_roles = roles;
        self.subscription = Some(session::spawn_subscription(
            self.client.clone(),
            info,
            self.session_tx.clone(),
        ));
        self.resubscribe_at = None;
    }

    /// Tells the master about the roles the specs in force use, when they differ from the ones it
    /// knows: a spec added with a new role would otherwise never get an offer of that role (offers
    /// of a MULTI_ROLE framework come only for its subscribed roles). UPDATE_FRAMEWORK (Mesos
    /// 1.9+) changes the roles without dropping the subscription. Its `suppressed_roles` is left
    /// empty, which revives every role; the next pass suppresses again if nothing is pending.
    /// While disconnected nothing is sent: the next SUBSCRIBE carries the roles.
    pub(super) async fn update_roles(&mut self) {
        let roles = self.roles();
        if !self.connected || roles == self.subscribed_roles {
            return;
        }
        let Some(framework_id) = self.framework_id.clone() else {
            return;
        };
        let info = convert::framework_info(
            &FrameworkSettings {
                roles: roles.clone(),
                ..self.settings.clone()
            },
            Some(&framework_id),
        );
        let call = Call {
            framework_id: Some(pb::FrameworkId {
                value: framework_id,
            }),
            r#type: Some(call::Type::UpdateFramework as i32),
            update_framework: Some(call::UpdateFramework {
                framework_info: info,
                suppressed_roles: Vec::new(),
                offer_constraints: None,
            }),
            ..Default::default()
        };
        match self.client.call(call).await {
            Ok(_) => {
                tracing::info!(?roles, "told mesos the roles the specs use");
                self.subscribed_roles = roles;
                self.suppressed = false;
            }
            // Tried again at the next re-read of the directory (see `rescan_after`).
            Err(e) => tracing::warn!(?roles, error = %e, "cannot update the framework's roles"),
        }
    }

    /// The default role first, then every other role a spec in force names (in name order).
    pub fn roles(&self) -> Vec<String> {
        let mut roles = vec![self.role.clone()];
        roles.extend(
            self.role_counts
                .keys()
                .filter(|r| **r != self.role)
                .cloned(),
        );
        roles
    }

    pub(super) fn schedule_resubscribe(&mut self) {
        self.connected = false;
        self.offers.clear();
        self.reconciliation.stop();
        self.resubscribe_failures = self.resubscribe_failures.saturating_add(1);
        // Jittered exponential backoff capped at 15 s, as the scheduler guide suggests.
        let exp = 500u64
            .saturating_mul(1 << self.resubscribe_failures.min(5))
            .min(15_000);
        let jitter = rand::random_range(0..=exp / 2);
        let delay = Duration::from_millis(exp / 2 + jitter);
        self.resubscribe_at = Some(Instant::now() + delay);
        if self.client.problem().is_some() {
            // The masters cannot be reached: the client's throttled lines say so; one line per
            // retry would flood the log.
            tracing::debug!(delay_ms = delay.as_millis() as u64, "will re-subscribe");
        } else {
            tracing::info!(delay_ms = delay.as_millis() as u64, "will re-subscribe");
        }
    }

    pub(super) async fn on_session(&mut self, ev: SessionEvent) {
        if !self.acting {
            // From a stream or a request of before the controller stopped acting.
            tracing::debug!(?ev, "not acting: ignoring a session event");
            return;
        }
        match ev {
            SessionEvent::Subscribed {
                framework_id,
                master,
            } => self.on_subscribed(framework_id, master).await,
            SessionEvent::Offers(offers) => {
                let now = self.clock.now_ms();
                for offer in offers {
                    self.offer_log.push_back((now, offer.resources.clone()));
                    self.agents.insert(offer.agent_id.clone(), offer.clone());
                    self.offers.insert(offer.id.clone(), offer);
                }
                while self
                    .offer_log
                    .front()
                    .is_some_and(|(t, _)| now.saturating_sub(*t) > OFFER_MEMORY_MS)
                {
                    self.offer_log.pop_front();
                }
            }
            SessionEvent::Rescind(id) => {
                self.offers.remove(&id);
            }
            SessionEvent::Update(update) => self.on_update(update).await,
            SessionEvent::Error { message, removed } => {
                if removed {
                    self.on_framework_removed(&message).await;
                } else if message.contains("failed over") {
                    // Another scheduler subscribed with this framework's id (a controller started
                    // with --takeover): going on would fail it over in turn, back and forth.
                    let text = format!(
                        "another scheduler took framework {} over (Mesos: {message:?}): stopping, \
                         so that the two do not fail each other over; its tasks keep running \
                         under the new scheduler",
                        self.framework_id.as_deref().unwrap_or("?")
                    );
                    tracing::error!("{text}");
                    self.fatal = Some(ControllerError::FailedOver(text));
                } else {
                    tracing::error!(error = %message, "mesos ended the subscription");
                }
                self.subscription = None;
                self.schedule_resubscribe();
            }
            SessionEvent::Disconnected(reason) => {
                if self.client.problem().is_some() {
                    // The masters cannot be reached: the client has logged why, throttled.
                    tracing::debug!(%reason, "subscribing failed; retrying");
                } else {
                    tracing::warn!(%reason, "disconnected from mesos");
                }
                self.subscription = None;
                self.schedule_resubscribe();
            }
            // Only wakes the loop: the snapshot reads the client's latest problem.
            SessionEvent::Unreachable(_) => {}
            SessionEvent::Frameworks(result) => self.on_frameworks(result),
            SessionEvent::MasterTasks {
                framework_id,
                result,
            } => self.on_master_tasks(framework_id, result).await,
        }
    }

    pub(super) async fn on_subscribed(&mut self, framework_id: String, master: String) {
        if self.framework_id.as_deref() != Some(framework_id.as_str()) {
            // Durability rule 1: flushed before anything else happens under this id.
            if let Err(e) = self.store.set_framework_id(&framework_id).await {
                tracing::error!(error = %e, "cannot persist the framework id; will re-subscribe");
                self.schedule_resubscribe();
                return;
            }
            if self.adopting.as_deref() == Some(framework_id.as_str()) {
                tracing::warn!(%framework_id, %master, "FRAMEWORK RECOVERED FROM THE MASTER: subscribed with its id (stored now); its tasks are read from the master and adopted before anything is launched");
            } else {
                tracing::info!(%framework_id, "registered as a new framework");
            }
        } else {
            tracing::info!(%framework_id, %master, "subscribed");
        }
        self.framework_id = Some(framework_id);
        self.adopting = None;
        self.master = Some(master);
        self.connected = true;
        self.resubscribe_failures = 0;
        // Offers never survive a (re)subscription, and the master starts unsuppressed.
        self.offers.clear();
        self.suppressed = false;
        self.asked_stale.clear();
        let now = self.clock.now_ms();
        self.last_reconcile_ms = now;
        let tasks: Vec<(TaskId, Option<String>)> = self
            .ledger
            .values()
            .filter(|r| r.is_live())
            .map(|r| (r.task_id.clone(), r.agent_id.clone()))
            .collect();
        tracing::info!(tasks = tasks.len(), "reconciling the ledger with mesos");
        let call = self.reconciliation.start(tasks, now);
        self.send_reconcile(call).await;
        self.learn_tasks_if_needed();
        // The specs may have changed while the SUBSCRIBE was on its way.
        self.update_roles().await;
    }

    pub(super) async fn on_framework_removed(&mut self, message: &str) {
        tracing::error!(
            framework_id = ?self.framework_id,
            reason = %message,
            "MESOS REMOVED THIS FRAMEWORK: all its tasks are gone; registering anew and relaunching everything the specs want"
        );
        if let Err(e) = self.store.clear_framework_id().await {
            tracing::error!(error = %e, "cannot clear the framework id");
        }
        self.framework_id = None;
        self.adopting = None;
        self.adoption.forget();
        let now = self.clock.now_ms();
        let mut changed = Vec::new();
        for r in self.ledger.values().filter(|r| r.is_live()) {
            let mut r = r.clone();
            r.state = TaskState::Lost;
            r.reason = Some("FRAMEWORK_REMOVED".to_owned());
            r.cluster_caused = true;
            r.updated_at_ms = now;
            changed.push(r);
        }
        for r in &changed {
            self.ledger.put(r.clone());
            self.record_end(r);
        }
        self.persist_records(&changed).await;
    }

    pub(super) fn on_control(&mut self, cmd: ControlCommand) {
        match cmd {
            ControlCommand::ApproveDeletions { reply } => {
                let text = match &self.guard {
                    Some(hold) => {
                        self.deletions_approved = true;
                        format!(
                            "approved: the held kills of {} specs will be applied",
                            hold.specs.len()
                        )
                    }
                    None => "nothing is held by the deletion guard".to_owned(),
                };
                tracing::warn!("operator: {text}");
                let _ = reply.send(text);
            }
            ControlCommand::WantRows => {
                self.published.rows_until = Some(Instant::now() + ROWS_KEEP);
            }
            ControlCommand::Preview { proposal, reply } => {
                let _ = reply.send(self.preview(*proposal));
            }
            // `handle` reads the directory for it (that is async); reached only from elsewhere,
            // where answering "now" without a read would be a lie: the sender learns nothing.
            ControlCommand::Reread { reply } => drop(reply),
        }
    }

    /// Stops launching, flushes everything, and closes the subscription without tearing the
    /// framework down.
    pub async fn shutdown(&mut self) -> Result<(), ControllerError> {
        if let Some(sub) = self.subscription.take() {
            sub.abort();
        }
        self.store.flush().await?;
        Ok(())
    }

    /// Publishes the status snapshot, at a bounded rate: building it costs time in proportion to
    /// the specs and tasks, so after a build that took `t` the next one waits `PUBLISH_COST_RATIO *
    /// t` (at most [`PUBLISH_MAX_DELAY`]). A small controller publishes after every pass; one with
    /// 100,000 tasks spends at most a tenth of its time on the status page. A change that readers
    /// wait for (ready, connected, the guard) is published at once.
    pub fn publish(&mut self) {
        let now = Instant::now();
        let flags = (
            self.ready,
            self.connected,
            self.guard.is_some(),
            self.halted.is_some(),
            self.client.problem().map(|p| p.at_ms),
            self.desired.specs.len() + self.ledger.map().len() < self.rows_on_demand_from
                || self.published.rows_until.is_some_and(|until| now < until),
        );
        let every_row = flags.5;
        let urgent = self.published.flags != Some(flags);
        // Nothing shown changed: the pass counter and time still are, so a cheap snapshot (a small
        // controller) is rebuilt anyway; a costly one only now and then.
        let refresh = self.published.cost < PUBLISH_CHEAP
            || self
                .published
                .last_at
                .is_none_or(|at| now >= at + PUBLISH_IDLE_REFRESH);
        if !urgent && !self.published.stale && !refresh {
            return;
        }
        if let (false, Some(at)) = (urgent, self.published.next_at) {
            if now < at {
                self.published.due = Some(at);
                return;
            }
        }
        // Only the pass counter and time moved, and the rows are left out: the previous partial
        // snapshot is published again with them, and keeps the cost of its build for the rate.
        if !urgent && !self.published.stale && !every_row {
            let previous = Arc::clone(&self.snapshot_tx.borrow());
            if previous.partial.is_some() {
                let snapshot = super::view::refreshed(self, &previous);
                drop(previous);
                self.snapshot_tx.send_replace(Arc::new(snapshot));
                self.published.last_at = Some(now);
                self.published.builds += 1;
                return;
            }
        }
        let started = std::time::Instant::now();
        let mut snapshot = super::view::snapshot(self);
        if !every_row {
            snapshot = crate::status::Indexed::new(Arc::new(snapshot)).into_partial();
        }
        self.snapshot_tx.send_replace(Arc::new(snapshot));
        let cost = started.elapsed();
        self.published = Published {
            flags: Some(flags),
            rows_until: self.published.rows_until,
            next_at: Some(now + (cost * PUBLISH_COST_RATIO).min(PUBLISH_MAX_DELAY)),
            last_at: Some(now),
            due: None,
            stale: false,
            cost,
            builds: self.published.builds + 1,
        };
    }

    pub fn reconciled(&self) -> bool {
        self.connected && self.reconciliation.done() && !self.adoption.blocks()
    }
}

/// Counts (`delta` = 1) or uncounts (`delta` = -1) the role of a spec in force.
pub(super) fn count_role(counts: &mut BTreeMap<String, usize>, spec: &Spec, delta: isize) {
    let Some(role) = &spec.role else { return };
    let n = counts.entry(role.clone()).or_default();
    *n = n.saturating_add_signed(delta);
    if *n == 0 {
        counts.remove(role);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_safety_rescan_waits_in_proportion_to_its_cost_within_bounds() {
        assert_eq!(rescan_after(Duration::ZERO), RESCAN_EVERY);
        assert_eq!(rescan_after(Duration::from_millis(20)), RESCAN_EVERY);
        assert_eq!(
            rescan_after(Duration::from_millis(400)),
            Duration::from_secs(80)
        );
        assert_eq!(rescan_after(Duration::from_secs(10)), RESCAN_AT_MOST);
    }
}
