//! ZooKeeper URLs and sessions, shared by the master detector (`--master zk://`), the standby
//! controllers' election (`--ha zk://`) and the dev cluster's contending masters (`--zk`).
//!
//! The URL form is Mesos' own: `zk://[user:password@]host1:port1,host2:port2[/path]`. The path
//! defaults to `/`; credentials are ZooKeeper digest auth (`user:password`). The password never
//! appears in `Display` or `Debug` output.
//!
//! Submodules: `detector` (the leading Mesos master, as Mesos' detector finds it) and `election`
//! (a generic contender: ephemeral sequential nodes, lowest leads, leadership as a lease).

pub mod detector;
pub mod election;

use std::fmt;
use std::time::Duration;

/// ZooKeeper's client port, used when a host in the URL has none.
pub const DEFAULT_ZK_PORT: u16 = 2181;

/// A parsed `zk://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ZkUrl {
    /// `user:password` for digest auth, if given.
    credentials: Option<(String, String)>,
    /// The servers, each `host:port`.
    pub servers: Vec<String>,
    /// The znode path, starting with `/` and without a trailing `/` (except the root itself).
    pub path: String,
}

/// Why a `zk://` URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZkUrlError {
    #[error(
        "{0:?} is not a ZooKeeper URL: it must start with zk://, e.g. zk://10.0.0.5:2181/mesos"
    )]
    Scheme(String),
    #[error("{0:?} names no ZooKeeper server, e.g. zk://10.0.0.5:2181,10.0.0.6:2181/mesos")]
    NoServer(String),
    #[error("{url:?}: {server:?} is not host:port ({why})")]
    Server {
        url: String,
        server: String,
        why: String,
    },
    #[error("{url:?}: the credentials must be user:password (digest auth)")]
    Credentials { url: String },
    #[error("{url:?}: the path {path:?} is not a ZooKeeper path ({why})")]
    Path {
        url: String,
        path: String,
        why: &'static str,
    },
}

impl ZkUrl {
    /// Parses `zk://[user:password@]host[:port][,host[:port]...][/path]`.
    pub fn parse(text: &str) -> Result<ZkUrl, ZkUrlError> {
        let text = text.trim();
        // Errors name the URL without its password.
        let shown = redact_url(text);
        let rest = text
            .strip_prefix("zk://")
            .ok_or_else(|| ZkUrlError::Scheme(shown.clone()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((creds, hosts)) => {
                let (user, password) = creds
                    .split_once(':')
                    .filter(|(u, _)| !u.is_empty())
                    .ok_or_else(|| ZkUrlError::Credentials { url: shown.clone() })?;
                (Some((user.to_owned(), password.to_owned())), hosts)
            }
            None => (None, authority),
        };
        let mut servers = Vec::new();
        for server in hosts.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            servers.push(parse_server(server).map_err(|why| ZkUrlError::Server {
                url: shown.clone(),
                server: server.to_owned(),
                why,
            })?);
        }
        if servers.is_empty() {
            return Err(ZkUrlError::NoServer(shown));
        }
        let path = normalize_path(path).map_err(|why| ZkUrlError::Path {
            url: shown.clone(),
            path: path.to_owned(),
            why,
        })?;
        Ok(ZkUrl {
            credentials,
            servers,
            path,
        })
    }

    /// The connect string the client takes: `host1:port1,host2:port2` (no chroot: paths are
    /// always given in full).
    pub fn connect_string(&self) -> String {
        self.servers.join(",")
    }

    /// Whether digest credentials were given.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The path of a child of this URL's node.
    pub fn child(&self, name: &str) -> String {
        if self.path == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.path)
        }
    }

    /// Opens a session with `session_timeout` (the server may negotiate it within its bounds),
    /// adding the digest credentials if any. Fails if no server could be reached.
    pub async fn connect(
        &self,
        session_timeout: Duration,
    ) -> Result<zookeeper_client::Client, zookeeper_client::Error> {
        self.connector(session_timeout)
            .connect(&self.connect_string())
            .await
    }

    /// Like [`ZkUrl::connect`], but dropping the last client neither closes the session nor
    /// deletes its ephemeral nodes: they vanish only when the session expires, as after a crash.
    /// The dev cluster's masters use it so that `kill_master` abandons a session as a crashed
    /// master would (a clean stop deletes the node itself).
    pub async fn connect_detached(
        &self,
        session_timeout: Duration,
    ) -> Result<zookeeper_client::Client, zookeeper_client::Error> {
        self.connector(session_timeout)
            .with_detached()
            .connect(&self.connect_string())
            .await
    }

    /// The ACL of the nodes created under this URL, as Mesos' group sets it: open without
    /// credentials; with them, everyone may read and only the creator may change or delete
    /// (upstream's `EVERYONE_READ_CREATOR_ALL`).
    pub fn node_acls(&self) -> zookeeper_client::Acls<'static> {
        use zookeeper_client::{Acl, Acls, Permission};
        static EVERYONE_READ_CREATOR_ALL: [Acl; 2] = [
            Acl::new_const(Permission::READ, "world", "anyone"),
            Acl::new_const(Permission::ALL, "auth", ""),
        ];
        if self.has_credentials() {
            Acls::new(&EVERYONE_READ_CREATOR_ALL)
        } else {
            Acls::anyone_all()
        }
    }

    fn connector(&self, session_timeout: Duration) -> zookeeper_client::Connector {
        let mut connector = zookeeper_client::Client::connector()
            .with_session_timeout(session_timeout)
            .with_fail_eagerly();
        if let Some((user, password)) = &self.credentials {
            connector = connector.with_auth("digest", format!("{user}:{password}").as_bytes());
        }
        connector
    }
}

impl fmt::Display for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("zk://")?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}:***@")?;
        }
        write!(f, "{}{}", self.servers.join(","), self.path)
    }
}

impl fmt::Debug for ZkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZkUrl({self})")
    }
}

/// `text` with the password of its credentials (if any) replaced by `***`.
pub fn redact_url(text: &str) -> String {
    let Some(rest) = text.strip_prefix("zk://") else {
        return text.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((creds, hosts)) => {
            let user = creds.split_once(':').map_or(creds, |(u, _)| u);
            format!("zk://{user}:***@{hosts}{}", &rest[authority_end..])
        }
        None => text.to_owned(),
    }
}

/// Why a session could not be opened, in words: the client's `NoHosts` says nothing of why.
pub fn connect_error(e: &zookeeper_client::Error) -> String {
    match e {
        zookeeper_client::Error::NoHosts => {
            "no server of the URL answers (refused, unreachable, or not ZooKeeper)".to_owned()
        }
        other => other.to_string(),
    }
}

/// The pause after `failures` failed attempts to reach ZooKeeper: `first` doubling up to `max`,
/// jittered into its upper half so that contenders restarted together spread out: the rule of
/// the client's [`crate::mesos::client::RetryPolicy::backoff`].
pub fn backoff(first: Duration, max: Duration, failures: u32) -> Duration {
    let policy = crate::mesos::client::RetryPolicy {
        initial_backoff: first,
        max_backoff: max,
        ..Default::default()
    };
    policy.backoff(failures, &mut rand::rng())
}

/// The leading contender among the children of an election node, as Mesos' detector picks it:
/// the smallest sequence number among the children named `<label>_<sequence>`; other children
/// (such as `log_replicas`) take no part.
pub fn leader_child(children: &[String]) -> Option<&str> {
    children
        .iter()
        .filter_map(|name| sequence_of(name).map(|seq| (seq, name.as_str())))
        .min()
        .map(|(_, name)| name)
}

/// The sequence number of a `<label>_<sequence>` child, if its name has that form.
pub fn sequence_of(name: &str) -> Option<u64> {
    let (_, seq) = name.rsplit_once('_')?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok()
}

fn parse_server(server: &str) -> Result<String, String> {
    let (host, port) = match server.rsplit_once(':') {
        // A bracketed IPv6 literal without a port: [::1]
        Some((_, p)) if p.ends_with(']') => (server, DEFAULT_ZK_PORT),
        Some((host, port)) => {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("the port {port:?} is not a number from 1 to 65535"))?;
            if port == 0 {
                return Err("the port must not be 0".to_owned());
            }
            (host, port)
        }
        None => (server, DEFAULT_ZK_PORT),
    };
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if host.contains(['/', '@', ' ']) {
        return Err("the host has a character a host name cannot have".to_owned());
    }
    Ok(format!("{host}:{port}"))
}

fn normalize_path(path: &str) -> Result<String, &'static str> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".to_owned());
    }
    if trimmed
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("empty, `.` and `..` components are not allowed");
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err("control characters are not allowed");
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mesos_style_urls() {
        let url = ZkUrl::parse("zk://10.0.0.5:2181,10.0.0.6:2182/mesos").unwrap();
        assert_eq!(url.servers, ["10.0.0.5:2181", "10.0.0.6:2182"]);
        assert_eq!(url.path, "/mesos");
        assert_eq!(url.connect_string(), "10.0.0.5:2181,10.0.0.6:2182");
        assert_eq!(
            url.child("json.info_0000000001"),
            "/mesos/json.info_0000000001"
        );
        assert!(!url.has_credentials());

        let url = ZkUrl::parse("zk://zk1").unwrap();
        assert_eq!(url.servers, ["zk1:2181"]);
        assert_eq!(url.path, "/");
        assert_eq!(url.child("x"), "/x");

        let url = ZkUrl::parse("zk://zk1:2181/a/b/").unwrap();
        assert_eq!(url.path, "/a/b");
    }

    #[test]
    fn credentials_are_parsed_and_never_shown() {
        let url = ZkUrl::parse("zk://alice:s3cret@zk1:2181/mesos").unwrap();
        assert!(url.has_credentials());
        assert_eq!(url.to_string(), "zk://alice:***@zk1:2181/mesos");
        assert!(!format!("{url:?}").contains("s3cret"));
        let err = ZkUrl::parse("zk://alice:s3cret@zk1:notaport/mesos").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().contains("notaport"), "{err}");
        assert!(matches!(
            ZkUrl::parse("zk://nopassword@zk1/mesos").unwrap_err(),
            ZkUrlError::Credentials { .. }
        ));
    }

    #[test]
    fn the_leader_is_the_smallest_parseable_sequence() {
        let children: Vec<String> = [
            "log_replicas",
            "json.info_0000000012",
            "json.info_0000000009",
            "info_x",
            "json.info_0000000010",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(leader_child(&children), Some("json.info_0000000009"));
        assert_eq!(leader_child(&["log_replicas".to_owned()]), None);
        assert_eq!(leader_child(&[]), None);
        assert_eq!(sequence_of("json.info_0000000017"), Some(17));
        assert_eq!(sequence_of("json.info_"), None);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(matches!(
            ZkUrl::parse("http://zk1:2181/mesos").unwrap_err(),
            ZkUrlError::Scheme(_)
        ));
        assert!(matches!(
            ZkUrl::parse("zk:///mesos").unwrap_err(),
            ZkUrlError::NoServer(_)
        ));
        assert!(matches!(
            ZkUrl::parse("zk://zk1:0/mesos").unwrap_err(),
            ZkUrlError::Server { .. }
        ));
        assert!(matches!(
            ZkUrl::parse("zk://zk1:2181/a//b").unwrap_err(),
            ZkUrlError::Path { .. }
        ));
        assert!(matches!(
            ZkUrl::parse("zk://zk1:2181/a/../b").unwrap_err(),
            ZkUrlError::Path { .. }
        ));
    }
}
