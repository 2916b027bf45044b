//! `mesos-reconciler sync`: keeps a directory of published revisions of one branch of a git
//! repository, for the controller to read through the `current` link.
//!
//! Conventions follow git-sync (each commit is published as its own directory, a symlink is
//! repointed atomically, a fixed period between fetches, a one-shot mode) and Flux's
//! source-controller (the revision written as `<branch>@sha1:<sha>`, a status that says what was
//! fetched, when, and why the last attempt failed). The layout is in [`layout`].
//!
//! One attempt:
//! 1. `git fetch <repo> +refs/heads/<branch>:refs/mesos-reconciler/head` into the bare repository
//!    in the root (forced, so a force-push is fetched like any other new head);
//! 2. if the head is what `current` points at, nothing else happens;
//! 3. otherwise the tree of `--subdir` at that commit is exported to a temporary directory, its
//!    spec files are read (with `--validate`, invalid files refuse the commit: `current` stays and
//!    every problem is logged and written to the status file), its commit file is written, the tree
//!    is renamed to `revisions/<sha>`, `current` is repointed (a new link renamed over the old), and
//!    the oldest revisions beyond `--keep` are removed — never the one `current` points at.
//!
//! A failed attempt changes nothing on disk but the status file; it is retried with a jittered
//! exponential backoff from 1 s up to the interval. SIGHUP (`systemctl reload`) starts an attempt
//! at once.

pub mod checkout;
pub mod git;
pub mod layout;

use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use self::git::Git;
use self::layout::{
    COMMIT_SUFFIX, Commit, Layout, Refusal, RevisionFile, SyncState, SyncStatus, TEMP_PREFIX,
};

/// Where fetches put the branch head in the bare repository.
pub const FETCHED_REF: &str = "refs/mesos-reconciler/head";

/// Retries after a failure start this soon.
const RETRY_INITIAL: Duration = Duration::from_secs(1);

/// A status file not rewritten this long after the next attempt was due (plus the git timeout)
/// means the sync is not running.
const SILENT_GRACE: Duration = Duration::from_secs(60);

/// Everything a sync needs, checked by the CLI.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The repository URL (or path), as git understands it.
    pub repo: String,
    pub branch: String,
    /// The directory of the repository to publish; empty for all of it.
    pub subdir: PathBuf,
    pub root: PathBuf,
    pub interval: Duration,
    /// Refuse to publish a commit with invalid spec files.
    pub validate: bool,
    /// How many published revisions to keep (at least 1).
    pub keep: usize,
    /// The git program.
    pub git: PathBuf,
    /// How long one git command may take.
    pub timeout: Duration,
    /// The controller's rules for spec files, applied when a tree is checked.
    pub policy: crate::spec::SpecPolicy,
}

/// Why the sync cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The configuration is wrong (exit 64): bad branch or subdir, a root the sync did not make.
    #[error("{0}")]
    Config(String),
    /// Something outside is wrong (exit 1): git missing, the root cannot be created.
    #[error("{0}")]
    Setup(String),
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The branch head is already published.
    Unchanged(Commit),
    /// The branch head was published and `current` now points at it.
    Published(Commit),
    /// The branch head was not published (invalid specs with `--validate`, no `--subdir` in it).
    Refused(Refusal),
}

/// The sync of one root: its configuration, its git and what it last wrote to the status file.
#[derive(Debug)]
pub struct Syncer {
    config: SyncConfig,
    subdir: String,
    layout: Layout,
    git: Git,
    status: SyncStatus,
}

impl Syncer {
    /// Checks the configuration and the root, creates what is missing (the root, `revisions/`, the
    /// bare repository), removes what a crashed run left half-made, and writes the first status.
    pub async fn prepare(config: SyncConfig) -> Result<Syncer, SyncError> {
        let subdir = normalize_subdir(&config.subdir)?;
        if config.keep == 0 {
            return Err(SyncError::Config(
                "--keep must be at least 1 (the revision `current` points at)".to_owned(),
            ));
        }
        let mut git = Git::new(&config.git, config.timeout);
        git.secrets = layout::url_secrets(&config.repo);
        let version = git
            .version()
            .await
            .map_err(|e| SyncError::Setup(e.to_string()))?;
        git.check_branch(&config.branch).await.map_err(|_| {
            SyncError::Config(format!(
                "--branch {:?} is not a valid branch name",
                config.branch
            ))
        })?;
        let layout = Layout::new(&config.root);
        std::fs::create_dir_all(layout.revisions()).map_err(|e| {
            SyncError::Setup(format!(
                "cannot create {}: {e}",
                layout.revisions().display()
            ))
        })?;
        let current = layout.current_sha().map_err(SyncError::Config)?;
        let mut published = None;
        if let Some(sha) = &current {
            // A commit file that cannot be read is written again by the first attempt.
            let file =
                layout::read_json::<RevisionFile>(&layout.commit_file(sha)).unwrap_or_else(|e| {
                    tracing::warn!("{e}; it is written again");
                    None
                });
            if let Some(file) = file {
                if file.subdir != subdir {
                    return Err(SyncError::Config(format!(
                        "{} was published from --subdir {:?}, not {subdir:?}; use another --root for another subdirectory (or remove {} and {})",
                        layout.current().display(),
                        file.subdir,
                        layout.current().display(),
                        layout.revisions().display()
                    )));
                }
                published = Some(file.commit);
            }
        }
        git.init_bare(&layout.repo())
            .await
            .map_err(|e| SyncError::Setup(e.to_string()))?;
        remove_temporaries(&layout);
        tracing::info!(
            %version,
            repo = %layout::redact_url(&config.repo),
            branch = %config.branch,
            subdir = %subdir,
            root = %layout.root.display(),
            current = current.as_deref().map(layout::short_sha),
            "sync starting"
        );
        let status = SyncStatus {
            repo: layout::redact_url(&config.repo),
            branch: config.branch.clone(),
            subdir: subdir.clone(),
            state: SyncState::Starting,
            published,
            pid: std::process::id(),
            ..SyncStatus::default()
        };
        let mut syncer = Syncer {
            config,
            subdir,
            layout,
            git,
            status,
        };
        syncer.write_status();
        Ok(syncer)
    }

    /// The status as last written.
    pub fn status(&self) -> &SyncStatus {
        &self.status
    }

    /// One attempt, logged and recorded in the status file. Returns what it found, or why it
    /// failed, and when the next attempt is due.
    pub async fn attempt(&mut self) -> (Result<Attempt, String>, Duration) {
        let started_ms = now_ms();
        let result = self.try_attempt().await;
        let delay = match &result {
            Ok(_) => self.config.interval,
            Err(_) => retry_delay(
                self.status.failures.saturating_add(1),
                self.config.interval,
                rand::random_range(0.8..=1.0),
            ),
        };
        self.record(&result, started_ms, delay);
        (result, delay)
    }

    /// Writes the status once more, saying the sync stopped.
    pub fn stopped(&mut self) {
        self.status.state = SyncState::Stopped;
        self.status.next_attempt_ms = None;
        self.status.silent_after_ms = None;
        self.write_status();
    }

    async fn try_attempt(&mut self) -> Result<Attempt, String> {
        let repo = self.layout.repo();
        // Recreated if someone removed it: the next fetch then starts from scratch.
        self.git.init_bare(&repo).await.map_err(|e| e.to_string())?;
        self.git
            .fetch(&repo, &self.config.repo, &self.config.branch, FETCHED_REF)
            .await
            .map_err(|e| e.to_string())?;
        let sha = self
            .git
            .resolve(&repo, FETCHED_REF)
            .await
            .map_err(|e| e.to_string())?;
        let algorithm = if sha.len() == 64 { "sha256" } else { "sha1" };
        self.status.revision = Some(format!("{}@{algorithm}:{sha}", self.config.branch));
        let current = self.layout.current_sha()?;
        if current.as_deref() == Some(sha.as_str()) {
            return self.unchanged(&sha).await.map(Attempt::Unchanged);
        }
        if let Some(refused) = &self.status.refused {
            if refused.commit.sha == sha {
                return Ok(Attempt::Refused(refused.clone()));
            }
        }
        let commit = self
            .git
            .commit(&repo, &sha)
            .await
            .map_err(|e| e.to_string())?;
        self.publish(commit).await
    }

    /// The commit `current` already points at; its commit file is written again if it went
    /// missing (the tree is never touched: the controller may be reading it).
    async fn unchanged(&self, sha: &str) -> Result<Commit, String> {
        if let Some(commit) = self.status.published.as_ref().filter(|c| c.sha == sha) {
            return Ok(commit.clone());
        }
        let commit = self
            .git
            .commit(&self.layout.repo(), sha)
            .await
            .map_err(|e| e.to_string())?;
        let file = self.layout.commit_file(sha);
        if layout::read_json::<RevisionFile>(&file)
            .unwrap_or(None)
            .is_none()
        {
            let revision = RevisionFile {
                commit: commit.clone(),
                branch: self.config.branch.clone(),
                subdir: self.subdir.clone(),
                published_ms: now_ms(),
            };
            layout::write_json_atomic(&file, &revision)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        }
        Ok(commit)
    }

    /// Publishes `commit` (or refuses it), as the module comment says.
    async fn publish(&mut self, commit: Commit) -> Result<Attempt, String> {
        let sha = commit.sha.clone();
        let tree = self.layout.revision(&sha);
        let commit_file = self.layout.commit_file(&sha);
        let existing = layout::read_json::<RevisionFile>(&commit_file).unwrap_or(None);
        let reusable = tree.is_dir() && existing.as_ref().is_some_and(|r| r.subdir == self.subdir);
        let revision = RevisionFile {
            commit: commit.clone(),
            branch: self.config.branch.clone(),
            subdir: self.subdir.clone(),
            published_ms: now_ms(),
        };
        if reusable {
            // Published before (a force-push back to it): the tree is reused as it is.
            if let Some(refusal) = self.check(&commit, &tree, &tree) {
                return Ok(Attempt::Refused(refusal));
            }
            layout::write_json_atomic(&commit_file, &revision)
                .map_err(|e| format!("cannot write {}: {e}", commit_file.display()))?;
        } else {
            if let Some(refusal) = self.export_new(&revision, &tree, &commit_file).await? {
                return Ok(Attempt::Refused(refusal));
            }
        }
        self.repoint(&sha)?;
        tracing::info!(
            commit = %commit.short(),
            subject = %commit.subject,
            author = %commit.author,
            revision = %self.status.revision.as_deref().unwrap_or_default(),
            reused = reusable,
            "published"
        );
        self.prune(&sha);
        Ok(Attempt::Published(commit))
    }

    /// Exports the tree of a commit not published before into `tree`, with its commit file.
    /// `Ok(Some(_))`: refused, nothing published.
    async fn export_new(
        &self,
        revision: &RevisionFile,
        tree: &Path,
        commit_file: &Path,
    ) -> Result<Option<Refusal>, String> {
        let commit = &revision.commit;
        let repo = self.layout.repo();
        let treeish = if self.subdir.is_empty() {
            commit.sha.clone()
        } else {
            let treeish = format!("{}:{}", commit.sha, self.subdir);
            if !self
                .git
                .is_tree(&repo, &treeish)
                .await
                .map_err(|e| e.to_string())?
            {
                let problem = format!(
                    "--subdir {} is not a directory in commit {} ({}); nothing is published until a commit has it",
                    self.subdir,
                    commit.short(),
                    commit.subject
                );
                tracing::error!(commit = %commit.short(), "{problem}");
                return Ok(Some(Refusal {
                    commit: commit.clone(),
                    problems: vec![problem],
                }));
            }
            treeish
        };
        let scratch = self.layout.revisions().join(format!(
            "{TEMP_PREFIX}{}-{}",
            commit.sha,
            uuid::Uuid::new_v4().simple()
        ));
        let exported = scratch.join("tree");
        let result = async {
            self.git
                .export(&repo, &treeish, &scratch, &exported)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(refusal) = self.check(commit, &exported, tree) {
                return Ok(Some(refusal));
            }
            // A tree left from an earlier run with another subdir, or without its commit file:
            // never `current` (that was checked), so it can go.
            if tree.exists() {
                std::fs::remove_dir_all(tree)
                    .map_err(|e| format!("cannot remove the stale {}: {e}", tree.display()))?;
            }
            layout::write_json_atomic(commit_file, revision)
                .map_err(|e| format!("cannot write {}: {e}", commit_file.display()))?;
            std::fs::rename(&exported, tree).map_err(|e| {
                format!(
                    "cannot move {} to {}: {e}",
                    exported.display(),
                    tree.display()
                )
            })?;
            sync_dir(&self.layout.revisions());
            Ok(None)
        }
        .await;
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    /// Reads the spec files of a tree about to be published. With `--validate`, any problem
    /// refuses the commit; without, problems are logged (the controller keeps the last valid
    /// version of those specs and shows the errors). Files are named as in the repository
    /// (`<subdir>/web.toml`), not by the temporary path they were read from.
    fn check(&self, commit: &Commit, dir: &Path, published_as: &Path) -> Option<Refusal> {
        let problems: Vec<String> = match crate::spec::dir::load_dir_with(dir, &self.config.policy)
        {
            Ok(snapshot) => snapshot
                .errors
                .into_values()
                .map(|mut error| {
                    error.file = self.repo_path(dir, &error.file);
                    error.to_string()
                })
                .collect(),
            Err(e) => vec![format!("{e} (exported to {})", published_as.display())],
        };
        if problems.is_empty() {
            return None;
        }
        if self.config.validate {
            tracing::error!(
                commit = %commit.short(),
                subject = %commit.subject,
                invalid = problems.len(),
                "refusing to publish a commit with invalid spec files (--validate); `current` stays at the last commit published"
            );
            for problem in &problems {
                tracing::error!(commit = %commit.short(), "{problem}");
            }
            Some(Refusal {
                commit: commit.clone(),
                problems,
            })
        } else {
            tracing::warn!(
                commit = %commit.short(),
                invalid = problems.len(),
                "publishing a commit with invalid spec files; the controller keeps their last valid versions (use --validate to refuse such commits)"
            );
            for problem in &problems {
                tracing::warn!(commit = %commit.short(), "{problem}");
            }
            None
        }
    }

    /// `<dir>/x/web.toml` as the repository names it: `<subdir>/x/web.toml`.
    fn repo_path(&self, dir: &Path, file: &str) -> String {
        let relative = Path::new(file)
            .strip_prefix(dir)
            .map_or_else(|_| file.to_owned(), |p| p.display().to_string());
        if self.subdir.is_empty() {
            relative
        } else {
            format!("{}/{relative}", self.subdir)
        }
    }

    /// Points `current` at `revisions/<sha>`: a new link under a temporary name, renamed over the
    /// old one (rename is atomic, so readers see the old target or the new one).
    fn repoint(&self, sha: &str) -> Result<(), String> {
        let link = self.layout.current();
        let tmp = self.layout.root.join(format!(
            "{TEMP_PREFIX}{}-{}",
            layout::CURRENT,
            uuid::Uuid::new_v4().simple()
        ));
        let target = Path::new(layout::REVISIONS).join(sha);
        std::os::unix::fs::symlink(&target, &tmp)
            .map_err(|e| format!("cannot create the link {}: {e}", tmp.display()))?;
        if let Err(e) = std::fs::rename(&tmp, &link) {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("cannot repoint {}: {e}", link.display()));
        }
        sync_dir(&self.layout.root);
        Ok(())
    }

    /// Removes the oldest published revisions beyond `--keep`, and trees without a commit file;
    /// never `keep_sha` (the one `current` points at). Failures are logged: a revision left behind
    /// costs disk space, nothing else.
    fn prune(&self, keep_sha: &str) {
        let revisions = self.layout.revisions();
        let Ok(entries) = std::fs::read_dir(&revisions) else {
            return;
        };
        let mut published = Vec::new();
        let mut trees = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(sha) = name.strip_suffix(COMMIT_SUFFIX) {
                if is_sha(sha) {
                    let file = layout::read_json::<RevisionFile>(&entry.path()).unwrap_or(None);
                    published.push((sha.to_owned(), file.map_or(0, |f| f.published_ms)));
                }
            } else if is_sha(&name) {
                trees.push(name);
            }
        }
        let doomed = to_prune(&published, keep_sha, self.config.keep);
        for sha in trees
            .iter()
            .filter(|t| *t != keep_sha && !published.iter().any(|(s, _)| s == *t))
            .chain(&doomed)
        {
            // The tree first, its commit file after (see the layout's rules).
            let tree = self.layout.revision(sha);
            if tree.exists() {
                if let Err(e) = std::fs::remove_dir_all(&tree) {
                    tracing::warn!(tree = %tree.display(), error = %e, "cannot remove an old revision");
                    continue;
                }
            }
            let _ = std::fs::remove_file(self.layout.commit_file(sha));
            tracing::debug!(commit = %layout::short_sha(sha), "removed an old revision");
        }
    }

    fn record(&mut self, result: &Result<Attempt, String>, started_ms: u64, delay: Duration) {
        let now = now_ms();
        let status = &mut self.status;
        status.last_attempt_ms = Some(started_ms);
        match result {
            Ok(attempt) => {
                if status.failures > 0 {
                    tracing::info!(
                        failures = status.failures,
                        "fetching works again after failed attempts"
                    );
                }
                status.failures = 0;
                status.error = None;
                status.last_success_ms = Some(now);
                match attempt {
                    Attempt::Unchanged(commit) | Attempt::Published(commit) => {
                        status.state = SyncState::Ok;
                        status.published = Some(commit.clone());
                        status.refused = None;
                    }
                    Attempt::Refused(refusal) => {
                        status.state = SyncState::Refused;
                        status.refused = Some(refusal.clone());
                    }
                }
            }
            Err(error) => {
                status.state = SyncState::Failing;
                status.failures = status.failures.saturating_add(1);
                status.error = Some(error.clone());
                tracing::error!(
                    failures = status.failures,
                    retry_in_ms = delay.as_millis() as u64,
                    "sync failed; `current` is unchanged: {error}"
                );
            }
        }
        let next = now.saturating_add(delay.as_millis() as u64);
        status.next_attempt_ms = Some(next);
        status.silent_after_ms =
            Some(next.saturating_add((self.config.timeout + SILENT_GRACE).as_millis() as u64));
        self.write_status();
    }

    fn write_status(&mut self) {
        self.status.updated_ms = now_ms();
        let file = self.layout.status_file();
        if let Err(e) = layout::write_json_atomic(&file, &self.status) {
            tracing::warn!(file = %file.display(), error = %e, "cannot write the sync status");
        }
    }
}

/// Runs the sync until `shutdown` completes: an attempt, then the next one after the interval (or
/// the retry delay after a failure), or at once when `trigger` receives.
pub async fn run(
    config: SyncConfig,
    shutdown: impl Future<Output = ()> + Send,
    mut trigger: mpsc::Receiver<()>,
) -> Result<(), SyncError> {
    let mut syncer = Syncer::prepare(config).await?;
    tokio::pin!(shutdown);
    loop {
        let delay = tokio::select! {
            biased;
            () = &mut shutdown => break,
            (_, delay) = syncer.attempt() => delay,
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(()) = trigger.recv() => tracing::info!("woken up (SIGHUP): fetching now"),
            () = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!("sync stopping");
    syncer.stopped();
    Ok(())
}

/// One attempt (`--once`).
pub async fn once(config: SyncConfig) -> Result<Result<Attempt, String>, SyncError> {
    let mut syncer = Syncer::prepare(config).await?;
    let (result, _) = syncer.attempt().await;
    Ok(result)
}

/// The wait before retry number `failures` (1 for the first): 1 s, doubling, at most `interval`,
/// times `jitter` (0.8 to 1.0, so that many syncs failing together do not retry together).
pub fn retry_delay(failures: u32, interval: Duration, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let delay = RETRY_INITIAL
        .saturating_mul(1 << exponent)
        .min(interval.max(Duration::from_millis(1)));
    delay.mul_f64(jitter.clamp(0.0, 1.0))
}

/// The shas to remove so that the `keep` most recently published remain, and `current` in any case.
pub fn to_prune(published: &[(String, u64)], current: &str, keep: usize) -> Vec<String> {
    let mut newest: Vec<&(String, u64)> = published.iter().collect();
    newest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    newest
        .into_iter()
        .skip(keep)
        .filter(|(sha, _)| sha != current)
        .map(|(sha, _)| sha.clone())
        .collect()
}

/// `--subdir` as the relative, `/`-separated path git names trees by; empty for the whole
/// repository. Absolute paths and `..` are refused.
pub fn normalize_subdir(subdir: &Path) -> Result<String, SyncError> {
    let mut parts = Vec::new();
    for component in subdir.components() {
        match component {
            Component::Normal(part) => match part.to_str() {
                Some(part) => parts.push(part),
                None => {
                    return Err(SyncError::Config(format!(
                        "--subdir {} is not UTF-8",
                        subdir.display()
                    )));
                }
            },
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => {
                return Err(SyncError::Config(format!(
                    "--subdir {} must be a path inside the repository, like `specs` or `clusters/prod` (no leading `/`, no `..`)",
                    subdir.display()
                )));
            }
        }
    }
    Ok(parts.join("/"))
}

fn is_sha(name: &str) -> bool {
    matches!(name.len(), 40 | 64) && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes what a crashed run left: exports and links under temporary names.
fn remove_temporaries(layout: &Layout) {
    for dir in [layout.root.clone(), layout.revisions()] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                continue;
            }
            let path = entry.path();
            let removed = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a leftover");
            }
        }
    }
}

/// Makes a directory's entries (a rename into it) durable. Best effort: a failure here only
/// weakens what survives a power loss, never what a reader sees.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_one_second_to_the_interval() {
        let interval = Duration::from_secs(30);
        let delays: Vec<u64> = (1..=7)
            .map(|n| retry_delay(n, interval, 1.0).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            retry_delay(1, interval, 0.8),
            Duration::from_millis(800),
            "jitter shortens the wait"
        );
        assert_eq!(
            retry_delay(u32::MAX, interval, 1.0),
            interval,
            "no overflow"
        );
        assert_eq!(
            retry_delay(3, Duration::from_millis(500), 1.0),
            Duration::from_millis(500),
            "never longer than a short interval"
        );
    }

    fn sha(c: char) -> String {
        c.to_string().repeat(40)
    }

    #[test]
    fn the_prune_keeps_the_newest_and_current() {
        let published = vec![(sha('a'), 1), (sha('b'), 2), (sha('c'), 3), (sha('d'), 4)];
        assert_eq!(to_prune(&published, &sha('d'), 2), [sha('b'), sha('a')]);
        assert_eq!(to_prune(&published, &sha('d'), 10), Vec::<String>::new());
        // `current` is never removed, even when it is not among the newest.
        assert_eq!(
            to_prune(&published, &sha('a'), 1),
            [sha('c'), sha('b')],
            "current (a) stays"
        );
    }

    #[test]
    fn subdirs_are_relative_paths_inside_the_repository() {
        assert_eq!(normalize_subdir(Path::new("")).unwrap(), "");
        assert_eq!(normalize_subdir(Path::new(".")).unwrap(), "");
        assert_eq!(
            normalize_subdir(Path::new("./clusters//prod/")).unwrap(),
            "clusters/prod"
        );
        for bad in ["/etc", "../other", "specs/../../x"] {
            let error = normalize_subdir(Path::new(bad)).unwrap_err().to_string();
            assert!(error.contains("inside the repository"), "{bad}: {error}");
        }
    }

    #[test]
    fn shas_are_40_or_64_hex_digits() {
        assert!(is_sha(&sha('a')));
        assert!(is_sha(&"0f".repeat(32)));
        assert!(!is_sha("abc"));
        assert!(!is_sha(&"g".repeat(40)));
        assert!(!is_sha(&format!("{}{COMMIT_SUFFIX}", sha('a'))));
    }
}
