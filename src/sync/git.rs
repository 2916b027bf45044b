//! Running the system `git`: the operator's own git, so that ssh keys, `known_hosts`, credential
//! helpers, `url.<base>.insteadOf` and proxies work as they do in a shell. Nothing here speaks the
//! git protocol or reads git's object store.
//!
//! Every command has a timeout (a hung fetch must not stop the sync forever) and runs with
//! `GIT_TERMINAL_PROMPT=0`, so a missing credential fails instead of waiting for a password nobody
//! will type. Failures carry git's own message, with the repository password cut out.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::layout::Commit;

/// Why a git command failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(
        "cannot run `{program}`: {source}; install git (Debian/Ubuntu: apt-get install git) or put it on PATH"
    )]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`git {command}` did not finish within {} s and was killed", timeout.as_secs())]
    Timeout { command: String, timeout: Duration },
    #[error("`git {command}` failed ({status}): {message}")]
    Failed {
        command: String,
        status: String,
        message: String,
    },
    #[error("`git {command}` printed something unexpected: {output:?}")]
    Unexpected { command: String, output: String },
    #[error("cannot create {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The `git` to run and how.
#[derive(Debug, Clone)]
pub struct Git {
    pub program: PathBuf,
    pub timeout: Duration,
    /// Cut out of every message (the repository URL's password, as written and decoded).
    pub secrets: Vec<String>,
}

impl Git {
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Git {
        Git {
            program: program.into(),
            timeout,
            secrets: Vec::new(),
        }
    }

    /// Runs `git <args>` with `envs` added to the environment; its stdout on success.
    pub async fn run(&self, args: &[OsString], envs: &[(&str, &Path)]) -> Result<String, GitError> {
        let command = self.redact(
            &args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
        );
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in envs {
            cmd.env(key, value);
        }
        let child = cmd.spawn().map_err(|source| GitError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(source)) => {
                return Err(GitError::Spawn {
                    program: self.program.display().to_string(),
                    source,
                });
            }
            // Dropping the future drops the child, which kills it (kill_on_drop).
            Err(_elapsed) => {
                return Err(GitError::Timeout {
                    command,
                    timeout: self.timeout,
                });
            }
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let message = if message.is_empty() {
            "no message".to_owned()
        } else {
            self.redact(&message)
        };
        Err(GitError::Failed {
            command,
            status: output.status.to_string(),
            message,
        })
    }

    /// `git --version`, to fail early and clearly when git is missing.
    pub async fn version(&self) -> Result<String, GitError> {
        Ok(self.run(&args(["--version"]), &[]).await?.trim().to_owned())
    }

    /// Whether `refs/heads/<branch>` is a valid ref name (git's own rules).
    pub async fn check_branch(&self, branch: &str) -> Result<(), GitError> {
        self.run(
            &args(["check-ref-format", &format!("refs/heads/{branch}")]),
            &[],
        )
        .await
        .map(drop)
    }

    /// Creates the bare repository at `repo` unless it exists.
    pub async fn init_bare(&self, repo: &Path) -> Result<(), GitError> {
        if repo.join("HEAD").is_file() {
            return Ok(());
        }
        let mut a = args(["init", "--quiet", "--bare"]);
        a.push(repo.as_os_str().to_owned());
        self.run(&a, &[]).await.map(drop)
    }

    /// Fetches `branch` of `url` into `local_ref`, forced: a rewritten branch (force-push) replaces
    /// what was fetched before, like any other new head.
    pub async fn fetch(
        &self,
        repo: &Path,
        url: &str,
        branch: &str,
        local_ref: &str,
    ) -> Result<(), GitError> {
        let mut a = git_dir(repo);
        a.extend(args([
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-recurse-submodules",
            url,
            &format!("+refs/heads/{branch}:{local_ref}"),
        ]));
        self.run(&a, &[]).await.map(drop)
    }

    /// The commit `rev` names.
    pub async fn resolve(&self, repo: &Path, rev: &str) -> Result<String, GitError> {
        let mut a = git_dir(repo);
        a.extend(args([
            "rev-parse",
            "--verify",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ]));
        let out = self.run(&a, &[]).await?;
        let sha = out.trim();
        if sha.len() >= 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(sha.to_owned())
        } else {
            Err(GitError::Unexpected {
                command: "rev-parse".to_owned(),
                output: out,
            })
        }
    }

    /// Sha, author, author date and subject of `sha`.
    pub async fn commit(&self, repo: &Path, sha: &str) -> Result<Commit, GitError> {
        let mut a = git_dir(repo);
        a.extend(args([
            "log",
            "-1",
            "--no-show-signature",
            "--format=%H%x00%an <%ae>%x00%aI%x00%s",
            sha,
            "--",
        ]));
        let out = self.run(&a, &[]).await?;
        parse_commit(&out).ok_or(GitError::Unexpected {
            command: "log".to_owned(),
            output: out,
        })
    }

    /// Whether `<sha>:<subdir>` is a directory.
    pub async fn is_tree(&self, repo: &Path, treeish: &str) -> Result<bool, GitError> {
        let mut a = git_dir(repo);
        a.extend(args(["cat-file", "-t", treeish]));
        match self.run(&a, &[]).await {
            Ok(kind) => Ok(kind.trim() == "tree"),
            Err(GitError::Failed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes the files of `treeish` (a commit, or `<sha>:<subdir>`) under `dest`, which must not
    /// exist yet, using `scratch` (an empty directory) for a private index: `read-tree` into that
    /// index, then `checkout-index --prefix`, git's documented way to export a tree. The bare
    /// repository's own state is not touched. Symlinks in the tree are written as symlinks.
    pub async fn export(
        &self,
        repo: &Path,
        treeish: &str,
        scratch: &Path,
        dest: &Path,
    ) -> Result<(), GitError> {
        let index = scratch.join("index");
        let work = scratch.join("work");
        std::fs::create_dir_all(&work).map_err(|source| GitError::Io {
            path: work.clone(),
            source,
        })?;
        std::fs::create_dir(dest).map_err(|source| GitError::Io {
            path: dest.to_owned(),
            source,
        })?;
        let env = [("GIT_INDEX_FILE", index.as_path())];
        let mut base = git_dir(repo);
        let mut work_tree = OsString::from("--work-tree=");
        work_tree.push(&work);
        base.push(work_tree);

        let mut read = base.clone();
        read.extend(args(["read-tree", treeish]));
        self.run(&read, &env).await?;

        let mut prefix = OsString::from("--prefix=");
        prefix.push(dest);
        prefix.push("/");
        let mut checkout = base;
        checkout.extend(args(["checkout-index", "--all", "--force"]));
        checkout.push(prefix);
        self.run(&checkout, &env).await.map(drop)
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }
}

/// `%H%x00%an <%ae>%x00%aI%x00%s` as git prints it.
pub(crate) fn parse_commit(out: &str) -> Option<Commit> {
    let mut parts = out.trim_end_matches('\n').splitn(4, '\0');
    let commit = Commit {
        sha: parts.next()?.to_owned(),
        author: parts.next()?.to_owned(),
        date: parts.next()?.to_owned(),
        subject: parts.next()?.to_owned(),
    };
    (!commit.sha.is_empty()).then_some(commit)
}

fn args<const N: usize>(items: [&str; N]) -> Vec<OsString> {
    items.into_iter().map(OsString::from).collect()
}

fn git_dir(repo: &Path) -> Vec<OsString> {
    let mut flag = OsString::from("--git-dir=");
    flag.push(repo);
    vec![flag]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_output_parses_into_a_commit() {
        let out = "0123456789abcdef0123456789abcdef01234567\x00A U Thor <a@example.org>\x002024-05-01T12:00:03+02:00\x00web: 2 instances\n";
        let commit = parse_commit(out).unwrap();
        assert_eq!(commit.sha, "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(commit.author, "A U Thor <a@example.org>");
        assert_eq!(commit.date, "2024-05-01T12:00:03+02:00");
        assert_eq!(commit.subject, "web: 2 instances");
        assert_eq!(parse_commit("only-a-sha\n"), None);
        assert_eq!(parse_commit(""), None);
    }

    #[test]
    fn secrets_are_cut_out_of_messages() {
        let mut git = Git::new("git", Duration::from_secs(1));
        git.secrets = vec!["hunter2".to_owned()];
        assert_eq!(
            git.redact("fatal: unable to access 'https://bot:hunter2@h/x.git/'"),
            "fatal: unable to access 'https://bot:***@h/x.git/'"
        );
    }
}
