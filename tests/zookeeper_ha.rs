//! Issue 10, `run --ha zk://...`: two controllers (the real binary, `support/proc.rs`), each
//! with its own state directory, contend in a real ZooKeeper (`support/zookeeper.rs`, a 250 ms
//! tick so that a 2 s session expires quickly); only the leader acts. Every verdict on tasks
//! comes from the master's `/master/state`: each spec has exactly its instances, nothing is
//! launched twice, and a controller that lost its leadership launches and kills nothing.
//!
//! Every test has `zookeeper` in its name, so `cargo test zookeeper` runs them all.

#[path = "support/proc.rs"]
mod proc;
#[path = "support/zookeeper.rs"]
mod zk_support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::Duration;

use mesos_reconciler::devcluster::DevCluster;
use proc::{
    ControllerProc, DEADLINE, Fixture, SIGKILL, Spawn, check_converged, describe_exit, frameworks,
    running_ids, service_spec, start_cluster, wait_converged, wait_for, wait_ready_and_passes,
};
use zk_support::ZooKeeper;

const AGENT: &str = "cpus:16;mem:8192;disk:20000;ports:[31000-32000]";
const TICK: Duration = Duration::from_millis(250);
/// The controllers' ZooKeeper session timeout: a standby takes over about this long after the
/// leader's last word to ZooKeeper.
const SESSION: &str = "2s";

/// A ZooKeeper, a dev cluster and a fixture whose controllers contend under `/ctl`.
struct Ha {
    zk: ZooKeeper,
    zk_dir: PathBuf,
    cluster: DevCluster,
    fx: Fixture,
    ha: String,
    /// `--zk-session-timeout` of its controllers.
    session: String,
}

impl Ha {
    async fn start(name: &str) -> Ha {
        Ha::start_with(name, TICK, SESSION).await
    }

    /// With another tick and session timeout (ZooKeeper allows sessions of 2 to 20 ticks).
    async fn start_with(name: &str, tick: Duration, session: &str) -> Ha {
        let zk_dir =
            std::env::temp_dir().join(format!("zk-{name}-{}", uuid::Uuid::new_v4().simple()));
        let zk = ZooKeeper::start(&zk_dir, tick);
        let cluster = start_cluster(1, AGENT).await;
        let fx = Fixture::new(name, &cluster.url());
        let ha = zk.url("/ctl");
        Ha {
            zk,
            zk_dir,
            cluster,
            fx,
            ha,
            session: session.to_owned(),
        }
    }

    /// Starts a controller contending with state directory `state` (relative to the fixture).
    async fn controller(&mut self, state: &str) -> ControllerProc {
        let state = self.fx.other_state(state);
        let ha = self.ha.clone();
        let session = self.session.clone();
        let mut proc = self.fx.spawn_with(Spawn {
            state: Some(&state),
            args: &["--ha", &ha, "--zk-session-timeout", &session],
            ..Spawn::default()
        });
        proc.status_url().await;
        proc
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        self.zk.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.zk_dir);
        }
    }
}

fn specs(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(id, n)| ((*id).to_owned(), *n)).collect()
}

/// Waits until `proc` says it stands by for another controller (`/readyz` 503 naming the
/// leader), and returns the body.
async fn wait_standby(proc: &mut ControllerProc) -> String {
    let body = proc.wait_readyz(503, "standby; leader is ").await;
    assert!(body.starts_with("standby; leader is "), "{body}");
    body
}

/// A leader converged on `wanted` and a standby behind it; returns them and the framework id.
async fn leader_and_standby(
    ha: &mut Ha,
    wanted: &BTreeMap<String, u32>,
) -> (ControllerProc, ControllerProc, String) {
    ha.fx.write_specs(wanted);
    let a = ha.controller("a").await;
    let (fws, _) = wait_converged(&ha.cluster, &a, wanted, DEADLINE).await;
    let mut b = ha.controller("b").await;
    let body = wait_standby(&mut b).await;
    assert!(body.contains(&format!("pid {}", a.pid())), "{body}");
    (a, b, fws[0].id.clone())
}

/// Sends `signal` (STOP, CONT) through the shell's `kill` (the tests may not use `unsafe`).
fn signal(proc: &ControllerProc, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(proc.pid().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed: {status}");
}

/// The leader is killed with SIGKILL; meanwhile a spec is scaled up and one is added. The
/// standby takes over once the leader's session expires: it finds the framework on the master,
/// adopts its tasks, and converges on the edit without launching any instance twice. Before,
/// the standby's `/readyz`, page data and `status` said who leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_standby_takes_over_a_killed_leader_and_converges_an_edit() {
    let mut ha = Ha::start("zk-ha-kill").await;
    let before = specs(&[("web", 2), ("worker", 1)]);
    let (mut a, mut b, framework_id) = leader_and_standby(&mut ha, &before).await;
    let snapshot = b.status().await.unwrap();
    assert!(!snapshot.connected && !snapshot.ready);
    assert!(
        snapshot
            .standby
            .as_deref()
            .is_some_and(|s| s.starts_with("standby; leader is ")),
        "{:?}",
        snapshot.standby
    );
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-reconciler"))
        .arg("status")
        .arg("--server")
        .arg(b.status_url().await)
        .output()
        .expect("run mesos-reconciler status");
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("standby; leader is "), "{out}");
    assert!(
        !status.status.success(),
        "a standby is not converged: {out}"
    );
    let launched = ha.cluster.received_task_infos().await.len();
    assert_eq!(launched, 3, "the standby launched nothing");

    let exit = a.kill9().await;
    assert_eq!(exit.signal(), Some(SIGKILL), "{}", describe_exit(exit));
    ha.fx.write_spec("web", &service_spec(3));
    ha.fx.write_spec("fresh", &service_spec(1));
    let after = specs(&[("web", 3), ("worker", 1), ("fresh", 1)]);
    let (fws, snapshot) = wait_converged(&ha.cluster, &b, &after, DEADLINE).await;
    assert_eq!(fws[0].id, framework_id, "the same framework, taken over");
    assert_eq!(snapshot.standby, None);
    let settled = wait_ready_and_passes(&b, 3).await;
    check_converged(&frameworks(&ha.cluster).await, &settled, &after).unwrap();
    assert_eq!(
        ha.cluster.received_task_infos().await.len(),
        launched + 2,
        "only web#2 and fresh#0 were launched"
    );
    assert!(
        ha.fx
            .log_text()
            .contains("LEADING: this controller takes over")
    );
}

/// The leader is paused (SIGSTOP) past its session timeout: the standby takes over and fails
/// the framework over. When the old leader resumes (SIGCONT) it finds its lease long run out,
/// stops before handling anything, learns its session expired and exits (status 1; systemd
/// would start it again as a standby). It launched and killed nothing: the master's tasks are
/// those the new leader had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_paused_leader_is_replaced_and_steps_down_when_resumed() {
    let mut ha = Ha::start("zk-ha-pause").await;
    let wanted = specs(&[("web", 3), ("worker", 1)]);
    let (mut a, mut b, framework_id) = leader_and_standby(&mut ha, &wanted).await;

    signal(&a, "STOP");
    wait_for("the standby to take over", DEADLINE, || {
        let status = b.status();
        async move {
            let s = status.await?;
            if s.ready && s.connected && s.standby.is_none() {
                Ok(())
            } else {
                Err(format!(
                    "ready={} connected={} standby={:?}",
                    s.ready, s.connected, s.standby
                ))
            }
        }
    })
    .await;
    let (fws, _) = wait_converged(&ha.cluster, &b, &wanted, DEADLINE).await;
    assert_eq!(fws[0].id, framework_id, "the same framework, failed over");
    let running = running_ids(&fws);
    let launched = ha.cluster.received_task_infos().await.len();

    signal(&a, "CONT");
    let exit = a.wait_exit(DEADLINE).await;
    assert_eq!(exit.code(), Some(1), "{}", describe_exit(exit));
    let log = ha.fx.log_text();
    assert!(
        log.contains("lost the ZooKeeper session"),
        "the old leader says why it stops"
    );
    let settled = wait_ready_and_passes(&b, 3).await;
    let fws = frameworks(&ha.cluster).await;
    check_converged(&fws, &settled, &wanted).unwrap();
    assert_eq!(running_ids(&fws), running, "nothing was killed");
    assert_eq!(
        ha.cluster.received_task_infos().await.len(),
        launched,
        "nothing was launched"
    );
    assert!(b.exited().is_none(), "the new leader was not failed over");
}

/// The figure of the note (issue 10, item 5): a leading controller killed with SIGKILL, to the
/// standby's `/readyz` answering 200, ten times (the killed one is started again as the next
/// standby, as systemd would). Prints each time, the median and the maximum. Ignored by
/// default: `cargo test --test zookeeper_ha -- --ignored --nocapture zookeeper_takeover_figures`;
/// `ZK_FIGURES_SESSION=10s` measures with another session timeout, on ZooKeeper's default 2 s
/// tick (sessions expire on tick boundaries), as a production ensemble runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn zookeeper_takeover_figures() {
    let session = std::env::var("ZK_FIGURES_SESSION").unwrap_or_else(|_| SESSION.to_owned());
    let tick = if session == SESSION {
        TICK
    } else {
        Duration::from_secs(2)
    };
    let mut ha = Ha::start_with("zk-ha-figures", tick, &session).await;
    let wanted = specs(&[("web", 3), ("worker", 2)]);
    ha.fx.write_specs(&wanted);
    let mut leader = ha.controller("s0").await;
    wait_converged(&ha.cluster, &leader, &wanted, DEADLINE).await;
    let mut standby = ha.controller("s1").await;
    wait_standby(&mut standby).await;
    let mut times = Vec::new();
    for run in 0..10 {
        let started = tokio::time::Instant::now();
        leader.kill9().await;
        loop {
            if let Ok((200, _)) = standby.readyz().await {
                break;
            }
            assert!(started.elapsed() < DEADLINE, "no takeover in run {run}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        eprintln!("run {run}: standby ready after {took:?}");
        times.push(took);
        wait_converged(&ha.cluster, &standby, &wanted, DEADLINE).await;
        // The killed one comes back as the next standby, on its own state directory.
        let next = ha.controller(&format!("s{}", run % 2)).await;
        leader = std::mem::replace(&mut standby, next);
        wait_standby(&mut standby).await;
    }
    times.sort();
    let median = (times[4] + times[5]) / 2;
    eprintln!(
        "leader controller killed -> standby ready (/readyz 200), session timeout {session}, tick {tick:?}, 10 runs: median {median:?}, max {:?}",
        times[9]
    );
}
