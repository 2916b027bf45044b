//! The file-watch adapter: turns filesystem events under the desired directory (and repoints of
//! the directory itself when it is a symlink) into coalesced "desired changed" hints.
//!
//! A hint carries no data and decides nothing. It only wakes the controller loop, which then
//! re-reads the whole directory; that re-read is the truth. So this module errs on the side of
//! waking too often (editor temp files, metadata changes, watcher overflows all produce hints)
//! and never tries to interpret what changed.
//!
//! Symlinked directories are how sync tools publish a new version atomically: git-sync does
//! `ln -s new-worktree tmp && mv -T tmp desired`, a Kubernetes ConfigMap volume swaps a `..data`
//! link inside the directory. A recursive watch on the link's *target* would keep watching the old
//! worktree after such a repoint, so the adapter also watches the link's parent directory
//! (non-recursively) for changes of that one name, and after every burst re-resolves the link and
//! moves the recursive watch to the new target.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

/// A burst ends when this long passes without another event; then one hint is sent.
pub const QUIET: Duration = Duration::from_millis(50);

/// A directory that never stops changing (a log written into it, a sync tool looping, 10,000
/// files being copied in) would otherwise never produce a hint; after this long a hint is sent
/// even mid-burst, so what has arrived is applied while the rest is still being written. A
/// re-read only parses the files that changed, so a long burst costs a scan per half second; for
/// a large directory, whose scan alone takes a while, see [`burst_limit`].
pub const MAX_BURST: Duration = Duration::from_millis(500);

/// Mid-burst hints are at least this many scans apart.
const SCAN_COST_RATIO: u32 = 10;

/// Mid-burst hints are never further apart than this.
const MAX_BURST_CAP: Duration = Duration::from_secs(5);

/// How long a burst may last before a hint is sent mid-burst, given how long the last scan of the
/// directory took: [`MAX_BURST`], or ten scans if that is longer (at most [`MAX_BURST_CAP`]).
/// Each scan `stat`s every file and reads the directory, which holds the directory's lock against
/// the writer's creates and renames. At 100,000 files a scan takes a few hundred milliseconds, and
/// a scan every half second kept the controller busy for the whole burst and slowed the writer
/// itself several times (`bench converge`). The end of a burst is still hinted after [`QUIET`].
pub fn burst_limit(last_scan: Duration) -> Duration {
    (last_scan * SCAN_COST_RATIO).clamp(MAX_BURST, MAX_BURST_CAP)
}

/// While the directory cannot be resolved (a dangling link, a deleted target), events may come
/// from places no watch covers, so resolution is retried this often.
const RETRY_UNRESOLVED: Duration = Duration::from_secs(1);

/// Why the watch could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The directory (or the target of the link) does not exist or cannot be read. The controller
    /// reports this; a missing directory never counts as the empty set.
    #[error("desired directory {path} cannot be read: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The path exists but is (or resolves to) something other than a directory.
    #[error("desired directory {path} is not a directory (it resolves to {resolved})")]
    NotADirectory { path: PathBuf, resolved: PathBuf },
    /// The operating system refused the watch (inotify limits, permissions).
    #[error("cannot watch {path}: {source}")]
    Notify {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    /// The coalescing task needs a tokio runtime to run on.
    #[error("the desired-directory watcher must be started inside a tokio runtime")]
    NoRuntime,
}

/// A running watch. Dropping it stops the watch (the OS watches and the coalescing task).
#[derive(Debug)]
pub struct Watcher {
    hints: mpsc::Receiver<()>,
    task: JoinHandle<()>,
    /// The last scan's duration in microseconds, shared with the coalescing task.
    scan_cost_us: Arc<AtomicU64>,
}

impl Watcher {
    /// Waits for the next hint. Returns `None` only if the watch stopped for good (it does not
    /// stop on its own while the `Watcher` lives, so in practice this waits forever or yields
    /// `Some`). Cancel-safe: a hint is never lost when this future is dropped in a `select!`.
    pub async fn changed(&mut self) -> Option<()> {
        self.hints.recv().await
    }

    /// Tells the watch how long the last scan of the directory took (see [`burst_limit`]).
    pub fn note_scan_cost(&self, scan: Duration) {
        let us = u64::try_from(scan.as_micros()).unwrap_or(u64::MAX);
        self.scan_cost_us.store(us, Ordering::Relaxed);
    }

    /// Takes a pending hint without waiting, if there is one.
    pub fn try_changed(&mut self) -> bool {
        self.hints.try_recv().is_ok()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // The task owns the notify watchers; aborting it drops them, which removes the OS watches.
        self.task.abort();
    }
}

/// Starts watching `desired`. Must be called inside a tokio runtime.
///
/// Fails if `desired` does not exist, is not a directory, or cannot be watched. Once started, a
/// directory that disappears is reported as a hint (the controller's re-read then sees the error),
/// and one that comes back, or a link that is repointed, is watched again.
pub fn watch(desired: &Path) -> Result<Watcher, WatchError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
    // Absolute but not canonical: the link itself must stay in the path, or a repoint of it would
    // go unnoticed.
    let link = std::path::absolute(desired).map_err(|source| WatchError::Unreadable {
        path: desired.to_owned(),
        source,
    })?;
    let target = resolve(&link)?;

    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let parent = match (link.parent(), link.file_name()) {
        (Some(parent), Some(_)) => Some(watch_parent(parent, &link, raw_tx.clone())?),
        // The filesystem root (or a path ending in `..`) has no parent entry to watch; its
        // contents are still watched through the target.
        _ => None,
    };
    let target_watch = watch_target(&target, 0, raw_tx.clone())?;

    // One slot: if a hint is already waiting, the loop has not re-read yet, and that one re-read
    // will see this burst's changes too.
    let (hint_tx, hints) = mpsc::channel(1);
    let scan_cost_us = Arc::new(AtomicU64::new(0));
    let coalescer = Coalescer {
        scan_cost_us: Arc::clone(&scan_cost_us),
        link,
        raw_tx,
        raw_rx,
        hint_tx,
        _parent: parent,
        target: Some(TargetWatch {
            path: target,
            generation: 0,
            _watcher: target_watch,
        }),
        next_generation: 1,
    };
    let task = runtime.spawn(coalescer.run());
    Ok(Watcher {
        hints,
        task,
        scan_cost_us,
    })
}

/// Where a raw event came from. Target watches are numbered so that events still queued from a
/// target the link no longer points to can be told apart and dropped.
#[derive(Debug)]
enum Raw {
    /// An event in the link's parent directory that concerns the link's name.
    Parent,
    /// An event under the target with this generation.
    Target(u64),
    /// The watcher itself reported a problem (for instance an overflowed event queue): something
    /// may have changed unseen, so it counts as a change.
    Error,
}

struct TargetWatch {
    path: PathBuf,
    generation: u64,
    _watcher: RecommendedWatcher,
}

/// The task that owns the OS watches and turns raw events into hints.
struct Coalescer {
    link: PathBuf,
    raw_tx: mpsc::UnboundedSender<Raw>,
    raw_rx: mpsc::UnboundedReceiver<Raw>,
    hint_tx: mpsc::Sender<()>,
    _parent: Option<RecommendedWatcher>,
    target: Option<TargetWatch>,
    next_generation: u64,
    scan_cost_us: Arc<AtomicU64>,
}

impl Coalescer {
    async fn run(mut self) {
        loop {
            let first = if self.target.is_some() {
                self.raw_rx.recv().await
            } else {
                // Unresolved: wake up now and then to try again, since the event that would tell
                // us (e.g. the link's target being recreated) may be outside every watch.
                match tokio::time::timeout(RETRY_UNRESOLVED, self.raw_rx.recv()).await {
                    Ok(raw) => raw,
                    Err(_elapsed) => {
                        if self.reresolve() {
                            self.hint();
                        }
                        continue;
                    }
                }
            };
            let Some(first) = first else { return };
            if !self.counts(&first) {
                continue;
            }
            self.wait_for_quiet().await;
            self.reresolve();
            if !self.hint() {
                return;
            }
        }
    }

    /// Waits until `QUIET` passes with no event that counts, or [`burst_limit`] since the burst
    /// began.
    async fn wait_for_quiet(&mut self) {
        let last_scan = Duration::from_micros(self.scan_cost_us.load(Ordering::Relaxed));
        let burst_end = Instant::now() + burst_limit(last_scan);
        let mut quiet_end = (Instant::now() + QUIET).min(burst_end);
        loop {
            tokio::select! {
                raw = self.raw_rx.recv() => {
                    let Some(raw) = raw else { return };
                    // A repoint inside a burst must move the watch at once, or changes made in
                    // the new target during the rest of the burst would be missed.
                    if matches!(raw, Raw::Parent) {
                        self.reresolve();
                    }
                    if self.counts(&raw) {
                        quiet_end = (Instant::now() + QUIET).min(burst_end);
                    }
                }
                () = sleep_until(quiet_end) => return,
            }
        }
    }

    fn counts(&self, raw: &Raw) -> bool {
        match raw {
            Raw::Parent | Raw::Error => true,
            Raw::Target(generation) => self
                .target
                .as_ref()
                .is_some_and(|target| target.generation == *generation),
        }
    }

    /// Resolves the link again and, if it now points elsewhere (or nowhere, or somewhere again),
    /// moves the recursive watch. Returns whether the watched target changed.
    fn reresolve(&mut self) -> bool {
        let now = resolve(&self.link).ok();
        let before = self.target.as_ref().map(|target| target.path.clone());
        if now == before {
            return false;
        }
        // Drop the old watch first, so the old target's events stop even if the new watch fails.
        self.target = None;
        if let Some(path) = now {
            let generation = self.next_generation;
            self.next_generation += 1;
            match watch_target(&path, generation, self.raw_tx.clone()) {
                Ok(watcher) => {
                    tracing::info!(target = %path.display(), link = %self.link.display(), "desired directory now resolves to a new target");
                    self.target = Some(TargetWatch {
                        path,
                        generation,
                        _watcher: watcher,
                    });
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot watch the desired directory's new target; will retry")
                }
            }
        } else {
            tracing::warn!(link = %self.link.display(), "desired directory disappeared");
        }
        true
    }

    /// Sends a hint unless one is already waiting. Returns false when nobody listens any more.
    fn hint(&self) -> bool {
        match self.hint_tx.try_send(()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(())) => true,
            Err(mpsc::error::TrySendError::Closed(())) => false,
        }
    }
}

/// The canonical directory `link` points to (through any chain of links).
fn resolve(link: &Path) -> Result<PathBuf, WatchError> {
    let resolved = std::fs::canonicalize(link).map_err(|source| WatchError::Unreadable {
        path: link.to_owned(),
        source,
    })?;
    let metadata = std::fs::metadata(&resolved).map_err(|source| WatchError::Unreadable {
        path: link.to_owned(),
        source,
    })?;
    if metadata.is_dir() {
        Ok(resolved)
    } else {
        Err(WatchError::NotADirectory {
            path: link.to_owned(),
            resolved,
        })
    }
}

/// Watches the link's parent directory, forwarding only events about the link's own name (or the
/// parent itself going away): a busy parent (a home directory, a git-sync root with many
/// worktrees) must not wake the loop.
fn watch_parent(
    parent: &Path,
    link: &Path,
    raw_tx: mpsc::UnboundedSender<Raw>,
) -> Result<RecommendedWatcher, WatchError> {
    // notify reports paths as the watched path joined with the entry's name, so comparing with
    // the absolute (not canonical) link path is exact.
    let (parent_path, link) = (parent.to_owned(), link.to_owned());
    let relevant = {
        let parent = parent_path.clone();
        move |path: &PathBuf| *path == link || *path == parent
    };
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if event.need_rescan() => {
                let _ = raw_tx.send(Raw::Error);
            }
            Ok(event) => {
                if is_change(&event) && event.paths.iter().any(&relevant) {
                    let _ = raw_tx.send(Raw::Parent);
                }
            }
            Err(err) => {
                tracing::warn!(%err, "file watcher error on the desired directory's parent");
                let _ = raw_tx.send(Raw::Error);
            }
        })
        .map_err(|source| WatchError::Notify {
            path: parent_path.clone(),
            source,
        })?;
    watcher
        .watch(&parent_path, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError::Notify {
            path: parent_path,
            source,
        })?;
    Ok(watcher)
}

/// Whether an event can mean the directory's content changed. Opening, reading and closing a file
/// without writing are not changes, and must not count: the controller's own re-read opens every
/// spec file, and counting that would wake it again, forever. Closing a file opened for writing
/// does count (some editors and sync tools only show up that way).
fn is_change(event: &notify::Event) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Watches the resolved directory recursively; every change there counts.
fn watch_target(
    target: &Path,
    generation: u64,
    raw_tx: mpsc::UnboundedSender<Raw>,
) -> Result<RecommendedWatcher, WatchError> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let raw = match event {
            Ok(event) if !is_change(&event) => return,
            Ok(_) => Raw::Target(generation),
            Err(err) => {
                tracing::warn!(%err, "file watcher error in the desired directory");
                Raw::Error
            }
        };
        let _ = raw_tx.send(raw);
    })
    .map_err(|source| WatchError::Notify {
        path: target.to_owned(),
        source,
    })?;
    watcher
        .watch(target, RecursiveMode::Recursive)
        .map_err(|source| WatchError::Notify {
            path: target.to_owned(),
            source,
        })?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    //! The coalescing logic on tokio's paused clock, fed raw events directly (no filesystem).

    use super::*;

    /// A coalescer whose link never resolves, so only `Raw::Error` events count and no target
    /// watch is ever installed.
    fn coalescer() -> (mpsc::UnboundedSender<Raw>, mpsc::Receiver<()>) {
        let (raw, hints, _) = coalescer_with_cost();
        (raw, hints)
    }

    /// [`coalescer`], with the scan cost the controller would note.
    fn coalescer_with_cost() -> (
        mpsc::UnboundedSender<Raw>,
        mpsc::Receiver<()>,
        Arc<AtomicU64>,
    ) {
        let scan_cost_us = Arc::new(AtomicU64::new(0));
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let (hint_tx, hints) = mpsc::channel(1);
        let coalescer = Coalescer {
            link: PathBuf::from("/nonexistent/mesos-reconciler/watch-unit-test"),
            raw_tx: raw_tx.clone(),
            raw_rx,
            hint_tx,
            _parent: None,
            target: None,
            next_generation: 1,
            scan_cost_us: Arc::clone(&scan_cost_us),
        };
        tokio::spawn(coalescer.run());
        (raw_tx, hints, scan_cost_us)
    }

    #[test]
    fn mid_burst_hints_are_ten_scans_apart_within_bounds() {
        assert_eq!(burst_limit(Duration::ZERO), MAX_BURST);
        assert_eq!(burst_limit(Duration::from_millis(20)), MAX_BURST);
        assert_eq!(
            burst_limit(Duration::from_millis(300)),
            Duration::from_secs(3)
        );
        assert_eq!(burst_limit(Duration::from_secs(60)), MAX_BURST_CAP);
    }

    #[tokio::test(start_paused = true)]
    async fn a_costly_scan_spaces_the_hints_of_a_long_burst() {
        let (raw, mut hints, cost) = coalescer_with_cost();
        cost.store(300_000, Ordering::Relaxed);
        let start = Instant::now();
        let mut hinted_at = None;
        while start.elapsed() < Duration::from_secs(4) {
            raw.send(Raw::Error).unwrap();
            tokio::time::sleep(QUIET / 2).await;
            if hinted_at.is_none() && hints.try_recv().is_ok() {
                hinted_at = Some(start.elapsed());
            }
        }
        let hinted_at = hinted_at.expect("no hint during a 4 s burst");
        assert!(
            hinted_at >= Duration::from_secs(3),
            "hinted after {hinted_at:?}, before ten scans of 300 ms"
        );
        // A single change after the burst is still hinted as soon as the directory is quiet.
        tokio::time::sleep(Duration::from_secs(10)).await;
        while hints.try_recv().is_ok() {}
        raw.send(Raw::Error).unwrap();
        tokio::time::sleep(QUIET * 2).await;
        assert!(
            hints.try_recv().is_ok(),
            "a lone change waited for the burst limit"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_gives_one_hint_after_the_quiet_window() {
        let (raw, mut hints) = coalescer();
        for _ in 0..5 {
            raw.send(Raw::Error).unwrap();
            tokio::time::sleep(QUIET * 2 / 3).await;
            assert!(hints.try_recv().is_err(), "hint before the burst ended");
        }
        tokio::time::sleep(QUIET).await;
        assert!(hints.try_recv().is_ok(), "no hint after the burst");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(hints.try_recv().is_err(), "a second hint for one burst");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_that_never_ends_still_hints() {
        let (raw, mut hints) = coalescer();
        let start = Instant::now();
        let mut hinted_at = None;
        while start.elapsed() < MAX_BURST * 2 {
            raw.send(Raw::Error).unwrap();
            tokio::time::sleep(QUIET / 2).await;
            if hinted_at.is_none() && hints.try_recv().is_ok() {
                hinted_at = Some(start.elapsed());
            }
        }
        let hinted_at = hinted_at.expect("no hint during a burst twice as long as MAX_BURST");
        assert!(hinted_at >= MAX_BURST, "hinted after {hinted_at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn events_from_a_target_no_longer_watched_are_dropped() {
        let (raw, mut hints) = coalescer();
        raw.send(Raw::Target(0)).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(hints.try_recv().is_err(), "a stale target's event hinted");
        raw.send(Raw::Parent).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            hints.try_recv().is_ok(),
            "a change of the link's name did not hint"
        );
    }
}
