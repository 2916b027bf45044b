//! The dev cluster's masters contending through ZooKeeper, as Mesos masters do, and the agents'
//! detector that tells them which master leads.
//!
//! Each contending master holds its own session and an EPHEMERAL_SEQUENTIAL child `json.info_`
//! of the election path, holding its MasterInfo as upstream's JSON (API notes §13). Every
//! session watches the children; the leader is the smallest sequence among the parseable ones
//! ([`crate::zk::leader_child`]). [`session_loop`] is that watch, shared by a contender (which
//! has a node) and the agents' detector (which has none); it reports what it sees as [`View`]s.
//!
//! Sessions are detached ([`crate::zk::ZkUrl::connect_detached`]): aborting a contender's task
//! abandons its session without closing it, so its node disappears only when ZooKeeper expires
//! the session, as after a crash. A session that is disconnected for longer than its timeout is
//! taken as lost at once, before the server says so (upstream's group does the same): a
//! leader that may have been replaced stops leading then, and the master contends again with a
//! new session.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use zookeeper_client::{Client, CreateMode, SessionState};

use super::state::{LeaderChange, Msg};
use crate::mesos::json;
use crate::mesos::proto::v1 as pb;
use crate::zk::{ZkUrl, leader_child};

/// The label of the nodes current Mesos masters create (`json.info_<sequence>`).
pub(super) const NODE_LABEL: &str = "json.info_";

/// What one master front knows of the election, and so how it answers (see `ha.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Role {
    /// No leader known (no session yet, no contender, or the leader's node is unreadable): 503.
    NoLeader,
    /// Another master leads: redirect to it.
    Follower { hostname: String, port: u16 },
    /// This master leads; scheduler calls get 503 until `recovered`.
    Leader { recovered: bool },
    /// Killed by the fault API.
    Stopped,
}

/// What a session sees: the leader (whether it is this session's node, and its MasterInfo if
/// its data parses), no leader, or the session lost.
#[derive(Debug, Clone)]
pub(super) enum View {
    NoLeader,
    Leader {
        ours: bool,
        info: Option<Box<pb::MasterInfo>>,
    },
    Lost,
}

/// Where to contend and how long sessions last.
#[derive(Debug, Clone)]
pub(super) struct ZkSpec {
    pub url: ZkUrl,
    pub session_timeout: Duration,
}

/// How a watch ended.
enum End {
    Lost,
    Stop,
}

/// No event to wait for besides the session's.
const NO_EVENT: Option<std::future::Pending<()>> = None;

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Keeps a session (reconnecting with a new one when it is lost), with a node holding `data` if
/// given, and reports every change of the leader on `views`. Returns when `stop` turns true,
/// after deleting its node (a clean stop; a crash is an abort of the task).
pub(super) async fn session_loop(
    zk: ZkSpec,
    data: Option<Vec<u8>>,
    views: mpsc::UnboundedSender<View>,
    mut stop: watch::Receiver<bool>,
) {
    let mut retry = RETRY_MIN;
    loop {
        if *stop.borrow() {
            return;
        }
        let connected = tokio::select! {
            r = zk.url.connect_detached(zk.session_timeout) => r,
            _ = stop.changed() => return,
        };
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(zk = %zk.url, error = %e, retry_in = ?retry, "cannot reach ZooKeeper");
                let _ = views.send(View::NoLeader);
                if wait_or_stop(retry, &mut stop).await {
                    return;
                }
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        retry = RETRY_MIN;
        let ours = match &data {
            Some(data) => {
                match tokio::time::timeout(zk.session_timeout, create_node(&client, &zk.url, data))
                    .await
                    .unwrap_or(Err(zookeeper_client::Error::ConnectionLoss))
                {
                    Ok(name) => Some(name),
                    Err(e) => {
                        tracing::warn!(zk = %zk.url, error = %e, "cannot create the contender node");
                        if wait_or_stop(RETRY_MAX, &mut stop).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            None => None,
        };
        match watch_leader(&client, &zk, ours.as_deref(), &views, &mut stop).await {
            End::Stop => {
                if let Some(name) = ours {
                    let path = zk.url.child(&name);
                    let _ = tokio::time::timeout(RETRY_MAX, client.delete(&path, None)).await;
                }
                return;
            }
            End::Lost => {
                tracing::warn!(zk = %zk.url, node = ?ours, "ZooKeeper session lost");
                let _ = views.send(View::Lost);
                // Given up locally, the session may still live on the server (a server back
                // after longer than the timeout): its node would lead, unserved, until it
                // expires. Delete it if the server still lets us.
                if let Some(name) = ours {
                    let path = zk.url.child(&name);
                    let _ = tokio::time::timeout(RETRY_MIN * 5, client.delete(&path, None)).await;
                }
            }
        }
    }
}

/// Creates the path's parents if missing, then this contender's node; returns its name.
async fn create_node(
    client: &Client,
    url: &ZkUrl,
    data: &[u8],
) -> Result<String, zookeeper_client::Error> {
    if url.path != "/" {
        let dir = CreateMode::Persistent.with_acls(url.node_acls());
        client.mkdir(&url.path, &dir).await?;
    }
    let node = CreateMode::EphemeralSequential.with_acls(url.node_acls());
    let (_, seq) = client.create(&url.child(NODE_LABEL), data, &node).await?;
    Ok(format!("{NODE_LABEL}{seq}"))
}

/// Watches the children until the session is lost or `stop` turns true.
async fn watch_leader(
    client: &Client,
    zk: &ZkSpec,
    ours: Option<&str>,
    views: &mpsc::UnboundedSender<View>,
    stop: &mut watch::Receiver<bool>,
) -> End {
    // The timeout the server granted, which may differ from the one asked for: a leader must
    // not outlive, in its own eyes, the session the server keeps.
    let timeout = client.session_timeout();
    let mut session = SessionClock::new(client, timeout);
    loop {
        // A request made while disconnected may wait for the reconnection: bounded, so that the
        // session clock keeps running.
        let listed = tokio::time::timeout(timeout, client.get_and_watch_children(&zk.url.path))
            .await
            .unwrap_or(Err(zookeeper_client::Error::ConnectionLoss));
        let (children, watcher) = match listed {
            Ok((children, _, watcher)) => (children, watcher),
            Err(
                zookeeper_client::Error::SessionExpired
                | zookeeper_client::Error::ClientClosed
                | zookeeper_client::Error::AuthFailed,
            ) => return End::Lost,
            Err(zookeeper_client::Error::NoNode) if ours.is_none() => {
                // The detector waits for the first master to create the path.
                let _ = views.send(View::NoLeader);
                if let Some(end) = session.wait(RETRY_MAX, NO_EVENT, stop).await {
                    return end;
                }
                continue;
            }
            Err(_) => {
                if let Some(end) = session.wait(RETRY_MIN, NO_EVENT, stop).await {
                    return end;
                }
                continue;
            }
        };
        // Our node gone while the session lives means it was deleted: contend again.
        if let Some(ours) = ours
            && !children.iter().any(|c| c == ours)
        {
            return End::Lost;
        }
        let view = match leader_child(&children) {
            None => View::NoLeader,
            Some(leader) => {
                let read = tokio::time::timeout(timeout, client.get_data(&zk.url.child(leader)));
                let info = match read.await {
                    Ok(Ok((data, _))) => {
                        json::from_slice::<pb::MasterInfo>(&data).ok().map(Box::new)
                    }
                    // Gone meanwhile (the watch has fired already and the loop reads again), or
                    // the connection is down.
                    _ => None,
                };
                View::Leader {
                    ours: ours == Some(leader),
                    info,
                }
            }
        };
        let _ = views.send(view);
        let changed = watcher.changed();
        tokio::pin!(changed);
        if let Some(end) = session.wait(Duration::MAX, Some(changed), stop).await {
            return end;
        }
    }
}

/// The session's state as its owner tracks it: disconnected since when, so that a disconnection
/// longer than the session timeout counts as a lost session.
struct SessionClock {
    state: zookeeper_client::StateWatcher,
    timeout: Duration,
    disconnected_since: Option<Instant>,
}

impl SessionClock {
    fn new(client: &Client, timeout: Duration) -> Self {
        SessionClock {
            state: client.state_watcher(),
            timeout,
            disconnected_since: None,
        }
    }

    /// Waits up to `max` (or until `event` fires); `Some` ends the watch: the session is lost or
    /// `stop` turned true.
    async fn wait<F: std::future::Future + Unpin>(
        &mut self,
        max: Duration,
        mut event: Option<F>,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<End> {
        let until = Instant::now().checked_add(max);
        loop {
            match self.state.peek_state() {
                SessionState::Disconnected => {
                    self.disconnected_since.get_or_insert_with(Instant::now);
                }
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    self.disconnected_since = None;
                }
                _ => return Some(End::Lost),
            }
            let lost_at = self.disconnected_since.map(|t| t + self.timeout);
            tokio::select! {
                _ = async { event.as_mut().expect("guarded").await }, if event.is_some() => return None,
                state = self.state.changed() => match state {
                    SessionState::Disconnected => {
                        self.disconnected_since.get_or_insert_with(Instant::now);
                    }
                    SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                        self.disconnected_since = None;
                    }
                    _ => return Some(End::Lost),
                },
                () = sleep_until_opt(lost_at) => return Some(End::Lost),
                () = sleep_until_opt(until) => return None,
                _ = stop.changed() => return Some(End::Stop),
            }
        }
    }
}

async fn wait_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        _ = stop.changed() => true,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One master contending: keeps `role` up to date from what its session sees, and tells the
/// actor when it is elected (the actor then forgets everything and recovers from the agents)
/// and when it stops leading.
pub(super) async fn contend(
    zk: ZkSpec,
    info: pb::MasterInfo,
    role: std::sync::Arc<watch::Sender<Role>>,
    master: mpsc::UnboundedSender<Msg>,
    stop: watch::Receiver<bool>,
) {
    let port = info.port as u16;
    let (views_tx, mut views) = mpsc::unbounded_channel();
    let session = session_loop(zk, Some(json::to_vec(&info)), views_tx, stop);
    let follow = async {
        let mut leading = false;
        while let Some(view) = views.recv().await {
            if let View::Leader { ours: true, .. } = view {
                if !leading {
                    leading = true;
                    tracing::info!(port, "elected the leading master");
                    role.send_replace(Role::Leader { recovered: false });
                    let (reply, recovered) = oneshot::channel();
                    let change = LeaderChange::Elected {
                        port,
                        master_id: info.id.clone(),
                        reply,
                    };
                    if master.send(Msg::Leadership(change)).is_ok() && recovered.await.is_ok() {
                        role.send_replace(Role::Leader { recovered: true });
                    }
                }
                continue;
            }
            if leading {
                leading = false;
                tracing::warn!(port, "no longer the leading master");
                let _ = master.send(Msg::Leadership(LeaderChange::Deposed { port }));
            }
            role.send_replace(match view {
                // A node of this master's own lost session may still lead until it expires:
                // nobody leads for real then.
                View::Leader {
                    info: Some(info), ..
                } if info.port as u16 != port => Role::Follower {
                    hostname: leader_host(&info),
                    port: info.port as u16,
                },
                _ => Role::NoLeader,
            });
        }
    };
    tokio::join!(session, follow);
}

/// The agents' detector: tells the actor which master leads, so that the agents re-register
/// with it once it is elected.
pub(super) async fn detect_for_agents(
    zk: ZkSpec,
    master: mpsc::UnboundedSender<Msg>,
    stop: watch::Receiver<bool>,
) {
    let (views_tx, mut views) = mpsc::unbounded_channel();
    let session = session_loop(zk, None, views_tx, stop);
    let follow = async {
        let mut last = None;
        while let Some(view) = views.recv().await {
            let port = match view {
                View::Leader {
                    info: Some(info), ..
                } => Some(info.port as u16),
                View::Leader { info: None, .. } | View::NoLeader => None,
                // The agents keep following the last leader they knew.
                View::Lost => continue,
            };
            if port != last {
                last = port;
                tracing::info!(leader_port = ?port, "the agents' detector sees a new leader");
                let _ = master.send(Msg::Leadership(LeaderChange::AgentsDetected { port }));
            }
        }
    };
    tokio::join!(session, follow);
}

/// The host a redirect names: upstream takes `MasterInfo.hostname`, else the IP.
fn leader_host(info: &pb::MasterInfo) -> String {
    info.hostname
        .clone()
        .or_else(|| info.address.as_ref().and_then(|a| a.ip.clone()))
        .unwrap_or_else(|| std::net::Ipv4Addr::from(info.ip.to_le_bytes()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_name_the_hostname_else_the_packed_ip() {
        let mut info = pb::MasterInfo {
            ip: u32::from_le_bytes([10, 0, 0, 1]),
            port: 5050,
            ..Default::default()
        };
        assert_eq!(leader_host(&info), "10.0.0.1");
        info.hostname = Some("m1.example".to_owned());
        assert_eq!(leader_host(&info), "m1.example");
    }
}
