//! The leading Mesos master, as Mesos' own detector finds it in ZooKeeper (API notes §13): each
//! contending master holds an ephemeral sequential child `json.info_<sequence>` of the path, whose
//! data is its `MasterInfo` as JSON; the leader is the lowest sequence. Children of other forms
//! (`log_replicas`, a legacy `info_` label, plain sequences) are not masters' JSON and are
//! skipped, and so is a `json.info_` child whose data does not say where its master listens:
//! upstream would fail on it, but the next one is a live master, whose 307 leads to the leader if
//! it is not leading itself.
//!
//! [`choose`] is the pure choice; [`spawn`] runs the watch and publishes what it finds on a
//! `tokio::sync::watch` channel that the scheduler client reads before each SUBSCRIBE.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use tokio::sync::watch;

use super::ZkUrl;

/// The label current masters write their MasterInfo under.
pub const MASTER_INFO_LABEL: &str = "json.info";

/// What the detector knows of the leading master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// No answer from ZooKeeper yet.
    Connecting,
    /// ZooKeeper cannot be reached (or refused the session); the detector retries with backoff.
    Unreachable(String),
    /// ZooKeeper answers but no master is contending (or none says where it listens).
    NoLeader,
    /// The leader: its base URL (`http://ip:port/`) and the node that names it.
    Leader { url: Url, node: String },
}

impl Detected {
    /// Why there is no leader to talk to, in words; `None` when there is one.
    pub fn problem(&self, zk: &ZkUrl) -> Option<String> {
        match self {
            Detected::Leader { .. } => None,
            Detected::Connecting => Some(format!("connecting to ZooKeeper {zk}")),
            Detected::Unreachable(why) => {
                Some(format!("ZooKeeper {zk} cannot be reached: {why}; retrying"))
            }
            Detected::NoLeader => Some(format!(
                "no leading Mesos master in ZooKeeper {zk} (no {MASTER_INFO_LABEL}_ node); waiting for one"
            )),
        }
    }
}

/// The watch's output: the configured URL and what it detects.
#[derive(Debug, Clone)]
pub struct LeaderWatch {
    pub zk: ZkUrl,
    pub rx: watch::Receiver<Detected>,
}

/// The parts of MasterInfo JSON that say where a master listens.
#[derive(Debug, Deserialize)]
struct MasterInfoJson {
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    port: Option<u32>,
    /// IPv4 packed in network byte order, read as a little-endian integer.
    #[serde(default)]
    ip: Option<u32>,
    #[serde(default)]
    address: Option<AddressJson>,
}

#[derive(Debug, Deserialize)]
struct AddressJson {
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    port: Option<u32>,
}

/// The sequence number of a child named `json.info_<digits>`, or `None` for any other child.
pub fn master_sequence(child: &str) -> Option<u64> {
    child.strip_prefix(MASTER_INFO_LABEL)?.strip_prefix('_')?;
    super::sequence_of(child)
}

/// The `json.info_` children in leadership order (lowest sequence first).
pub fn candidates(children: &[String]) -> Vec<String> {
    let mut found: Vec<(u64, &String)> = children
        .iter()
        .filter_map(|c| Some((master_sequence(c)?, c)))
        .collect();
    found.sort();
    found.into_iter().map(|(_, c)| c.clone()).collect()
}

/// Where the master whose MasterInfo JSON is `data` listens, as `http://host:port/`:
/// `address.ip`/`address.port` first, then `address.hostname`, then the top-level
/// `hostname`/`port`, then the packed `ip`. `None` when the data says none of these.
pub fn master_url(data: &[u8]) -> Option<Url> {
    let info: MasterInfoJson = serde_json::from_slice(data).ok()?;
    let port = info
        .address
        .as_ref()
        .and_then(|a| a.port)
        .or(info.port)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)?;
    let host = info
        .address
        .as_ref()
        .and_then(|a| a.ip.clone().filter(|s| !s.is_empty()))
        .or_else(|| {
            info.address
                .as_ref()
                .and_then(|a| a.hostname.clone().filter(|s| !s.is_empty()))
        })
        .or_else(|| info.hostname.clone().filter(|s| !s.is_empty()))
        .or_else(|| {
            info.ip
                .map(|ip| std::net::Ipv4Addr::from(ip.to_le_bytes()).to_string())
        })?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Url::parse(&format!("http://{host}:{port}/")).ok()
}

/// The leader among `nodes` (each a child's name and data, in any order): the lowest
/// `json.info_` sequence whose data says where its master listens.
pub fn choose(nodes: &[(String, Vec<u8>)]) -> Option<(String, Url)> {
    let names: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    candidates(&names).into_iter().find_map(|name| {
        let (_, data) = nodes.iter().find(|(n, _)| *n == name)?;
        Some((name, master_url(data)?))
    })
}

/// How long one ZooKeeper request may take before the detector starts over.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The backoff between attempts to reach ZooKeeper: from the first to the cap.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// Starts watching `zk`'s path in the background and returns what it detects, kept up to date.
/// Runs until every receiver is dropped.
pub fn spawn(zk: ZkUrl, session_timeout: Duration) -> LeaderWatch {
    let (tx, rx) = watch::channel(Detected::Connecting);
    tokio::spawn(run(zk.clone(), session_timeout, tx));
    LeaderWatch { zk, rx }
}

async fn run(zk: ZkUrl, session_timeout: Duration, tx: watch::Sender<Detected>) {
    let mut failures = 0u32;
    while !tx.is_closed() {
        let why = match zk.connect(session_timeout).await {
            Ok(client) => {
                tracing::info!(zk = %zk, "connected to ZooKeeper to detect the leading master");
                failures = 0;
                follow(&zk, &client, &tx).await
            }
            Err(e) => format!("cannot open a session: {}", super::connect_error(&e)),
        };
        failures = failures.saturating_add(1);
        let pause = super::backoff(RETRY_FIRST, RETRY_MAX, failures);
        let seen = Detected::Unreachable(why.clone());
        if *tx.borrow() != seen {
            tracing::warn!(zk = %zk, error = %why, retry_in_ms = pause.as_millis() as u64, "cannot detect the leading Mesos master in ZooKeeper; retrying");
        }
        tx.send_replace(seen);
        tokio::time::sleep(pause).await;
    }
}

/// Follows the children of the path with one session until it fails; returns why.
async fn follow(
    zk: &ZkUrl,
    client: &zookeeper_client::Client,
    tx: &watch::Sender<Detected>,
) -> String {
    loop {
        let listed =
            tokio::time::timeout(REQUEST_TIMEOUT, client.get_and_watch_children(&zk.path)).await;
        let (children, watcher) = match listed {
            Ok(Ok((children, _, watcher))) => (children, Some(watcher)),
            // The path does not exist yet: no master has ever contended. Its creation is
            // watched for.
            Ok(Err(zookeeper_client::Error::NoNode)) => {
                match client.check_and_watch_stat(&zk.path).await {
                    Ok((Some(_), _)) => continue,
                    Ok((None, watcher)) => {
                        publish(zk, tx, Detected::NoLeader);
                        let _ = watcher.changed().await;
                        continue;
                    }
                    Err(e) => return e.to_string(),
                }
            }
            Ok(Err(e)) => return e.to_string(),
            Err(_) => return format!("no answer within {REQUEST_TIMEOUT:?}"),
        };
        let mut nodes = Vec::new();
        for name in candidates(&children) {
            match client.get_data(&zk.child(&name)).await {
                Ok((data, _)) => nodes.push((name, data)),
                // Gone between the listing and the read: the watch fires for it.
                Err(zookeeper_client::Error::NoNode) => {}
                Err(e) => return e.to_string(),
            }
        }
        for (name, data) in &nodes {
            if master_url(data).is_none() {
                tracing::debug!(node = %name, "skipping a master node whose data is not MasterInfo JSON with an address");
            }
        }
        let detected = match choose(&nodes) {
            Some((node, url)) => Detected::Leader { url, node },
            None => Detected::NoLeader,
        };
        publish(zk, tx, detected);
        let Some(watcher) = watcher else { continue };
        tokio::select! {
            event = watcher.changed() => {
                if event.event_type == zookeeper_client::EventType::Session {
                    return format!("the session ended ({:?})", event.session_state);
                }
            }
            () = tx.closed() => return "no longer needed".to_owned(),
        }
    }
}

fn publish(zk: &ZkUrl, tx: &watch::Sender<Detected>, detected: Detected) {
    if *tx.borrow() == detected {
        return;
    }
    match &detected {
        Detected::Leader { url, node } => {
            tracing::info!(zk = %zk, master = %url, %node, "detected the leading Mesos master")
        }
        Detected::NoLeader => {
            tracing::warn!(zk = %zk, "no leading Mesos master in ZooKeeper; waiting for one")
        }
        _ => {}
    }
    tx.send_replace(detected);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(address_ip: Option<&str>, hostname: &str, port: u16) -> Vec<u8> {
        let mut v = serde_json::json!({
            "id": "a1b2", "hostname": hostname, "port": port, "ip": 16777226u32,
            "pid": format!("master@10.0.0.1:{port}"), "version": "1.11.0",
        });
        if let Some(ip) = address_ip {
            v["address"] = serde_json::json!({"hostname": hostname, "ip": ip, "port": port});
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn only_json_info_children_with_a_sequence_count() {
        assert_eq!(master_sequence("json.info_0000000017"), Some(17));
        assert_eq!(master_sequence("json.info_"), None);
        assert_eq!(master_sequence("json.info_00x1"), None);
        assert_eq!(master_sequence("info_0000000001"), None);
        assert_eq!(master_sequence("log_replicas"), None);
        assert_eq!(master_sequence("0000000001"), None);
        let children = [
            "log_replicas",
            "json.info_0000000012",
            "info_0000000001",
            "json.info_0000000003",
        ]
        .map(String::from);
        assert_eq!(
            candidates(&children),
            ["json.info_0000000003", "json.info_0000000012"]
        );
    }

    #[test]
    fn the_address_is_preferred_over_the_hostname() {
        let url = master_url(&info(Some("10.0.0.7"), "m1.example", 5051)).unwrap();
        assert_eq!(url.as_str(), "http://10.0.0.7:5051/");
        let url = master_url(&info(None, "m1.example", 5050)).unwrap();
        assert_eq!(url.as_str(), "http://m1.example:5050/");
        // Only the packed ip: 16777226 is 10.0.0.1.
        let url = master_url(br#"{"ip": 16777226, "port": 5050}"#).unwrap();
        assert_eq!(url.as_str(), "http://10.0.0.1:5050/");
        let url = master_url(br#"{"address": {"ip": "::1", "port": 5050}}"#).unwrap();
        assert_eq!(url.as_str(), "http://[::1]:5050/");
        assert_eq!(master_url(b"master@10.0.0.1:5050"), None);
        assert_eq!(master_url(br#"{"hostname": "m1"}"#), None);
    }

    #[test]
    fn the_lowest_parseable_sequence_leads() {
        let nodes = vec![
            (
                "json.info_0000000005".to_owned(),
                info(Some("127.0.0.1"), "b", 5052),
            ),
            ("log_replicas".to_owned(), Vec::new()),
            (
                "json.info_0000000002".to_owned(),
                b"not json at all".to_vec(),
            ),
            (
                "json.info_0000000004".to_owned(),
                info(Some("127.0.0.1"), "a", 5051),
            ),
            (
                "info_0000000001".to_owned(),
                info(Some("127.0.0.1"), "legacy", 5050),
            ),
        ];
        let (node, url) = choose(&nodes).unwrap();
        assert_eq!(node, "json.info_0000000004");
        assert_eq!(url.as_str(), "http://127.0.0.1:5051/");
        assert_eq!(choose(&nodes[1..3]), None);
        assert_eq!(choose(&[]), None);
    }
}
