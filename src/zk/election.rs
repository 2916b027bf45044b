//! Leader election through ZooKeeper, for any set of contenders (standby controllers; the same
//! recipe is how Mesos masters contend): each contender creates an EPHEMERAL_SEQUENTIAL child
//! `<label>_<sequence>` of the path with its own data; the lowest sequence leads. The node lives
//! as long as the contender's session, so a crashed leader's node disappears once its session
//! expires and the next one leads.
//!
//! Leading is a **lease**, not a flag. ZooKeeper expires a session `timeout` after the server last
//! heard from its client, and from then on another contender may lead; the old leader learns of
//! it only when it talks to ZooKeeper again (after a pause, a partition, a SIGSTOP). So a leader
//! may act only until `t + timeout / 2`, where `t` is when it sent the latest request ZooKeeper
//! answered (the server heard from it at `t` or later): the half left is the margin for what it
//! does in flight. The lease is renewed by a request every `timeout / 6`.
//! [`Leadership::acting_until`] is what a leader checks before it acts; it needs no await, so it
//! can be checked right before every call.
//!
//! [`Role::Lost`] is terminal: the session expired (or ZooKeeper answered that the node is gone).
//! A new contention needs a new [`spawn`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use zookeeper_client::{CreateMode, Error as ZkError, EventType, SessionState};

use super::ZkUrl;

/// What a contender needs.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub zk: ZkUrl,
    /// Names the nodes: `<label>_<sequence>`. Other children of the path are ignored.
    pub label: String,
    /// This contender's node data (who it is), shown to the others.
    pub data: Vec<u8>,
    /// The session timeout asked for (ZooKeeper bounds it to 2 to 20 of its ticks).
    pub session_timeout: Duration,
}

/// Where a contender stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not yet contending: no session, or no node yet. `error` says why, after a failure.
    Connecting { error: Option<String> },
    /// Contending, not leading; `leader` is the data of the leading node (`None` while unknown).
    Standby { leader: Option<Vec<u8>> },
    /// Leading, while the lease holds (see [`Leadership::acting_until`]).
    Leader,
    /// The session is over (expired, closed, or the node was deleted): no longer contending.
    Lost(String),
}

/// A contender's view of the election. Clones share it.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<Role>,
    lease: Arc<Mutex<Option<Instant>>>,
}

impl Leadership {
    /// The role as last published.
    pub fn role(&self) -> Role {
        self.rx.borrow().clone()
    }

    /// `Some(until)` when this contender leads and its lease holds now: it may act until `until`.
    pub fn acting_until(&self) -> Option<Instant> {
        if *self.rx.borrow() != Role::Leader {
            return None;
        }
        let until = (*self.lease.lock().unwrap_or_else(PoisonError::into_inner))?;
        (Instant::now() < until).then_some(until)
    }

    /// Waits until the role changes (pending forever once the election task is gone).
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// A view that never leads (for tests of the followers' side).
    pub fn fixed(role: Role) -> Leadership {
        let (tx, rx) = watch::channel(role);
        // The sender is dropped: `changed` then waits forever.
        drop(tx);
        Leadership {
            rx,
            lease: Arc::new(Mutex::new(None)),
        }
    }
}

/// How long one ZooKeeper request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// Starts contending in the background. The task ends with [`Role::Lost`], or when every
/// [`Leadership`] is dropped (the session is then closed, which deletes the node at once).
pub fn spawn(config: ElectionConfig) -> Leadership {
    let (tx, rx) = watch::channel(Role::Connecting { error: None });
    let lease = Arc::new(Mutex::new(None));
    tokio::spawn(run(config, tx, Arc::clone(&lease)));
    Leadership { rx, lease }
}

/// The lowest `<label>_<sequence>` child ([`super::leader_child`] among this label's).
pub fn lowest(children: &[String], label: &str) -> Option<String> {
    let prefix = format!("{label}_");
    let ours: Vec<String> = children
        .iter()
        .filter(|c| c.starts_with(&prefix))
        .cloned()
        .collect();
    super::leader_child(&ours).map(str::to_owned)
}

async fn run(config: ElectionConfig, tx: watch::Sender<Role>, lease: Arc<Mutex<Option<Instant>>>) {
    // Sets the lease; a renewal after the lease ran out is published (as a new `Leader`), so
    // that a leader that stopped acting learns at once that it may act again.
    let set_lease = |until: Option<Instant>| {
        let before = std::mem::replace(
            &mut *lease.lock().unwrap_or_else(PoisonError::into_inner),
            until,
        );
        let lapsed = before.is_some_and(|b| b <= Instant::now());
        if until.is_some() && lapsed && *tx.borrow() == Role::Leader {
            tracing::info!(zk = %config.zk, "ZooKeeper confirmed this contender's session again");
            tx.send_replace(Role::Leader);
        }
    };
    let (client, own) = match join(&config, &tx).await {
        Some(joined) => joined,
        None => return,
    };
    let timeout = client.session_timeout();
    tracing::info!(zk = %config.zk, node = %own, session_timeout_ms = timeout.as_millis() as u64, "contending for leadership");
    let why = contend(&config, &client, &own, timeout, &tx, &set_lease).await;
    set_lease(None);
    tracing::error!(zk = %config.zk, node = %own, reason = %why, "no longer contending for leadership");
    tx.send_replace(Role::Lost(why));
}

/// Opens a session and creates this contender's node, retrying with backoff until it can.
async fn join(
    config: &ElectionConfig,
    tx: &watch::Sender<Role>,
) -> Option<(zookeeper_client::Client, String)> {
    let mut failures = 0u32;
    loop {
        if tx.is_closed() {
            return None;
        }
        let error = match try_join(config).await {
            Ok(joined) => return Some(joined),
            Err(e) => e,
        };
        failures = failures.saturating_add(1);
        let pause = super::backoff(RETRY_FIRST, RETRY_MAX, failures);
        if failures == 1 || failures.is_power_of_two() {
            tracing::warn!(zk = %config.zk, %error, attempts = failures, "cannot contend for leadership in ZooKeeper; retrying");
        }
        tx.send_replace(Role::Connecting { error: Some(error) });
        tokio::time::sleep(pause).await;
    }
}

async fn try_join(config: &ElectionConfig) -> Result<(zookeeper_client::Client, String), String> {
    let client = config
        .zk
        .connect(config.session_timeout)
        .await
        .map_err(|e| {
            format!(
                "ZooKeeper {} cannot be reached: {}",
                config.zk,
                super::connect_error(&e)
            )
        })?;
    // Upstream's ACL: open without credentials; with them, readable by all, changed by us.
    let dir = CreateMode::Persistent.with_acls(config.zk.node_acls());
    if config.zk.path != "/" {
        match tokio::time::timeout(REQUEST_TIMEOUT, client.mkdir(&config.zk.path, &dir)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("cannot create {}: {e}", config.zk.path)),
            Err(_) => return Err(format!("no answer from ZooKeeper {}", config.zk)),
        }
    }
    let node = CreateMode::EphemeralSequential.with_acls(config.zk.node_acls());
    let prefix = config.zk.child(&format!("{}_", config.label));
    let created =
        tokio::time::timeout(REQUEST_TIMEOUT, client.create(&prefix, &config.data, &node)).await;
    match created {
        Ok(Ok((_, seq))) => Ok((client, format!("{}_{seq}", config.label))),
        Ok(Err(e)) => Err(format!("cannot create {prefix}<sequence>: {e}")),
        Err(_) => Err(format!("no answer from ZooKeeper {}", config.zk)),
    }
}

/// Follows the election with one session until it is lost; returns why.
async fn contend(
    config: &ElectionConfig,
    client: &zookeeper_client::Client,
    own: &str,
    timeout: Duration,
    tx: &watch::Sender<Role>,
    set_lease: &impl Fn(Option<Instant>),
) -> String {
    let heartbeat = (timeout / 6).max(Duration::from_millis(50));
    let own_path = config.zk.child(own);
    let mut states = client.state_watcher();
    loop {
        if tx.is_closed() {
            return "no longer needed".to_owned();
        }
        let sent = Instant::now();
        let listed = tokio::time::timeout(
            REQUEST_TIMEOUT.min(timeout),
            client.get_and_watch_children(&config.zk.path),
        )
        .await;
        let (children, watcher) = match listed {
            Ok(Ok((children, _, watcher))) => (children, watcher),
            Ok(Err(ZkError::SessionExpired)) => return "the ZooKeeper session expired".to_owned(),
            Ok(Err(e)) if ended(&e) => return format!("the ZooKeeper session ended: {e}"),
            // Disconnected: the lease runs out by itself; the client reconnects.
            Ok(Err(_)) | Err(_) => {
                tokio::time::sleep(heartbeat).await;
                continue;
            }
        };
        if !children.iter().any(|c| c == own) {
            return format!("this contender's node {own_path} is gone");
        }
        let leader = lowest(&children, &config.label);
        if leader.as_deref() == Some(own) {
            set_lease(Some(sent + timeout / 2));
            if *tx.borrow() != Role::Leader {
                tracing::info!(zk = %config.zk, node = %own, "leading");
                tx.send_replace(Role::Leader);
            }
        } else {
            set_lease(None);
            let data = match &leader {
                Some(name) => client
                    .get_data(&config.zk.child(name))
                    .await
                    .ok()
                    .map(|(d, _)| d),
                None => None,
            };
            let role = Role::Standby { leader: data };
            if *tx.borrow() != role {
                tracing::info!(zk = %config.zk, node = %own, leader = ?leader, "standing by");
                tx.send_replace(role);
            }
        }
        let changed = watcher.changed();
        tokio::pin!(changed);
        loop {
            tokio::select! {
                event = &mut changed => {
                    if event.event_type == EventType::Session && event.session_state.is_terminated() {
                        return format!("the ZooKeeper session ended ({:?})", event.session_state);
                    }
                    break;
                }
                state = states.changed() => {
                    if matches!(state, SessionState::Expired | SessionState::Closed | SessionState::AuthFailed) {
                        return format!("the ZooKeeper session ended ({state:?})");
                    }
                }
                () = tokio::time::sleep(heartbeat) => {
                    // The lease's renewal: any answer proves the session alive when sent.
                    let sent = Instant::now();
                    match tokio::time::timeout(timeout, client.check_stat(&own_path)).await {
                        Ok(Ok(Some(_))) => {
                            if *tx.borrow() == Role::Leader {
                                set_lease(Some(sent + timeout / 2));
                            }
                        }
                        Ok(Ok(None)) => return format!("this contender's node {own_path} is gone"),
                        Ok(Err(ZkError::SessionExpired)) => {
                            return "the ZooKeeper session expired".to_owned();
                        }
                        Ok(Err(e)) if ended(&e) => {
                            return format!("the ZooKeeper session ended: {e}");
                        }
                        Ok(Err(_)) | Err(_) => {}
                    }
                }
                () = tx.closed() => return "no longer needed".to_owned(),
            }
        }
    }
}

/// Errors after which the session can never answer again.
fn ended(e: &ZkError) -> bool {
    matches!(
        e,
        ZkError::SessionExpired | ZkError::AuthFailed | ZkError::ClientClosed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_sequence_of_the_label_leads() {
        let children = [
            "member_0000000007",
            "other_0000000001",
            "member_0000000003",
            "member_x",
        ]
        .map(String::from);
        assert_eq!(
            lowest(&children, "member").as_deref(),
            Some("member_0000000003")
        );
        assert_eq!(lowest(&children[1..2], "member"), None);
    }

    #[tokio::test]
    async fn a_fixed_view_never_acts() {
        let standby = Leadership::fixed(Role::Standby { leader: None });
        assert_eq!(standby.acting_until(), None);
        // Leader without a lease: not acting either.
        let leader = Leadership::fixed(Role::Leader);
        assert_eq!(leader.acting_until(), None);
    }
}
