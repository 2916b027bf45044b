//! What the status server derives from a snapshot once, not on every request: the spec ids in id
//! order (specs, plus ids that only live tasks still name), each one's state, the problems-first
//! order, the tasks grouped by spec, the newest attempts, and the [`Summary`]. Building it is
//! linear in the size of the snapshot (no sort when the specs already come in id order, as the
//! controller publishes them); a request then costs about its page, not the whole snapshot.
//!
//! The server builds it once per published snapshot, on a blocking thread as soon as the snapshot
//! is published (or on the first request, if that comes first; see `super::IndexCache`), so the
//! controller loop never pays for it. At 100,000 specs and tasks it takes some tens of ms, less
//! than building the snapshot itself; most of it is reading every id once.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::TaskState;

use super::query::{Cursor, DEFAULT_LIMIT, Order, PAGE_DEFAULT_LIMIT, Query, SpecFilter};
use super::snapshot::{AttemptRow, PendingKind, Snapshot, SpecStatus, TaskStatusRow};

/// How many attempts the page's "recent attempts" shows (newest first, across all specs).
pub const RECENT_ATTEMPTS: usize = 50;

/// The Mesos task states, in the order of the state machine; `?state=` accepts each of them.
pub const TASK_STATES: [&str; TaskState::ALL.len()] = {
    let mut names = [""; TaskState::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = TaskState::ALL[i].mesos_name();
        i += 1;
    }
    names
};

/// The state of one spec id, worst first: the page lists specs in this order, and each spec has
/// exactly one (its worst condition). A spec can match several as a filter (`?state=`): a spec
/// whose instance gave up is also `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecState {
    /// The file does not parse or validate (its previous version, if any, stays in force).
    Invalid,
    /// An instance gave up (`on-failure` after too many failures).
    GivenUp,
    /// An instance failed and waits for its backoff.
    Backoff,
    /// An instance ended in failure and is not restarted (`restart = "never"`): a one-shot job
    /// that failed.
    Failed,
    /// The rollout of a new generation stopped.
    RolloutStopped,
    /// An instance waits for something else (offers, resources, constraints, reconciliation).
    Pending,
    /// The file is gone but live tasks still name the spec (being killed, or held by the guard).
    Deleted,
    /// Fewer instances run than wanted, none waits for a reason, and a task of the spec is live
    /// but not running (launched and not running yet, mostly).
    Starting,
    /// A rollout is in progress.
    RollingOut,
    /// Fewer instances run than wanted, none waits and none is on its way: the others ended
    /// cleanly and are not restarted (a batch job that finished).
    Done,
    /// Everything wanted runs and nothing waits.
    Healthy,
}

impl SpecState {
    /// Worst first.
    pub const ALL: [SpecState; 11] = [
        SpecState::Invalid,
        SpecState::GivenUp,
        SpecState::Backoff,
        SpecState::Failed,
        SpecState::RolloutStopped,
        SpecState::Pending,
        SpecState::Deleted,
        SpecState::Starting,
        SpecState::RollingOut,
        SpecState::Done,
        SpecState::Healthy,
    ];

    /// The word used by `?state=`, in JSON and on the page.
    pub fn name(self) -> &'static str {
        match self {
            SpecState::Invalid => "invalid",
            SpecState::GivenUp => "given_up",
            SpecState::Backoff => "backoff",
            SpecState::Failed => "failed",
            SpecState::RolloutStopped => "rollout_stopped",
            SpecState::Pending => "pending",
            SpecState::Deleted => "deleted",
            SpecState::Starting => "starting",
            SpecState::RollingOut => "rolling_out",
            SpecState::Done => "done",
            SpecState::Healthy => "healthy",
        }
    }

    /// The state named `name` (exactly as [`SpecState::name`] writes it).
    pub fn from_name(name: &str) -> Option<SpecState> {
        SpecState::ALL
            .into_iter()
            .find(|state| state.name() == name)
    }

    /// Whether an operator should look at it: everything before `starting`.
    pub fn is_problem(self) -> bool {
        self <= SpecState::Deleted
    }

    /// This state's bit in a filter mask.
    pub(crate) fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// The bits of the states that are problems (`?state=problem`).
pub(crate) const PROBLEM_BITS: u32 = (1 << (SpecState::Deleted as u32 + 1)) - 1;

/// The bits of both rollout states (`?state=rollout`).
pub(crate) const ROLLOUT_BITS: u32 =
    (1 << SpecState::RollingOut as u32) | (1 << SpecState::RolloutStopped as u32);

/// The filter bit of the Mesos task state `TASK_STATES[i]`: set on a spec id with a task in it.
pub(crate) fn task_state_bit(i: usize) -> u32 {
    1 << (16 + i)
}

/// Whether a rollout sentence (`SpecStatus::rollout`) says the rollout stopped. The snapshot carries
/// the rollout as the plan's sentence (`RolloutState::describe`), which says "stopped" exactly
/// when it stopped; a unit test below holds the two together.
pub fn rollout_stopped(sentence: &str) -> bool {
    sentence.starts_with("stopped") || sentence.contains(" stopped")
}

/// Counts over the whole snapshot, computed once per snapshot. Part of every
/// `GET /api/v1/status` answer whatever its filters and page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Spec files in the snapshot, valid or invalid.
    pub specs: u64,
    /// For each spec-state word `?state=` accepts (the [`SpecState`] names, `problem` and
    /// `rollout`), how many spec ids match it: exactly the `matched` of that filter. A spec id
    /// can match several words.
    pub states: BTreeMap<String, u64>,
    pub instances: InstanceCounts,
    /// Pending instances by [`PendingKind`] name (every kind listed, zeros included).
    pub pending: BTreeMap<String, u64>,
    pub tasks: TaskCounts,
    /// The mass-deletion guard, while it holds kills.
    pub guard: Option<GuardCounts>,
}

/// Instances over all specs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceCounts {
    pub wanted: u64,
    pub running: u64,
    /// Instances with a pending reason.
    pub pending: u64,
}

/// The tasks of the snapshot (live tasks the controller knows of).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskCounts {
    pub total: u64,
    /// Tasks whose last health check failed.
    pub unhealthy: u64,
    /// By Mesos state (every state of [`TASK_STATES`] listed, zeros included, plus any other
    /// state a task reports).
    pub by_state: BTreeMap<String, u64>,
}

/// What the mass-deletion guard holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuardCounts {
    pub specs: u64,
    pub instances: u64,
}

/// What a partial snapshot carries of the whole: its summary and how many spec ids have each
/// state as their worst (see [`Indexed::into_partial`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    pub summary: Summary,
    pub in_state: [usize; SpecState::ALL.len()],
    /// How many of the first spec ids in id order that are not problems it keeps, [`usize::MAX`]
    /// when it keeps them all.
    pub head: usize,
}

/// How many spec ids that are not problems a partial snapshot keeps from the start of the id
/// order: one more than the largest default page, so that the default page of `GET /` and of
/// `GET /api/v1/status`, in either order, is in it whole and knows whether a next one exists.
pub const PARTIAL_HEAD: usize = if DEFAULT_LIMIT > PAGE_DEFAULT_LIMIT {
    DEFAULT_LIMIT + 1
} else {
    PAGE_DEFAULT_LIMIT + 1
};

/// No spec behind an entry (a deleted spec named by live tasks).
const NO_SPEC: u32 = u32::MAX;

/// One spec id of the snapshot.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The position in `Snapshot::specs`, or [`NO_SPEC`].
    spec: u32,
    /// The range of its tasks in `Index::tasks`.
    tasks_start: u32,
    tasks_end: u32,
    /// Its conditions ([`SpecState::bit`]) and the states of its tasks ([`task_state_bit`]).
    mask: u32,
    /// Its worst condition.
    state: SpecState,
}

/// A snapshot with everything the server derives from it once. Cheap to share: requests hold an
/// `Arc` to the server's cached one.
#[derive(Debug)]
pub struct Indexed {
    snapshot: Arc<Snapshot>,
    /// Every spec id, in id order.
    entries: Vec<Entry>,
    /// Positions in `entries`, by (state, id): problems first.
    problems: Vec<u32>,
    /// Positions in `Snapshot::tasks`, grouped by entry (entries in id order; a spec's tasks in
    /// snapshot order).
    tasks: Vec<u32>,
    /// (spec position, attempt position) of the newest attempts, newest first.
    recent: Vec<(u32, u32)>,
    /// How many spec ids have each state as their worst.
    in_state: [usize; SpecState::ALL.len()],
    summary: Summary,
}

/// The spec ids a request selected: one page and how it relates to the whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Positions of the page's entries, in the requested order.
    entries: Vec<u32>,
    /// How many spec ids match the filters (on all pages).
    pub matched: usize,
    /// How many of those come before this page.
    pub before: usize,
    /// The cursor of the next page (`after=`), if there is one.
    pub next: Option<String>,
}

impl Selection {
    /// How many spec ids the page has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One spec id of a page, with what the snapshot says about it.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    pub id: &'a str,
    /// None for a deleted spec that only live tasks still name.
    pub spec: Option<&'a SpecStatus>,
    pub state: SpecState,
    indexed: &'a Indexed,
    entry: Entry,
}

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("tasks", &self.tasks().len())
            .finish_non_exhaustive()
    }
}

impl<'a> Row<'a> {
    /// Its tasks, in snapshot order.
    pub fn tasks(&self) -> impl ExactSizeIterator<Item = &'a TaskStatusRow> + 'a {
        let indexed = self.indexed;
        indexed.tasks[self.entry.tasks_start as usize..self.entry.tasks_end as usize]
            .iter()
            .map(move |&t| &indexed.snapshot.tasks[t as usize])
    }
}

impl Indexed {
    /// Derives everything from `snapshot`; linear in its size (plus a sort of the specs if they do
    /// not come in id order, and of the deleted ids named by tasks).
    pub fn new(snapshot: Arc<Snapshot>) -> Indexed {
        let s = &*snapshot;
        let n_tasks = s.tasks.len();
        assert!(
            s.specs.len() < NO_SPEC as usize && n_tasks < u32::MAX as usize,
            "a snapshot of 4 billion rows"
        );

        let mut spec_order: Vec<u32> = (0..s.specs.len() as u32).collect();
        let sorted = s.specs.windows(2).all(|w| w[0].id <= w[1].id);
        if !sorted {
            spec_order.sort_by(|&a, &b| s.specs[a as usize].id.cmp(&s.specs[b as usize].id));
        }

        // Which spec each task belongs to; ids no spec has are deleted specs. The controller
        // lists tasks by task id, which starts with the spec id, so they mostly come in the
        // specs' id order: a cursor follows that order, and only a task that breaks it is looked
        // up by hash (the map is built on the first such task).
        let rank: Vec<u32> = if sorted {
            Vec::new()
        } else {
            let mut rank = vec![0u32; spec_order.len()];
            for (position, &i) in spec_order.iter().enumerate() {
                rank[i as usize] = position as u32;
            }
            rank
        };
        let id_at = |position: usize| {
            spec_order
                .get(position)
                .map(|&i| (i, s.specs[i as usize].id.as_str()))
        };
        let mut by_id: Option<FastMap<&str, u32>> = None;
        let mut cursor = 0usize;
        // Stop following the id order when the tasks do not come in it.
        let (mut follow, mut hits, mut misses) = (true, 0u32, 0u32);
        let mut task_spec: Vec<u32> = Vec::with_capacity(n_tasks);
        let mut task_state: Vec<u8> = Vec::with_capacity(n_tasks);
        let mut gone: Vec<&str> = Vec::new();
        for task in &s.tasks {
            let id = task.spec.as_str();
            let mut followed = None;
            if follow {
                if let Some((i, _)) = id_at(cursor).filter(|(_, here)| *here == id) {
                    followed = Some(i);
                } else if let Some((i, _)) = id_at(cursor + 1).filter(|(_, next)| *next == id) {
                    cursor += 1;
                    followed = Some(i);
                }
            }
            let spec = match followed {
                Some(i) => {
                    hits += 1;
                    i
                }
                None => {
                    misses += 1;
                    follow &= misses < 64 || misses <= hits;
                    let map = by_id.get_or_insert_with(|| {
                        let mut map = FastMap::default();
                        map.reserve(s.specs.len());
                        for (i, spec) in s.specs.iter().enumerate() {
                            map.insert(spec.id.as_str(), i as u32);
                        }
                        map
                    });
                    match map.get(id) {
                        Some(&i) => {
                            cursor = if sorted { i } else { rank[i as usize] } as usize;
                            i
                        }
                        None => {
                            gone.push(id);
                            NO_SPEC
                        }
                    }
                }
            };
            task_spec.push(spec);
            task_state.push(task_state_index(&task.state));
        }
        drop(by_id);
        gone.sort_unstable();
        gone.dedup();

        // Entries: the specs in id order, each deleted id inserted where it belongs.
        let blank = Entry {
            spec: NO_SPEC,
            tasks_start: 0,
            tasks_end: 0,
            mask: 0,
            state: SpecState::Healthy,
        };
        let mut entries: Vec<Entry> = Vec::with_capacity(spec_order.len() + gone.len());
        let mut entry_of_spec = vec![0u32; s.specs.len()];
        let mut entry_of_gone = vec![0u32; gone.len()];
        let mut gone_at = gone
            .iter()
            .map(|id| spec_order.partition_point(|&i| s.specs[i as usize].id.as_str() < *id))
            .enumerate()
            .peekable();
        for k in 0..=spec_order.len() {
            while let Some((g, _)) = gone_at.next_if(|&(_, at)| at == k) {
                entry_of_gone[g] = entries.len() as u32;
                entries.push(blank);
            }
            if let Some(&i) = spec_order.get(k) {
                entry_of_spec[i as usize] = entries.len() as u32;
                entries.push(Entry { spec: i, ..blank });
            }
        }

        // Tasks grouped by entry: count, prefix sums, place (stable).
        let task_entry: Vec<u32> = task_spec
            .iter()
            .zip(&s.tasks)
            .map(|(&spec, task)| match spec {
                NO_SPEC => {
                    let g = gone.binary_search(&task.spec.as_str()).unwrap_or_default();
                    entry_of_gone[g]
                }
                i => entry_of_spec[i as usize],
            })
            .collect();
        for &e in &task_entry {
            entries[e as usize].tasks_end += 1;
        }
        let mut start = 0u32;
        for entry in &mut entries {
            let count = entry.tasks_end;
            entry.tasks_start = start;
            entry.tasks_end = start;
            start += count;
        }
        let mut tasks = vec![0u32; n_tasks];
        for (t, &e) in task_entry.iter().enumerate() {
            let entry = &mut entries[e as usize];
            tasks[entry.tasks_end as usize] = t as u32;
            entry.tasks_end += 1;
        }

        // Conditions, states and the summary.
        let mut summary = Summary {
            specs: s.specs.len() as u64,
            ..Summary::default()
        };
        let mut state_counts = [0u64; SpecState::ALL.len()];
        let (mut problems_count, mut rollouts_count) = (0u64, 0u64);
        let mut pending_counts = [0u64; PendingKind::ALL.len()];
        for entry in &mut entries {
            let mut task_bits = 0;
            let mut not_running = false;
            for &t in &tasks[entry.tasks_start as usize..entry.tasks_end as usize] {
                let state = usize::from(task_state[t as usize]);
                not_running |= state != TASK_RUNNING;
                if state < TASK_STATES.len() {
                    task_bits |= task_state_bit(state);
                }
            }
            let mask = match s.specs.get(entry.spec as usize) {
                Some(spec) => {
                    let live = tasks[entry.tasks_start as usize..entry.tasks_end as usize]
                        .iter()
                        .map(|&t| &s.tasks[t as usize]);
                    let failed = !super::outcome::outcomes(spec, live).failed.is_empty();
                    summary.instances.wanted += u64::from(spec.instances);
                    summary.instances.running += u64::from(spec.running);
                    summary.instances.pending += spec.pending.len() as u64;
                    for pending in &spec.pending {
                        pending_counts[pending_kind_position(pending.kind)] += 1;
                    }
                    conditions(spec, not_running, failed)
                }
                None => SpecState::Deleted.bit(),
            };
            // The lowest bit is the worst state; conditions() sets at least one.
            entry.state = SpecState::ALL[mask.trailing_zeros() as usize];
            let mut bits = mask;
            while bits != 0 {
                state_counts[bits.trailing_zeros() as usize] += 1;
                bits &= bits - 1;
            }
            problems_count += u64::from(mask & PROBLEM_BITS != 0);
            rollouts_count += u64::from(mask & ROLLOUT_BITS != 0);
            entry.mask = mask | task_bits;
        }
        for state in SpecState::ALL {
            summary
                .states
                .insert(state.name().to_owned(), state_counts[state as usize]);
        }
        summary.states.insert("problem".to_owned(), problems_count);
        summary.states.insert("rollout".to_owned(), rollouts_count);
        for kind in PendingKind::ALL {
            summary.pending.insert(
                kind.name().to_owned(),
                pending_counts[pending_kind_position(kind)],
            );
        }
        summary.tasks = task_counts(&s.tasks, &task_state);
        summary.guard = s.guard.as_ref().map(|guard| GuardCounts {
            specs: guard.specs.len() as u64,
            instances: u64::from(guard.instances),
        });

        // Problems first: a counting sort by state of the id order keeps ids in order within a
        // state, so the result is sorted by (state, id).
        let mut in_state = [0usize; SpecState::ALL.len()];
        for entry in &entries {
            in_state[entry.state as usize] += 1;
        }
        let mut first = [0usize; SpecState::ALL.len() + 1];
        first[1..].copy_from_slice(&in_state);
        for i in 1..first.len() {
            first[i] += first[i - 1];
        }
        let mut problems = vec![0u32; entries.len()];
        for (position, entry) in entries.iter().enumerate() {
            let slot = &mut first[entry.state as usize];
            problems[*slot] = position as u32;
            *slot += 1;
        }

        let recent = recent_attempts(s, &spec_order);
        if let Some(partial) = &s.partial {
            summary = partial.summary.clone();
            in_state = partial.in_state;
        }
        Indexed {
            snapshot,
            entries,
            problems,
            tasks,
            recent,
            in_state,
            summary,
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The snapshot cut down to the rows (specs and their tasks, with their history) of its
    /// problem spec ids, of the first [`PARTIAL_HEAD`] others in id order, and of the specs of
    /// the newest attempts; marked partial with the summary and state counts of the whole. That
    /// is what `/metrics`, `/readyz` and the event stream need, and what the default page of
    /// `GET /` and `GET /api/v1/status` shows ([`Indexed::answers`]), at the memory of the
    /// problems alone. Taken back without a copy when nothing else holds the snapshot.
    pub fn into_partial(self) -> Snapshot {
        let Indexed {
            snapshot,
            entries,
            tasks,
            recent,
            summary,
            in_state,
            ..
        } = self;
        let mut snapshot = Arc::try_unwrap(snapshot).unwrap_or_else(|shared| (*shared).clone());
        let mut keep_spec = vec![false; snapshot.specs.len()];
        for &(spec, _) in &recent {
            keep_spec[spec as usize] = true;
        }
        let mut keep_task = vec![false; snapshot.tasks.len()];
        let mut head = 0;
        for entry in &entries {
            let keep = if entry.state.is_problem() {
                true
            } else if head < PARTIAL_HEAD {
                head += 1;
                true
            } else {
                // One of the newest attempts' specs.
                keep_spec.get(entry.spec as usize).copied() == Some(true)
            };
            if !keep {
                continue;
            }
            if let Some(keep) = keep_spec.get_mut(entry.spec as usize) {
                *keep = true;
            }
            for &t in &tasks[entry.tasks_start as usize..entry.tasks_end as usize] {
                keep_task[t as usize] = true;
            }
        }
        let head = if head < PARTIAL_HEAD {
            usize::MAX
        } else {
            head
        };
        let mut keep = keep_spec.into_iter();
        snapshot.specs.retain(|_| keep.next().unwrap_or(false));
        snapshot.specs.shrink_to_fit();
        let mut keep = keep_task.into_iter();
        snapshot.tasks.retain(|_| keep.next().unwrap_or(false));
        snapshot.tasks.shrink_to_fit();
        snapshot.partial = Some(Box::new(Partial {
            summary,
            in_state,
            head,
        }));
        snapshot
    }

    /// Whether [`Indexed::select`] answers `query` as it would on the whole snapshot: always for
    /// a whole one; for a partial one, when the query asks for problems alone (they are all in
    /// it), or for the first page without filters, of at most [`PARTIAL_HEAD`] - 1 spec ids.
    pub fn answers(&self, query: &Query) -> bool {
        let Some(partial) = &self.snapshot.partial else {
            return true;
        };
        let problems_only = query
            .state
            .as_ref()
            .is_some_and(|state| state.mask() & !PROBLEM_BITS == 0);
        let first_page = query.spec.is_none()
            && query.state.is_none()
            && query.after.is_none()
            && query.limit < partial.head;
        partial.head == usize::MAX || problems_only || first_page
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// How many spec ids have `state` as their worst (unlike `Summary::states`, where a spec
    /// counts under every state it matches).
    pub fn count_in_state(&self, state: SpecState) -> usize {
        self.in_state[state as usize]
    }

    /// How many spec ids there are (specs, plus deleted ids that live tasks still name).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The page `query` asks for. Without filters, or with only an exact or `dir/` spec filter in
    /// id order, this costs O(log n + limit); other filters look at each spec id once (a bit test,
    /// plus a string match for `spec=`), never sort.
    pub fn select(&self, query: &Query) -> Selection {
        let mut selection = match query.order {
            Order::Id => {
                let (lo, hi) = match &query.spec {
                    None => (0, self.entries.len()),
                    Some(SpecFilter::Exact(id)) => (
                        self.entries
                            .partition_point(|e| self.id_of(e) < id.as_str()),
                        self.entries
                            .partition_point(|e| self.id_of(e) <= id.as_str()),
                    ),
                    Some(SpecFilter::Prefix(prefix)) => self.prefix_range(prefix),
                    Some(SpecFilter::Glob(glob)) => self.prefix_range(glob.literal_prefix()),
                };
                let start = match &query.after {
                    Some(Cursor::Id(after)) => self
                        .entries
                        .partition_point(|e| self.id_of(e) <= after.as_str())
                        .clamp(lo, hi),
                    _ => lo,
                };
                let by_range_alone = query.state.is_none()
                    && matches!(
                        query.spec,
                        None | Some(SpecFilter::Exact(_) | SpecFilter::Prefix(_))
                    );
                let positions = Seq::Range(lo as u32, hi as u32);
                self.scan(query, positions, start - lo, by_range_alone)
            }
            Order::Problems => {
                let start = match &query.after {
                    Some(Cursor::Problems(state, after)) => self.problems.partition_point(|&p| {
                        let e = &self.entries[p as usize];
                        (e.state, self.id_of(e)) <= (*state, after.as_str())
                    }),
                    _ => 0,
                };
                let unfiltered = query.state.is_none() && query.spec.is_none();
                self.scan(query, Seq::Slice(&self.problems), start, unfiltered)
            }
        };
        // A partial snapshot counts every spec id in its state counts, not in its rows.
        if self.snapshot.partial.is_some() && query.state.is_none() && query.spec.is_none() {
            selection.matched = self.in_state.iter().sum();
        }
        selection
    }

    /// The rows of a selection, in its order.
    pub fn rows<'a, 's>(
        &'a self,
        selection: &'s Selection,
    ) -> impl Iterator<Item = Row<'a>> + use<'a, 's> {
        selection.entries.iter().map(move |&e| self.row(e))
    }

    /// The specs whose file is invalid, in id order.
    pub fn invalid_specs(&self) -> impl Iterator<Item = &SpecStatus> {
        self.problems
            .iter()
            .map(|&p| &self.entries[p as usize])
            .take_while(|e| e.state == SpecState::Invalid)
            .filter_map(|e| self.snapshot.specs.get(e.spec as usize))
    }

    /// The newest attempts across all specs (at most [`RECENT_ATTEMPTS`]), newest first, with
    /// their spec id.
    pub fn recent_attempts(&self) -> impl Iterator<Item = (&str, &AttemptRow)> {
        self.recent.iter().map(|&(spec, attempt)| {
            let spec = &self.snapshot.specs[spec as usize];
            (spec.id.as_str(), &spec.history[attempt as usize])
        })
    }

    fn row(&self, position: u32) -> Row<'_> {
        let entry = self.entries[position as usize];
        Row {
            id: self.id_of(&entry),
            spec: self.snapshot.specs.get(entry.spec as usize),
            state: entry.state,
            indexed: self,
            entry,
        }
    }

    fn id_of(&self, entry: &Entry) -> &str {
        match self.snapshot.specs.get(entry.spec as usize) {
            Some(spec) => &spec.id,
            // A deleted id has at least one task, which names it.
            None => &self.snapshot.tasks[self.tasks[entry.tasks_start as usize] as usize].spec,
        }
    }

    /// The positions in id order of the ids starting with `prefix`.
    fn prefix_range(&self, prefix: &str) -> (usize, usize) {
        let lo = self.entries.partition_point(|e| self.id_of(e) < prefix);
        let len = self.entries[lo..].partition_point(|e| self.id_of(e).starts_with(prefix));
        (lo, lo + len)
    }

    fn matches(&self, query: &Query, entry: &Entry) -> bool {
        if let Some(state) = &query.state {
            if entry.mask & state.mask() == 0 {
                return false;
            }
        }
        match &query.spec {
            None => true,
            Some(filter) => filter.matches(self.id_of(entry)),
        }
    }

    /// Walks `seq` (positions in `entries`), skipping the first `start` positions, and takes up
    /// to `query.limit` matching ones. When `all_match`, every position matches and the walk
    /// stops at the page's end.
    fn scan(&self, query: &Query, seq: Seq<'_>, start: usize, all_match: bool) -> Selection {
        let limit = query.limit;
        let mut selection = Selection::default();
        let mut more = false;
        if all_match {
            let start = start.min(seq.len());
            let end = start.saturating_add(limit).min(seq.len());
            selection.entries = (start..end).map(|i| seq.get(i)).collect();
            selection.matched = seq.len();
            selection.before = start;
            more = limit > 0 && end < seq.len();
        } else {
            for i in 0..seq.len() {
                let position = seq.get(i);
                if !self.matches(query, &self.entries[position as usize]) {
                    continue;
                }
                selection.matched += 1;
                if i < start {
                    selection.before += 1;
                } else if selection.entries.len() < limit {
                    selection.entries.push(position);
                } else {
                    more = limit > 0;
                }
            }
        }
        if more {
            selection.next = selection.entries.last().map(|&last| {
                let entry = &self.entries[last as usize];
                let id = self.id_of(entry);
                match query.order {
                    Order::Id => id.to_owned(),
                    Order::Problems => format!("{}:{id}", entry.state.name()),
                }
            });
        }
        selection
    }
}

/// The positions a scan walks: a range of the id order, or a slice of the problems order.
enum Seq<'a> {
    Range(u32, u32),
    Slice(&'a [u32]),
}

impl Seq<'_> {
    fn len(&self) -> usize {
        match self {
            Seq::Range(lo, hi) => (hi - lo) as usize,
            Seq::Slice(slice) => slice.len(),
        }
    }

    fn get(&self, i: usize) -> u32 {
        match self {
            Seq::Range(lo, _) => lo + i as u32,
            Seq::Slice(slice) => slice[i],
        }
    }
}

/// The conditions of a spec, as [`SpecState::bit`]s; `not_running` says whether one of its live
/// tasks is in a state other than TASK_RUNNING, `failed` whether an instance ended in failure and
/// is not restarted (see `super::outcome`).
fn conditions(spec: &SpecStatus, not_running: bool, failed: bool) -> u32 {
    let mut bits = 0;
    if spec.error.is_some() {
        bits |= SpecState::Invalid.bit();
    }
    for pending in &spec.pending {
        bits |= match pending.kind {
            PendingKind::GivenUp => SpecState::GivenUp.bit(),
            PendingKind::Backoff => SpecState::Backoff.bit(),
            PendingKind::RolloutStopped => SpecState::RolloutStopped.bit(),
            _ => 0,
        };
    }
    if !spec.pending.is_empty() {
        bits |= SpecState::Pending.bit();
    } else if spec.running < spec.instances {
        bits |= if not_running {
            SpecState::Starting.bit()
        } else if failed {
            SpecState::Failed.bit()
        } else {
            SpecState::Done.bit()
        };
    }
    match &spec.rollout {
        Some(sentence) if rollout_stopped(sentence) => bits |= SpecState::RolloutStopped.bit(),
        Some(_) => bits |= SpecState::RollingOut.bit(),
        None => {}
    }
    if bits == 0 {
        bits = SpecState::Healthy.bit();
    }
    bits
}

fn pending_kind_position(kind: PendingKind) -> usize {
    PendingKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(PendingKind::ALL.len() - 1)
}

/// The position of TASK_RUNNING in [`TASK_STATES`].
const TASK_RUNNING: usize = 2;

/// The position of a task state in [`TASK_STATES`], or 255 for a state it does not list.
fn task_state_index(state: &str) -> u8 {
    match state {
        "TASK_STAGING" => 0,
        "TASK_STARTING" => 1,
        "TASK_RUNNING" => 2,
        "TASK_KILLING" => 3,
        "TASK_FINISHED" => 4,
        "TASK_FAILED" => 5,
        "TASK_KILLED" => 6,
        "TASK_ERROR" => 7,
        "TASK_LOST" => 8,
        "TASK_DROPPED" => 9,
        "TASK_UNREACHABLE" => 10,
        "TASK_GONE" => 11,
        "TASK_GONE_BY_OPERATOR" => 12,
        "TASK_UNKNOWN" => 13,
        _ => u8::MAX,
    }
}

/// `task_state` is [`task_state_index`] of each task.
fn task_counts(tasks: &[TaskStatusRow], task_state: &[u8]) -> TaskCounts {
    let mut known = [0u64; TASK_STATES.len()];
    let mut other: BTreeMap<String, u64> = BTreeMap::new();
    let mut unhealthy = 0;
    for (task, &state) in tasks.iter().zip(task_state) {
        match known.get_mut(usize::from(state)) {
            Some(count) => *count += 1,
            None => *other.entry(task.state.clone()).or_default() += 1,
        }
        unhealthy += u64::from(task.healthy == Some(false));
    }
    let mut by_state = other;
    for (state, count) in TASK_STATES.iter().zip(known) {
        by_state.insert((*state).to_owned(), count);
    }
    TaskCounts {
        total: tasks.len() as u64,
        unhealthy,
        by_state,
    }
}

/// A map for the index's short-lived lookups by spec id: FxHash (the multiply-rotate hash rustc
/// uses), several times faster than SipHash on short keys. Its keys are spec ids from the
/// operator's own files, not input an attacker chooses, so hash flooding is no concern.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Debug, Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The newest [`RECENT_ATTEMPTS`] attempts: newest start first, then spec id, then the order of
/// the spec's history. A bounded heap, so linear in the number of attempts.
fn recent_attempts(s: &Snapshot, spec_order: &[u32]) -> Vec<(u32, u32)> {
    // Larger is better: newer, then earlier in id order, then earlier in the spec's history.
    type Rank = (u64, Reverse<usize>, Reverse<u32>);
    let mut heap: BinaryHeap<Reverse<(Rank, u32)>> = BinaryHeap::new();
    for (order, &spec) in spec_order.iter().enumerate() {
        for (a, attempt) in s.specs[spec as usize].history.iter().enumerate() {
            let rank = (attempt.started_ms, Reverse(order), Reverse(a as u32));
            if heap.len() == RECENT_ATTEMPTS {
                match heap.peek() {
                    Some(Reverse((worst, _))) if *worst < rank => {
                        heap.pop();
                    }
                    _ => continue,
                }
            }
            heap.push(Reverse((rank, spec)));
        }
    }
    // Ascending by `Reverse` is best first.
    heap.into_sorted_vec()
        .into_iter()
        .map(|Reverse(((_, _, Reverse(a)), spec))| (spec, a))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Instant;

    use super::*;
    use crate::plan::{RolloutState, RolloutStop};
    use crate::status::query::{DEFAULT_LIMIT, MAX_LIMIT, Query, StateFilter};
    use crate::status::snapshot::{GuardStatus, PendingRow, SpecErrorView};

    /// A generated snapshot and what each spec id's state must come out as.
    struct Generated {
        snapshot: Snapshot,
        /// id -> (worst state, every state it matches)
        expected: BTreeMap<String, (SpecState, Vec<SpecState>)>,
    }

    fn rollout(stopped: bool) -> String {
        RolloutState {
            generation: "0123456789abcdef".to_owned(),
            started_at_ms: 1_700_000_000_000,
            stopped: stopped.then(|| RolloutStop {
                at_ms: 1_700_000_060_000,
                reason: "new generation failed".to_owned(),
            }),
        }
        .describe()
    }

    fn pending(instance: u32, kind: PendingKind) -> PendingRow {
        PendingRow {
            instance,
            reason: format!("{} for a while", kind.name()),
            until_ms: None,
            kind,
        }
    }

    fn task(spec: &str, instance: u32, state: &str, healthy: Option<bool>) -> TaskStatusRow {
        TaskStatusRow {
            task_id: format!("{}.{instance}.{state}", spec.replace('/', ".")),
            spec: spec.to_owned(),
            instance,
            generation: "0123456789ab".to_owned(),
            state: state.to_owned(),
            healthy,
            ..TaskStatusRow::default()
        }
    }

    impl Generated {
        /// The spec ids whose worst state is a problem, in id order.
        fn problem_ids(&self) -> Vec<String> {
            self.expected
                .iter()
                .filter(|(_, (worst, _))| worst.is_problem())
                .map(|(id, _)| id.clone())
                .collect()
        }
    }

    /// `n` specs in a mix of states (one in 20 of each problem), one task per running instance,
    /// `deleted` ids that only tasks name, and some history. Specs in id order unless `reversed`.
    fn generate(n: usize, deleted: usize, reversed: bool) -> Generated {
        use SpecState as S;
        let mut specs = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n + deleted);
        let mut expected = BTreeMap::new();
        for i in 0..n {
            let id = format!("team-{}/svc-{i:06}", i % 7);
            let mut spec = SpecStatus {
                id: id.clone(),
                file: format!("desired/{id}.toml"),
                generation: Some("0123456789abcdef".to_owned()),
                instances: 1,
                running: 1,
                ..SpecStatus::default()
            };
            let error = || {
                Some(SpecErrorView {
                    file: format!("desired/{id}.toml"),
                    line: 3,
                    column: 1,
                    message: "bad".to_owned(),
                    ..SpecErrorView::default()
                })
            };
            let states = match i % 20 {
                0 => {
                    spec.error = error().map(Box::new);
                    spec.generation = None;
                    spec.instances = 0;
                    spec.running = 0;
                    vec![S::Invalid]
                }
                1 => {
                    spec.error = error().map(Box::new);
                    spec.instances = 2;
                    spec.running = 2;
                    vec![S::Invalid]
                }
                2 => {
                    spec.instances = 2;
                    spec.pending = vec![pending(1, PendingKind::GivenUp)];
                    vec![S::GivenUp, S::Pending]
                }
                3 => {
                    spec.instances = 2;
                    spec.pending = vec![pending(0, PendingKind::Backoff)];
                    spec.running = 1;
                    vec![S::Backoff, S::Pending]
                }
                4 => {
                    spec.rollout = Some(rollout(true));
                    vec![S::RolloutStopped]
                }
                5 => {
                    spec.instances = 3;
                    spec.pending = vec![
                        pending(1, PendingKind::WaitingForOffer),
                        pending(2, PendingKind::Resources),
                    ];
                    vec![S::Pending]
                }
                6 => {
                    spec.rollout = Some(rollout(false));
                    vec![S::RollingOut]
                }
                7 => {
                    spec.instances = 2;
                    vec![S::Starting]
                }
                9 => {
                    spec.instances = 3;
                    spec.running = 2;
                    vec![S::Done]
                }
                10 => {
                    spec.instances = 2;
                    spec.running = 1;
                    spec.history = vec![AttemptRow {
                        instance: 1,
                        task_id: format!("{id}.1.x"),
                        started_ms: 1,
                        ended_ms: Some(2),
                        state: "TASK_FAILED".to_owned(),
                        reason: Some("exit status 1".to_owned()),
                        ..AttemptRow::default()
                    }];
                    vec![S::Failed]
                }
                _ => vec![S::Healthy],
            };
            for instance in 0..spec.running {
                tasks.push(task(&id, instance, "TASK_RUNNING", Some(i % 20 != 8)));
            }
            if i % 20 == 7 {
                tasks.push(task(&id, 1, "TASK_STAGING", None));
            }
            if i % 50 == 0 {
                for a in 0..2u64 {
                    spec.history.push(AttemptRow {
                        instance: 0,
                        task_id: format!("{id}.attempt{a}"),
                        started_ms: (i as u64 * 7919 + a) % 1013,
                        state: "TASK_FAILED".to_owned(),
                        ..AttemptRow::default()
                    });
                }
            }
            expected.insert(id, (states[0], states));
            specs.push(spec);
        }
        for k in 0..deleted {
            // Between and after the specs in id order.
            let id = if k % 2 == 0 {
                format!("team-{}/old-{k}", k % 7)
            } else {
                format!("zz/gone-{k}")
            };
            tasks.push(task(&id, 0, "TASK_KILLING", None));
            expected.insert(id, (S::Deleted, vec![S::Deleted]));
        }
        specs.sort_by(|a, b| a.id.cmp(&b.id));
        if reversed {
            specs.reverse();
        }
        Generated {
            snapshot: Snapshot {
                specs,
                tasks,
                guard: Some(GuardStatus {
                    specs: vec!["zz/gone-1".to_owned()],
                    instances: 1,
                    total_specs: n as u32,
                    ..GuardStatus::default()
                }),
                ..Snapshot::default()
            },
            expected,
        }
    }

    fn query(order: Order, limit: usize) -> Query {
        Query::new(limit, order)
    }

    /// Every page of `query`, in order: the ids and the task ids of each page.
    fn all_pages(indexed: &Indexed, mut query: Query) -> (Vec<String>, Vec<String>, usize) {
        let (mut ids, mut tasks, mut pages) = (Vec::new(), Vec::new(), 0);
        loop {
            let selection = indexed.select(&query);
            assert!(
                selection.len() <= query.limit,
                "a page larger than its limit"
            );
            assert_eq!(
                selection.before,
                ids.len(),
                "before counts the earlier pages"
            );
            pages += 1;
            for row in indexed.rows(&selection) {
                ids.push(row.id.to_owned());
                for task in row.tasks() {
                    assert_eq!(task.spec, row.id, "a task on the wrong spec's row");
                    tasks.push(task.task_id.clone());
                }
            }
            let Some(next) = selection.next.clone() else {
                assert_eq!(ids.len(), selection.matched);
                return (ids, tasks, pages);
            };
            assert_eq!(selection.len(), query.limit, "only the last page is short");
            query.after = Some(match query.order {
                Order::Id => Cursor::Id(next),
                Order::Problems => {
                    let (state, id) = next.split_once(':').unwrap();
                    Cursor::Problems(SpecState::from_name(state).unwrap(), id.to_owned())
                }
            });
        }
    }

    #[test]
    fn paging_covers_every_spec_id_once_in_both_orders_at_100k() {
        let generated = generate(100_000, 40, false);
        let snapshot = Arc::new(generated.snapshot.clone());
        // Printed, not asserted: the quickest of three builds, with the tasks in the
        // generator's order (each looked up by hash) and in the controller's (by task id).
        let quickest = |snapshot: &Arc<Snapshot>| {
            (0..3)
                .map(|_| {
                    let started = Instant::now();
                    drop(Indexed::new(Arc::clone(snapshot)));
                    started.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let built = quickest(&snapshot);
        let mut by_task_id = generated.snapshot.clone();
        by_task_id.tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        let built_by_task_id = quickest(&Arc::new(by_task_id));
        let indexed = Indexed::new(snapshot);
        assert_eq!(indexed.len(), 100_040);

        let all_ids: Vec<String> = generated.expected.keys().cloned().collect();
        let mut all_tasks: Vec<String> = generated
            .snapshot
            .tasks
            .iter()
            .map(|t| t.task_id.clone())
            .collect();
        all_tasks.sort();

        let (ids, mut tasks, pages) = all_pages(&indexed, query(Order::Id, 997));
        assert_eq!(ids, all_ids, "id order: every id once, in order");
        assert_eq!(pages, 100_040usize.div_ceil(997));
        tasks.sort();
        assert_eq!(tasks, all_tasks, "every task once");

        let (ids, _, _) = all_pages(&indexed, query(Order::Problems, MAX_LIMIT));
        let mut worst_first: Vec<(SpecState, &String)> = generated
            .expected
            .iter()
            .map(|(id, (worst, _))| (*worst, id))
            .collect();
        worst_first.sort();
        let worst_first: Vec<&String> = worst_first.into_iter().map(|(_, id)| id).collect();
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            worst_first,
            "problems order"
        );
        assert_eq!(ids[0], "team-0/svc-000000", "an invalid spec comes first");

        let started = Instant::now();
        let first = indexed.select(&query(Order::Id, DEFAULT_LIMIT));
        let selected = started.elapsed();
        assert_eq!(first.len(), DEFAULT_LIMIT);
        eprintln!(
            "100,040 spec ids, {} tasks: index built in {built:?} (tasks by task id: \
             {built_by_task_id:?}), first page selected in {selected:?}",
            generated.snapshot.tasks.len()
        );
    }

    #[test]
    fn specs_out_of_id_order_are_indexed_in_id_order() {
        let generated = generate(2_000, 6, true);
        let indexed = Indexed::new(Arc::new(generated.snapshot.clone()));
        let (ids, tasks, _) = all_pages(&indexed, query(Order::Id, 33));
        assert_eq!(ids, generated.expected.keys().cloned().collect::<Vec<_>>());
        assert_eq!(tasks.len(), generated.snapshot.tasks.len());
    }

    #[test]
    fn tasks_in_any_order_find_their_spec() {
        for reversed in [false, true] {
            let generated = generate(20_000, 10, reversed);
            let mut by_task_id = generated.snapshot.clone();
            by_task_id.tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
            let mut shuffled = generated.snapshot.clone();
            shuffled.tasks.reverse();
            let pages = |snapshot: Snapshot| {
                let indexed = Indexed::new(Arc::new(snapshot));
                let selection = indexed.select(&query(Order::Problems, MAX_LIMIT * 3));
                let rows: Vec<(String, SpecState, BTreeSet<String>)> = indexed
                    .rows(&selection)
                    .map(|row| {
                        let tasks = row.tasks().map(|t| t.task_id.clone()).collect();
                        (row.id.to_owned(), row.state, tasks)
                    })
                    .collect();
                (rows, indexed.summary().clone())
            };
            let want = pages(generated.snapshot.clone());
            assert_eq!(want.0.len(), 20_010);
            assert!(want.0.iter().all(|(id, _, tasks)| tasks.iter().all(|t| {
                let spec = id.replace('/', ".");
                t.starts_with(&format!("{spec}."))
            })));
            assert_eq!(pages(by_task_id), want, "reversed specs: {reversed}");
            assert_eq!(pages(shuffled), want, "reversed specs: {reversed}");
        }
    }

    #[test]
    fn filters_select_what_the_summary_counts() {
        let generated = generate(100_000, 40, false);
        let indexed = Indexed::new(Arc::new(generated.snapshot.clone()));
        let summary = indexed.summary();
        let select = |spec: Option<&str>, state: Option<&str>, order: Order| {
            let mut raw = format!("limit={MAX_LIMIT}&order={}", order.name());
            if let Some(spec) = spec {
                raw.push_str(&format!("&spec={}", crate::status::query::encode(spec)));
            }
            if let Some(state) = state {
                raw.push_str(&format!("&state={state}"));
            }
            let query = Query::parse(Some(&raw), DEFAULT_LIMIT, Order::Id).unwrap();
            let (ids, _, _) = all_pages(&indexed, query);
            ids
        };

        for state in SpecState::ALL {
            let want: Vec<String> = generated
                .expected
                .iter()
                .filter(|(_, (_, states))| states.contains(&state))
                .map(|(id, _)| id.clone())
                .collect();
            assert!(!want.is_empty(), "the generator makes some {state:?}");
            assert_eq!(
                select(None, Some(state.name()), Order::Id),
                want,
                "{state:?}"
            );
            assert_eq!(summary.states[state.name()], want.len() as u64, "{state:?}");
            let worst = generated
                .expected
                .values()
                .filter(|(worst, _)| *worst == state)
                .count();
            assert_eq!(indexed.count_in_state(state), worst, "{state:?}");
        }
        let problems = generated.problem_ids();
        assert_eq!(select(None, Some("problem"), Order::Id), problems);
        assert_eq!(summary.states["problem"], problems.len() as u64);
        assert_eq!(
            select(None, Some("rollout"), Order::Id).len() as u64,
            summary.states["rollout"]
        );
        assert_eq!(
            select(None, Some("error"), Order::Id),
            select(None, Some("invalid"), Order::Id)
        );
        // Several words: any of them; in problems order too.
        let mut either = select(None, Some("given_up,backoff"), Order::Problems);
        assert!(
            either[..5_000]
                .iter()
                .all(|id| generated.expected[id].0 == SpecState::GivenUp)
        );
        either.sort();
        let want: Vec<String> = generated
            .expected
            .iter()
            .filter(|(_, (worst, _))| matches!(worst, SpecState::GivenUp | SpecState::Backoff))
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(either, want);

        // Task states select the specs with such a task.
        let staging = select(None, Some("TASK_STAGING"), Order::Id);
        assert_eq!(staging.len(), 5_000);
        assert!(
            staging
                .iter()
                .all(|id| generated.expected[id].0 == SpecState::Starting)
        );
        assert_eq!(select(None, Some("task_killing"), Order::Id).len(), 40);

        // Spec filters: exact, directory prefix, glob; combined with a state.
        assert_eq!(
            select(Some("team-3/svc-000003"), None, Order::Id),
            ["team-3/svc-000003"]
        );
        assert!(select(Some("team-3/svc-00000"), None, Order::Id).is_empty());
        let team3: Vec<String> = generated
            .expected
            .keys()
            .filter(|id| id.starts_with("team-3/"))
            .cloned()
            .collect();
        assert_eq!(select(Some("team-3/"), None, Order::Id), team3);
        assert_eq!(select(Some("team-3/*"), None, Order::Id), team3);
        let glob: Vec<String> = generated
            .expected
            .keys()
            .filter(|id| id.contains("old-") || id.ends_with("99999"))
            .cloned()
            .collect();
        let mut got = select(Some("*old-*"), None, Order::Id);
        got.extend(select(Some("*99999"), None, Order::Id));
        got.sort();
        assert_eq!(got, glob);
        let invalid_team3: Vec<String> = team3
            .iter()
            .filter(|id| generated.expected[*id].0 == SpecState::Invalid)
            .cloned()
            .collect();
        assert_eq!(
            select(Some("team-3/"), Some("invalid"), Order::Problems),
            invalid_team3
        );
    }

    #[test]
    fn summary_counts_match_the_snapshot() {
        let generated = generate(100_000, 40, false);
        let s = &generated.snapshot;
        let indexed = Indexed::new(Arc::new(s.clone()));
        let summary = indexed.summary();
        assert_eq!(summary.specs, 100_000);
        let sum = |f: fn(&SpecStatus) -> u64| s.specs.iter().map(f).sum::<u64>();
        assert_eq!(summary.instances.wanted, sum(|s| u64::from(s.instances)));
        assert_eq!(summary.instances.running, sum(|s| u64::from(s.running)));
        assert_eq!(summary.instances.pending, sum(|s| s.pending.len() as u64));
        assert_eq!(summary.pending["given_up"], 5_000);
        assert_eq!(summary.pending["waiting_for_offer"], 5_000);
        assert_eq!(summary.pending["resources"], 5_000);
        assert_eq!(summary.pending["other"], 0);
        assert_eq!(summary.pending.len(), PendingKind::ALL.len());
        assert_eq!(summary.tasks.total, s.tasks.len() as u64);
        assert_eq!(summary.tasks.by_state["TASK_STAGING"], 5_000);
        assert_eq!(summary.tasks.by_state["TASK_KILLING"], 40);
        assert_eq!(summary.tasks.by_state["TASK_FAILED"], 0);
        assert_eq!(
            summary.tasks.by_state.values().sum::<u64>(),
            summary.tasks.total
        );
        assert_eq!(summary.tasks.unhealthy, 5_000);
        assert_eq!(
            summary.guard,
            Some(GuardCounts {
                specs: 1,
                instances: 1
            })
        );
        let partition: usize = SpecState::ALL
            .iter()
            .map(|state| indexed.count_in_state(*state))
            .sum();
        assert_eq!(partition, indexed.len());
        assert_eq!(indexed.invalid_specs().count(), 10_000);
        assert!(indexed.invalid_specs().all(|spec| spec.error.is_some()));
    }

    #[test]
    fn a_partial_snapshot_keeps_the_problems_and_the_whole_summary() {
        let mut generated = generate(20_000, 40, false);
        // The newest attempt, of a healthy spec far from the start.
        let late = generated
            .snapshot
            .specs
            .iter_mut()
            .find(|s| s.id == "team-0/svc-019999")
            .unwrap();
        late.history.push(AttemptRow {
            task_id: "team-0/svc-019999.0.old".to_owned(),
            started_ms: 5_000,
            state: "TASK_KILLED".to_owned(),
            ..AttemptRow::default()
        });
        let full = Indexed::new(Arc::new(generated.snapshot.clone()));
        let partial = Indexed::new(Arc::new(full.into_partial()));
        let full = Indexed::new(Arc::new(generated.snapshot.clone()));
        assert!(partial.snapshot().partial.is_some());
        assert_eq!(partial.summary(), full.summary());
        for state in SpecState::ALL {
            assert_eq!(
                partial.count_in_state(state),
                full.count_in_state(state),
                "{state:?}"
            );
        }
        // Every problem spec id, the first others in id order and the specs of the newest
        // attempts, each with its tasks; nothing else.
        let problems = generated.problem_ids();
        assert!(!problems.is_empty() && problems.len() < 10_000);
        let recent: BTreeSet<&str> = full.recent_attempts().map(|(id, _)| id).collect();
        let (all_ids, _, _) = all_pages(&full, query(Order::Id, MAX_LIMIT));
        let mut head = 0;
        let kept: Vec<String> = all_ids
            .into_iter()
            .filter(|id| {
                problems.binary_search(id).is_ok()
                    || (head < PARTIAL_HEAD && {
                        head += 1;
                        true
                    })
                    || recent.contains(id.as_str())
            })
            .collect();
        assert!(
            kept.len() > problems.len() + PARTIAL_HEAD,
            "recent ones kept"
        );
        // Each row with its tasks.
        let every_row = |indexed: &Indexed| -> Vec<(String, Vec<String>)> {
            let selection = Selection {
                entries: (0..indexed.len() as u32).collect(),
                ..Selection::default()
            };
            indexed
                .rows(&selection)
                .map(|row| {
                    let tasks = row.tasks().map(|t| t.task_id.clone()).collect();
                    (row.id.to_owned(), tasks)
                })
                .collect()
        };
        let rows = every_row(&partial);
        assert!(rows.iter().map(|(id, _)| id).eq(&kept), "the rows kept");
        let kept: BTreeSet<String> = kept.into_iter().collect();
        let mut full_rows = every_row(&full);
        full_rows.retain(|(id, _)| kept.contains(id));
        assert!(rows == full_rows, "the tasks of the rows kept");

        // What it answers, it answers as the whole does: every page of the problems, the first
        // page in either order, the invalid files and the newest attempts.
        let mut answered = 0;
        let mut queries = Vec::new();
        for order in [Order::Id, Order::Problems] {
            for limit in [0, 1, PAGE_DEFAULT_LIMIT, DEFAULT_LIMIT, PARTIAL_HEAD] {
                queries.push(query(order, limit));
                let mut problems = query(order, limit.max(1));
                problems.state = StateFilter::parse("problem,invalid").unwrap();
                queries.push(problems);
            }
            let mut later = query(order, 10);
            later.after = full.select(&later).next.map(|next| match order {
                Order::Id => Cursor::Id(next),
                Order::Problems => {
                    let (state, id) = next.split_once(':').unwrap();
                    Cursor::Problems(SpecState::from_name(state).unwrap(), id.to_owned())
                }
            });
            queries.push(later);
            let mut healthy = query(order, 10);
            healthy.state = StateFilter::parse("healthy").unwrap();
            queries.push(healthy);
        }
        for q in queries {
            if !partial.answers(&q) {
                assert!(q.limit >= PARTIAL_HEAD || q.after.is_some() || q.state.is_some());
                continue;
            }
            answered += 1;
            if q.state.is_some() {
                assert_eq!(
                    all_pages(&partial, q.clone()),
                    all_pages(&full, q.clone()),
                    "{q:?}"
                );
                continue;
            }
            let (a, b) = (partial.select(&q), full.select(&q));
            assert_eq!(
                (a.matched, a.before, &a.next),
                (b.matched, b.before, &b.next)
            );
            let ids = |i: &Indexed, s: &Selection| -> Vec<String> {
                i.rows(s).map(|r| r.id.to_owned()).collect()
            };
            assert_eq!(ids(&partial, &a), ids(&full, &b), "{q:?}");
        }
        assert_eq!(answered, 2 * 5 * 2 - 2);
        assert!(
            partial
                .invalid_specs()
                .map(|s| &s.id)
                .eq(full.invalid_specs().map(|s| &s.id))
        );
        assert!(partial.recent_attempts().eq(full.recent_attempts()));
    }

    #[test]
    fn limit_zero_unknown_cursors_and_empty_snapshots() {
        let indexed = Indexed::new(Arc::new(generate(100, 2, false).snapshot));
        let none = indexed.select(&query(Order::Id, 0));
        assert!(none.is_empty() && none.next.is_none());
        assert_eq!(none.matched, 102);

        // A cursor that is not an id (the spec went away) still pages by id order.
        let mut q = query(Order::Id, 10);
        q.after = Some(Cursor::Id("team-3/svc-000010x".to_owned()));
        let page = indexed.select(&q);
        let first = indexed.rows(&page).next().unwrap();
        assert_eq!(first.id, "team-3/svc-000017");
        q.after = Some(Cursor::Id("zzz".to_owned()));
        let past = indexed.select(&q);
        assert!(past.is_empty() && past.next.is_none());
        assert_eq!(past.before, 102);

        let mut q = query(Order::Problems, 10);
        q.after = Some(Cursor::Problems(SpecState::Pending, "team-9".to_owned()));
        let page = indexed.select(&q);
        assert!(
            indexed
                .rows(&page)
                .all(|row| row.state >= SpecState::Pending)
        );

        let empty = Indexed::new(Arc::new(Snapshot::default()));
        let page = empty.select(&query(Order::Problems, 10));
        assert!(page.is_empty() && page.next.is_none() && page.matched == 0);
        assert_eq!(empty.summary().states["healthy"], 0);
        assert_eq!(empty.summary().tasks.by_state.len(), TASK_STATES.len());
    }

    #[test]
    fn rollout_sentences_of_the_plan_are_classified() {
        assert!(rollout_stopped(&rollout(true)));
        assert!(!rollout_stopped(&rollout(false)));
        assert!(rollout_stopped("stopped: new generation failed"));
        assert!(!rollout_stopped(
            "rolling out 0123456789ab: 1 of 3 replaced"
        ));
    }

    #[test]
    fn recent_attempts_are_the_newest_across_specs() {
        let generated = generate(5_000, 0, false);
        let s = &generated.snapshot;
        let indexed = Indexed::new(Arc::new(s.clone()));
        let mut all: Vec<(u64, usize, usize, &str)> = Vec::new();
        for (order, spec) in s.specs.iter().enumerate() {
            for (a, attempt) in spec.history.iter().enumerate() {
                all.push((attempt.started_ms, order, a, attempt.task_id.as_str()));
            }
        }
        all.sort_by_key(|&(started, order, a, _)| (Reverse(started), order, a));
        let want: Vec<&str> = all.iter().take(RECENT_ATTEMPTS).map(|a| a.3).collect();
        let got: Vec<&str> = indexed
            .recent_attempts()
            .map(|(_, attempt)| attempt.task_id.as_str())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn state_filter_bits_do_not_overlap_and_task_states_are_known() {
        let mut seen = 0u32;
        for state in SpecState::ALL {
            assert_eq!(seen & state.bit(), 0);
            seen |= state.bit();
        }
        for i in 0..TASK_STATES.len() {
            assert_eq!(seen & task_state_bit(i), 0);
            seen |= task_state_bit(i);
        }
        for (i, state) in TASK_STATES.iter().enumerate() {
            assert_eq!(usize::from(task_state_index(state)), i, "{state}");
        }
        assert_eq!(task_state_index("TASK_SOMETHING"), u8::MAX);
        assert_eq!(TASK_STATES[TASK_RUNNING], "TASK_RUNNING");
        let problem = StateFilter::parse("problem").unwrap().unwrap();
        let each = SpecState::ALL
            .iter()
            .filter(|s| s.is_problem())
            .fold(0, |bits, s| bits | s.bit());
        assert_eq!(problem.mask(), each);
    }
}
