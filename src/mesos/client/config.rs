//! What the scheduler client needs to know before it connects: the masters, the encoding, the
//! credentials (with a secret that never prints), TLS trust, timeouts and the retry policy.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng;
use reqwest::Url;

use crate::mesos::encoding::Encoding;
use crate::mesos::recordio::DEFAULT_MAX_RECORD_LEN;
use crate::zk::ZkUrl;
use crate::zk::detector::LeaderWatch;

/// How to reach and talk to the masters. Built once from the CLI/config layer, then handed to
/// [`SchedulerClient::new`](super::SchedulerClient::new), which validates it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URLs (`http://host:port` or `https://host:port`) tried in order, rotating on 503 and
    /// connection errors. Any of them may be a non-leader: its 307 is followed. Empty when the
    /// leader is detected in ZooKeeper (`leader`).
    pub masters: Vec<Url>,
    /// `--master zk://...`: the leading master as detected in ZooKeeper; SUBSCRIBE (and the GETs
    /// made without a subscription) go to it instead of `masters`.
    pub leader: Option<LeaderWatch>,
    /// Asked before every request leaves: `Some(why)` refuses it (a standby controller, or a
    /// leader whose ZooKeeper lease lapsed, must not talk to the master).
    pub gate: Option<Gate>,
    /// Encoding of calls and of the event stream.
    pub encoding: Encoding,
    /// HTTP Basic credentials sent on every request, stream and calls alike.
    pub credentials: Option<Credentials>,
    /// PEM file of the CA certificates that sign the masters' certificates. When set, only these
    /// are trusted (like `curl --cacert`), so a cluster with a private CA does not depend on the
    /// host's store.
    pub ca_bundle: Option<PathBuf>,
    /// Redirect hops followed for one request before giving up.
    pub max_redirects: usize,
    /// Time limit of one call, and of waiting for the SUBSCRIBE response headers.
    pub call_timeout: Duration,
    /// Time limit for establishing a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// The stream is dead after this many heartbeat intervals without an event.
    pub heartbeat_misses: u32,
    /// Largest accepted RecordIO record; larger ones break the stream.
    pub max_record_len: usize,
    /// Backoff for 503 answers and refused connections.
    pub retry: RetryPolicy,
    /// How host names are resolved; the system's resolver when none. Tests give one that
    /// answers without the network, so that a DNS failure can be tested without a query
    /// leaving the machine.
    pub resolver: Option<Resolver>,
}

/// A DNS resolver for the client's HTTP connections.
#[derive(Clone)]
pub struct Resolver(pub std::sync::Arc<dyn reqwest::dns::Resolve>);

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver(..)")
    }
}

/// See [`ClientConfig::gate`].
#[derive(Clone)]
pub struct Gate(pub std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>);

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Gate(..)")
    }
}

impl ClientConfig {
    /// The defaults, with the leader detected in ZooKeeper.
    pub fn detected(leader: LeaderWatch) -> Self {
        ClientConfig {
            leader: Some(leader),
            ..ClientConfig::default()
        }
    }

    /// The defaults with the given masters.
    pub fn new(masters: Vec<Url>) -> Self {
        ClientConfig {
            masters,
            ..ClientConfig::default()
        }
    }
}

impl Default for ClientConfig {
    /// No masters (so it must be given some before use), protobuf, no credentials, the host's CA
    /// store, 5 redirects, 75 s call timeout (what the API docs suggest), 10 s connect timeout,
    /// 3 missed heartbeats, 16 MiB records and [`RetryPolicy::default`].
    fn default() -> Self {
        ClientConfig {
            masters: Vec::new(),
            leader: None,
            gate: None,
            encoding: Encoding::default(),
            credentials: None,
            ca_bundle: None,
            max_redirects: 5,
            call_timeout: Duration::from_secs(75),
            connect_timeout: Duration::from_secs(10),
            heartbeat_misses: 3,
            max_record_len: DEFAULT_MAX_RECORD_LEN,
            retry: RetryPolicy::default(),
            resolver: None,
        }
    }
}

/// A `--master` value that names no master.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MasterListError {
    #[error("no master given")]
    Empty,
    #[error(
        "{0:?}: a zk:// URL names the masters on its own and cannot be part of a list; pass \
         either zk://host1:2181,host2:2181/mesos or a host:port list, \
         e.g. --master 10.0.0.5:5050,10.0.0.6:5050"
    )]
    ZooKeeper(String),
    #[error(transparent)]
    ZkUrl(#[from] crate::zk::ZkUrlError),
    #[error(
        "{0:?}: unsupported scheme {1:?}; use host:port, http://host:port or https://host:port"
    )]
    Scheme(String, String),
    #[error("{0:?} is not a master address ({1}); expected host:port, e.g. 10.0.0.5:5050")]
    Invalid(String, String),
}

/// The port a Mesos master listens on unless told otherwise.
pub const DEFAULT_MASTER_PORT: u16 = 5050;

/// Where the masters are: a list, or a ZooKeeper path their leader is detected in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterSource {
    List(Vec<Url>),
    ZooKeeper(ZkUrl),
}

/// A `--master` value: `zk://[user:password@]host1:2181,host2:2181/path` (Mesos' own form,
/// whose commas separate ZooKeeper servers), or a list as [`parse_masters`] reads it.
pub fn parse_master_source(text: &str) -> Result<MasterSource, MasterListError> {
    if text.trim_start().starts_with("zk://") {
        return Ok(MasterSource::ZooKeeper(ZkUrl::parse(text)?));
    }
    parse_masters(text).map(MasterSource::List)
}

/// Masters as Mesos users write them (pymesos' `MESOS_MASTER`, Marathon's `--master`), comma
/// separated: `host:port` (taken as `http://host:port`), `http(s)://host:port[/prefix]`. A host
/// without a port gets 5050. A `zk://` URL is refused: [`parse_master_source`] takes it.
pub fn parse_masters(text: &str) -> Result<Vec<Url>, MasterListError> {
    if text.trim_start().starts_with("zk://") {
        return Err(MasterListError::ZooKeeper(crate::zk::redact_url(
            text.trim(),
        )));
    }
    let masters = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_master)
        .collect::<Result<Vec<_>, _>>()?;
    if masters.is_empty() {
        return Err(MasterListError::Empty);
    }
    Ok(masters)
}

/// One master of a `--master` list; see [`parse_masters`].
pub fn parse_master(text: &str) -> Result<Url, MasterListError> {
    let text = text.trim();
    let invalid = |why: String| MasterListError::Invalid(text.to_owned(), why);
    let url = if let Some((scheme, _)) = text.split_once("://") {
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => {}
            "zk" => return Err(MasterListError::ZooKeeper(crate::zk::redact_url(text))),
            other => return Err(MasterListError::Scheme(text.to_owned(), other.to_owned())),
        }
        Url::parse(text).map_err(|e| invalid(e.to_string()))?
    } else {
        if text.contains('/') || text.contains('@') {
            return Err(invalid("a bare address takes no path or user".to_owned()));
        }
        let mut url = Url::parse(&format!("http://{text}")).map_err(|e| invalid(e.to_string()))?;
        if url.port().is_none() {
            url.set_port(Some(DEFAULT_MASTER_PORT))
                .map_err(|()| invalid("no port".to_owned()))?;
        }
        url
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_owned()));
    }
    Ok(url)
}

/// Jittered exponential backoff for answers that mean "try again" (503: no leader yet, registry
/// recovery) and for refused connections. One request gives up after `max_attempts` attempts or,
/// if set, once `deadline` has passed since its first attempt, whichever comes first.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Backoff before the second attempt.
    pub initial_backoff: Duration,
    /// Cap of the backoff (the API docs suggest about 15 s).
    pub max_backoff: Duration,
    /// Attempts in all, the first included; at least one is always made.
    pub max_attempts: u32,
    /// Overall time limit of one request's attempts.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    /// 250 ms doubling to 15 s, 8 attempts (about a minute in all), no deadline.
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(15),
            max_attempts: 8,
            deadline: None,
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt number `failures` (1 for the first failure): the
    /// exponential step `initial * 2^(failures-1)` capped at `max_backoff`, then jittered
    /// uniformly into its upper half so that many schedulers restarted together spread out
    /// without any of them retrying much sooner than the step.
    ///
    /// Only the delay is computed here, rather than with a retry crate (`backon`, `backoff`):
    /// those own the retry loop and its sleeps, and ours must stay a `select!` against shutdown
    /// and rotate through the masters, with the rng injected so tests are deterministic.
    pub fn backoff(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let step = self.step(failures);
        let half = step / 2;
        let spread = u64::try_from((step - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.random_range(0..=spread))
    }

    /// The un-jittered step for attempt `failures`.
    fn step(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff)
    }
}

/// A principal and its secret for HTTP Basic authentication (API notes §14).
#[derive(Debug, Clone)]
pub struct Credentials {
    principal: String,
    secret: Secret,
}

/// A secret that never appears in `Debug` output or logs; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        Secret(secret)
    }

    /// The secret itself, for building the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Credentials that cannot be used. No message ever contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the secret file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret file {} is empty", path.display())]
    EmptySecretFile { path: PathBuf },
    #[error("the secret is empty")]
    EmptySecret,
    #[error("the principal is empty")]
    EmptyPrincipal,
    #[error(
        "the principal {principal:?} contains ':', which HTTP Basic authentication cannot carry"
    )]
    ColonInPrincipal { principal: String },
    #[error("the secret{} contains ':', which the master's HTTP Basic authenticator rejects", from_file(.path))]
    ColonInSecret { path: Option<PathBuf> },
    #[error("the secret{} contains a line break or control character, which an HTTP header cannot carry", from_file(.path))]
    ControlCharInSecret { path: Option<PathBuf> },
}

impl Credentials {
    /// Validated credentials. Neither part may contain `:`: the master splits the decoded Basic
    /// pair on it and demands exactly two parts.
    pub fn new(principal: String, secret: Secret) -> Result<Self, CredentialsError> {
        validate(&principal, secret.expose(), None)?;
        Ok(Credentials { principal, secret })
    }

    /// Reads the secret from a file (never from argv, where `ps` would show it). One trailing
    /// line ending (`\n` or `\r\n`) is removed, as editors add one; an empty secret is an error.
    pub fn from_file(principal: String, path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let secret = text
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&text);
        if secret.is_empty() {
            return Err(CredentialsError::EmptySecretFile {
                path: path.to_owned(),
            });
        }
        validate(&principal, secret, Some(path))?;
        Ok(Credentials {
            principal,
            secret: Secret::new(secret.to_owned()),
        })
    }

    /// The principal (not secret; also what `FrameworkInfo.principal` should be).
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The secret.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }
}

fn validate(principal: &str, secret: &str, path: Option<&Path>) -> Result<(), CredentialsError> {
    if principal.is_empty() {
        return Err(CredentialsError::EmptyPrincipal);
    }
    if principal.contains(':') {
        return Err(CredentialsError::ColonInPrincipal {
            principal: principal.to_owned(),
        });
    }
    if secret.is_empty() {
        return Err(CredentialsError::EmptySecret);
    }
    if secret.contains(':') {
        return Err(CredentialsError::ColonInSecret {
            path: path.map(Path::to_owned),
        });
    }
    if secret.chars().any(char::is_control) {
        return Err(CredentialsError::ControlCharInSecret {
            path: path.map(Path::to_owned),
        });
    }
    Ok(())
}

/// " in file <path>" or nothing, for error messages about a secret.
fn from_file(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" in {}", p.display()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn backoff_doubles_to_the_cap_and_stays_in_the_upper_half() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_attempts: 10,
            deadline: None,
        };
        let mut rng = StdRng::seed_from_u64(7);
        let steps = [100, 200, 400, 800, 1000, 1000];
        for (i, step_ms) in steps.iter().enumerate() {
            let failures = u32::try_from(i).unwrap() + 1;
            let step = Duration::from_millis(*step_ms);
            assert_eq!(policy.step(failures), step);
            for _ in 0..50 {
                let d = policy.backoff(failures, &mut rng);
                assert!(
                    d >= step / 2 && d <= step,
                    "{d:?} outside [{:?}, {step:?}]",
                    step / 2
                );
            }
        }
        assert_eq!(policy.step(1000), Duration::from_secs(1), "no overflow");
    }

    #[test]
    fn masters_are_read_as_mesos_users_write_them() {
        let urls = |text: &str| -> Vec<String> {
            parse_masters(text)
                .unwrap()
                .iter()
                .map(|u| u.to_string())
                .collect()
        };
        assert_eq!(urls("127.0.0.1:5050"), ["http://127.0.0.1:5050/"]);
        assert_eq!(
            urls("m1:5050, m2:5051,"),
            ["http://m1:5050/", "http://m2:5051/"]
        );
        assert_eq!(urls("m1"), ["http://m1:5050/"]);
        assert_eq!(urls("[::1]:5050"), ["http://[::1]:5050/"]);
        assert_eq!(
            urls("https://m1:8443/mesos,http://m2:5050"),
            ["https://m1:8443/mesos", "http://m2:5050/"]
        );
        let zk = parse_masters("m1:5050,zk://z1:2181/mesos").unwrap_err();
        assert!(matches!(zk, MasterListError::ZooKeeper(_)), "{zk}");
        assert!(zk.to_string().contains("host:port list"), "{zk}");
        assert_eq!(
            parse_master_source("zk://z1:2181,z2:2181/mesos").unwrap(),
            MasterSource::ZooKeeper(ZkUrl::parse("zk://z1:2181,z2:2181/mesos").unwrap())
        );
        assert!(matches!(
            parse_master_source("zk://z1:0/mesos"),
            Err(MasterListError::ZkUrl(_))
        ));
        assert!(matches!(
            parse_master_source("m1:5050"),
            Ok(MasterSource::List(l)) if l.len() == 1
        ));
        assert!(matches!(
            parse_masters("ftp://m1"),
            Err(MasterListError::Scheme(..))
        ));
        assert!(matches!(
            parse_masters("m1:notaport"),
            Err(MasterListError::Invalid(..))
        ));
        assert_eq!(parse_masters(" , "), Err(MasterListError::Empty));
    }

    #[test]
    fn secret_debug_is_redacted() {
        let creds = Credentials::new("alice".into(), Secret::new("hunter2".into())).unwrap();
        let shown = format!("{creds:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn colons_and_empty_parts_are_refused_without_echoing_the_secret() {
        let err = Credentials::new("a:b".into(), Secret::new("s".into())).unwrap_err();
        assert!(err.to_string().contains("\"a:b\" contains ':'"), "{err}");
        let err = Credentials::new("a".into(), Secret::new("top:secret".into())).unwrap_err();
        assert!(err.to_string().contains("secret contains ':'"), "{err}");
        assert!(!err.to_string().contains("top"), "{err}");
        assert!(matches!(
            Credentials::new(String::new(), Secret::new("s".into())),
            Err(CredentialsError::EmptyPrincipal)
        ));
        assert!(matches!(
            Credentials::new("a".into(), Secret::new(String::new())),
            Err(CredentialsError::EmptySecret)
        ));
    }
}
