//! Process-level crash tests (issue 4), in the manner of sled's crash tests: the real
//! `mesos-reconciler run` binary runs as a child process against a dev cluster started in the test
//! process; the test kills it (SIGKILL at a random instant, an abort at a failpoint, or SIGTERM),
//! restarts it with the same state directory, and checks from the outside what the design brief
//! promises: one framework with the same id, exactly the wanted instances running, none
//! duplicated, none orphaned, and nothing launched again that was already running.
//!
//! The controller's stderr goes to `controller.log` in the test's temporary directory; a failing
//! test prints its end and keeps the directory (`CRASH_SHOW_LOGS=1` does so for passing tests
//! too). The random crash schedules print their seed; `CRASH_SEED=<seed>` replays one.

#[path = "support/proc.rs"]
mod proc;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use proc::{
    DEADLINE, Fixture, SIGABRT, SIGKILL, check_converged, describe_exit, frameworks, running_ids,
    service_spec, start_cluster, wait_converged, wait_for, wait_ready_and_passes,
};
use rand::{Rng, SeedableRng};

/// One virtual agent's resources: room for dozens of the tests' 0.1-cpu tasks.
const AGENT: &str = "cpus:16;mem:8192;disk:20000;ports:[31000-32000]";
/// The deadline of the 20-kill loop's final convergence (50 specs after 20 crashes).
const LOOP_DEADLINE: Duration = Duration::from_secs(90);
/// Passes the controller runs after it is ready before "it launched nothing" is judged.
const SETTLE_PASSES: u64 = 3;

/// A kill -9 while tasks run, then a restart: the controller fails over with the stored framework
/// id (one framework in the master, same id, active again), reconciles, and launches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_tasks_run_then_restart_fails_over_and_launches_nothing() {
    let cluster = start_cluster(2, AGENT).await;
    let mut fx = Fixture::new("kill9", &cluster.url());
    let want = specs(&[("web", 2), ("team-a/api", 2), ("worker", 1)]);
    fx.write_specs(&want);

    let mut first = fx.spawn(None);
    first.status_url().await;
    let (before, _) = wait_converged(&cluster, &first, &want, DEADLINE).await;
    let framework_id = before[0].id.clone();
    // Durability rule 1: a long failover timeout (the default, one week) keeps the tasks alive
    // while the controller is away.
    assert_eq!(before[0].failover_timeout, 7.0 * 24.0 * 3600.0);
    let tasks_before = running_ids(&before);
    let infos_before = cluster.received_task_infos().await.len();

    let exit = first.kill9().await;
    assert_eq!(exit.signal(), Some(SIGKILL), "{}", describe_exit(exit));
    // The master keeps the framework for its failover timeout, inactive once the stream is gone.
    wait_for(
        "the master to see the framework disconnected",
        DEADLINE,
        || async {
            let fws = frameworks(&cluster).await;
            match fws.as_slice() {
                [f] if !f.active => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    let mut second = fx.spawn(None);
    second.status_url().await;
    let status = wait_ready_and_passes(&second, SETTLE_PASSES).await;
    let after = frameworks(&cluster).await;
    assert_eq!(after.len(), 1, "one framework after the restart: {after:?}");
    assert_eq!(
        after[0].id, framework_id,
        "the restart re-used the framework id"
    );
    assert!(after[0].active, "the framework is active again: {after:?}");
    assert_eq!(status.framework_id.as_deref(), Some(framework_id.as_str()));
    assert_eq!(
        running_ids(&after),
        tasks_before,
        "the running tasks are the same ones"
    );
    assert_eq!(status.counters.launches, 0, "the restart launched nothing");
    assert_eq!(
        cluster.received_task_infos().await.len(),
        infos_before,
        "the master received no new TaskInfo"
    );
    check_converged(&after, &status, &want).unwrap();

    drop(second);
    cluster.shutdown().await;
}

/// Crash at `after-write-ahead`: the launches are flushed to the ledger, the ACCEPT is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_write_ahead_converges_without_duplicates_or_orphans() {
    crash_at_failpoint_then_converge("after-write-ahead").await;
}

/// Crash at `after-accept`: the ACCEPT is sent, nothing of its outcome is known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_accept_converges_without_duplicates_or_orphans() {
    crash_at_failpoint_then_converge("after-accept").await;
}

/// Crash at `after-persist-before-ack`: a status update is flushed but not acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_persist_before_ack_converges_without_duplicates_or_orphans() {
    crash_at_failpoint_then_converge("after-persist-before-ack").await;
}

/// Starts the controller with `failpoint`, waits for it to abort there, restarts it without, and
/// checks that the cluster converges and stays converged (nothing launched after convergence).
async fn crash_at_failpoint_then_converge(failpoint: &str) {
    let cluster = start_cluster(2, AGENT).await;
    let mut fx = Fixture::new(failpoint, &cluster.url());
    let want = specs(&[("web", 3), ("team-a/api", 2), ("worker", 1)]);
    fx.write_specs(&want);

    let mut crashing = fx.spawn(Some(failpoint));
    let exit = crashing.wait_exit(DEADLINE).await;
    assert_eq!(
        exit.signal(),
        Some(SIGABRT),
        "the controller aborts at {failpoint}; got {}",
        describe_exit(exit)
    );
    assert!(
        fx.log_text()
            .contains(&format!("failpoint {failpoint} reached")),
        "the log says which failpoint was reached"
    );
    let sent_before_crash: BTreeSet<String> = cluster
        .received_task_infos()
        .await
        .into_iter()
        .map(|t| t.task_id.value)
        .collect();
    if failpoint == "after-write-ahead" {
        assert!(
            sent_before_crash.is_empty(),
            "no ACCEPT left before the crash: {sent_before_crash:?}"
        );
    } else {
        assert!(
            !sent_before_crash.is_empty(),
            "the crash came after an ACCEPT"
        );
    }

    let restarted = fx.spawn(None);
    let (fws, converged) = wait_converged(&cluster, &restarted, &want, DEADLINE).await;
    let launches = converged.counters.launches;
    // What the master accepted before the crash runs on healthy agents: the restart must adopt
    // those tasks through reconciliation, not replace them.
    let running = running_ids(&fws);
    let replaced: Vec<&String> = sent_before_crash.difference(&running).collect();
    assert!(
        replaced.is_empty(),
        "tasks launched before the crash are no longer running: {replaced:?}"
    );

    // Converged once is not enough: late answers (reconciliation, re-sent updates, the stale
    // launch check) must not start a duplicate or kill a wanted task afterwards.
    let settled = wait_ready_and_passes(&restarted, SETTLE_PASSES).await;
    let fws = frameworks(&cluster).await;
    check_converged(&fws, &settled, &want).unwrap();
    assert_eq!(
        running_ids(&fws),
        running,
        "the running tasks did not change"
    );
    assert_eq!(
        settled.counters.launches, launches,
        "nothing was launched after convergence"
    );

    drop(restarted);
    cluster.shutdown().await;
}

/// Twenty kill -9 at random instants while 50 specs converge, then a start left to converge:
/// exactly 50 running tasks, one per spec, none duplicated, none orphaned, one framework. In about
/// one round of four the state directory is deleted after the kill as well: the next start finds
/// the framework on the master and adopts its tasks (issue 8).
///
/// So that every kill lands while there is still work in flight (a first start alone launches
/// all 50 within a few hundred milliseconds), 10 specs exist at the start and 2 more are added
/// before each round, and the agents' status updates reach the master 200 ms late, which widens
/// the window between an ACCEPT and the task's RUNNING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_random_kills_during_convergence_of_fifty_specs() {
    let seed = seed_from_env();
    println!("crash loop seed: {seed} (set CRASH_SEED={seed} to replay the same delays)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let cluster = start_cluster(4, AGENT).await;
    let mut fx = Fixture::new("kill-loop", &cluster.url());
    cluster
        .faults()
        .delay_status_updates(Duration::from_millis(200))
        .await
        .unwrap();
    let want: BTreeMap<String, u32> = (0..50).map(|i| (format!("svc-{i:02}"), 1)).collect();
    let ids: Vec<&String> = want.keys().collect();
    for id in &ids[..10] {
        fx.write_spec(id, &service_spec(1));
    }

    for round in 1..=20 {
        for id in &ids[10 + (round - 1) * 2..10 + round * 2] {
            fx.write_spec(id, &service_spec(1));
        }
        let mut child = fx.spawn(None);
        if round == 1 {
            // A kill between the master's registration of a new framework and the flush of its
            // id leaves an empty framework in the master until its failover timeout (as with
            // real Mesos: no scheduler can know its id before the master assigns it). That
            // window is not what this test is about, so the first kill comes after the id is
            // stored; the controller publishes the id only after flushing it.
            wait_for("the controller to register", DEADLINE, || async {
                let s = child.status().await?;
                s.framework_id
                    .map(drop)
                    .ok_or_else(|| "no framework id yet".to_owned())
            })
            .await;
        }
        let delay = Duration::from_millis(rng.random_range(50..=1500));
        // The delay is the test's input (where in its work the controller dies), not a wait for
        // anything.
        tokio::time::sleep(delay).await;
        if let Some(exit) = child.exited() {
            panic!(
                "seed {seed}: round {round}: the controller exited by itself ({}) before the kill",
                describe_exit(exit)
            );
        }
        let exit = child.kill9().await;
        assert_eq!(
            exit.signal(),
            Some(SIGKILL),
            "seed {seed}: round {round}: {}",
            describe_exit(exit)
        );
        // A controller without a stored framework id (the state was deleted, or it was killed
        // before storing the id) refuses a framework that is still connected; the master sees
        // the killed one's stream close within a heartbeat.
        wait_for(
            "the master to see the killed controller disconnected",
            DEADLINE,
            || async {
                let fws = frameworks(&cluster).await;
                if fws.iter().all(|f| !f.active) {
                    Ok(())
                } else {
                    Err(format!("{fws:?}"))
                }
            },
        )
        .await;
        let lose_state = round > 1 && rng.random_ratio(1, 4);
        if lose_state {
            fx.lose_state();
        }
        println!(
            "round {round}: killed after {delay:?}{}",
            if lose_state { ", state deleted" } else { "" }
        );
    }

    let last = fx.spawn(None);
    let (fws, _) = wait_converged(&cluster, &last, &want, LOOP_DEADLINE).await;
    assert_eq!(running_ids(&fws).len(), 50, "seed {seed}");
    let settled = wait_ready_and_passes(&last, SETTLE_PASSES).await;
    let fws = frameworks(&cluster).await;
    if let Err(e) = check_converged(&fws, &settled, &want) {
        panic!("seed {seed}: after settling: {e}");
    }

    drop(last);
    cluster.shutdown().await;
}

/// Specs added, scaled and deleted while the controller is dead (durability rule 5): the restart
/// re-reads the directory in full, kills the deleted spec's tasks and the scaled-down instances,
/// launches the new ones, and leaves the untouched spec's tasks alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_changed_while_killed_are_applied_on_restart() {
    let cluster = start_cluster(1, AGENT).await;
    let mut fx = Fixture::new("changed-while-down", &cluster.url());
    let before = specs(&[("web", 3), ("worker", 1), ("old", 2)]);
    fx.write_specs(&before);

    let mut first = fx.spawn(None);
    first.status_url().await;
    let (fws, _) = wait_converged(&cluster, &first, &before, DEADLINE).await;
    let worker_task: Vec<String> = fws[0]
        .tasks
        .iter()
        .filter(|t| t.name == "worker")
        .map(|t| t.id.clone())
        .collect();
    let exit = first.kill9().await;
    assert_eq!(exit.signal(), Some(SIGKILL), "{}", describe_exit(exit));

    std::fs::remove_file(fx.desired.join("old.toml")).unwrap();
    fx.write_spec("web", &service_spec(1));
    fx.write_spec("team-b/new", &service_spec(2));
    let after = specs(&[("web", 1), ("worker", 1), ("team-b/new", 2)]);

    let second = fx.spawn(None);
    let (fws, _) = wait_converged(&cluster, &second, &after, DEADLINE).await;
    let worker_now: Vec<String> = fws[0]
        .tasks
        .iter()
        .filter(|t| t.name == "worker")
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(
        worker_now, worker_task,
        "the untouched spec's task kept running"
    );
    let settled = wait_ready_and_passes(&second, SETTLE_PASSES).await;
    check_converged(&frameworks(&cluster).await, &settled, &after).unwrap();

    drop(second);
    cluster.shutdown().await;
}

/// kill -9 at random instants during a rolling update of 3 instances, then a start left to
/// finish: exactly 3 running tasks, all of the new generation, none duplicated, none orphaned,
/// and the rollout over. (The rollout's own state is not flushed on its own; the ledger is.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_during_a_rolling_update_end_with_the_new_generation_only() {
    let seed = seed_from_env();
    println!("rollout kill seed: {seed} (set CRASH_SEED={seed} to replay the same delays)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let cluster = start_cluster(2, AGENT).await;
    let mut fx = Fixture::new("rollout", &cluster.url());
    let want = specs(&[("web", 3)]);
    let v1 = format!("{}\n[update]\nstrategy = \"rolling\"\n", service_spec(3));
    let v2 = v1.replace("sleep 3600", "sleep 7200");
    fx.write_spec("web", &v1);

    let mut first = fx.spawn(None);
    first.status_url().await;
    wait_converged(&cluster, &first, &want, DEADLINE).await;
    // Slower RUNNING updates keep the rollout in flight across several kills.
    cluster
        .faults()
        .delay_status_updates(Duration::from_millis(200))
        .await
        .unwrap();
    fx.write_spec("web", &v2);
    let delay = Duration::from_millis(rng.random_range(50..=800));
    tokio::time::sleep(delay).await;
    first.kill9().await;
    println!("round 1: killed after {delay:?}");

    for round in 2..=6 {
        let mut child = fx.spawn(None);
        let delay = Duration::from_millis(rng.random_range(50..=800));
        // The delay is the test's input, not a wait for anything.
        tokio::time::sleep(delay).await;
        if let Some(exit) = child.exited() {
            panic!(
                "seed {seed}: round {round}: the controller exited by itself ({})",
                describe_exit(exit)
            );
        }
        child.kill9().await;
        println!("round {round}: killed after {delay:?}");
    }

    let last = fx.spawn(None);
    wait_for(
        "the rollout to finish on the new generation",
        DEADLINE,
        || async {
            let snapshot = last.status().await?;
            let fws = frameworks(&cluster).await;
            check_converged(&fws, &snapshot, &want)?;
            let web = snapshot
                .specs
                .iter()
                .find(|x| x.id == "web")
                .ok_or("no web spec in the status")?;
            let generation = web.generation.clone().ok_or("web has no generation")?;
            if let Some(rollout) = &web.rollout {
                return Err(format!("rollout: {rollout}"));
            }
            let running = running_ids(&fws);
            match snapshot
                .tasks
                .iter()
                .find(|t| running.contains(&t.task_id) && !t.generation.starts_with(&generation))
            {
                Some(old) => Err(format!(
                    "{} runs generation {}, not {generation}",
                    old.task_id, old.generation
                )),
                None => Ok(()),
            }
        },
    )
    .await;

    drop(last);
    cluster.shutdown().await;
}

/// Regression: after a restart every live task's ledger record takes the reason of the master's
/// reconciliation answer (`RECONCILIATION`), and a later update without a reason (a TASK_KILLED
/// from the executor) keeps it, so the history and the pending reasons (`after TASK_FAILED
/// (RECONCILIATION): ...`) show a reason that belongs to an earlier update. The reason shown for
/// an attempt must be the one of its last update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_reconciliation_reason_sticks_to_later_updates_after_restart() {
    let cluster = start_cluster(1, AGENT).await;
    let mut fx = Fixture::new("stale-reason", &cluster.url());
    fx.write_specs(&specs(&[("web", 2)]));

    let mut first = fx.spawn(None);
    first.status_url().await;
    wait_converged(&cluster, &first, &specs(&[("web", 2)]), DEADLINE).await;
    first.kill9().await;

    let second = fx.spawn(None);
    wait_ready_and_passes(&second, 1).await;
    fx.write_spec("web", &service_spec(1));
    let want = specs(&[("web", 1)]);
    wait_converged(&cluster, &second, &want, DEADLINE).await;
    let killed = wait_for(
        "the scaled-down attempt to show as killed",
        DEADLINE,
        || async {
            let s = second.status().await?;
            let web = s
                .specs
                .iter()
                .find(|x| x.id == "web")
                .ok_or("no web spec")?;
            web.history
                .iter()
                .find(|a| a.instance == 1 && a.state == "TASK_KILLED")
                .cloned()
                .ok_or_else(|| format!("history: {:?}", web.history))
        },
    )
    .await;
    assert_ne!(
        killed.reason.as_deref(),
        Some("RECONCILIATION"),
        "the TASK_KILLED attempt shows the reason of the reconciliation answer before it: {killed:?}"
    );

    drop(second);
    cluster.shutdown().await;
}

/// SIGTERM: the controller exits 0, its tasks keep running in the master, and a restart launches
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_leaves_tasks_running_and_restart_launches_nothing() {
    let cluster = start_cluster(1, AGENT).await;
    let mut fx = Fixture::new("sigterm", &cluster.url());
    let want = specs(&[("web", 2), ("worker", 1)]);
    fx.write_specs(&want);

    let mut first = fx.spawn(None);
    first.status_url().await;
    let (before, _) = wait_converged(&cluster, &first, &want, DEADLINE).await;
    let framework_id = before[0].id.clone();
    let tasks_before = running_ids(&before);
    let infos_before = cluster.received_task_infos().await.len();

    first.sigterm();
    let exit = first.wait_exit(DEADLINE).await;
    assert_eq!(
        exit.code(),
        Some(0),
        "SIGTERM ends with exit 0; got {}",
        describe_exit(exit)
    );
    // Once the master has noticed the closed stream, the framework is kept (failover timeout)
    // with its tasks still running.
    let parked = wait_for(
        "the master to see the framework disconnected",
        DEADLINE,
        || async {
            let fws = frameworks(&cluster).await;
            match fws.as_slice() {
                [f] if !f.active => Ok(fws),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(parked[0].id, framework_id);
    assert_eq!(running_ids(&parked), tasks_before, "the tasks kept running");

    let second = fx.spawn(None);
    let status = wait_ready_and_passes(&second, SETTLE_PASSES).await;
    let after = frameworks(&cluster).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].id, framework_id);
    assert!(after[0].active);
    assert_eq!(running_ids(&after), tasks_before);
    assert_eq!(status.counters.launches, 0, "the restart launched nothing");
    assert_eq!(cluster.received_task_infos().await.len(), infos_before);
    check_converged(&after, &status, &want).unwrap();

    drop(second);
    cluster.shutdown().await;
}

/// `spec id -> instances` from a literal list.
fn specs(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(id, n)| ((*id).to_owned(), *n)).collect()
}

/// The seed of a random crash schedule: `CRASH_SEED` to replay one, else a fresh one.
fn seed_from_env() -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>)
}
