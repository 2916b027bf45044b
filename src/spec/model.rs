//! The normalised task spec: what a TOML file means once every default is filled in. Pure data,
//! serde-serializable so the store can keep the last applied version of each spec, and compared or
//! hashed as a whole by the controller. Nothing here knows about TOML syntax or files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::millis;

/// A spec's identity: its file's path relative to the desired directory, without `.toml`
/// (`team-a/web.toml` -> `team-a/web`). Every `/`-separated segment matches `[a-z0-9][a-z0-9._-]*`,
/// so ids are safe in Mesos task ids, URLs and metric labels without escaping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpecId(String);

/// Why a string or path is not a spec id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("spec id is empty")]
    Empty,
    #[error(
        "`{segment}` in `{id}` is not a valid spec id segment: use lowercase letters, digits, `.`, `_` \
         and `-`, starting with a letter or digit"
    )]
    BadSegment { id: String, segment: String },
    #[error("spec id `{id}…` is longer than {max} characters", id = .id.chars().take(40).collect::<String>(), max = super::policy::MAX_SPEC_ID_LEN)]
    TooLong { id: String },
    #[error("`{path}` does not end in `.toml`")]
    NotToml { path: String },
    #[error("`{path}` is not a plain relative path inside the desired directory")]
    NotRelative { path: String },
}

impl SpecId {
    /// Checks an id given as text (`team-a/web`).
    pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if id.len() > super::policy::MAX_SPEC_ID_LEN {
            return Err(IdError::TooLong { id });
        }
        if let Some(segment) = id.split('/').find(|segment| !is_valid_segment(segment)) {
            return Err(IdError::BadSegment {
                segment: segment.to_owned(),
                id,
            });
        }
        Ok(SpecId(id))
    }

    /// The id of a spec file given by its path relative to the desired directory
    /// (`team-a/web.toml` -> `team-a/web`). Non-UTF-8 names are checked in their lossy form, which
    /// can never be valid, so they are reported rather than silently renamed.
    pub fn from_relative_path(path: &Path) -> Result<Self, IdError> {
        let shown = path.to_string_lossy().into_owned();
        let mut segments = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(name) => segments.push(name.to_string_lossy()),
                _ => return Err(IdError::NotRelative { path: shown }),
            }
        }
        let joined = segments.join("/");
        let Some(stem) = joined.strip_suffix(".toml") else {
            return Err(IdError::NotToml { path: shown });
        };
        SpecId::new(stem)
    }

    /// The id as text, e.g. `team-a/web`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file this id is read from, relative to the desired directory (`team-a/web.toml`).
    pub fn relative_path(&self) -> PathBuf {
        // Not `with_extension`: that would replace the `.v2` of `web.v2`.
        format!("{}.toml", self.0).split('/').collect()
    }
}

fn is_valid_segment(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first_ok && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl fmt::Display for SpecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SpecId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpecId::new(s)
    }
}

impl TryFrom<String> for SpecId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SpecId::new(s)
    }
}

impl From<SpecId> for String {
    fn from(id: SpecId) -> String {
        id.0
    }
}

impl AsRef<str> for SpecId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A fully normalised task spec: every default filled in, every value checked. Two files that mean
/// the same thing parse to equal `Spec`s, whatever their comments, key order or explicit defaults.
/// Its `Debug` redacts secret `env` values (`spec::redact`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Not part of the content hash: the hash describes what runs, the id where it came from.
    pub id: SpecId,
    pub command: Command,
    /// CPU shares, > 0. Default 0.1.
    pub cpus: f64,
    /// MiB, >= 1. Default 32.
    pub mem: u64,
    /// MiB. Default 0.
    pub disk: u64,
    /// Whole GPUs. Default 0.
    pub gpus: u64,
    /// Host ports reserved from the offer; the task sees `PORT0..PORT{n-1}` and `PORT` = `PORT0`.
    pub ports: u32,
    /// Copies to keep running; 0 keeps the spec and runs nothing. Not part of the content hash, so
    /// scaling is never a new generation. Default 1.
    pub instances: u32,
    pub restart: RestartPolicy,
    /// `None`: the framework's user.
    pub user: Option<String>,
    /// `None`: the framework's role.
    pub role: Option<String>,
    /// SIGTERM, then SIGKILL after this long (Mesos KillPolicy). Default 5s.
    #[serde(with = "millis")]
    pub kill_grace: Duration,
    /// An instance on an unreachable agent is replaced after this long. Default 5m.
    #[serde(with = "millis")]
    pub unreachable_after: Duration,
    pub backoff: Backoff,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub uris: Vec<Uri>,
    /// `None`: the command runs on the agent host without a container image.
    pub container: Option<Container>,
    pub constraints: Vec<Constraint>,
    pub health: Option<HealthCheck>,
    pub update: UpdatePolicy,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("id", &self.id)
            .field("command", &self.command)
            .field("cpus", &self.cpus)
            .field("mem", &self.mem)
            .field("disk", &self.disk)
            .field("gpus", &self.gpus)
            .field("ports", &self.ports)
            .field("instances", &self.instances)
            .field("restart", &self.restart)
            .field("user", &self.user)
            .field("role", &self.role)
            .field("kill_grace", &self.kill_grace)
            .field("unreachable_after", &self.unreachable_after)
            .field("backoff", &self.backoff)
            .field("env", &super::redact::env_for_display(&self.env))
            .field("labels", &self.labels)
            .field("uris", &self.uris)
            .field("container", &self.container)
            .field("constraints", &self.constraints)
            .field("health", &self.health)
            .field("update", &self.update)
            .finish()
    }
}

/// What the task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `command = "..."`: run with `/bin/sh -c`.
    Shell(String),
    /// `args = [...]`: exec'd directly, no shell; never empty.
    Argv(Vec<String>),
}

/// When an instance that ended is launched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Whenever it ends (a service).
    Always,
    /// When it fails; a clean exit (TASK_FINISHED) is done. The default.
    OnFailure,
    /// Each generation runs once.
    Never,
}

/// Delay between relaunches of a failed instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// First delay, > 0. Default 1s.
    #[serde(with = "millis")]
    pub initial: Duration,
    /// Each further delay is the previous one times this, >= 1.0. Default 2.0.
    pub factor: f64,
    /// Upper bound of the delay, >= `initial`. Default 5m.
    #[serde(with = "millis")]
    pub max: Duration,
    /// An instance that has run this long without failing starts again at `initial`. Default 10m.
    #[serde(with = "millis")]
    pub reset_after: Duration,
    /// 0 = unlimited; with `on-failure`, give up after this many consecutive failures. Default 0.
    pub max_failures: u32,
}

/// A file the Mesos fetcher puts into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uri {
    pub url: String,
    /// Default true.
    pub extract: bool,
    /// Default false.
    pub executable: bool,
}

/// A container image to run the command in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub image: String,
    pub kind: ContainerKind,
}

/// Which Mesos containerizer runs the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerKind {
    Docker,
    /// The unified containerizer. The default.
    Mesos,
}

/// A placement rule, checked against the offer's hostname (`field = "hostname"`) or an agent
/// attribute of that name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub field: String,
    pub op: ConstraintOp,
}

/// How a constraint's field is compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintOp {
    /// At most one instance per distinct value of the field.
    Unique,
    /// Only on agents whose field equals this value.
    Cluster(String),
    /// Only where the whole field value matches this regex (the `regex` crate's syntax, compiled by
    /// [`super::pattern::compile`]).
    Like(String),
    /// Only where the whole field value does not match this regex.
    Unlike(String),
    /// At most this many instances (>= 1) per distinct value of the field.
    MaxPer(u32),
}

/// A health check run by Mesos next to the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub kind: HealthKind,
    /// Time between checks, > 0. Default 10s.
    #[serde(with = "millis")]
    pub interval: Duration,
    /// A check taking longer than this fails, > 0. Default 5s.
    #[serde(with = "millis")]
    pub timeout: Duration,
    /// Failures during this time after start do not count. Default 30s.
    #[serde(with = "millis")]
    pub grace: Duration,
    /// Consecutive failures, >= 1, after which the instance is killed and counts as failed. Default 3.
    pub max_failures: u32,
}

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthKind {
    /// A shell command in the task's environment; exit 0 is healthy.
    Command(String),
    /// An HTTP GET of `path` on the task's port `port_index` (< `ports`); 2xx/3xx is healthy.
    Http {
        port_index: u32,
        /// Starts with `/`. Default `/`.
        path: String,
        scheme: HttpScheme,
    },
    /// A TCP connect to the task's port `port_index` (< `ports`).
    Tcp { port_index: u32 },
}

/// The scheme of an HTTP health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpScheme {
    /// The default.
    Http,
    Https,
}

/// How a changed spec rolls out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatePolicy {
    pub strategy: UpdateStrategy,
    /// A new generation not running (and healthy) by then stops the rollout. Default 10m.
    #[serde(with = "millis")]
    pub deadline: Duration,
}

/// The order of starting new instances and killing old ones in a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateStrategy {
    /// Start one new instance, wait until it is running and healthy, kill one old; repeat. The
    /// default.
    Rolling,
    /// Kill the old instances, then start the new ones.
    Replace,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_paths() {
        let id = SpecId::from_relative_path(Path::new("team-a/web.toml")).unwrap();
        assert_eq!(id.as_str(), "team-a/web");
        assert_eq!(id.relative_path(), PathBuf::from("team-a/web.toml"));
        let id = SpecId::from_relative_path(Path::new("a/b.c/web.v2.toml")).unwrap();
        assert_eq!(id.as_str(), "a/b.c/web.v2");
        assert_eq!(id.relative_path(), PathBuf::from("a/b.c/web.v2.toml"));
        let id = SpecId::from_relative_path(Path::new("0_x-y.toml")).unwrap();
        assert_eq!(id.to_string(), "0_x-y");
    }

    #[test]
    fn invalid_ids_are_rejected() {
        for bad in [
            "Web.toml",
            "a b.toml",
            "team/Web.toml",
            "-web.toml",
            "é.toml",
            "a/.x.toml",
        ] {
            let err = SpecId::from_relative_path(Path::new(bad)).unwrap_err();
            assert!(matches!(err, IdError::BadSegment { .. }), "{bad}: {err}");
        }
        assert_eq!(
            SpecId::from_relative_path(Path::new("web.yaml")),
            Err(IdError::NotToml {
                path: "web.yaml".into()
            })
        );
        assert!(matches!(
            SpecId::from_relative_path(Path::new("../web.toml")),
            Err(IdError::NotRelative { .. })
        ));
        assert!(matches!(
            SpecId::from_relative_path(Path::new("/web.toml")),
            Err(IdError::NotRelative { .. })
        ));
        assert_eq!(SpecId::new(""), Err(IdError::Empty));
        assert_eq!(
            SpecId::from_relative_path(Path::new(".toml")),
            Err(IdError::Empty)
        );
        assert!(SpecId::new("a//b").is_err());
        assert!(SpecId::new("a/").is_err());
        let err = SpecId::new("team/Web").unwrap_err();
        assert_eq!(
            err,
            IdError::BadSegment {
                id: "team/Web".into(),
                segment: "Web".into()
            }
        );
    }

    #[test]
    fn ids_serialize_as_strings_and_are_checked_when_read() {
        let id = SpecId::new("team-a/web").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"team-a/web\"");
        let back: SpecId = serde_json::from_str("\"team-a/web\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<SpecId>("\"Team\"").is_err());
    }
}
