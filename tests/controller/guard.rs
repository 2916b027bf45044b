//! The desired directory as a whole: the mass-deletion guard holds the kills of a pass that would
//! delete most specs until an operator approves, a missing directory never counts as empty, and a
//! symlinked directory that is atomically repointed is applied as one change.

use crate::e2e::*;

const SLEEPER: &str = "command = \"sleep 300\"\ncpus = 0.1\nmem = 16\n";

#[tokio::test]
async fn deleting_most_specs_at_once_is_held_until_an_operator_approves() {
    let w = world("guard", vec![virtual_agent()]).await;
    let ctl = w.start_controller().await;
    // Three of the four specs live in one subdirectory, so that one rename deletes them at once.
    // (Deleting three files one by one may straddle a re-read of the directory, which then sees
    // one or two deletions; that is below the guard's threshold, and is what the guard allows.)
    let ids = ["a", "team/b", "team/c", "team/d"];
    for id in ids {
        w.write_spec(id, SLEEPER);
    }
    let mut running = Vec::new();
    for id in ids {
        running.push(w.wait_running(&ctl, id, 1).await.remove(0));
    }
    let team = w.desired.join("team");
    let away = w.root.path().join("team-away");

    std::fs::rename(&team, &away).unwrap();
    let snap = ctl
        .wait_status("the guard to hold the kills", |s| match &s.guard {
            Some(_) => Ok(s.clone()),
            None => Err("no guard".to_owned()),
        })
        .await;
    let guard = snap.guard.clone().unwrap();
    assert_eq!(guard.specs, ["team/b", "team/c", "team/d"]);
    assert_eq!(guard.instances, 3);
    assert_eq!(guard.total_specs, 4);
    assert!(
        guard.release.contains("approve-deletions"),
        "{}",
        guard.release
    );
    let kills = snap.counters.kills;

    // Held: several passes later every task still runs, held since the same moment.
    let snap = w.settle(&ctl, 3).await;
    assert_eq!(
        snap.guard.as_ref().map(|g| g.since_ms),
        Some(guard.since_ms),
        "regression: the guard's since_ms was the time of the latest pass"
    );
    assert_eq!(snap.counters.kills, kills);
    for t in &running {
        assert_eq!(
            w.live_tasks(&t.name).await,
            vec![t.clone()],
            "{} still runs",
            t.name
        );
    }

    // The files come back: the guard lets go and nothing was killed.
    std::fs::rename(&away, &team).unwrap();
    ctl.wait_status("the guard to let go when the files come back", |s| {
        if s.guard.is_none() {
            Ok(())
        } else {
            Err(format!("{:?}", s.guard))
        }
    })
    .await;
    let snap = w.settle(&ctl, 2).await;
    assert_eq!(snap.counters.kills, kills);
    for t in &running {
        assert_eq!(
            w.live_tasks(&t.name).await,
            vec![t.clone()],
            "{} still runs",
            t.name
        );
    }

    // Deleted again, and this time approved: the kills go through.
    std::fs::rename(&team, &away).unwrap();
    ctl.wait_status("the guard to hold the kills again", |s| match &s.guard {
        Some(_) => Ok(()),
        None => Err("no guard".to_owned()),
    })
    .await;
    let answer = mesos_reconciler::status::approve_deletions(&ctl.status_url)
        .await
        .expect("approve-deletions answers");
    assert!(answer.contains("approved"), "{answer}");
    for t in &running[1..] {
        w.wait(&ctl, &format!("{} to be killed", t.name), async || match w
            .master_tasks()
            .await
            .into_iter()
            .find(|x| x.id == t.id)
        {
            Some(x) if x.state == "TASK_KILLED" => Ok(()),
            other => Err(format!("{other:?}")),
        })
        .await;
    }
    let snap = ctl
        .wait_status("the guard to be released", |s| {
            if s.guard.is_none() {
                Ok(s.clone())
            } else {
                Err(format!("{:?}", s.guard))
            }
        })
        .await;
    assert_eq!(w.live_tasks("a").await, vec![running[0].clone()]);
    assert_eq!(snap.counters.launches, 4, "nothing was relaunched");
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn a_missing_desired_directory_is_an_error_never_the_empty_set() {
    let w = world("missing", vec![virtual_agent()]).await;
    let ctl = w.start_controller().await;
    w.write_spec("a", SLEEPER);
    w.write_spec("b", SLEEPER);
    let a = w.wait_running(&ctl, "a", 1).await;
    let b = w.wait_running(&ctl, "b", 1).await;
    let kills = ctl.status().await.counters.kills;

    let away = w.root.path().join("desired-away");
    std::fs::rename(&w.desired, &away).unwrap();
    let snap = ctl
        .wait_status("the snapshot to report the missing directory", |s| {
            s.desired_error.clone().ok_or("no desired_error".to_owned())
        })
        .await;
    assert!(snap.contains("desired"), "{snap}");
    // One more pass with the directory gone (woken by the loop's timer: with the directory
    // renamed away, no file event reaches the watcher): nothing is killed.
    let seen = ctl.status().await.counters.passes;
    ctl.wait_status("another pass", |s| {
        if s.counters.passes > seen {
            Ok(())
        } else {
            Err(format!("passes = {}", s.counters.passes))
        }
    })
    .await;
    let snap = ctl.status().await;
    assert!(snap.desired_error.is_some());
    assert_eq!(snap.counters.kills, kills, "{}", describe_snapshot(&snap));
    assert_eq!(w.live_tasks("a").await, a);
    assert_eq!(w.live_tasks("b").await, b);

    std::fs::rename(&away, &w.desired).unwrap();
    let snap = ctl
        .wait_status("the directory to be read again", |s| {
            match &s.desired_error {
                None => Ok(s.clone()),
                Some(e) => Err(e.clone()),
            }
        })
        .await;
    assert_eq!(snap.counters.kills, kills);
    assert!(snap.guard.is_none());
    assert_eq!(w.live_tasks("a").await, a);
    assert_eq!(w.live_tasks("b").await, b);
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test]
async fn a_repointed_symlink_is_applied_as_one_change() {
    let mut w = world("symlink", vec![virtual_agent()]).await;
    // Checkout A: x, y, p, q. Checkout B: y edited, z new, p and q unchanged. Were the repoint
    // seen as "everything deleted, then everything added", the guard would fire and p and q
    // would be killed.
    let a = w.root.path().join("checkout-a");
    let b = w.root.path().join("checkout-b");
    for (dir, specs) in [
        (
            &a,
            vec![
                ("x", "sleep 300"),
                ("y", "sleep 300"),
                ("p", "sleep 300"),
                ("q", "sleep 300"),
            ],
        ),
        (
            &b,
            vec![
                ("y", "sleep 301"),
                ("z", "sleep 300"),
                ("p", "sleep 300"),
                ("q", "sleep 300"),
            ],
        ),
    ] {
        for (id, command) in specs {
            write_spec_in(
                dir,
                id,
                &format!("command = \"{command}\"\ncpus = 0.1\nmem = 16\n"),
            );
        }
    }
    let link = w.root.path().join("published");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    w.desired = link.clone();
    let ctl = w.start_controller().await;
    let mut before = std::collections::BTreeMap::new();
    for id in ["x", "y", "p", "q"] {
        before.insert(id, w.wait_running(&ctl, id, 1).await.remove(0));
    }
    let kills = ctl.status().await.counters.kills;

    // git-sync's repoint: a new link, renamed over the old one.
    let tmp = w.root.path().join(".published.tmp");
    std::os::unix::fs::symlink(&b, &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();

    // Watch every snapshot until the new set runs: the guard never fires on the way.
    let mut snapshots = 0;
    w.wait(&ctl, "checkout B to run", async || {
        let s = ctl.status().await;
        snapshots += 1;
        assert!(
            s.guard.is_none(),
            "the guard fired during a repoint: {}",
            describe_snapshot(&s)
        );
        let x = w.live_tasks("x").await;
        let y = w.live_tasks("y").await;
        let z = w.live_tasks("z").await;
        let y_new = y.len() == 1 && y[0].id != before["y"].id && y[0].state == "TASK_RUNNING";
        let z_up = z.len() == 1 && z[0].state == "TASK_RUNNING";
        if x.is_empty() && y_new && z_up {
            Ok(())
        } else {
            Err(format!(
                "x: {}\ny: {}\nz: {}",
                describe_tasks(&x),
                describe_tasks(&y),
                describe_tasks(&z)
            ))
        }
    })
    .await;
    assert!(snapshots > 0);
    assert_eq!(
        w.live_tasks("p").await,
        vec![before["p"].clone()],
        "p was not touched"
    );
    assert_eq!(
        w.live_tasks("q").await,
        vec![before["q"].clone()],
        "q was not touched"
    );
    let snap = w.settle(&ctl, 2).await;
    assert!(snap.guard.is_none());
    // Exactly two kills: x (deleted) and the old y (replaced).
    assert_eq!(
        snap.counters.kills,
        kills + 2,
        "{}",
        describe_snapshot(&snap)
    );
    ctl.stop().await;
    w.shutdown().await;
}
