//! Issue 10 against a real ZooKeeper server (Debian's package, started by the test on a free
//! loopback port). Every test here has `zookeeper` in its name, so `cargo test zookeeper` runs
//! them all.

#[path = "support/zookeeper.rs"]
mod zk_support;

#[path = "support/proc.rs"]
mod proc;

/// The controller given `--master zk://` against them (item 1).
#[path = "zookeeper/controller_follows.rs"]
mod controller_follows;
/// The dev cluster as several masters (item 2).
#[path = "zookeeper/dev_masters.rs"]
mod dev_masters;
#[path = "zookeeper/master_failover.rs"]
mod master_failover;
#[path = "zookeeper/masters.rs"]
mod masters;

use std::time::Duration;

use zk_support::ZooKeeper;

/// The harness itself: the server starts, a client creates the kind of node masters and
/// controllers contend with (ephemeral, sequential), and it survives a server restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_harness_serves_ephemeral_sequential_nodes() {
    let dir = std::env::temp_dir().join(format!("zk-harness-{}", uuid::Uuid::new_v4().simple()));
    let mut zk = ZooKeeper::start(&dir, Duration::from_millis(500));
    let client = zookeeper_client::Client::connect(&zk.connect_string())
        .await
        .expect("connect to ZooKeeper");
    let opts =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client
        .create("/mesos", b"", &opts)
        .await
        .expect("create /mesos");
    let eph = zookeeper_client::CreateMode::EphemeralSequential
        .with_acls(zookeeper_client::Acls::anyone_all());
    let (_, seq) = client
        .create("/mesos/json.info_", b"{}", &eph)
        .await
        .expect("create an ephemeral sequential node");
    let children = client.list_children("/mesos").await.expect("list");
    assert_eq!(children, vec![format!("json.info_{seq}")]);
    zk.stop();
    zk.restart();
    let children = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match client.list_children("/mesos").await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("the session reconnects after a restart");
    assert_eq!(
        children,
        vec![format!("json.info_{seq}")],
        "the session and its node survived"
    );
    drop(zk);
    let _ = std::fs::remove_dir_all(&dir);
}
