//! Helpers for the git tests: a real repository (`git init --bare` reached through a `file://`
//! URL, and a working clone that commits and pushes to it, force-pushes included), and
//! `mesos-reconciler sync` run as a child process (its log kept in a file, printed when a test
//! fails) or once.
//!
//! Every git command of a test runs with a fixed identity and without the user's or the system's
//! git configuration, so a developer's `~/.gitconfig` cannot change what a test sees. The sync
//! under test gets the same environment.
//!
//! Included by path (`#[path = "support/git.rs"] mod git;`).

#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mesos_reconciler::sync::layout::{Layout, RevisionFile, SyncStatus, read_json};

/// How long a wait may take: generous, for a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

/// The environment every git of a test runs with (the tests' own commands and the sync's).
pub const GIT_ENV: [(&str, &str); 8] = [
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_AUTHOR_NAME", "Ada Tester"),
    ("GIT_AUTHOR_EMAIL", "ada@example.org"),
    ("GIT_COMMITTER_NAME", "Ada Tester"),
    ("GIT_COMMITTER_EMAIL", "ada@example.org"),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("LC_ALL", "C"),
];

/// Runs git in `dir`; panics with its output if it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .envs(GIT_ENV)
        .output()
        .expect("git runs (.ci/run installs it)");
    assert!(
        out.status.success(),
        "git {} in {} failed: {}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare repository and a working clone that pushes to its `main`.
#[derive(Debug)]
pub struct Repo {
    /// The bare repository (what `sync --repo` fetches from).
    pub origin: PathBuf,
    /// The clone commits are made in.
    pub work: PathBuf,
}

impl Repo {
    /// `<dir>/origin.git` (bare) and `<dir>/work` (on `main`).
    pub fn new(dir: &Path) -> Repo {
        let origin = dir.join("origin.git");
        let work = dir.join("work");
        fs::create_dir_all(&work).unwrap();
        git(
            dir,
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                "origin.git",
            ],
        );
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        Repo { origin, work }
    }

    /// `file:///.../origin.git`.
    pub fn url(&self) -> String {
        format!("file://{}", self.origin.display())
    }

    /// Writes a file of the working clone (creating its directories).
    pub fn write(&self, path: &str, text: &str) {
        let file = self.work.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, text).unwrap();
    }

    /// `git rm` of files.
    pub fn remove(&self, paths: &[&str]) {
        let mut args = vec!["rm", "--quiet"];
        args.extend(paths);
        git(&self.work, &args);
    }

    /// Commits everything and pushes it to `main`; returns the new sha.
    pub fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "--all"]);
        git(
            &self.work,
            &["commit", "--quiet", "--allow-empty", "-m", message],
        );
        git(
            &self.work,
            &[
                "push",
                "--quiet",
                self.origin.to_str().unwrap(),
                "HEAD:refs/heads/main",
            ],
        );
        self.head()
    }

    /// Moves `main` back (or anywhere) to `sha` with a force-push, as someone rewriting the branch.
    pub fn force_push(&self, sha: &str) {
        git(&self.work, &["reset", "--quiet", "--hard", sha]);
        git(
            &self.work,
            &[
                "push",
                "--quiet",
                "--force",
                self.origin.to_str().unwrap(),
                "HEAD:refs/heads/main",
            ],
        );
    }

    pub fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_owned()
    }
}

/// The `mesos-reconciler sync` command for a repository and root, with the tests' git
/// environment; the caller adds `--once`, `--interval`, ...
pub fn sync_command(repo: &str, subdir: &str, root: &Path) -> Command {
    sync_command_on(repo, "main", subdir, root)
}

/// [`sync_command`] following `branch`.
pub fn sync_command_on(repo: &str, branch: &str, subdir: &str, root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mesos-reconciler"));
    command
        .args(["sync", "--repo", repo, "--branch", branch, "--root"])
        .arg(root)
        .envs(GIT_ENV)
        .env("MESOS_RECONCILER_LOG", "info")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("MESOS_RECONCILER_SYNC_") {
            command.env_remove(key);
        }
    }
    if !subdir.is_empty() {
        command.args(["--subdir", subdir]);
    }
    command
}

/// `sync --once` with `extra` arguments.
pub fn sync_once(repo: &Repo, subdir: &str, root: &Path, extra: &[&str]) -> Output {
    sync_command(&repo.url(), subdir, root)
        .arg("--once")
        .args(extra)
        .output()
        .expect("the binary runs")
}

/// stdout and stderr of a finished command, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `sync` running as a child process, its stderr in `<log>`. Killed when dropped; its log is
/// printed if the test is failing.
#[derive(Debug)]
pub struct SyncProc {
    child: std::process::Child,
    pub log: PathBuf,
}

impl SyncProc {
    /// Starts `sync` (no `--once`) with `extra` arguments, logging to `log`.
    pub fn start(repo: &str, subdir: &str, root: &Path, extra: &[&str], log: &Path) -> SyncProc {
        let file = fs::File::create(log).expect("create the sync log");
        let child = sync_command(repo, subdir, root)
            .args(extra)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn mesos-reconciler sync");
        SyncProc {
            child,
            log: log.to_owned(),
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`) through the shell's `kill` (the tests may not use
    /// `unsafe` for libc).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Waits for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if let Some(status) = self.child.try_wait().expect("poll the sync") {
                return status.code();
            }
            std::thread::sleep(POLL);
        }
        panic!("the sync did not exit within {DEADLINE:?}");
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SyncProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- sync log ({}) -----", self.log.display());
            eprintln!("{}", self.log_text());
            eprintln!("----- end of sync log -----");
        }
    }
}

/// The sha `<root>/current` points at, if any.
pub fn current_sha(root: &Path) -> Option<String> {
    Layout::new(root)
        .current_sha()
        .expect("current is a link into revisions/")
}

/// The sync's status file.
pub fn sync_status(root: &Path) -> Option<SyncStatus> {
    read_json(&Layout::new(root).status_file()).expect("the status file parses")
}

/// The commit file of a published revision.
pub fn revision_file(root: &Path, sha: &str) -> RevisionFile {
    read_json(&Layout::new(root).commit_file(sha))
        .expect("the commit file parses")
        .unwrap_or_else(|| panic!("no commit file for {sha}"))
}

/// The published trees (directories named by a sha) under `<root>/revisions`, sorted.
pub fn revision_dirs(root: &Path) -> Vec<String> {
    let mut dirs: Vec<String> = fs::read_dir(Layout::new(root).revisions())
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    dirs.sort();
    dirs
}

/// Polls `check` (a plain function of the file system) until it returns `Ok`, at most
/// [`DEADLINE`]; panics with `what` and its last answer.
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < DEADLINE {
        match check() {
            Ok(v) => return v,
            Err(seen) => last = seen,
        }
        std::thread::sleep(POLL);
    }
    panic!("timed out after {DEADLINE:?} waiting for {what}; last seen: {last}");
}

/// [`wait_until`] for async tests: polls without blocking the runtime's thread (the controller
/// and the dev cluster of an end-to-end test run on it).
pub async fn wait_until_async<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < DEADLINE {
        match check() {
            Ok(v) => return v,
            Err(seen) => last = seen,
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("timed out after {DEADLINE:?} waiting for {what}; last seen: {last}");
}

/// A directory under the system temp dir, removed on drop (kept, and named, if the test fails).
#[derive(Debug)]
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!(
            "mesos-reconciler-git-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir_all(&path).unwrap();
        Scratch { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
