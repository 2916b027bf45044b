//! What the tests of the dev cluster's ZooKeeper masters share: a ZooKeeper server in a
//! temporary directory, three masters contending through it, plain HTTP requests to each master
//! (redirects not followed) and the verdicts read from the leader's own `/master/state`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use mesos_reconciler::devcluster::{DevCluster, DevClusterConfig, ZkMasters};
use mesos_reconciler::zk::{ZkUrl, leader_child};
use reqwest::StatusCode;

use crate::proc::{
    ControllerProc, DEADLINE, FrameworkView, check_converged, cluster_config, frameworks_of,
    wait_for,
};
use crate::zk_support::ZooKeeper;

/// Where the masters contend.
pub(crate) const ZK_PATH: &str = "/devcluster/mesos";
const AGENT: &str = "cpus:16;mem:8192;disk:20000;ports:[31000-32000]";

/// A ZooKeeper server under a fresh temporary directory (removed on drop).
pub(crate) struct Zk {
    pub(crate) server: ZooKeeper,
    dir: std::path::PathBuf,
}

impl Zk {
    pub(crate) fn start(label: &str, tick: Duration) -> Zk {
        let dir = std::env::temp_dir().join(format!(
            "zk-masters-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let server = tokio::task::block_in_place(|| ZooKeeper::start(&dir, tick));
        Zk { server, dir }
    }

    pub(crate) fn url(&self) -> ZkUrl {
        ZkUrl::parse(&self.server.url(ZK_PATH)).expect("the harness URL parses")
    }

    pub(crate) fn stop(&mut self) {
        tokio::task::block_in_place(|| self.server.stop());
    }

    pub(crate) fn restart(&mut self) {
        tokio::task::block_in_place(|| self.server.restart());
    }

    /// How many client connections the server has (its `srvr` command).
    pub(crate) fn connections(&self) -> Result<usize, String> {
        use std::io::{Read, Write};
        let addr = SocketAddr::from(([127, 0, 0, 1], self.server.port()));
        let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .map_err(|e| format!("connect: {e}"))?;
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        conn.write_all(b"srvr").map_err(|e| format!("srvr: {e}"))?;
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        answer
            .lines()
            .find_map(|l| l.strip_prefix("Connections: "))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("no connection count in {answer:?}"))
    }

    /// The children of the election path and the leader's data, read with a session of its own.
    pub(crate) async fn election(&self) -> Result<(Vec<String>, Option<Vec<u8>>), String> {
        let client = zookeeper_client::Client::connect(&self.server.connect_string())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let children = client
            .list_children(ZK_PATH)
            .await
            .map_err(|e| format!("list {ZK_PATH}: {e}"))?;
        let data = match leader_child(&children) {
            Some(leader) => Some(
                client
                    .get_data(&format!("{ZK_PATH}/{leader}"))
                    .await
                    .map_err(|e| format!("read {leader}: {e}"))?
                    .0,
            ),
            None => None,
        };
        Ok((children, data))
    }
}

impl Drop for Zk {
    fn drop(&mut self) {
        self.server.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("ZooKeeper log:\n{}", self.server.log_tail());
        }
    }
}

/// Three masters on free ports, `agents` virtual agents, short intervals.
pub(crate) async fn three_masters(zk: &Zk, agents: usize, session_timeout: Duration) -> DevCluster {
    three_masters_at(zk.url(), agents, session_timeout).await
}

pub(crate) async fn three_masters_at(
    url: ZkUrl,
    agents: usize,
    session_timeout: Duration,
) -> DevCluster {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    DevCluster::start(DevClusterConfig {
        reregister_delay: Duration::from_millis(200),
        zk: Some(ZkMasters {
            url,
            listen: vec![any; 3],
            session_timeout,
        }),
        ..cluster_config(agents, AGENT)
    })
    .await
    .expect("the dev cluster starts")
}

pub(crate) fn http() -> reqwest::Client {
    mesos_reconciler::http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// `POST /api/v1/scheduler` with a SUBSCRIBE body: (status, Location).
pub(crate) async fn post_scheduler(
    addr: SocketAddr,
) -> Result<(StatusCode, Option<String>), String> {
    let body = r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"probe"}}}"#;
    let response = http()
        .post(format!("http://{addr}/api/v1/scheduler"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST to {addr}: {e}"))?;
    Ok((response.status(), location(&response)))
}

pub(crate) async fn get(addr: SocketAddr, path: &str) -> Result<reqwest::Response, String> {
    http()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .map_err(|e| format!("GET {addr}{path}: {e}"))
}

pub(crate) fn location(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Waits until one master leads (recovered) and returns its index.
pub(crate) async fn wait_leader(
    cluster: &DevCluster,
    not: Option<usize>,
    deadline: Duration,
) -> usize {
    wait_for("a master to lead", deadline, || async {
        match cluster.leader().await {
            Some(i) if Some(i) != not => Ok(i),
            other => Err(format!("leader: {other:?}")),
        }
    })
    .await
}

/// The leader's `/master/state`, fetched over HTTP from the leader itself.
pub(crate) async fn leader_state(addr: SocketAddr) -> Result<serde_json::Value, String> {
    let response = get(addr, "/master/state").await?;
    if response.status() != StatusCode::OK {
        return Err(format!(
            "{addr}/master/state answered {}",
            response.status()
        ));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("{addr}/master/state: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{addr}/master/state: {e}"))
}

pub(crate) fn specs(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(id, n)| ((*id).to_owned(), *n)).collect()
}

/// The task ids the leader's `/master/state` lists, by framework.
pub(crate) fn task_ids(frameworks: &[FrameworkView]) -> BTreeSet<String> {
    frameworks
        .iter()
        .flat_map(|f| &f.tasks)
        .map(|t| t.id.clone())
        .collect()
}

/// Waits until the leader's own `/master/state` matches the specs, the controller knowing every
/// task.
pub(crate) async fn wait_converged_on(
    addr: SocketAddr,
    proc: &ControllerProc,
    specs: &BTreeMap<String, u32>,
) -> Vec<FrameworkView> {
    wait_for(
        "the leader's state to match the specs",
        DEADLINE * 2,
        || async {
            let snapshot = proc.status().await?;
            let fws = frameworks_of(&leader_state(addr).await?);
            check_converged(&fws, &snapshot, specs)?;
            Ok(fws)
        },
    )
    .await
}
