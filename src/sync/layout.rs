//! The sync root on disk, and the two files the controller reads from it.
//!
//! ```text
//! <root>/
//!   current                  -> revisions/<sha>   (a relative symlink, repointed with rename)
//!   revisions/<sha>/         the tree of --subdir at that commit, exactly as git has it
//!   revisions/<sha>.commit.json
//!                            the commit (sha, author, date, subject) beside its tree
//!   sync-status.json         what the sync last did: published commit, last success, error
//!   repo.git/                the bare repository fetches go into
//! ```
//!
//! Every file here is written to a temporary name in the same directory and renamed into place, so a
//! reader sees the old version or the new one, never half of one. A revision's `.commit.json` is
//! renamed into place before its tree, and removed after it, so "the tree exists" implies "its
//! commit file exists".
//!
//! The controller uses [`commit_of_tree`] to learn which commit a published tree came from, and
//! [`find_status`] to find the status file of the sync that publishes its desired directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The symlink the controller's `--desired` points at.
pub const CURRENT: &str = "current";
/// The directory of published trees.
pub const REVISIONS: &str = "revisions";
/// The sync's status file.
pub const STATUS_FILE: &str = "sync-status.json";
/// The bare repository.
pub const REPO: &str = "repo.git";
/// A revision's commit file is `<tree>` + this.
pub const COMMIT_SUFFIX: &str = ".commit.json";
/// Temporary names (trees being exported, links and files being written) start with this, so the
/// prune and the controller's ignore rules (a leading dot) leave them alone.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A git commit, as the sync records it and the controller shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Commit {
    /// The full object name (40 hex digits, 64 in a SHA-256 repository).
    pub sha: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// The author date, ISO 8601 with the author's offset (`2024-05-01T12:00:03+02:00`).
    pub date: String,
    /// The first line of the message.
    pub subject: String,
}

/// How many hex digits a short sha has (git's default abbreviation).
pub const SHORT_SHA: usize = 7;

impl Commit {
    /// The sha abbreviated to [`SHORT_SHA`] digits, as in log lines (`commit=abc1234`).
    pub fn short(&self) -> &str {
        short_sha(&self.sha)
    }
}

/// `sha` abbreviated to [`SHORT_SHA`] digits (the whole text if it is shorter or not ASCII).
pub fn short_sha(sha: &str) -> &str {
    sha.get(..SHORT_SHA).unwrap_or(sha)
}

/// The contents of `revisions/<sha>.commit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RevisionFile {
    #[serde(flatten)]
    pub commit: Commit,
    /// The branch it was fetched from.
    pub branch: String,
    /// The directory of the repository the tree is (empty: the whole repository).
    pub subdir: String,
    /// When it was (last) published, ms since the Unix epoch; the prune keeps the newest.
    pub published_ms: u64,
}

/// What the sync is doing, as `sync-status.json` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Started, no attempt finished yet.
    #[default]
    Starting,
    /// The last attempt fetched and published the branch's head (or it was already current).
    Ok,
    /// The last attempt failed (fetch, export, disk); `current` is unchanged and it is retried.
    Failing,
    /// The branch's head was fetched but refused (`--validate` found invalid specs, or `--subdir`
    /// is missing from it); `current` stays at the last commit published.
    Refused,
    /// The sync stopped (SIGTERM); nothing updates `current` until it runs again.
    Stopped,
}

impl SyncState {
    pub fn name(self) -> &'static str {
        match self {
            SyncState::Starting => "starting",
            SyncState::Ok => "ok",
            SyncState::Failing => "failing",
            SyncState::Refused => "refused",
            SyncState::Stopped => "stopped",
        }
    }
}

/// A commit the sync would not publish, and why.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Refusal {
    pub commit: Commit,
    /// One line per problem: `specs/web.toml:3:9: mem: ...`, or why the tree is unusable.
    pub problems: Vec<String>,
}

/// The contents of `sync-status.json`, rewritten after every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncStatus {
    /// The repository URL, with any password replaced by `***`.
    pub repo: String,
    pub branch: String,
    pub subdir: String,
    pub state: SyncState,
    /// Flux's notation of the branch head last fetched: `main@sha1:<sha>`.
    pub revision: Option<String>,
    /// The commit `current` points at.
    pub published: Option<Commit>,
    /// The last attempt that fetched successfully ("last sync"), ms since the Unix epoch.
    pub last_success_ms: Option<u64>,
    pub last_attempt_ms: Option<u64>,
    /// Consecutive failed attempts (0 after a success).
    pub failures: u32,
    /// Why the last attempt failed, while `failures` > 0.
    pub error: Option<String>,
    /// The branch head, when it was refused.
    pub refused: Option<Refusal>,
    /// When the next attempt is due.
    pub next_attempt_ms: Option<u64>,
    /// If this file has not been rewritten by then, the sync is not running (it writes it after
    /// every attempt, and an attempt is bounded by the git timeout).
    pub silent_after_ms: Option<u64>,
    /// When the file was written.
    pub updated_ms: u64,
    pub pid: u32,
}

/// Paths in one sync root.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    pub fn current(&self) -> PathBuf {
        self.root.join(CURRENT)
    }

    pub fn revisions(&self) -> PathBuf {
        self.root.join(REVISIONS)
    }

    pub fn revision(&self, sha: &str) -> PathBuf {
        self.revisions().join(sha)
    }

    pub fn commit_file(&self, sha: &str) -> PathBuf {
        self.revisions().join(format!("{sha}{COMMIT_SUFFIX}"))
    }

    pub fn status_file(&self) -> PathBuf {
        self.root.join(STATUS_FILE)
    }

    pub fn repo(&self) -> PathBuf {
        self.root.join(REPO)
    }

    /// The sha `current` points at: `None` if there is no `current` yet. An error if `current` is
    /// something other than a link into `revisions/` (the sync never replaces what it did not make).
    pub fn current_sha(&self) -> Result<Option<String>, String> {
        let link = self.current();
        let target = match fs::read_link(&link) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                return Err(format!(
                    "{} exists and is not a symlink; the sync only replaces the link it made: move it away, or use another --root",
                    link.display()
                ));
            }
            Err(e) => return Err(format!("cannot read the link {}: {e}", link.display())),
        };
        let mut parts = target.components();
        let (Some(first), Some(second), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "{} points at {}, not at {REVISIONS}/<sha>; move it away, or use another --root",
                link.display(),
                target.display()
            ));
        };
        if first.as_os_str() != REVISIONS {
            return Err(format!(
                "{} points at {}, not at {REVISIONS}/<sha>; move it away, or use another --root",
                link.display(),
                target.display()
            ));
        }
        Ok(Some(second.as_os_str().to_string_lossy().into_owned()))
    }
}

/// Writes `value` as pretty JSON to `path` through a temporary file in the same directory and a
/// rename, then syncs the file, so readers see the old or the new file, whole.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        "{TEMP_PREFIX}{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let written = (|| {
        use std::io::Write as _;
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Reads a JSON file; `Ok(None)` if it does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, String> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{} is not valid: {e}", path.display()))
}

/// The commit a directory's tree was published from: the `<dir>.commit.json` beside it, or beside
/// one of its ancestors (the desired directory may be a subdirectory of a published tree). `dir`
/// should be canonical (the target of `current`, not the link), so the answer describes the very
/// tree that was read. `Ok(None)`: not a published tree.
pub fn commit_of_tree(dir: &Path) -> Result<Option<Commit>, String> {
    for tree in dir.ancestors() {
        let Some(name) = tree.file_name() else {
            break;
        };
        let file = tree.with_file_name(format!("{}{COMMIT_SUFFIX}", name.to_string_lossy()));
        if let Some(revision) = read_json::<RevisionFile>(&file)? {
            return Ok(Some(revision.commit));
        }
    }
    Ok(None)
}

/// The status file of the sync root that `desired` (as configured) or `canonical` (the directory
/// actually read) lies in: the first ancestor holding both `sync-status.json` and `revisions/`.
pub fn find_status(desired: &Path, canonical: &Path) -> Option<PathBuf> {
    let desired = std::path::absolute(desired).unwrap_or_else(|_| desired.to_owned());
    [desired.as_path(), canonical]
        .into_iter()
        .flat_map(Path::ancestors)
        .map(|dir| dir.join(STATUS_FILE))
        .find(|file| {
            file.is_file()
                && file
                    .parent()
                    .is_some_and(|dir| dir.join(REVISIONS).is_dir())
        })
}

/// A URL with its password (if any) replaced by `***`, for logs and status files. Text that is not
/// a URL (`git@host:repo.git`, a path) is returned as it is: it has no password in it.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The password in a URL as written and decoded (empty if it has none), so that it can be cut
/// out of git's messages too.
pub fn url_secrets(url: &str) -> Vec<String> {
    let Some(password) = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    else {
        return Vec::new();
    };
    let decoded = percent_encoding::percent_decode_str(&password)
        .decode_utf8_lossy()
        .into_owned();
    let mut secrets = vec![password];
    if !secrets.contains(&decoded) {
        secrets.push(decoded);
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_cut_out_of_urls() {
        assert_eq!(
            redact_url("https://bot:s3cr%2Ft@git.example.org/ops/specs.git"),
            "https://bot:***@git.example.org/ops/specs.git"
        );
        assert_eq!(
            url_secrets("https://bot:s3cr%2Ft@git.example.org/x.git"),
            ["s3cr%2Ft", "s3cr/t"]
        );
        for plain in [
            "https://git.example.org/ops/specs.git",
            "git@github.com:ops/specs.git",
            "file:///srv/git/specs.git",
            "/srv/git/specs.git",
        ] {
            assert_eq!(redact_url(plain), plain);
            assert!(url_secrets(plain).is_empty());
        }
    }

    #[test]
    fn short_shas_are_seven_digits() {
        let commit = Commit {
            sha: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            ..Commit::default()
        };
        assert_eq!(commit.short(), "0123456");
        assert_eq!(short_sha("abc"), "abc");
    }

    #[test]
    fn a_revision_file_is_flat_json() {
        let file = RevisionFile {
            commit: Commit {
                sha: "ab".repeat(20),
                author: "A U Thor <a@example.org>".to_owned(),
                date: "2024-05-01T12:00:03+02:00".to_owned(),
                subject: "web: 2 instances".to_owned(),
            },
            branch: "main".to_owned(),
            subdir: "specs".to_owned(),
            published_ms: 1,
        };
        let json: serde_json::Value = serde_json::to_value(&file).unwrap();
        assert_eq!(json["sha"], "ab".repeat(20));
        assert_eq!(json["subject"], "web: 2 instances");
        assert_eq!(json["subdir"], "specs");
        let back: RevisionFile = serde_json::from_value(json).unwrap();
        assert_eq!(back, file);
    }

    #[test]
    fn the_commit_of_a_tree_is_found_beside_it_or_an_ancestor() {
        let root =
            std::env::temp_dir().join(format!("mr-layout-{}", uuid::Uuid::new_v4().simple()));
        let layout = Layout::new(&root);
        let sha = "cd".repeat(20);
        fs::create_dir_all(layout.revision(&sha).join("team-a")).unwrap();
        let revision = RevisionFile {
            commit: Commit {
                sha: sha.clone(),
                subject: "s".to_owned(),
                ..Commit::default()
            },
            ..RevisionFile::default()
        };
        write_json_atomic(&layout.commit_file(&sha), &revision).unwrap();
        let found = commit_of_tree(&layout.revision(&sha)).unwrap().unwrap();
        assert_eq!(found.sha, sha);
        let found = commit_of_tree(&layout.revision(&sha).join("team-a"))
            .unwrap()
            .unwrap();
        assert_eq!(found.sha, sha);
        assert_eq!(commit_of_tree(&root).unwrap(), None);

        fs::write(layout.commit_file(&sha), "{not json").unwrap();
        let error = commit_of_tree(&layout.revision(&sha)).unwrap_err();
        assert!(error.contains(".commit.json is not valid"), "{error}");

        // The status file is found from the link as configured.
        assert_eq!(find_status(&layout.current(), &layout.revision(&sha)), None);
        write_json_atomic(&layout.status_file(), &SyncStatus::default()).unwrap();
        assert_eq!(
            find_status(&layout.current(), &layout.revision(&sha)),
            Some(layout.status_file())
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn current_must_be_a_link_into_revisions() {
        let root =
            std::env::temp_dir().join(format!("mr-layout-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&root).unwrap();
        let layout = Layout::new(&root);
        assert_eq!(layout.current_sha(), Ok(None));
        std::os::unix::fs::symlink("revisions/abc", layout.current()).unwrap();
        assert_eq!(layout.current_sha(), Ok(Some("abc".to_owned())));
        fs::remove_file(layout.current()).unwrap();
        std::os::unix::fs::symlink("/etc", layout.current()).unwrap();
        let error = layout.current_sha().unwrap_err();
        assert!(error.contains("not at revisions/<sha>"), "{error}");
        fs::remove_file(layout.current()).unwrap();
        fs::create_dir(layout.current()).unwrap();
        let error = layout.current_sha().unwrap_err();
        assert!(error.contains("is not a symlink"), "{error}");
        fs::remove_dir_all(&root).unwrap();
    }
}
