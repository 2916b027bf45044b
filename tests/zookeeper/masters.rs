//! The dev cluster as three masters contending through a real ZooKeeper (issue 10, item 2):
//! one leader, whose node holds its MasterInfo as upstream writes it; the others redirect as
//! upstream's masters do, or answer 503 while no leader is known; the `devcluster` command
//! and its fault API over HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use mesos_reconciler::mesos::json;
use mesos_reconciler::mesos::proto::v1 as pb;
use mesos_reconciler::zk::{ZkUrl, leader_child};
use reqwest::StatusCode;

use super::dev_masters::{
    ZK_PATH, Zk, get, http, leader_state, location, post_scheduler, three_masters,
    three_masters_at, wait_leader,
};
use crate::proc::{DEADLINE, wait_for};

/// With ZooKeeper down at start every master answers 503; once it serves, three masters elect
/// exactly one leader; its node holds MasterInfo JSON naming its address;
/// the others answer the scheduler endpoint and `/master/state` with 307 to it, `/redirect`
/// redirects everywhere; with ZooKeeper gone long enough for every session to be lost, no
/// leader is known and every master answers 503; back, a leader is elected again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_three_dev_masters_elect_one_leader_the_others_redirect() {
    let mut zk = Zk::start("elect", Duration::from_millis(250));
    // ZooKeeper down at start: the masters serve, but know no leader.
    zk.stop();
    let cluster = three_masters(&zk, 1, Duration::from_secs(3)).await;
    let addrs = cluster.master_addrs();
    for addr in &addrs {
        let (status, _) = post_scheduler(*addr).await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{addr}");
    }
    zk.restart();
    let leader = wait_leader(&cluster, None, DEADLINE).await;
    let leader_addr = addrs[leader];

    let (children, data) = wait_for("three contenders in ZooKeeper", DEADLINE, || async {
        let (children, data) = zk.election().await?;
        if children.len() == 3 {
            Ok((children, data))
        } else {
            Err(format!("children: {children:?}"))
        }
    })
    .await;
    assert!(
        children.iter().all(|c| c.starts_with("json.info_")),
        "{children:?}"
    );
    let data = data.expect("the leader's node has data");
    let info: pb::MasterInfo = json::from_slice(&data).expect("the node holds MasterInfo JSON");
    assert_eq!(info.port, u32::from(leader_addr.port()));
    assert_eq!(
        info.ip,
        u32::from_le_bytes([127, 0, 0, 1]),
        "packed as upstream"
    );
    assert_eq!(
        info.pid.as_deref(),
        Some(format!("master@{leader_addr}").as_str())
    );
    assert_eq!(info.version.as_deref(), Some("1.11.0"));
    let address = info.address.as_ref().expect("address");
    assert_eq!(address.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(address.port, i32::from(leader_addr.port()));
    let raw: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(raw["address"]["hostname"], "127.0.0.1");
    assert_eq!(raw["capabilities"][0]["type"], "AGENT_UPDATE");
    let state = leader_state(leader_addr).await.unwrap();
    assert_eq!(state["id"], info.id, "the leader's state has its node's id");

    let base = format!("//127.0.0.1:{}", leader_addr.port());
    for (i, addr) in addrs.iter().enumerate() {
        let redirect = get(*addr, "/master/redirect").await.unwrap();
        assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT, "{i}");
        assert_eq!(location(&redirect).as_deref(), Some(base.as_str()), "{i}");
        if i == leader {
            continue;
        }
        let (status, to) = post_scheduler(*addr).await.unwrap();
        assert_eq!(status, StatusCode::TEMPORARY_REDIRECT, "master {i}");
        assert_eq!(to, Some(format!("{base}/api/v1/scheduler")), "master {i}");
        let state = get(*addr, "/master/state?jsonp=f").await.unwrap();
        assert_eq!(state.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            location(&state),
            Some(format!("{base}/master/state?jsonp=f"))
        );
        let health = get(*addr, "/health").await.unwrap();
        assert_eq!(
            health.status(),
            StatusCode::OK,
            "health is never redirected"
        );
    }

    zk.stop();
    for addr in &addrs {
        wait_for("503 with no leader known", DEADLINE, || async {
            match post_scheduler(*addr).await? {
                (StatusCode::SERVICE_UNAVAILABLE, _) => Ok(()),
                other => Err(format!("{addr}: {other:?}")),
            }
        })
        .await;
        let redirect = get(*addr, "/master/redirect").await.unwrap();
        assert_eq!(redirect.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(cluster.leader().await, None);

    zk.restart();
    let leader = wait_leader(&cluster, None, DEADLINE).await;
    let (status, _) = post_scheduler(addrs[(leader + 1) % 3]).await.unwrap();
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT, "a leader again");
    cluster.shutdown().await;
}

/// With credentials in the URL the masters authenticate (digest) and create their nodes as
/// upstream does: everyone may read them (detectors need no credentials), only their creator may
/// delete them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_dev_masters_with_credentials_write_nodes_only_they_can_delete() {
    let zk = Zk::start("auth", Duration::from_millis(250));
    let url = ZkUrl::parse(&format!(
        "zk://alice:s3cret@127.0.0.1:{}{ZK_PATH}",
        zk.server.port()
    ))
    .unwrap();
    let cluster = three_masters_at(url, 1, Duration::from_secs(3)).await;
    wait_leader(&cluster, None, DEADLINE).await;
    let (children, data) = zk.election().await.expect("anyone may read the nodes");
    let info: pb::MasterInfo = json::from_slice(&data.unwrap()).unwrap();
    let ports: Vec<u32> = cluster
        .master_addrs()
        .iter()
        .map(|a| u32::from(a.port()))
        .collect();
    assert!(ports.contains(&info.port), "{info:?}");
    let anonymous = zookeeper_client::Client::connect(&zk.server.connect_string())
        .await
        .unwrap();
    let leader = leader_child(&children).unwrap();
    let refused = anonymous
        .delete(&format!("{ZK_PATH}/{leader}"), None)
        .await
        .expect_err("only the creator may delete");
    assert!(
        matches!(refused, zookeeper_client::Error::NoAuth),
        "{refused:?}"
    );
    cluster.shutdown().await;
}

/// The command itself: `devcluster --zk --masters 3 --listen a,b,c` prints the three masters,
/// one of them leads; `kill_master` over HTTP (on a master that does not lead) kills the leader,
/// another one leads after the session timeout, `start_master` brings the killed one back; on
/// SIGTERM the masters delete their nodes and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_devcluster_command_runs_three_masters() {
    let zk = Zk::start("command", Duration::from_millis(250));
    let ports: Vec<u16> = (0..3).map(|_| crate::zk_support::free_port()).collect();
    let listen: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mesos-reconciler"))
        .args([
            "devcluster",
            "--zk",
            &zk.url().to_string(),
            "--masters",
            "3",
        ])
        .args(["--listen", &listen.join(","), "--virtual-agents"])
        .args(["--zk-session-timeout", "3s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mesos-reconciler devcluster");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let printed = lines.next_line().await.unwrap().expect("a line on stdout");
    let expected: Vec<String> = listen.iter().map(|a| format!("http://{a}")).collect();
    assert_eq!(printed, expected.join(","));
    let addrs: Vec<SocketAddr> = listen.iter().map(|a| a.parse().unwrap()).collect();

    let leader_port = |addr: SocketAddr| async move {
        let response = get(addr, "/master/redirect").await?;
        location(&response)
            .and_then(|l| l.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()))
            .ok_or_else(|| format!("{addr}: {} without a leader", response.status()))
    };
    let first = wait_for("a leader", DEADLINE, || leader_port(addrs[0])).await;
    let killed = ports.iter().position(|p| *p == first).unwrap();
    let other = addrs[(killed + 1) % 3];
    let response = http()
        .post(format!("http://{other}/devcluster/faults/kill_master"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["master"], killed);
    wait_for("another leader", DEADLINE, || async {
        match leader_port(other).await? {
            p if p != first => Ok(()),
            p => Err(format!("still {p}")),
        }
    })
    .await;
    let response = http()
        .post(format!("http://{other}/devcluster/faults/start_master"))
        .body(format!("{{\"master\": {killed}}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    wait_for("the restarted master to answer", DEADLINE, || {
        leader_port(addrs[killed])
    })
    .await;

    let pid = child.id().expect("running");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let (children, _) = zk.election().await.unwrap();
    // The killed master's node went when its session expired, before another one led.
    assert!(
        children.is_empty(),
        "the masters deleted their nodes: {children:?}"
    );
}
