//! GitOps end to end: a real repository (`git init --bare`, reached through `file://`), the real
//! `mesos-reconciler sync` binary publishing it, and the controller (in-process, against the dev
//! cluster) reading `<sync root>/current`. Each step is a commit and a push, as an operator would do
//! it; the status must name the right commit for the directory, each spec and each task.
//!
//! Also the git-aware controller on a plain checkout (no sync): `HEAD` and uncommitted edits.

#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/git.rs"]
mod git;

use e2e::*;
use git::{Repo, SyncProc, current_sha, wait_until_async};
use mesos_reconciler::status::{CommitView, Snapshot};

const SLEEPER: &str = "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n";

fn spec_commit(s: &Snapshot, id: &str) -> Option<String> {
    spec_of(s, id)?.commit.as_ref().map(|c| c.sha.clone())
}

/// The commits of the live tasks of `spec`, by task id.
fn task_commits(s: &Snapshot, spec: &str) -> Vec<(String, Option<CommitView>)> {
    s.tasks
        .iter()
        .filter(|t| t.spec == spec)
        .map(|t| (t.task_id.clone(), t.commit.as_deref().cloned()))
        .collect()
}

/// The short commit a log event names (fields are recorded as text or as Debug).
fn logged_commit(e: &LogEvent) -> Option<String> {
    e.field("commit").map(|c| c.trim_matches('"').to_owned())
}

/// The launches and kills of `spec`'s task ids, as logged.
fn logged(w: &World, message: &str, task_id: &str) -> Option<String> {
    w.logs
        .matching(message)
        .iter()
        .filter(|e| e.field("task_id") == Some(task_id))
        .find_map(logged_commit)
}

#[tokio::test]
async fn commits_drive_the_cluster_and_the_status_names_the_commit_of_each_spec_and_task() {
    let mut w = world("gitops", vec![virtual_agent()]).await;
    let repo = Repo::new(w.root.path());
    repo.write("specs/web.toml", SLEEPER);
    repo.write("README.md", "the specs are in specs/\n");
    let c1 = repo.commit("web: first");
    let sync_root = w.root.path().join("sync");
    let _sync = SyncProc::start(
        &repo.url(),
        "specs",
        &sync_root,
        &["--interval", "300ms"],
        &w.root.path().join("sync.log"),
    );
    wait_until_async(
        "the sync to publish the first commit",
        || match current_sha(&sync_root) {
            Some(sha) if sha == c1 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    w.desired = sync_root.join("current");
    let ctl = w.start_controller().await;

    // A commit adds a spec: it runs, and everything names that commit.
    let web1 = w.wait_running(&ctl, "web", 1).await.remove(0);
    let snap = ctl
        .wait_status("web and its task at c1", |s| {
            let tasks = task_commits(s, "web");
            if spec_commit(s, "web").as_deref() == Some(&c1)
                && tasks.len() == 1
                && tasks[0].1.as_ref().map(|c| c.sha.as_str()) == Some(c1.as_str())
            {
                Ok(s.clone())
            } else {
                Err(format!("spec {:?} tasks {tasks:?}", spec_commit(s, "web")))
            }
        })
        .await;
    let git = snap.git.as_ref().expect("the status has a git part");
    assert_eq!(git.source.as_deref(), Some("sync revision"));
    let commit = git.commit.as_ref().expect("the directory's commit");
    assert_eq!(commit.sha, c1);
    assert_eq!(commit.short, c1[..7]);
    assert_eq!(commit.subject, "web: first");
    assert_eq!(commit.author, "Ada Tester <ada@example.org>");
    let web_commit = spec_of(&snap, "web").unwrap().commit.clone().unwrap();
    assert_eq!(web_commit.subject, "web: first");
    assert!(!web_commit.local_changes);
    let sync = git.sync.as_ref().expect("the sync's status");
    assert_eq!(sync.state, "ok");
    assert_eq!(sync.branch, "main");
    assert_eq!(sync.subdir, "specs");
    assert_eq!(
        sync.published.as_ref().map(|c| c.sha.as_str()),
        Some(c1.as_str())
    );
    assert!(sync.last_success_ms.is_some());
    assert_eq!(
        logged(&w, "launching", &web1.id).as_deref(),
        Some(&c1[..7]),
        "the launch is logged with commit=<short sha>"
    );

    // A commit edits it: replaced, the new task from the new commit, the kill names the old one.
    repo.write("specs/web.toml", &SLEEPER.replace("mem = 16", "mem = 24"));
    let c2 = repo.commit("web: more memory");
    let web2 = w
        .wait(&ctl, "web to be replaced", async || {
            let live = w.live_tasks("web").await;
            match live.as_slice() {
                [t] if t.id != web1.id && t.state == "TASK_RUNNING" => Ok(t.clone()),
                _ => Err(describe_tasks(&live)),
            }
        })
        .await;
    ctl.wait_status("web at c2 with its new task", |s| {
        let tasks = task_commits(s, "web");
        let ok = spec_commit(s, "web").as_deref() == Some(&c2)
            && tasks.len() == 1
            && tasks[0].0 == web2.id
            && tasks[0].1.as_ref().map(|c| c.subject.as_str()) == Some("web: more memory");
        if ok {
            Ok(())
        } else {
            Err(format!("{tasks:?}"))
        }
    })
    .await;
    assert_eq!(logged(&w, "launching", &web2.id).as_deref(), Some(&c2[..7]));
    assert_eq!(
        logged(&w, "killing", &web1.id).as_deref(),
        Some(&c1[..7]),
        "the kill names the commit the killed task came from"
    );

    // Four more specs, then `git rm` of one: its task is killed.
    for id in ["a", "b", "c", "d"] {
        repo.write(&format!("specs/{id}.toml"), SLEEPER);
    }
    let c3 = repo.commit("a, b, c and d");
    let mut running = std::collections::BTreeMap::new();
    for id in ["a", "b", "c", "d"] {
        running.insert(id, w.wait_running(&ctl, id, 1).await.remove(0));
    }
    repo.remove(&["specs/d.toml"]);
    let c4 = repo.commit("d is no longer needed");
    let d = running.remove("d").unwrap();
    w.wait(&ctl, "d to be killed", async || {
        match w.master_tasks().await.into_iter().find(|t| t.id == d.id) {
            Some(t) if t.state == "TASK_KILLED" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let snap = ctl
        .wait_status("the directory at c4, d gone", |s| {
            let at = s
                .git
                .as_ref()
                .and_then(|g| g.commit.as_ref())
                .map(|c| c.sha.clone());
            if at.as_deref() == Some(&c4) && spec_of(s, "d").is_none() {
                Ok(s.clone())
            } else {
                Err(format!("at {at:?}"))
            }
        })
        .await;
    assert_eq!(
        spec_commit(&snap, "a").as_deref(),
        Some(c3.as_str()),
        "a is as c3 made it"
    );
    assert_eq!(
        spec_commit(&snap, "web").as_deref(),
        Some(c2.as_str()),
        "web is as c2 made it"
    );
    assert_eq!(logged(&w, "killing", &d.id).as_deref(), Some(&c3[..7]));

    // A commit deleting most specs: the guard holds the kills; the status says which commit.
    repo.remove(&["specs/a.toml", "specs/b.toml", "specs/c.toml"]);
    let c5 = repo.commit("oops: delete nearly everything");
    let snap = ctl
        .wait_status("the guard to hold the kills of c5", |s| match &s.guard {
            Some(g)
                if s.git
                    .as_ref()
                    .and_then(|g| g.commit.as_ref())
                    .map(|c| c.sha.as_str())
                    == Some(c5.as_str()) =>
            {
                Ok((s.clone(), g.clone()))
            }
            other => Err(format!("guard {other:?}")),
        })
        .await;
    let (snap, guard) = snap;
    assert_eq!(guard.specs, ["a", "b", "c"]);
    let kills = snap.counters.kills;
    for (id, task) in &running {
        let tasks = task_commits(&snap, id);
        assert_eq!(tasks.len(), 1, "{id}: {tasks:?}");
        assert_eq!(tasks[0].0, task.id);
        assert_eq!(
            tasks[0].1.as_ref().map(|c| c.sha.as_str()),
            Some(c3.as_str()),
            "{id}'s task still names the commit it was launched from"
        );
    }

    // A force-push back to c4: the specs return, the guard lets go, nothing was killed.
    repo.force_push(&c4);
    let snap = ctl
        .wait_status("the specs to return at c4", |s| {
            let at = s
                .git
                .as_ref()
                .and_then(|g| g.commit.as_ref())
                .map(|c| c.sha.clone());
            let back = ["a", "b", "c"].iter().all(|id| spec_of(s, id).is_some());
            if at.as_deref() == Some(&c4) && back && s.guard.is_none() {
                Ok(s.clone())
            } else {
                Err(format!("at {at:?} back={back} guard={:?}", s.guard))
            }
        })
        .await;
    assert_eq!(snap.counters.kills, kills, "nothing was killed");
    for (id, task) in &running {
        assert_eq!(
            w.live_tasks(id).await,
            vec![task.clone()],
            "{id} still runs"
        );
        assert_eq!(
            spec_commit(&snap, id).as_deref(),
            Some(c4.as_str()),
            "{id} was applied again from c4"
        );
    }
    assert_eq!(
        snap.git
            .as_ref()
            .unwrap()
            .sync
            .as_ref()
            .unwrap()
            .published
            .as_ref()
            .unwrap()
            .sha,
        c4
    );

    // The page shows the commits too.
    let page = fetch_page(&ctl.status_url).await;
    assert!(
        page.contains(&format!(">{}</code> d is no longer needed", &c4[..7])),
        "{page}"
    );
    assert!(page.contains("sync revision at"), "{page}");

    // The repository goes away: the sync's failures show in the controller's status and page,
    // and nothing changes on the cluster.
    let away = w.root.path().join("origin-away.git");
    std::fs::rename(&repo.origin, &away).unwrap();
    let snap = ctl
        .wait_status("the sync's failure in the status", |s| {
            let sync = s
                .git
                .as_ref()
                .and_then(|g| g.sync.clone())
                .ok_or("no sync")?;
            if sync.state == "failing" && sync.failures >= 1 {
                Ok(s.clone())
            } else {
                Err(format!("{} failures={}", sync.state, sync.failures))
            }
        })
        .await;
    let sync = snap.git.as_ref().unwrap().sync.clone().unwrap();
    assert!(
        sync.error.as_deref().unwrap_or("").contains("fetch"),
        "{sync:?}"
    );
    let page = fetch_page(&ctl.status_url).await;
    assert!(page.contains("The git sync fails"), "{page}");
    assert_eq!(snap.counters.kills, kills);
    std::fs::rename(&away, &repo.origin).unwrap();
    ctl.wait_status("the sync to recover", |s| {
        let state = s
            .git
            .as_ref()
            .and_then(|g| g.sync.as_ref())
            .map(|s| s.state.clone());
        if state.as_deref() == Some("ok") {
            Ok(())
        } else {
            Err(format!("{state:?}"))
        }
    })
    .await;

    // A restart keeps the commits of specs and tasks (they are in the store).
    ctl.stop().await;
    let ctl = w.start_controller().await;
    let snap = ctl.status().await;
    assert_eq!(spec_commit(&snap, "web").as_deref(), Some(c2.as_str()));
    assert_eq!(spec_commit(&snap, "a").as_deref(), Some(c4.as_str()));
    let tasks = task_commits(&snap, "a");
    assert_eq!(
        tasks[0].1.as_ref().map(|c| c.subject.as_str()),
        Some("a, b, c and d")
    );
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn a_plain_checkout_shows_head_and_marks_uncommitted_edits() {
    let w = world("checkout", vec![virtual_agent()]).await;
    git::git(&w.desired, &["init", "--quiet", "--initial-branch=main"]);
    w.write_spec("web", SLEEPER);
    git::git(&w.desired, &["add", "--all"]);
    git::git(&w.desired, &["commit", "--quiet", "-m", "web"]);
    let c1 = git::git(&w.desired, &["rev-parse", "HEAD"])
        .trim()
        .to_owned();
    let ctl = w.start_controller().await;
    let web1 = w.wait_running(&ctl, "web", 1).await.remove(0);
    let snap = ctl
        .wait_status("web at c1", |s| {
            if spec_commit(s, "web").as_deref() == Some(&c1) {
                Ok(s.clone())
            } else {
                Err(format!("{:?}", s.git))
            }
        })
        .await;
    assert_eq!(
        snap.git.as_ref().unwrap().source.as_deref(),
        Some("git checkout")
    );
    assert!(
        snap.git.as_ref().unwrap().sync.is_none(),
        "no sync publishes a checkout"
    );

    // An edit not committed yet: applied, and marked as a local change of c1.
    w.write_spec("web", &SLEEPER.replace("mem = 16", "mem = 20"));
    let web2 = w
        .wait(&ctl, "web to be replaced", async || {
            let live = w.live_tasks("web").await;
            match live.as_slice() {
                [t] if t.id != web1.id && t.state == "TASK_RUNNING" => Ok(t.clone()),
                _ => Err(describe_tasks(&live)),
            }
        })
        .await;
    let snap = ctl
        .wait_status("web with local changes", |s| {
            let commit = spec_of(s, "web").and_then(|x| x.commit.clone());
            match commit {
                Some(c) if c.local_changes && c.sha == c1 => Ok(s.clone()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    let tasks = task_commits(&snap, "web");
    assert_eq!(tasks[0].0, web2.id);
    assert!(tasks[0].1.as_ref().unwrap().local_changes, "{tasks:?}");
    assert_eq!(
        logged(&w, "launching", &web2.id).as_deref(),
        Some(format!("{}-dirty", &c1[..7]).as_str())
    );

    // Committed: the spec is now from the new commit, without local changes.
    git::git(
        &w.desired,
        &["commit", "--quiet", "--all", "-m", "web: 20 MiB"],
    );
    let c2 = git::git(&w.desired, &["rev-parse", "HEAD"])
        .trim()
        .to_owned();
    ctl.wait_status("web at c2, clean", |s| {
        let commit = spec_of(s, "web").and_then(|x| x.commit.clone());
        match commit {
            Some(c) if !c.local_changes && c.sha == c2 && c.subject == "web: 20 MiB" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    ctl.stop().await;
    w.shutdown().await;
}

async fn fetch_page(status_url: &str) -> String {
    let client = mesos_reconciler::http::client_builder().build().unwrap();
    client
        .get(format!("{status_url}/?limit=100"))
        .send()
        .await
        .expect("the page answers")
        .text()
        .await
        .unwrap()
}
