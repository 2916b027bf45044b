//! The desired-directory watcher on a real filesystem: every kind of change produces a hint, a
//! symlink repoint moves the watch to the new target, and a missing directory is an error.
//!
//! Hints are waited for with a generous deadline. Exact hint counts depend on timing, so they are
//! not asserted; the one negative check (no hint from a target the link no longer points to) waits
//! for the watcher to go quiet first and only runs after the positive checks have passed.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mesos_reconciler::watch::{WatchError, Watcher, watch};
use tokio::time::{Instant, timeout};

const DEADLINE: Duration = Duration::from_secs(30);
/// Long enough that the tail of a burst has been delivered (the watcher's quiet window is 50 ms).
const SETTLE: Duration = Duration::from_millis(800);

#[tokio::test]
async fn create_edit_and_delete_in_a_nested_dir_each_hint() {
    let tmp = TempDir::new("nested");
    let desired = tmp.path().join("desired");
    fs::create_dir_all(desired.join("team-a/inner")).unwrap();
    let mut watcher = watch(&desired).unwrap();

    let file = desired.join("team-a/inner/web.toml");
    fs::write(&file, "command = \"true\"\n").unwrap();
    expect_hint(&mut watcher, "creating a file in a nested dir").await;
    settle(&mut watcher).await;

    fs::write(&file, "command = \"false\"\n").unwrap();
    expect_hint(&mut watcher, "editing the file").await;
    settle(&mut watcher).await;

    fs::remove_file(&file).unwrap();
    expect_hint(&mut watcher, "deleting the file").await;
    settle(&mut watcher).await;

    fs::create_dir(desired.join("team-b")).unwrap();
    fs::write(desired.join("team-b/new.toml"), "command = \"true\"\n").unwrap();
    expect_hint(&mut watcher, "creating a new subdirectory with a file").await;
}

#[tokio::test]
async fn a_burst_of_changes_gives_at_least_one_hint() {
    let tmp = TempDir::new("burst");
    let desired = tmp.path().join("desired");
    fs::create_dir(&desired).unwrap();
    let mut watcher = watch(&desired).unwrap();

    for i in 0..20 {
        fs::write(
            desired.join(format!("spec-{i}.toml")),
            "command = \"true\"\n",
        )
        .unwrap();
        // Editor leftovers wake the loop too; its re-read ignores them.
        fs::write(desired.join(format!(".spec-{i}.toml.swp")), "x").unwrap();
    }
    expect_hint(&mut watcher, "a burst of 40 writes").await;
}

#[tokio::test]
async fn symlink_repoint_hints_and_moves_the_watch_to_the_new_target() {
    let tmp = TempDir::new("repoint");
    let old = tmp.path().join("worktree-1");
    let new = tmp.path().join("worktree-2");
    fs::create_dir(&old).unwrap();
    fs::create_dir(&new).unwrap();
    fs::write(old.join("web.toml"), "command = \"true\"\n").unwrap();
    fs::write(new.join("web.toml"), "command = \"false\"\n").unwrap();
    let link = tmp.path().join("desired");
    // Relative targets, as git-sync writes them.
    std::os::unix::fs::symlink("worktree-1", &link).unwrap();
    let mut watcher = watch(&link).unwrap();

    fs::write(old.join("before.toml"), "command = \"true\"\n").unwrap();
    expect_hint(&mut watcher, "a change in the first target").await;
    settle(&mut watcher).await;

    // git-sync's atomic publish: a new link under a temporary name renamed over the old one.
    let tmp_link = tmp.path().join("desired.tmp");
    std::os::unix::fs::symlink("worktree-2", &tmp_link).unwrap();
    fs::rename(&tmp_link, &link).unwrap();
    expect_hint(&mut watcher, "repointing the link").await;
    settle(&mut watcher).await;

    fs::write(new.join("added.toml"), "command = \"true\"\n").unwrap();
    expect_hint(&mut watcher, "a change inside the new target").await;
    settle(&mut watcher).await;

    fs::write(old.join("stale.toml"), "command = \"true\"\n").unwrap();
    let stray = timeout(Duration::from_secs(1), watcher.changed()).await;
    assert!(
        stray.is_err(),
        "a change in the old target (no longer linked) produced a hint"
    );

    // The parent is watched for the link's name only; a busy git-sync root must stay quiet.
    fs::create_dir(tmp.path().join("worktree-3")).unwrap();
    let stray = timeout(Duration::from_secs(1), watcher.changed()).await;
    assert!(
        stray.is_err(),
        "a new sibling of the link in its parent produced a hint"
    );
}

#[tokio::test]
async fn a_missing_directory_is_an_error_not_an_empty_set() {
    let tmp = TempDir::new("missing");
    let err = watch(&tmp.path().join("nope")).unwrap_err();
    assert!(matches!(err, WatchError::Unreadable { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");

    let file = tmp.path().join("file.toml");
    fs::write(&file, "").unwrap();
    let err = watch(&file).unwrap_err();
    assert!(matches!(err, WatchError::NotADirectory { .. }), "{err:?}");

    let dangling = tmp.path().join("dangling");
    std::os::unix::fs::symlink("nowhere", &dangling).unwrap();
    let err = watch(&dangling).unwrap_err();
    assert!(matches!(err, WatchError::Unreadable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_directory_that_disappears_and_comes_back_hints_both_times() {
    let tmp = TempDir::new("vanish");
    let desired = tmp.path().join("desired");
    fs::create_dir(&desired).unwrap();
    fs::write(desired.join("web.toml"), "command = \"true\"\n").unwrap();
    let mut watcher = watch(&desired).unwrap();

    fs::remove_dir_all(&desired).unwrap();
    expect_hint(&mut watcher, "removing the directory").await;
    settle(&mut watcher).await;

    fs::create_dir(&desired).unwrap();
    expect_hint(&mut watcher, "recreating the directory").await;
    settle(&mut watcher).await;

    // The new directory is watched, not just its name in the parent.
    fs::write(desired.join("again.toml"), "command = \"true\"\n").unwrap();
    expect_hint(&mut watcher, "a change inside the recreated directory").await;
}

#[tokio::test]
async fn a_dangling_link_that_becomes_valid_again_hints() {
    let tmp = TempDir::new("dangling-later");
    // The target lives outside the link's parent, so no watch sees it being recreated.
    let target = tmp.path().join("worktrees/current");
    fs::create_dir_all(&target).unwrap();
    fs::create_dir(tmp.path().join("root")).unwrap();
    let link = tmp.path().join("root/desired");
    std::os::unix::fs::symlink("../worktrees/current", &link).unwrap();
    let mut watcher = watch(&link).unwrap();

    // The link's target goes away without the link itself changing.
    fs::remove_dir_all(&target).unwrap();
    expect_hint(&mut watcher, "removing the link's target").await;
    settle(&mut watcher).await;

    // Nothing in the watched parent changes, so only the watcher's retry can notice this.
    fs::create_dir(&target).unwrap();
    fs::write(target.join("web.toml"), "command = \"true\"\n").unwrap();
    expect_hint(&mut watcher, "recreating the link's target").await;
}

async fn expect_hint(watcher: &mut Watcher, after: &str) {
    match timeout(DEADLINE, watcher.changed()).await {
        Ok(Some(())) => {}
        Ok(None) => panic!("the watcher stopped while waiting for a hint after {after}"),
        Err(_) => panic!("no hint within {DEADLINE:?} after {after}"),
    }
}

/// Consumes hints until none has come for `SETTLE`, so the next expectation is about the next
/// change only. Bounded by `DEADLINE` so a watcher that never goes quiet fails instead of hanging.
async fn settle(watcher: &mut Watcher) {
    let give_up = Instant::now() + DEADLINE;
    while timeout(SETTLE, watcher.changed()).await.is_ok() {
        assert!(
            Instant::now() < give_up,
            "the watcher kept sending hints for {DEADLINE:?} with nothing changing"
        );
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "mesos-reconciler-watch-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
