//! The published snapshot: plain data the controller fills after each pass and the status server
//! only reads. It is also the body of `GET /api/v1/status`, so every type here is serde data with
//! defaults (a client of an older or newer version still parses what it understands).

use serde::{Deserialize, Serialize};

/// Everything the status server shows, as of the end of the controller's latest pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    /// True once the first reconciliation pass has succeeded. The controller latches it, and the
    /// server latches it again, so `/readyz` never flaps back to 503 (except while `halted`).
    pub ready: bool,
    /// Why the controller launches and kills nothing right now although it may be subscribed:
    /// its state directory cannot be written. `/readyz` answers 503 with it, ready or not.
    pub halted: Option<String>,
    /// Why this controller does not act although it runs: it stands by for the leading
    /// controller (`run --ha`), e.g. "standby; leader is HOST", or it leads but ZooKeeper has
    /// not confirmed it lately. `/readyz` answers 503 with it, ready or not.
    pub standby: Option<String>,
    /// What the controller waits for before it acts, beyond the subscription: finding its
    /// framework on the master, learning the framework's tasks from it.
    pub recovery: Option<String>,
    /// Subscribed to a master right now.
    pub connected: bool,
    pub framework_id: Option<String>,
    /// The master currently subscribed to (after redirects), e.g. `http://10.0.0.5:5050`.
    pub master: Option<String>,
    /// The latest failure to reach a master, while no master has answered since.
    pub master_error: Option<MasterErrorView>,
    /// The desired directory as configured.
    pub desired_dir: String,
    /// Why the desired directory could not be read as a whole (missing, unreadable). While set,
    /// the previous desired state stays in force.
    pub desired_error: Option<String>,
    /// The git commit of the desired directory and the sync that publishes it; `None` when the
    /// directory is neither a published revision nor a git checkout.
    pub git: Option<GitStatus>,
    pub specs: Vec<SpecStatus>,
    pub tasks: Vec<TaskStatusRow>,
    /// Kills held back by the mass-deletion guard, if any.
    pub guard: Option<GuardStatus>,
    pub counters: Counters,
    pub last_pass: Option<PassInfo>,
    /// Set when the controller left out the rows of every spec without a problem: nobody read
    /// them lately, and at its size they cost memory for as long as the snapshot lives. Carries
    /// what the server would otherwise derive from the rows left out. A request that needs the
    /// rows asks the controller for them ([`ControlCommand::WantRows`]). Never sent to clients.
    #[serde(skip)]
    pub partial: Option<Box<crate::status::index::Partial>>,
}

/// Why the masters cannot be reached: the latest failed attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MasterErrorView {
    /// The master the attempt went to.
    pub url: String,
    /// The cause in words (connection refused, DNS failure, not a Mesos master, ...).
    pub message: String,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Failed attempts since a master last answered.
    pub attempts: u32,
}

/// One spec: what is wanted, what runs, and why anything is missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpecStatus {
    /// The spec id (`team-a/web`).
    pub id: String,
    /// The file it comes from, as the user names it (`desired/team-a/web.toml`).
    pub file: String,
    /// The generation in force (the spec hash), if a valid version was ever applied.
    pub generation: Option<String>,
    /// The git commit the version in force was applied from (the commit that last changed it).
    pub commit: Option<Box<CommitView>>,
    /// Instances wanted.
    pub instances: u32,
    /// Instances running now.
    pub running: u32,
    /// Why the file on disk is invalid; the previous valid generation, if any, stays in force.
    pub error: Option<Box<SpecErrorView>>,
    /// The state of a rollout in progress or stopped (`rolling out abc123: 1 of 3 replaced`,
    /// `stopped: new generation failed ...`).
    pub rollout: Option<String>,
    pub pending: Vec<PendingRow>,
    /// The last attempts of each instance, newest first, bounded by the store.
    pub history: Vec<AttemptRow>,
}

/// A validation error of one spec file, positioned for a person to find it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpecErrorView {
    pub file: String,
    /// 1-based; 0 when the error concerns the whole file (unreadable, badly named).
    pub line: u32,
    /// 1-based; 0 when `line` is 0.
    pub column: u32,
    /// Dotted key path (`backoff.factor`); empty for syntax errors.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl SpecErrorView {
    /// `file:line:column` (or just `file` when there is no position), the form editors jump to.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

impl From<&crate::spec::SpecError> for SpecErrorView {
    fn from(error: &crate::spec::SpecError) -> Self {
        // A spec file is capped far below 4 Gi lines; saturating keeps this total anyway.
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        SpecErrorView {
            file: error.file.clone(),
            line: narrow(error.line),
            column: narrow(error.column),
            field: error.field.clone(),
            message: error.message.clone(),
            hint: error.hint.clone(),
        }
    }
}

/// An instance that should run but does not, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingRow {
    pub instance: u32,
    /// A sentence a person understands (`waiting for backoff after TASK_FAILED: exit 1`,
    /// `no offer with 4 cpus (largest seen: 2)`).
    pub reason: String,
    /// When the wait ends (ms since the Unix epoch), for waits with an end such as backoff.
    pub until_ms: Option<u64>,
    /// The kind of wait, for counting and filtering (`backoff`, `given_up`, `waiting_for_offer`).
    pub kind: PendingKind,
}

/// The kind of a [`PendingRow`]: one word per [`crate::plan::PendingReason`] variant. A kind this
/// version does not know reads as `other`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PendingKind {
    /// A new spec file that is invalid: nothing runs.
    InvalidSpec,
    /// Waiting for Mesos to answer reconciliation about a task the instance may still have.
    Reconciliation,
    /// Waiting for the backoff after a failure.
    Backoff,
    /// `on-failure` gave up after too many consecutive failures.
    GivenUp,
    /// The rollout of a new generation stopped; the old generation stays.
    RolloutStopped,
    /// A `replace` rollout waits for the old generation's tasks to end.
    OldGeneration,
    /// A deleted spec's task kept by the mass-deletion guard.
    DeletionHeld,
    /// No recent offer had enough of a resource.
    Resources,
    /// No agent seen meets the spec's constraints.
    Constraint,
    /// Offers are held but none fits now.
    NoOfferFits,
    /// No offer is held.
    WaitingForOffer,
    /// Not given (an older controller) or unknown to this version.
    #[default]
    #[serde(other)]
    Other,
}

impl PendingKind {
    /// Every kind, in the order the summary and the page list them.
    pub const ALL: [PendingKind; 12] = [
        PendingKind::InvalidSpec,
        PendingKind::GivenUp,
        PendingKind::Backoff,
        PendingKind::RolloutStopped,
        PendingKind::Reconciliation,
        PendingKind::OldGeneration,
        PendingKind::DeletionHeld,
        PendingKind::Resources,
        PendingKind::Constraint,
        PendingKind::NoOfferFits,
        PendingKind::WaitingForOffer,
        PendingKind::Other,
    ];

    /// The kind of a plan's pending reason.
    pub fn of(reason: &crate::plan::PendingReason) -> PendingKind {
        use crate::plan::PendingReason as R;
        match reason {
            R::InvalidSpec => PendingKind::InvalidSpec,
            R::WaitingForReconciliation => PendingKind::Reconciliation,
            R::Backoff { .. } => PendingKind::Backoff,
            R::GivenUp { .. } => PendingKind::GivenUp,
            R::RolloutStopped { .. } => PendingKind::RolloutStopped,
            R::WaitingForOldGeneration { .. } => PendingKind::OldGeneration,
            R::DeletionHeld => PendingKind::DeletionHeld,
            R::InsufficientResources { .. } => PendingKind::Resources,
            R::Constraint => PendingKind::Constraint,
            R::NoOfferFits => PendingKind::NoOfferFits,
            R::WaitingForOffer => PendingKind::WaitingForOffer,
        }
    }

    /// The word used in JSON, metrics labels and on the page (`given_up`).
    pub fn name(self) -> &'static str {
        match self {
            PendingKind::InvalidSpec => "invalid_spec",
            PendingKind::Reconciliation => "reconciliation",
            PendingKind::Backoff => "backoff",
            PendingKind::GivenUp => "given_up",
            PendingKind::RolloutStopped => "rollout_stopped",
            PendingKind::OldGeneration => "old_generation",
            PendingKind::DeletionHeld => "deletion_held",
            PendingKind::Resources => "resources",
            PendingKind::Constraint => "constraint",
            PendingKind::NoOfferFits => "no_offer_fits",
            PendingKind::WaitingForOffer => "waiting_for_offer",
            PendingKind::Other => "other",
        }
    }
}

/// One past (or current) attempt to run an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttemptRow {
    pub instance: u32,
    pub task_id: String,
    pub started_ms: u64,
    /// None while the attempt is still live.
    pub ended_ms: Option<u64>,
    /// The last known Mesos task state (`TASK_FAILED`).
    pub state: String,
    /// Reason and message of the last status update, as one line.
    pub reason: Option<String>,
    pub agent: Option<String>,
    pub hostname: Option<String>,
    /// The sandbox directory on the agent, where `stdout` and `stderr` are.
    pub sandbox: Option<String>,
}

/// One task the controller knows of (launched by it, or found on the cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskStatusRow {
    pub task_id: String,
    pub spec: String,
    pub instance: u32,
    pub generation: String,
    /// The git commit of the spec version the task was launched from.
    pub commit: Option<Box<CommitView>>,
    /// The Mesos task state (`TASK_RUNNING`).
    pub state: String,
    pub agent_id: Option<String>,
    pub hostname: Option<String>,
    pub ports: Vec<u64>,
    /// The last health check result, if the spec has a health check.
    pub healthy: Option<bool>,
    pub launched_ms: u64,
}

/// A git commit, as a spec, a task or the desired directory came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommitView {
    /// The full sha.
    pub sha: String,
    /// Its first 7 digits, as log lines show it (`commit=abc1234`).
    pub short: String,
    /// `Name <email>`; empty when the commit is no longer known (only its sha was kept).
    pub author: String,
    /// The author date, ISO 8601.
    pub date: String,
    /// The first line of the commit message.
    pub subject: String,
    /// The file differed from the commit when it was applied (an uncommitted edit in a checkout).
    pub local_changes: bool,
}

impl CommitView {
    /// `abc1234 subject`, with ` (local changes)` when the file differed from the commit.
    pub fn describe(&self) -> String {
        let mut text = self.short.clone();
        if !self.subject.is_empty() {
            text.push(' ');
            text.push_str(&self.subject);
        }
        if self.local_changes {
            text.push_str(" (local changes)");
        }
        text
    }
}

/// Where the desired directory's specs come from in git.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GitStatus {
    /// `sync revision` (published by `mesos-reconciler sync`) or `git checkout`; none when only
    /// the sync's status is known.
    pub source: Option<String>,
    /// The commit of the directory as last read.
    pub commit: Option<CommitView>,
    /// Why the commit of the directory could not be learnt.
    pub error: Option<String>,
    /// The sync that publishes the directory, from its status file.
    pub sync: Option<SyncView>,
}

/// What `mesos-reconciler sync` last did, as its status file says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncView {
    /// The status file read.
    pub file: String,
    /// The repository URL, without its password.
    pub repo: String,
    pub branch: String,
    pub subdir: String,
    /// `ok`, `failing` (fetches fail; retried with backoff), `refused` (the branch head has
    /// invalid specs and `--validate` is on), `starting`, `stopped`, `silent` (the sync should
    /// have written its status by now: it is not running), or `unreadable`.
    pub state: String,
    /// The branch head last fetched, as Flux writes it: `main@sha1:<sha>`.
    pub revision: Option<String>,
    /// The commit the sync last published (what `current` points at).
    pub published: Option<CommitView>,
    /// The last successful fetch ("last sync"), ms since the Unix epoch.
    pub last_success_ms: Option<u64>,
    pub last_attempt_ms: Option<u64>,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Why the last attempt failed (or why the status file cannot be read).
    pub error: Option<String>,
    /// The branch head the sync refused to publish, and why.
    pub refused: Option<RefusedView>,
    pub next_attempt_ms: Option<u64>,
    /// When the sync wrote its status.
    pub updated_ms: u64,
}

/// A commit the sync would not publish.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefusedView {
    pub commit: CommitView,
    /// One line per problem (`specs/web.toml:3:9: mem: ...`).
    pub problems: Vec<String>,
}

/// Kills the mass-deletion guard is holding back until an operator confirms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuardStatus {
    /// The specs whose instances would be killed.
    pub specs: Vec<String>,
    /// How many instances (tasks) the held kills concern.
    pub instances: u32,
    /// How many specs exist in total, for the "more than half" comparison.
    pub total_specs: u32,
    /// Since when the kills are held (ms since the Unix epoch).
    pub since_ms: u64,
    /// What the operator can do, e.g. the exact CLI command to confirm, or "restore the files".
    pub release: String,
}

/// Counters only ever increase (from process start); gauges are as of the latest pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub launches: u64,
    pub kills: u64,
    pub status_updates: u64,
    /// Terminal updates the restart policy counts as a failure.
    pub failures: u64,
    pub offers_declined: u64,
    pub passes: u64,
    /// Gauge: spec files that do not parse or validate.
    pub invalid_specs: u64,
    /// Gauge: instances wanted but not running.
    pub pending_instances: u64,
    /// Gauge: tasks in TASK_RUNNING.
    pub running_tasks: u64,
    /// Specs (in force or deleted) the incremental planner decided again: work follows what
    /// changed, so this grows with changes, not with passes times specs.
    pub plan_specs_decided: u64,
    /// Ledger records read while deciding them.
    pub plan_records_visited: u64,
    /// Status snapshots built (each costs time in proportion to the specs and tasks).
    pub snapshot_builds: u64,
}

/// The latest reconciliation pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PassInfo {
    /// When the pass ended (ms since the Unix epoch).
    pub at_ms: u64,
    /// The event that woke the loop (`desired changed`, `offer`, `status update`, `timer`).
    pub reason: String,
    pub duration_ms: u64,
}

/// A command an operator sends to the controller through the status server.
#[derive(Debug)]
pub enum ControlCommand {
    /// Release the kills held by the mass-deletion guard. The controller answers with a summary a
    /// person reads (`released 12 kills of 4 specs`, `nothing is held`).
    ApproveDeletions {
        reply: tokio::sync::oneshot::Sender<String>,
    },
    /// Read the desired directory now (as a file event would make it) and answer when it was
    /// read (ms since the Unix epoch); the pass after it publishes what it found. `status
    /// --wait` starts with it, so that an edit made just before is part of what it waits for.
    Reread {
        reply: tokio::sync::oneshot::Sender<u64>,
    },
    /// A reader needs the rows of every spec (the page, the JSON API, a task's files): publish
    /// them from now on, and for a while after the last such request.
    WantRows,
    /// What applying a proposed desired set would do (the `plan` command); changes nothing.
    Preview {
        proposal: Box<crate::plan::preview::Proposal>,
        reply: tokio::sync::oneshot::Sender<crate::plan::preview::Preview>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_convert_with_their_position() {
        let error = crate::spec::SpecError {
            file: "desired/web.toml".to_owned(),
            line: 7,
            column: 10,
            field: "backoff.factor".to_owned(),
            message: "must be at least 1.0 (got 0.5)".to_owned(),
            hint: Some("use 1.0 or more".to_owned()),
        };
        let view = SpecErrorView::from(&error);
        assert_eq!(view.location(), "desired/web.toml:7:10");
        assert_eq!(view.field, "backoff.factor");
        assert_eq!(view.hint.as_deref(), Some("use 1.0 or more"));

        let whole = SpecErrorView::from(&crate::spec::SpecError::whole_file(
            "desired/Bad Name.toml",
            "invalid spec id".to_owned(),
        ));
        assert_eq!(whole.location(), "desired/Bad Name.toml");
    }

    #[test]
    fn a_partial_json_snapshot_fills_defaults() {
        let snapshot: Snapshot =
            serde_json::from_str(r#"{"ready":true,"specs":[{"id":"web"}]}"#).unwrap();
        assert!(snapshot.ready);
        assert_eq!(snapshot.specs[0].id, "web");
        assert_eq!(snapshot.specs[0].instances, 0);
        assert!(snapshot.guard.is_none());
    }
}
