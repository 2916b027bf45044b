//! Where the specs in force came from, in git terms: the commit each spec was applied from, the
//! commit of the desired directory as last read, and the status of the sync that publishes it.
//!
//! The desired directory is either a revision published by `mesos-reconciler sync` (its commit is
//! in a file beside the tree) or a plain git checkout (its `HEAD`); see `sync::checkout`. After
//! every re-read, the controller records for each spec whose content in force changed the commit
//! of the tree it was read from; specs that did not change keep theirs, so a spec shows the commit
//! that brought the version in force, not merely the latest commit. A checkout file that differs
//! from `HEAD` is marked as having local changes, until it is committed.
//!
//! A launched task records its spec's commit in the ledger (`TaskRecord::commit`), so each task
//! shows the commit it was launched from, through rollouts and restarts. The commit of each spec
//! is persisted (trees `spec_commits` and `commits`), without a flush of its own: it is shown,
//! never acted on, and sled writes it within half a second.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::ledger::Ledger;
use super::state::Controller;
use crate::spec::model::SpecId;
use crate::status::{CommitView, GitStatus, RefusedView, SyncView};
use crate::store::{Store, StoreError, Tree};
use crate::sync::checkout::{Source, TreeOrigin};
use crate::sync::layout::{self, Commit, SyncState, SyncStatus};

/// The sync's status file is read again at most this often (on the loop's timer).
const SYNC_READ_EVERY: Duration = Duration::from_secs(2);

/// A task's commit is its spec's sha, with this suffix when the spec had local changes (as
/// `git describe --dirty` writes it).
const DIRTY_SUFFIX: &str = "-dirty";

/// The commit one spec in force was applied from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SpecOrigin {
    pub sha: Arc<str>,
    /// The file differed from the commit (a checkout's uncommitted edit).
    #[serde(default)]
    pub local_changes: bool,
}

/// The loop's knowledge of commits.
#[derive(Debug, Default)]
pub(super) struct Origins {
    /// The desired directory as last read.
    pub tree: TreeOrigin,
    /// The commit of each spec in force that was read from a commit's tree.
    pub specs: HashMap<SpecId, SpecOrigin>,
    /// The commits named by `specs` and by live tasks (and the tree's), by sha.
    pub commits: HashMap<String, Arc<Commit>>,
    /// The sync's status file, once found.
    pub sync_file: Option<PathBuf>,
    pub sync: Option<SyncStatus>,
    /// Why the status file could not be read.
    pub sync_error: Option<String>,
    sync_read_at: Option<Instant>,
}

impl Origins {
    /// What the store remembers; commits no spec and no live task names any more are dropped.
    pub fn load(store: &Store, ledger: &Ledger) -> Result<Origins, StoreError> {
        let mut origins = Origins::default();
        let commits: HashMap<String, Commit> =
            store.all::<Commit>(Tree::Commits)?.into_iter().collect();
        for (key, origin) in store.all::<SpecOrigin>(Tree::SpecCommits)? {
            if let Ok(id) = SpecId::new(key) {
                origins.specs.insert(id, origin);
            }
        }
        let wanted = origins.referenced(ledger);
        let mut unused = Vec::new();
        for (sha, commit) in commits {
            if wanted.contains(sha.as_str()) {
                origins.commits.insert(sha, Arc::new(commit));
            } else {
                unused.push(sha);
            }
        }
        if !unused.is_empty() {
            store.update::<Commit>(Tree::Commits, [], unused.iter().map(String::as_str))?;
        }
        Ok(origins)
    }

    /// The commit a task of `spec` launched now comes from, as `TaskRecord::commit` keeps it.
    pub fn task_commit(&self, spec: &SpecId) -> Option<Arc<str>> {
        let origin = self.specs.get(spec)?;
        if origin.local_changes {
            Some(Arc::from(format!("{}{DIRTY_SUFFIX}", origin.sha)))
        } else {
            Some(origin.sha.clone())
        }
    }

    /// The commit of a spec for the status snapshot.
    pub fn spec_view(&self, spec: &SpecId) -> Option<CommitView> {
        let origin = self.specs.get(spec)?;
        Some(self.view(&origin.sha, origin.local_changes))
    }

    /// The commit of a task (its `TaskRecord::commit`) for the status snapshot.
    pub fn task_view(&self, commit: &str) -> CommitView {
        match commit.strip_suffix(DIRTY_SUFFIX) {
            Some(sha) => self.view(sha, true),
            None => self.view(commit, false),
        }
    }

    /// The `git` part of the snapshot: `None` when the desired directory has nothing to do with git.
    pub fn status(&self, now_ms: u64) -> Option<GitStatus> {
        if self.tree.source.is_none() && self.sync.is_none() && self.sync_error.is_none() {
            return None;
        }
        Some(GitStatus {
            source: self.tree.source.map(|s| s.name().to_owned()),
            commit: self.tree.commit.as_ref().map(|c| commit_view(c, false)),
            error: self.tree.error.clone(),
            sync: self
                .sync
                .as_ref()
                .map(|s| sync_view(s, self.sync_file.as_deref(), now_ms))
                .or_else(|| {
                    self.sync_error.as_ref().map(|e| SyncView {
                        file: display(self.sync_file.as_deref()),
                        error: Some(e.clone()),
                        state: "unreadable".to_owned(),
                        ..SyncView::default()
                    })
                }),
        })
    }

    fn view(&self, sha: &str, local_changes: bool) -> CommitView {
        match self.commits.get(sha) {
            Some(commit) => commit_view(commit, local_changes),
            None => CommitView {
                sha: sha.to_owned(),
                short: layout::short_sha(sha).to_owned(),
                local_changes,
                ..CommitView::default()
            },
        }
    }

    /// The shas specs, live tasks and the tree name (each once).
    fn referenced(&self, ledger: &Ledger) -> HashSet<String> {
        let shas: HashSet<&str> = self
            .specs
            .values()
            .map(|o| &*o.sha)
            .chain(self.tree.commit.iter().map(|c| c.sha.as_str()))
            .chain(
                ledger
                    .values()
                    .filter(|r| r.is_live())
                    .filter_map(|r| r.commit.as_deref())
                    .map(|c| c.strip_suffix(DIRTY_SUFFIX).unwrap_or(c)),
            )
            .collect();
        shas.into_iter().map(str::to_owned).collect()
    }
}

/// How the origins of specs change after one re-read (pure, so it is tested as a table).
///
/// - `removed`: specs no longer in force lose their origin;
/// - `changed`: specs whose content in force changed take the tree's commit (or lose their origin
///   when the tree has none), marked as local changes when their file differs from it;
/// - `read`: specs whose file was read again without a change of content keep their origin, or
///   take the tree's if they had none;
/// - a spec marked with local changes whose file is now the same as the tree's commit takes that
///   commit (its edit was committed).
///
/// Returns the writes to persist: `(id, Some(origin))` to record, `(id, None)` to forget.
pub(super) fn after_reread(
    specs: &HashMap<SpecId, SpecOrigin>,
    tree: &TreeOrigin,
    read: &[SpecId],
    changed: &[SpecId],
    removed: &[SpecId],
) -> Vec<(SpecId, Option<SpecOrigin>)> {
    let mut writes: HashMap<SpecId, Option<SpecOrigin>> = HashMap::new();
    let from_tree = |id: &SpecId| {
        let commit = tree.commit.as_ref()?;
        Some(SpecOrigin {
            sha: Arc::from(commit.sha.as_str()),
            local_changes: tree.changed.contains(&file_of(id)),
        })
    };
    for id in removed {
        if specs.contains_key(id) {
            writes.insert(id.clone(), None);
        }
    }
    for id in changed {
        writes.insert(id.clone(), from_tree(id));
    }
    for id in read {
        if !specs.contains_key(id) && !writes.contains_key(id) {
            if let Some(origin) = from_tree(id) {
                writes.insert(id.clone(), Some(origin));
            }
        }
    }
    if tree.source == Some(Source::Checkout) {
        for (id, origin) in specs {
            if origin.local_changes && !writes.contains_key(id) {
                if let Some(clean) = from_tree(id).filter(|o| !o.local_changes) {
                    writes.insert(id.clone(), Some(clean));
                }
            }
        }
    }
    // Only real changes are written.
    let mut out: Vec<(SpecId, Option<SpecOrigin>)> = writes
        .into_iter()
        .filter(|(id, origin)| specs.get(id) != origin.as_ref())
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

impl Controller {
    /// After a re-read of the directory at `root` (canonical): learns the tree's commit and
    /// updates the origin of the specs `read`, `changed` and `removed` (see [`after_reread`]).
    pub(super) async fn note_origins(
        &mut self,
        root: &Path,
        read: &[SpecId],
        changed: &[SpecId],
        removed: &[SpecId],
    ) {
        let tree = crate::sync::checkout::origin_of(root).await;
        if tree.error.is_some() && tree.error != self.origins.tree.error {
            if let Some(error) = &tree.error {
                tracing::warn!(dir = %root.display(), "cannot tell which commit the desired directory holds: {error}");
            }
        }
        let tree_sha_changed = tree.commit.as_ref().map(|c| &c.sha)
            != self.origins.tree.commit.as_ref().map(|c| &c.sha);
        if tree_sha_changed {
            if let Some(commit) = &tree.commit {
                tracing::info!(
                    commit = %commit.short(),
                    subject = %commit.subject,
                    source = tree.source.map_or("", Source::name),
                    "desired directory is at a new commit"
                );
            }
        }
        if let Some(commit) = &tree.commit {
            if !self.origins.commits.contains_key(&commit.sha) {
                if let Err(e) = self.store.put(Tree::Commits, &commit.sha, commit) {
                    tracing::warn!(error = %e, "cannot record a commit");
                }
                self.origins
                    .commits
                    .insert(commit.sha.clone(), Arc::new(commit.clone()));
            }
        }
        let writes = after_reread(&self.origins.specs, &tree, read, changed, removed);
        if tree != self.origins.tree || !writes.is_empty() {
            self.published.stale = true;
        }
        self.origins.tree = tree;
        if !writes.is_empty() {
            let puts: Vec<(&str, &SpecOrigin)> = writes
                .iter()
                .filter_map(|(id, o)| Some((id.as_str(), o.as_ref()?)))
                .collect();
            let removes = writes
                .iter()
                .filter(|(_, o)| o.is_none())
                .map(|(id, _)| id.as_str());
            if let Err(e) = self.store.update(Tree::SpecCommits, puts, removes) {
                tracing::warn!(error = %e, "cannot record the commits of the specs");
            }
            for (id, origin) in writes {
                match origin {
                    Some(origin) => self.origins.specs.insert(id, origin),
                    None => self.origins.specs.remove(&id),
                };
            }
        }
        if tree_sha_changed {
            self.forget_unused_commits();
        }
        self.refresh_sync(Some(root)).await;
    }

    /// Reads the sync's status file again (found from the desired directory), at most every
    /// [`SYNC_READ_EVERY`] unless `root` says a re-read just happened.
    pub(super) async fn refresh_sync(&mut self, root: Option<&Path>) {
        let due = self
            .origins
            .sync_read_at
            .is_none_or(|at| at.elapsed() >= SYNC_READ_EVERY);
        if root.is_none() && !due {
            return;
        }
        self.origins.sync_read_at = Some(Instant::now());
        if self.origins.sync_file.is_none() {
            let canonical = root.map_or_else(|| self.desired_dir.clone(), Path::to_owned);
            self.origins.sync_file = layout::find_status(&self.desired_dir, &canonical);
        }
        let Some(file) = self.origins.sync_file.clone() else {
            return;
        };
        let read = tokio::task::spawn_blocking(move || layout::read_json::<SyncStatus>(&file))
            .await
            .unwrap_or_else(|e| Err(format!("reading the sync status panicked: {e}")));
        let (status, error) = match read {
            Ok(Some(status)) => (Some(status), None),
            Ok(None) => (None, None),
            Err(e) => (self.origins.sync.clone(), Some(e)),
        };
        let now_ms = self.clock.now_ms();
        let before = self.origins.sync.as_ref().map(|s| sync_state(s, now_ms));
        let after = status.as_ref().map(|s| sync_state(s, now_ms));
        if before != after {
            match (&status, after.as_deref()) {
                (Some(s), Some("failing")) => tracing::warn!(
                    failures = s.failures,
                    "the sync cannot fetch; the desired directory stays at its commit: {}",
                    s.error.as_deref().unwrap_or("(no message)")
                ),
                (Some(s), Some("refused")) => tracing::warn!(
                    commit = s.refused.as_ref().map(|r| r.commit.short().to_owned()),
                    "the sync refused the branch head (invalid spec files); the desired directory stays at its commit"
                ),
                (Some(_), Some("silent")) => tracing::warn!(
                    "the sync has not written its status when it should have: it is not running"
                ),
                (Some(_), Some(state)) => tracing::info!(state, "sync state"),
                _ => {}
            }
        }
        if status != self.origins.sync || error != self.origins.sync_error || before != after {
            self.published.stale = true;
        }
        self.origins.sync = status;
        self.origins.sync_error = error;
    }

    /// Drops commits nothing names any more (in memory and in the store).
    fn forget_unused_commits(&mut self) {
        let wanted = self.origins.referenced(&self.ledger);
        let unused: Vec<String> = self
            .origins
            .commits
            .keys()
            .filter(|sha| !wanted.contains(sha.as_str()))
            .cloned()
            .collect();
        if unused.is_empty() {
            return;
        }
        for sha in &unused {
            self.origins.commits.remove(sha);
        }
        if let Err(e) =
            self.store
                .update::<Commit>(Tree::Commits, [], unused.iter().map(String::as_str))
        {
            tracing::warn!(error = %e, "cannot forget old commits");
        }
    }
}

/// The file a spec id is read from, relative to the desired directory.
fn file_of(id: &SpecId) -> PathBuf {
    PathBuf::from(format!("{}.toml", id.as_str()))
}

fn commit_view(commit: &Commit, local_changes: bool) -> CommitView {
    CommitView {
        sha: commit.sha.clone(),
        short: commit.short().to_owned(),
        author: commit.author.clone(),
        date: commit.date.clone(),
        subject: commit.subject.clone(),
        local_changes,
    }
}

/// The state word shown: the file's, or `silent` when the sync should have written it by now.
fn sync_state(status: &SyncStatus, now_ms: u64) -> String {
    let silent =
        status.state != SyncState::Stopped && status.silent_after_ms.is_some_and(|at| now_ms > at);
    if silent {
        "silent".to_owned()
    } else {
        status.state.name().to_owned()
    }
}

fn sync_view(status: &SyncStatus, file: Option<&Path>, now_ms: u64) -> SyncView {
    SyncView {
        file: display(file),
        repo: status.repo.clone(),
        branch: status.branch.clone(),
        subdir: status.subdir.clone(),
        state: sync_state(status, now_ms),
        revision: status.revision.clone(),
        published: status.published.as_ref().map(|c| commit_view(c, false)),
        last_success_ms: status.last_success_ms,
        last_attempt_ms: status.last_attempt_ms,
        failures: status.failures,
        error: status.error.clone(),
        refused: status.refused.as_ref().map(|r| RefusedView {
            commit: commit_view(&r.commit, false),
            problems: r.problems.clone(),
        }),
        next_attempt_ms: status.next_attempt_ms,
        updated_ms: status.updated_ms,
    }
}

fn display(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn id(s: &str) -> SpecId {
        SpecId::new(s.to_owned()).unwrap()
    }

    fn origin(sha: &str, local_changes: bool) -> SpecOrigin {
        SpecOrigin {
            sha: Arc::from(sha),
            local_changes,
        }
    }

    fn tree(sha: Option<&str>, source: Source, changed: &[&str]) -> TreeOrigin {
        TreeOrigin {
            source: Some(source),
            commit: sha.map(|sha| Commit {
                sha: sha.to_owned(),
                ..Commit::default()
            }),
            changed: changed.iter().map(PathBuf::from).collect::<BTreeSet<_>>(),
            error: None,
        }
    }

    #[test]
    fn a_changed_spec_takes_the_commit_of_the_tree_and_an_unchanged_one_keeps_its_own() {
        let specs = HashMap::from([
            (id("web"), origin("c1", false)),
            (id("db"), origin("c1", false)),
        ]);
        let t = tree(Some("c2"), Source::Revision, &[]);
        let writes = after_reread(&specs, &t, &[id("db"), id("web")], &[id("web")], &[]);
        assert_eq!(writes, [(id("web"), Some(origin("c2", false)))]);
    }

    #[test]
    fn removed_specs_lose_their_commit_and_new_ones_take_the_trees() {
        let specs = HashMap::from([(id("gone"), origin("c1", false))]);
        let t = tree(Some("c2"), Source::Revision, &[]);
        let writes = after_reread(&specs, &t, &[id("new")], &[id("new")], &[id("gone")]);
        assert_eq!(
            writes,
            [(id("gone"), None), (id("new"), Some(origin("c2", false)))]
        );
    }

    #[test]
    fn a_spec_read_again_without_a_commit_takes_the_trees() {
        // A spec applied before the directory was a git tree gets the commit it is found in.
        let specs = HashMap::new();
        let t = tree(Some("c3"), Source::Revision, &[]);
        let writes = after_reread(&specs, &t, &[id("web")], &[], &[]);
        assert_eq!(writes, [(id("web"), Some(origin("c3", false)))]);
    }

    #[test]
    fn without_a_commit_a_changed_spec_loses_its_origin() {
        let specs = HashMap::from([(id("web"), origin("c1", false))]);
        let t = TreeOrigin::default();
        let writes = after_reread(&specs, &t, &[id("web")], &[id("web")], &[]);
        assert_eq!(writes, [(id("web"), None)]);
    }

    #[test]
    fn a_checkout_edit_is_a_local_change_until_it_is_committed() {
        let specs = HashMap::new();
        let edited = tree(Some("c1"), Source::Checkout, &["team/web.toml"]);
        let writes = after_reread(&specs, &edited, &[id("team/web")], &[id("team/web")], &[]);
        assert_eq!(writes, [(id("team/web"), Some(origin("c1", true)))]);

        // Committed: the file is unchanged on disk (not read again) and clean at the new HEAD.
        let specs = HashMap::from([(id("team/web"), origin("c1", true))]);
        let committed = tree(Some("c2"), Source::Checkout, &[]);
        let writes = after_reread(&specs, &committed, &[], &[], &[]);
        assert_eq!(writes, [(id("team/web"), Some(origin("c2", false)))]);

        // Still edited at the new HEAD: nothing to write.
        let still = tree(Some("c2"), Source::Checkout, &["team/web.toml"]);
        assert_eq!(after_reread(&specs, &still, &[], &[], &[]), []);
    }

    #[test]
    fn tasks_keep_the_dirty_mark_of_their_spec() {
        let mut origins = Origins::default();
        origins.specs.insert(id("web"), origin("abcdef0123", true));
        origins.specs.insert(id("db"), origin("0123456789", false));
        assert_eq!(
            origins.task_commit(&id("web")).as_deref(),
            Some("abcdef0123-dirty")
        );
        assert_eq!(
            origins.task_commit(&id("db")).as_deref(),
            Some("0123456789")
        );
        assert_eq!(origins.task_commit(&id("other")), None);
        let view = origins.task_view("abcdef0123-dirty");
        assert_eq!(view.short, "abcdef0");
        assert!(view.local_changes);
        assert!(!origins.task_view("0123456789").local_changes);
    }

    #[test]
    fn a_sync_that_stopped_writing_is_silent() {
        let status = SyncStatus {
            state: SyncState::Ok,
            silent_after_ms: Some(1_000),
            ..SyncStatus::default()
        };
        assert_eq!(sync_state(&status, 999), "ok");
        assert_eq!(sync_state(&status, 1_001), "silent");
        let stopped = SyncStatus {
            state: SyncState::Stopped,
            ..status
        };
        assert_eq!(sync_state(&stopped, 1_001), "stopped");
    }
}
