//! Which commit a desired directory holds, for the controller: a tree the sync published (its
//! commit file, see [`super::layout`]), or a plain git checkout (its `HEAD`, read with the system
//! `git`, and the files that differ from it).
//!
//! A checkout's files can differ from `HEAD` (edited, added, not committed yet). Those files were
//! not applied "from" a commit, so their paths are reported and the controller marks the specs read
//! from them as having local changes.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::git::Git;
use super::layout::{self, Commit};

/// How long the controller waits for one git command on a checkout.
pub const CHECKOUT_GIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the commit of a tree was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A revision published by `mesos-reconciler sync` (its `.commit.json`).
    Revision,
    /// A git working tree (its `HEAD`).
    Checkout,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Revision => "sync revision",
            Source::Checkout => "git checkout",
        }
    }
}

/// What is known of the commit of one directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeOrigin {
    pub source: Option<Source>,
    pub commit: Option<Commit>,
    /// Paths relative to the directory whose content differs from `commit` (a checkout's
    /// modified, added or untracked files).
    pub changed: BTreeSet<PathBuf>,
    /// Why the commit could not be learnt (a corrupt commit file, git refusing the checkout).
    pub error: Option<String>,
}

/// The origin of `dir`, which should be the canonical directory the specs were read from.
pub async fn origin_of(dir: &Path) -> TreeOrigin {
    match layout::commit_of_tree(dir) {
        Ok(Some(commit)) => {
            return TreeOrigin {
                source: Some(Source::Revision),
                commit: Some(commit),
                ..TreeOrigin::default()
            };
        }
        Ok(None) => {}
        Err(error) => {
            return TreeOrigin {
                source: Some(Source::Revision),
                error: Some(error),
                ..TreeOrigin::default()
            };
        }
    }
    if !dir.ancestors().any(|a| a.join(".git").exists()) {
        return TreeOrigin::default();
    }
    let git = Git::new("git", CHECKOUT_GIT_TIMEOUT);
    match checkout(&git, dir).await {
        Ok(origin) => origin,
        Err(error) => TreeOrigin {
            source: Some(Source::Checkout),
            error: Some(error),
            ..TreeOrigin::default()
        },
    }
}

async fn checkout(git: &Git, dir: &Path) -> Result<TreeOrigin, String> {
    let in_dir = |rest: &[&str]| {
        let mut args: Vec<OsString> = vec!["-C".into(), dir.as_os_str().to_owned()];
        args.extend(rest.iter().map(OsString::from));
        args
    };
    let prefix = git
        .run(&in_dir(&["rev-parse", "--show-prefix"]), &[])
        .await
        .map_err(|e| e.to_string())?;
    let prefix = prefix.trim_end_matches('\n').to_owned();
    let log = git
        .run(
            &in_dir(&[
                "log",
                "-1",
                "--no-show-signature",
                "--format=%H%x00%an <%ae>%x00%aI%x00%s",
                "HEAD",
                "--",
            ]),
            &[],
        )
        .await
        .map_err(|e| format!("{e} (a checkout without a commit yet?)"))?;
    let commit = super::git::parse_commit(&log)
        .ok_or_else(|| format!("`git log` printed something unexpected: {log:?}"))?;
    // No optional locks: `git status` would otherwise refresh the index, and could collide with
    // the operator's own git commands in that checkout.
    let status = git
        .run(
            &in_dir(&[
                "status",
                "--porcelain",
                "-z",
                "--untracked-files=all",
                "--no-renames",
                "--",
                ".",
            ]),
            &[("GIT_OPTIONAL_LOCKS", Path::new("0"))],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(TreeOrigin {
        source: Some(Source::Checkout),
        commit: Some(commit),
        changed: changed_paths(&status, &prefix),
        error: None,
    })
}

/// The paths in `git status --porcelain -z` output (relative to the repository's top), made
/// relative to the directory at `prefix` (as `git rev-parse --show-prefix` prints it).
fn changed_paths(status: &str, prefix: &str) -> BTreeSet<PathBuf> {
    status
        .split('\0')
        .filter_map(|entry| entry.get(3..))
        .filter_map(|path| path.strip_prefix(prefix))
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_paths_are_made_relative_to_the_directory() {
        let status = " M desired/web.toml\0?? desired/team/new.toml\0D  desired/old.toml\0";
        let changed = changed_paths(status, "desired/");
        let expected: BTreeSet<PathBuf> = ["web.toml", "team/new.toml", "old.toml"]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(changed, expected);
        assert_eq!(
            changed_paths(" M web.toml\0", ""),
            BTreeSet::from([PathBuf::from("web.toml")])
        );
        assert!(changed_paths("", "desired/").is_empty());
    }
}
