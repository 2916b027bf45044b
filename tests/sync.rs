//! `mesos-reconciler sync` against a real repository (`git init --bare`, reached through a
//! `file://` URL): what it publishes, what it refuses, how it fails and recovers, what it keeps.
//! The sync runs as the real binary, once (`--once`) or as a child process.

#[path = "support/git.rs"]
mod git;

use std::fs;
use std::os::unix::fs::MetadataExt;

use git::*;
use mesos_reconciler::sync::layout::{Layout, SyncState};

const WEB: &str = "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n";

#[test]
fn once_publishes_the_subdir_of_the_branch_head_with_its_commit() {
    let dir = Scratch::new("once");
    let repo = Repo::new(&dir.path);
    repo.write("specs/web.toml", WEB);
    repo.write("specs/team/db.toml", WEB);
    repo.write("README.md", "not a spec, outside --subdir\n");
    let c1 = repo.commit("web and db");
    let root = dir.path.join("sync");

    let out = sync_once(&repo, "specs", &root, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("published {} web and db", &c1[..7])
    );
    assert_eq!(current_sha(&root).as_deref(), Some(c1.as_str()));
    let current = Layout::new(&root).current();
    assert_eq!(fs::read_to_string(current.join("web.toml")).unwrap(), WEB);
    assert_eq!(
        fs::read_to_string(current.join("team/db.toml")).unwrap(),
        WEB
    );
    assert!(
        !current.join("README.md").exists(),
        "only --subdir is published"
    );
    assert_eq!(
        fs::read_link(&current).unwrap(),
        std::path::Path::new("revisions").join(&c1),
        "a relative link, so the root can move"
    );

    let revision = revision_file(&root, &c1);
    assert_eq!(revision.commit.sha, c1);
    assert_eq!(revision.commit.author, "Ada Tester <ada@example.org>");
    assert_eq!(revision.commit.subject, "web and db");
    assert!(
        revision.commit.date.starts_with("20"),
        "{}",
        revision.commit.date
    );
    assert_eq!(revision.subdir, "specs");
    let status = sync_status(&root).unwrap();
    assert_eq!(status.state, SyncState::Ok);
    assert_eq!(status.published.unwrap().sha, c1);
    assert_eq!(status.revision.unwrap(), format!("main@sha1:{c1}"));
    assert!(status.last_success_ms.is_some());

    // Nothing new: nothing changes.
    let out = sync_once(&repo, "specs", &root, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("already at"),
        "{}",
        text(&out)
    );

    // A new commit gets its own directory; the old one stays (--keep 5 by default).
    repo.write("specs/web.toml", &WEB.replace("mem = 16", "mem = 32"));
    let c2 = repo.commit("web: more memory");
    let out = sync_once(&repo, "specs", &root, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(current_sha(&root).as_deref(), Some(c2.as_str()));
    let mut both = vec![c1.clone(), c2.clone()];
    both.sort();
    assert_eq!(revision_dirs(&root), both);
    assert!(
        fs::read_to_string(Layout::new(&root).revision(&c1).join("web.toml"))
            .unwrap()
            .contains("mem = 16"),
        "a published tree never changes"
    );
}

/// `sync --validate` applies the controller's `--allowed-users`: a commit asking for another
/// user is refused before it reaches the controller, naming the file, line and field.
#[test]
fn validate_refuses_a_spec_whose_user_is_not_allowed() {
    let dir = Scratch::new("validate-users");
    let repo = Repo::new(&dir.path);
    repo.write("specs/web.toml", WEB);
    let good = repo.commit("web");
    let root = dir.path.join("sync");
    let allowed = ["--validate", "--allowed-users", "nobody,www-data"];
    let out = sync_once(&repo, "specs", &root, &allowed);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    repo.write("specs/admin.toml", "command = \"true\"\nuser = \"root\"\n");
    let bad = repo.commit("admin: as root");
    let out = sync_once(&repo, "specs", &root, &allowed);
    assert_eq!(out.status.code(), Some(2), "refused: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("specs/admin.toml:2:") && stderr.contains("root"),
        "file:line: the user: {stderr}"
    );
    assert_eq!(
        current_sha(&root).as_deref(),
        Some(good.as_str()),
        "current stays"
    );
    assert!(!Layout::new(&root).revision(&bad).exists());

    // Without the list the same commit is valid.
    let out = sync_once(&repo, "specs", &root, &["--validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(current_sha(&root).as_deref(), Some(bad.as_str()));
}

#[test]
fn validate_refuses_a_commit_with_invalid_specs_and_keeps_current() {
    let dir = Scratch::new("validate");
    let repo = Repo::new(&dir.path);
    repo.write("specs/web.toml", WEB);
    let good = repo.commit("web");
    let root = dir.path.join("sync");
    let out = sync_once(&repo, "specs", &root, &["--validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    repo.write("specs/bad.toml", "command = \"true\"\nmem = \"lots\"\n");
    let bad = repo.commit("bad: mem as text");
    let out = sync_once(&repo, "specs", &root, &["--validate"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit 2, like validate: {}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: commit {} (bad: mem as text) was not published",
            &bad[..7]
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("specs/bad.toml:2:7: mem:"),
        "file:line:column: field: {stderr}"
    );
    assert!(
        !stderr.contains(".tmp-"),
        "files are named as in the repository: {stderr}"
    );
    assert_eq!(
        current_sha(&root).as_deref(),
        Some(good.as_str()),
        "current stays"
    );
    assert!(
        !Layout::new(&root).revision(&bad).exists(),
        "nothing of it is published"
    );
    let status = sync_status(&root).unwrap();
    assert_eq!(status.state, SyncState::Refused);
    let refused = status.refused.unwrap();
    assert_eq!(refused.commit.sha, bad);
    assert_eq!(refused.problems.len(), 1, "{:?}", refused.problems);
    assert!(
        refused.problems[0].starts_with("specs/bad.toml:2:7"),
        "{:?}",
        refused.problems
    );

    // Without --validate an invalid file is published (the controller keeps the last valid
    // version of that spec and reports the error), with a warning naming it.
    let out = sync_once(&repo, "specs", &root, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("specs/bad.toml:2:7: mem:"),
        "{}",
        text(&out)
    );
    assert_eq!(current_sha(&root).as_deref(), Some(bad.as_str()));
    assert_eq!(sync_status(&root).unwrap().refused, None);
}

#[test]
fn a_subdir_missing_from_the_commit_is_refused_with_a_clear_message() {
    let dir = Scratch::new("nosubdir");
    let repo = Repo::new(&dir.path);
    repo.write("other/web.toml", WEB);
    repo.commit("specs are elsewhere");
    let root = dir.path.join("sync");
    let out = sync_once(&repo, "specs", &root, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--subdir specs is not a directory in commit"),
        "{}",
        text(&out)
    );
    assert_eq!(current_sha(&root), None);
}

#[test]
fn a_failed_fetch_keeps_current_and_is_retried_with_backoff() {
    let dir = Scratch::new("retry");
    let repo = Repo::new(&dir.path);
    repo.write("specs/web.toml", WEB);
    let c1 = repo.commit("web");
    let root = dir.path.join("sync");
    let mut sync = SyncProc::start(
        &repo.url(),
        "specs",
        &root,
        &["--interval", "500ms"],
        &dir.path.join("sync.log"),
    );
    wait_until("the first commit to be published", || {
        match current_sha(&root) {
            Some(sha) if sha == c1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // The repository goes away: fetches fail, are retried, and current stays.
    let away = dir.path.join("origin-away.git");
    fs::rename(&repo.origin, &away).unwrap();
    let status = wait_until("two failed attempts in a row", || {
        let status = sync_status(&root).ok_or("no status")?;
        if status.state == SyncState::Failing && status.failures >= 2 {
            Ok(status)
        } else {
            Err(format!("{:?} failures={}", status.state, status.failures))
        }
    });
    let error = status.error.unwrap();
    assert!(error.contains("git") && error.contains("fetch"), "{error}");
    assert!(
        error.contains("origin.git"),
        "the error names the repository: {error}"
    );
    assert!(status.next_attempt_ms.unwrap() > status.last_attempt_ms.unwrap());
    assert_eq!(current_sha(&root).as_deref(), Some(c1.as_str()));
    assert_eq!(
        fs::read_to_string(Layout::new(&root).current().join("web.toml")).unwrap(),
        WEB,
        "the published tree is intact"
    );
    let log = sync.log_text();
    assert!(log.contains("sync failed; `current` is unchanged"), "{log}");
    assert!(log.contains("retry_in_ms"), "{log}");

    // It comes back with a new commit: published, and the failures are forgotten.
    fs::rename(&away, &repo.origin).unwrap();
    repo.write("specs/db.toml", WEB);
    let c2 = repo.commit("db");
    let status = wait_until("the sync to recover and publish", || {
        let status = sync_status(&root).ok_or("no status")?;
        match &status.published {
            Some(p) if p.sha == c2 && status.state == SyncState::Ok => Ok(status),
            _ => Err(format!("{:?} failures={}", status.state, status.failures)),
        }
    });
    assert_eq!(status.failures, 0);
    assert_eq!(status.error, None);
    assert_eq!(current_sha(&root).as_deref(), Some(c2.as_str()));

    // SIGTERM: it stops, says so in its status, and exits 0.
    sync.signal("TERM");
    assert_eq!(sync.wait_exit(), Some(0));
    assert_eq!(sync_status(&root).unwrap().state, SyncState::Stopped);
}

#[test]
fn sighup_fetches_at_once() {
    let dir = Scratch::new("hup");
    let repo = Repo::new(&dir.path);
    repo.write("web.toml", WEB);
    let c1 = repo.commit("web");
    let root = dir.path.join("sync");
    let sync = SyncProc::start(
        &repo.url(),
        "",
        &root,
        &["--interval", "1h"],
        &dir.path.join("sync.log"),
    );
    wait_until("the first commit to be published", || {
        match current_sha(&root) {
            Some(sha) if sha == c1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let c2 = repo.commit("empty");
    // An hour before the next fetch: only the signal can publish c2 within the deadline.
    sync.signal("HUP");
    wait_until("SIGHUP to publish the new commit", || {
        match current_sha(&root) {
            Some(sha) if sha == c2 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert!(
        sync.log_text().contains("woken up (SIGHUP)"),
        "{}",
        sync.log_text()
    );
}

#[test]
fn pruning_keeps_the_newest_revisions_and_a_force_push_is_published() {
    let dir = Scratch::new("prune");
    let repo = Repo::new(&dir.path);
    let root = dir.path.join("sync");
    let mut shas = Vec::new();
    for n in 1..=4 {
        repo.write(
            "web.toml",
            &WEB.replace("mem = 16", &format!("mem = {}", 16 * n)),
        );
        shas.push(repo.commit(&format!("commit {n}")));
        let out = sync_once(&repo, "", &root, &["--keep", "2"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let mut newest = vec![shas[2].clone(), shas[3].clone()];
    newest.sort();
    assert_eq!(revision_dirs(&root), newest);
    for old in &shas[..2] {
        assert!(
            !Layout::new(&root).commit_file(old).exists(),
            "its commit file goes too"
        );
    }

    // The branch is rewritten back to the first commit (whose tree was pruned): published anew.
    repo.force_push(&shas[0]);
    let out = sync_once(&repo, "", &root, &["--keep", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(current_sha(&root).as_deref(), Some(shas[0].as_str()));
    let mut kept = vec![shas[0].clone(), shas[3].clone()];
    kept.sort();
    assert_eq!(revision_dirs(&root), kept);
    assert!(
        fs::read_to_string(Layout::new(&root).current().join("web.toml"))
            .unwrap()
            .contains("mem = 16")
    );

    // Forward again to a commit still kept: its tree is reused, and `--keep 1` keeps only it.
    repo.force_push(&shas[3]);
    let out = sync_once(&repo, "", &root, &["--keep", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("reused=true"), "{}", text(&out));
    assert_eq!(revision_dirs(&root), [shas[3].clone()]);
}

#[test]
fn bad_configuration_exits_64_with_what_to_do() {
    let dir = Scratch::new("config");
    let repo = Repo::new(&dir.path);
    repo.write("specs/web.toml", WEB);
    repo.commit("web");
    let root = dir.path.join("sync");
    for (args, expected) in [
        (
            vec!["--subdir", "../elsewhere"],
            "must be a path inside the repository",
        ),
        (vec!["--keep", "0"], "--keep"),
        (
            vec!["--interval", "0s"],
            "--interval must be longer than 0s",
        ),
    ] {
        let out = sync_command(&repo.url(), "", &root)
            .arg("--once")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(expected), "{args:?}: {}", text(&out));
    }
    let out = sync_command_on(&repo.url(), "no..dots", "", &root)
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        text(&out).contains("not a valid branch name"),
        "{}",
        text(&out)
    );

    // A root published from one subdir is not reused for another.
    let out = sync_once(&repo, "specs", &root, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = sync_once(&repo, "", &root, &[]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("use another --root"), "{}", text(&out));

    // `current` that the sync did not make is never replaced.
    let other = dir.path.join("other");
    fs::create_dir_all(other.join("current")).unwrap();
    let out = sync_once(&repo, "specs", &other, &[]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("is not a symlink"), "{}", text(&out));
    assert!(other.join("current").is_dir(), "left as it was");
}

#[test]
fn a_password_in_the_url_never_reaches_the_log_or_the_status() {
    let dir = Scratch::new("secret");
    let root = dir.path.join("sync");
    // Port 1 on loopback: nothing listens, the fetch fails at once.
    let url = "http://bot:s3cr%65t@127.0.0.1:1/specs.git";
    let out = sync_command(url, "", &root).arg("--once").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let status = fs::read_to_string(Layout::new(&root).status_file()).unwrap();
    for shown in [text(&out), status] {
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(shown.contains("bot:***@127.0.0.1:1"), "{shown}");
    }
}

#[test]
fn a_damaged_commit_file_of_current_is_written_again_without_touching_the_tree() {
    let dir = Scratch::new("repair");
    let repo = Repo::new(&dir.path);
    repo.write("web.toml", WEB);
    let c1 = repo.commit("web");
    let root = dir.path.join("sync");
    let out = sync_once(&repo, "", &root, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let layout = Layout::new(&root);
    let tree_inode = fs::metadata(layout.revision(&c1).join("web.toml"))
        .unwrap()
        .ino();
    fs::write(layout.commit_file(&c1), "{ half a file").unwrap();

    let out = sync_once(&repo, "", &root, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("is not valid"),
        "the damage is reported: {}",
        text(&out)
    );
    assert_eq!(revision_file(&root, &c1).commit.subject, "web");
    assert_eq!(
        fs::metadata(layout.revision(&c1).join("web.toml"))
            .unwrap()
            .ino(),
        tree_inode,
        "the tree the controller may be reading is left alone"
    );
}
