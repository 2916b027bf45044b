//! Issue 10, `--master zk://`: the controller (the real binary, `support/proc.rs`) finds the
//! leading master in a real ZooKeeper (`support/zookeeper.rs`) as Mesos' detector does. The test
//! itself plays the masters' part in ZooKeeper: it creates and deletes `json.info_` nodes
//! (EPHEMERAL_SEQUENTIAL, MasterInfo JSON as upstream writes it) that point at ordinary single
//! dev masters. Every verdict on tasks comes from the masters' `/master/state`.
//!
//! Every test has `zookeeper` in its name, so `cargo test zookeeper` runs them all.

#[path = "support/proc.rs"]
mod proc;
#[path = "support/zookeeper.rs"]
mod zk_support;

use std::collections::BTreeMap;
use std::time::Duration;

use mesos_reconciler::devcluster::DevCluster;
use proc::{
    DEADLINE, Fixture, Spawn, check_converged, frameworks, start_cluster, wait_converged,
    wait_ready_and_passes,
};
use zk_support::ZooKeeper;
use zookeeper_client::{Acls, Client, CreateMode};

const AGENT: &str = "cpus:16;mem:8192;disk:20000;ports:[31000-32000]";
/// ZooKeeper's tick: sessions may last 0.5 s to 5 s.
const TICK: Duration = Duration::from_millis(250);
/// The session timeout of the test's own "masters" and of the controller.
const SESSION: Duration = Duration::from_secs(5);

/// A test's ZooKeeper server, under a directory of its own (removed with it, unless the test
/// failed).
struct Server {
    zk: ZooKeeper,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.zk.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn zookeeper(name: &str) -> Server {
    zookeeper_ticking(name, TICK)
}

fn zookeeper_ticking(name: &str, tick: Duration) -> Server {
    let dir = std::env::temp_dir().join(format!("zk-{name}-{}", uuid::Uuid::new_v4().simple()));
    Server {
        zk: ZooKeeper::start(&dir, tick),
        dir,
    }
}

/// A session of the test's own, playing the masters' part.
async fn session(zk: &ZooKeeper) -> Client {
    session_lasting(zk, SESSION).await
}

async fn session_lasting(zk: &ZooKeeper, timeout: Duration) -> Client {
    Client::connector()
        .with_session_timeout(timeout)
        .connect(&zk.connect_string())
        .await
        .expect("connect to ZooKeeper")
}

/// MasterInfo as upstream's master writes it under `json.info_`: `address.ip` is the one to use;
/// `hostname` names a host that does not resolve, so a detector that used it would fail.
fn master_info(cluster: &DevCluster) -> Vec<u8> {
    let url = reqwest::Url::parse(&cluster.url()).unwrap();
    let port = url.port().unwrap();
    serde_json::to_vec(&serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "ip": 16777343u32,
        "port": port,
        "pid": format!("master@127.0.0.1:{port}"),
        "hostname": "master.invalid",
        "version": "1.11.0",
        "address": {"hostname": "master.invalid", "ip": "127.0.0.1", "port": port},
        "capabilities": [{"type": "AGENT_UPDATE"}, {"type": "AGENT_DRAINING"}],
    }))
    .unwrap()
}

/// Creates `/mesos/<prefix>` as a master's node (ephemeral sequential); returns its path.
async fn contend(client: &Client, prefix: &str, data: &[u8]) -> String {
    let opts = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    let (_, seq) = client
        .create(&format!("/mesos/{prefix}"), data, &opts)
        .await
        .expect("create a master's node");
    format!("/mesos/{prefix}{seq}")
}

async fn make_root(client: &Client) {
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    match client.create("/mesos", b"", &opts).await {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
        Err(e) => panic!("create /mesos: {e}"),
    }
}

fn specs(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(id, n)| ((*id).to_owned(), *n)).collect()
}

/// The leader is the lowest `json.info_` sequence whose data parses: a lower node with other
/// data and children of other forms are skipped, and the master is reached at `address.ip`, not
/// at its unresolvable `hostname`. When the test's "master A" node goes (as when A's session
/// expires) and B's remains, the controller drops its stream, subscribes to B with the same
/// framework id and converges there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_detection_follows_the_lowest_parseable_master_and_its_change() {
    let server = zookeeper("detect");
    let zk = &server.zk;
    let a = start_cluster(1, AGENT).await;
    let b = start_cluster(1, AGENT).await;
    let masters = session(zk).await;
    make_root(&masters).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    masters
        .create("/mesos/log_replicas", b"", &opts)
        .await
        .unwrap();
    // Lowest, but not MasterInfo JSON: skipped.
    contend(&masters, "json.info_", b"master@127.0.0.1:1").await;
    let node_a = contend(&masters, "json.info_", &master_info(&a)).await;
    contend(&masters, "json.info_", &master_info(&b)).await;

    let mut fx = Fixture::new("zk-detect", &zk.url("/mesos"));
    let wanted = specs(&[("web", 2), ("worker", 1)]);
    fx.write_specs(&wanted);
    let mut ctl = fx.spawn_with(Spawn {
        args: &["--zk-session-timeout", "5s"],
        ..Spawn::default()
    });
    ctl.status_url().await;
    let (fws, snapshot) = wait_converged(&a, &ctl, &wanted, DEADLINE).await;
    assert_eq!(snapshot.master, Some(format!("{}/", a.url())), "master A");
    let framework_id = fws[0].id.clone();
    assert!(frameworks(&b).await.is_empty(), "nothing went to B");

    // A's node goes; the garbage one stays (still lowest, still skipped).
    masters.delete(&node_a, None).await.unwrap();
    let (fws, snapshot) = wait_converged(&b, &ctl, &wanted, DEADLINE).await;
    assert_eq!(
        fws[0].id, framework_id,
        "the same framework, on the new leader"
    );
    assert_eq!(snapshot.master, Some(format!("{}/", b.url())), "master B");
    let on_a = frameworks(&a).await;
    assert!(
        on_a.iter().all(|f| !f.active),
        "A's stream was dropped: {on_a:?}"
    );
    assert!(
        fx.log_text()
            .contains("ZooKeeper names a new leading master")
    );
}

/// ZooKeeper is down when the controller starts: `/readyz` says ZooKeeper cannot be reached and
/// the controller retries, without exiting. Once ZooKeeper is up but names no master, `/readyz`
/// says so. Once a master contends, the controller converges on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_down_at_controller_start_is_retried_until_it_is_up() {
    let mut server = zookeeper("down-at-start");
    let zk = &mut server.zk;
    zk.stop();
    let cluster = start_cluster(1, AGENT).await;
    let mut fx = Fixture::new("zk-down-at-start", &zk.url("/mesos"));
    let wanted = specs(&[("web", 2)]);
    fx.write_specs(&wanted);
    let mut ctl = fx.spawn_with(Spawn {
        args: &["--zk-session-timeout", "5s"],
        ..Spawn::default()
    });
    let body = ctl.wait_readyz(503, "cannot be reached").await;
    assert!(
        body.contains(&format!("ZooKeeper {}", zk.url("/mesos"))),
        "{body}"
    );
    assert!(ctl.exited().is_none(), "the controller keeps running");

    zk.restart();
    ctl.wait_readyz(503, "no leading Mesos master").await;
    let masters = session(zk).await;
    make_root(&masters).await;
    contend(&masters, "json.info_", &master_info(&cluster)).await;
    wait_converged(&cluster, &ctl, &wanted, Duration::from_secs(60)).await;
    let logged = "cannot detect the leading Mesos master in ZooKeeper; retrying";
    assert!(fx.log_text().contains(logged));
}

/// ZooKeeper is killed while a controller runs with `--master zk://` and `--ha`, and started
/// again (same port, same data) only once the controller has stopped acting: ZooKeeper has been
/// silent for half the session timeout, so the controller can no longer know that it still
/// leads, and `/readyz` says so. The sessions outlive the restart (ZooKeeper gives every session
/// a full timeout when it starts), so the controller learns it still leads, subscribes again and
/// ends where it was: nothing launched, nothing killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_restarted_while_everything_runs_relaunches_and_kills_nothing() {
    let mut server = zookeeper_ticking("restart", Duration::from_secs(1));
    let zk = &mut server.zk;
    let cluster = start_cluster(1, AGENT).await;
    let masters = session_lasting(zk, Duration::from_secs(20)).await;
    make_root(&masters).await;
    contend(&masters, "json.info_", &master_info(&cluster)).await;
    let mut fx = Fixture::new("zk-restart", &zk.url("/mesos"));
    let wanted = specs(&[("web", 3), ("worker", 1)]);
    fx.write_specs(&wanted);
    let ha = zk.url("/mesos-reconciler");
    let mut ctl = fx.spawn_with(Spawn {
        args: &["--zk-session-timeout", "6s", "--ha", &ha],
        ..Spawn::default()
    });
    ctl.status_url().await;
    let (fws, _) = wait_converged(&cluster, &ctl, &wanted, DEADLINE).await;
    let running = proc::running_ids(&fws);
    let launched = cluster.received_task_infos().await.len();

    zk.stop();
    ctl.wait_readyz(503, "not acting").await;
    zk.restart();
    // It acts again and ends where it was.
    let settled = wait_ready_and_passes(&ctl, 3).await;
    let fws = frameworks(&cluster).await;
    check_converged(&fws, &settled, &wanted).unwrap();
    assert_eq!(proc::running_ids(&fws), running, "the same tasks run");
    assert_eq!(
        cluster.received_task_infos().await.len(),
        launched,
        "nothing was launched"
    );
    assert!(ctl.exited().is_none(), "the controller kept running");
}
