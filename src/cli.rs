//! Command-line parsing: the subcommands and their options. Every option of `run`, `dev` and `sync`
//! (but `sync --once`) can also be set through the `MESOS_RECONCILER_*` environment variable named
//! in [`env`]. Values are checked
//! here (clap value parsers); turning them into working objects happens in the command that runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, as the README documents them.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const INVALID_SPECS: i32 = 2;
    /// `status`: something is pending, failing or invalid (or still so when `--wait` timed out);
    /// `plan`: the mass-deletion guard would hold the kills.
    pub const NOT_CONVERGED: i32 = 3;
    pub const USAGE: i32 = 64;
}

/// The environment variables, one per option, in one place.
pub mod env {
    pub const MASTER: &str = "MESOS_RECONCILER_MASTER";
    pub const DESIRED: &str = "MESOS_RECONCILER_DESIRED";
    pub const STATE: &str = "MESOS_RECONCILER_STATE";
    pub const LISTEN: &str = "MESOS_RECONCILER_LISTEN";
    pub const FRAMEWORK_NAME: &str = "MESOS_RECONCILER_FRAMEWORK_NAME";
    pub const FRAMEWORK_ID: &str = "MESOS_RECONCILER_FRAMEWORK_ID";
    pub const TAKEOVER: &str = "MESOS_RECONCILER_TAKEOVER";
    pub const HA: &str = "MESOS_RECONCILER_HA";
    pub const ZK_SESSION_TIMEOUT: &str = "MESOS_RECONCILER_ZK_SESSION_TIMEOUT";
    pub const ROLE: &str = "MESOS_RECONCILER_ROLE";
    pub const USER: &str = "MESOS_RECONCILER_USER";
    pub const PRINCIPAL: &str = "MESOS_RECONCILER_PRINCIPAL";
    pub const SECRET_FILE: &str = "MESOS_RECONCILER_SECRET_FILE";
    pub const FAILOVER_TIMEOUT: &str = "MESOS_RECONCILER_FAILOVER_TIMEOUT";
    pub const ENCODING: &str = "MESOS_RECONCILER_ENCODING";
    pub const CA_BUNDLE: &str = "MESOS_RECONCILER_CA_BUNDLE";
    /// `--server` of the commands that talk to a running controller.
    pub const SERVER: &str = "MESOS_RECONCILER_SERVER";
    pub const LOG_FORMAT: &str = "MESOS_RECONCILER_LOG_FORMAT";
    pub const LOG: &str = "MESOS_RECONCILER_LOG";
    pub const MASTER_LISTEN: &str = "MESOS_RECONCILER_MASTER_LISTEN";
    pub const SYNC_REPO: &str = "MESOS_RECONCILER_SYNC_REPO";
    pub const SYNC_BRANCH: &str = "MESOS_RECONCILER_SYNC_BRANCH";
    pub const SYNC_SUBDIR: &str = "MESOS_RECONCILER_SYNC_SUBDIR";
    pub const SYNC_ROOT: &str = "MESOS_RECONCILER_SYNC_ROOT";
    pub const SYNC_INTERVAL: &str = "MESOS_RECONCILER_SYNC_INTERVAL";
    pub const SYNC_VALIDATE: &str = "MESOS_RECONCILER_SYNC_VALIDATE";
    pub const SYNC_KEEP: &str = "MESOS_RECONCILER_SYNC_KEEP";
    pub const SYNC_GIT_TIMEOUT: &str = "MESOS_RECONCILER_SYNC_GIT_TIMEOUT";
    /// The status server's bearer token: read by `run`/`dev` and by the commands that talk to it.
    pub const TOKEN_FILE: &str = "MESOS_RECONCILER_TOKEN_FILE";
    pub const ALLOWED_USERS: &str = "MESOS_RECONCILER_ALLOWED_USERS";
    pub const MAX_SPEC_FILES: &str = "MESOS_RECONCILER_MAX_SPEC_FILES";
}

/// Makes an Apache Mesos cluster match a directory of TOML task specs.
#[derive(Debug, Parser)]
#[command(name = "mesos-reconciler", version, about, long_about = None)]
pub struct Cli {
    /// How log lines are written to stderr: `text` for people, `json` (one object per line, with
    /// `spec` and `task_id` as fields where they apply) for log collectors.
    #[arg(long, global = true, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller against a Mesos master.
    Run(RunArgs),
    /// Run an embedded dev cluster and the controller watching ./desired (try this first).
    Dev(DevArgs),
    /// Check the spec files and report every problem with file, line and column.
    Validate(ValidateArgs),
    /// What a running controller is doing: one row per spec; exit 0 when converged, 3 when not.
    Status(StatusArgs),
    /// What applying a directory of specs would do against a running controller.
    Plan(PlanArgs),
    /// A task's stdout or stderr, read from its sandbox on the agent.
    Logs(LogsArgs),
    /// Release kills held by the mass-deletion guard of a running controller.
    ApproveDeletions(ApproveArgs),
    /// Publish each new commit of a git branch under <root>/revisions and point <root>/current at it.
    Sync(SyncArgs),
    /// Run the Mesos-compatible dev cluster on its own (for tests and other clients).
    Devcluster(DevclusterArgs),
    /// Measure the controller and the dev cluster (release builds; prints a table or JSON).
    Bench(BenchArgs),
}

/// Options shared by `run` and `dev`: where the specs and the state live, and the status server.
#[derive(Debug, Args, Clone)]
pub struct ControllerArgs {
    /// Directory of `*.toml` task specs (may be a symlink that a sync tool repoints).
    #[arg(long, env = env::DESIRED, default_value = "desired")]
    pub desired: PathBuf,
    /// Directory for the controller's own state (framework id, task ledger).
    #[arg(long, env = env::STATE, default_value = ".mesos-reconciler")]
    pub state: PathBuf,
    /// Address of the status server (HTML page, JSON API, /metrics, /healthz, /readyz); port 0 picks one.
    #[arg(long, env = env::LISTEN, default_value = "127.0.0.1:9797")]
    pub listen: SocketAddr,
    /// Framework name shown by Mesos.
    #[arg(long, env = env::FRAMEWORK_NAME, default_value = "mesos-reconciler")]
    pub framework_name: String,
    /// Default role of the framework (specs may name others).
    #[arg(long, env = env::ROLE, default_value = "*")]
    pub role: String,
    /// User tasks run as unless a spec says otherwise (default: $USER).
    #[arg(long, env = env::USER)]
    pub user: Option<String>,
    /// How long Mesos keeps the framework's tasks while the controller is away.
    #[arg(long, env = env::FAILOVER_TIMEOUT, default_value = "1w", value_parser = parse_duration_arg)]
    pub failover_timeout: Duration,
    /// With no framework id in the state directory, adopt this framework and its tasks (instead
    /// of finding one by name on the master).
    #[arg(long, env = env::FRAMEWORK_ID, value_parser = parse_framework_id)]
    pub framework_id: Option<String>,
    /// Fail over this controller's framework even if another scheduler is connected to it (that
    /// one is told "Framework failed over" and stops).
    #[arg(
        long,
        env = env::TAKEOVER,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub takeover: bool,
    /// File holding the status server's bearer token: `approve-deletions`, `reread` and `plan`
    /// then need `Authorization: Bearer <token>`. Required to --listen on anything but loopback.
    #[arg(long, env = env::TOKEN_FILE)]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub policy: SpecPolicyArgs,
}

/// What the spec files may ask for: `run`, `dev`, `validate` and `sync`.
#[derive(Debug, Args, Clone, Default)]
pub struct SpecPolicyArgs {
    /// Users tasks may run as, comma-separated (e.g. `nobody,www-data`): a spec whose `user` is
    /// not listed is invalid, and so is the framework's --user. Default: any user.
    #[arg(long, env = env::ALLOWED_USERS, value_delimiter = ',')]
    pub allowed_users: Option<Vec<String>>,
    /// Most spec files read from the desired directory; a directory with more is refused as a
    /// whole (the specs in force stay).
    #[arg(long, env = env::MAX_SPEC_FILES, default_value_t = crate::spec::dir::Limits::DEFAULT.max_files)]
    pub max_spec_files: usize,
}

impl SpecPolicyArgs {
    /// The checked policy, or what is wrong with the flags.
    pub fn policy(&self) -> Result<crate::spec::SpecPolicy, String> {
        let mut policy = crate::spec::SpecPolicy::default();
        policy.limits.max_files = self.max_spec_files;
        if let Some(users) = &self.allowed_users {
            let users: std::collections::BTreeSet<String> = users
                .iter()
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect();
            if users.is_empty() {
                return Err(
                    "--allowed-users lists no user (e.g. --allowed-users nobody,www-data)"
                        .to_owned(),
                );
            }
            policy.allowed_users = Some(users);
        }
        Ok(policy)
    }
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Masters, comma-separated: host:port (as http://host:port), http://host:port or
    /// https://host:port[/prefix]; e.g. 10.0.0.5:5050,10.0.0.6:5050. Or the ZooKeeper path the
    /// masters contend in, to follow the leader: zk://[user:pass@]zk1:2181,zk2:2181/mesos.
    #[arg(long, env = env::MASTER, value_delimiter = ',', required = true)]
    pub master: Vec<String>,
    /// Run as one of several controllers, of which only the one leading this ZooKeeper election
    /// acts; the others stand by (e.g. zk://zk1:2181,zk2:2181/mesos-reconciler).
    #[arg(long, env = env::HA)]
    pub ha: Option<String>,
    /// ZooKeeper session timeout, for --master zk:// and --ha: a leader that ZooKeeper has not
    /// heard from for half of it stops acting; a standby takes over after all of it.
    #[arg(long, env = env::ZK_SESSION_TIMEOUT, default_value = "10s", value_parser = parse_duration_arg)]
    pub zk_session_timeout: Duration,
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// Principal for HTTP Basic authentication with the master.
    #[arg(long, env = env::PRINCIPAL)]
    pub principal: Option<String>,
    /// File holding the secret for the principal (never pass secrets on the command line).
    #[arg(long, env = env::SECRET_FILE, requires = "principal")]
    pub secret_file: Option<PathBuf>,
    /// PEM bundle of CAs to trust for https:// masters.
    #[arg(long, env = env::CA_BUNDLE)]
    pub ca_bundle: Option<PathBuf>,
    /// Wire encoding.
    #[arg(long, env = env::ENCODING, value_enum, default_value_t = WireEncoding::Protobuf)]
    pub encoding: WireEncoding,
}

#[derive(Debug, Args, Clone)]
pub struct DevArgs {
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// Where the embedded master listens.
    #[arg(long, env = env::MASTER_LISTEN, default_value = "127.0.0.1:5050")]
    pub master_listen: SocketAddr,
}

#[derive(Debug, Args, Clone)]
pub struct ValidateArgs {
    /// Directory of `*.toml` task specs.
    #[arg(long, env = env::DESIRED, default_value = "desired")]
    pub desired: PathBuf,
    /// Also list the files that were ignored and why.
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub policy: SpecPolicyArgs,
}

/// The status server's address when neither `--server` nor `--state` is given: the default
/// `--listen` of `run` and `dev`.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:9797";

/// Where the running controller's status server is, for every command that talks to one.
#[derive(Debug, Args, Clone, Default)]
pub struct ServerArgs {
    /// URL of the running controller's status server [default: the address the controller wrote
    /// to <STATE>/status-addr when --state is given, else http://127.0.0.1:9797].
    #[arg(long, env = env::SERVER, alias = "status-url")]
    pub server: Option<String>,
    /// The running controller's state directory; its `status-addr` file says where the status
    /// server listens (useful with `--listen 127.0.0.1:0`). Ignored when --server is given.
    #[arg(long, env = env::STATE)]
    pub state: Option<PathBuf>,
    /// The controller's --token-file: sent as a bearer token to the endpoints that need it.
    #[arg(long, env = env::TOKEN_FILE)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct ApproveArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the controller's JSON (`GET /api/v1/status`, all pages) instead of rows.
    #[arg(long)]
    pub json: bool,
    /// Wait until everything selected has converged, printing changes as they happen.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits before giving up (exit 3).
    #[arg(long, default_value = "5m", value_parser = parse_duration_arg, requires = "wait")]
    pub timeout: Duration,
    /// Spec ids to show: `team-a/web`, everything under `team-a/`, or a pattern such as `*web*`
    /// (default: all).
    #[arg(value_name = "SPEC")]
    pub specs: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    /// The directory of specs to compare with what the controller runs.
    #[arg(long, env = env::DESIRED, default_value = "desired")]
    pub desired: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct LogsArgs {
    /// The task: `SPEC` (instance 0) or `SPEC#INSTANCE`, e.g. `team-a/web#1`.
    #[arg(value_name = "SPEC[#INSTANCE]")]
    pub task: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Read `stderr` instead of `stdout`.
    #[arg(long)]
    pub stderr: bool,
    /// Keep printing what the task writes until it ends (or Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Which attempt of the instance: 0 the latest, -1 the one before, and so on.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(..=0))]
    pub attempt: i32,
}

#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
    /// Repository URL, as git takes it (https://, ssh://, git@host:path, file://); fetched with the
    /// system git, so ssh keys, known_hosts and credential helpers work as for the user running it.
    #[arg(long, env = env::SYNC_REPO)]
    pub repo: String,
    /// Branch to follow; a force-push is published like any other new commit.
    #[arg(long, env = env::SYNC_BRANCH)]
    pub branch: String,
    /// Directory of the repository holding the spec files (default: the whole repository).
    #[arg(long, env = env::SYNC_SUBDIR)]
    pub subdir: Option<PathBuf>,
    /// Directory for revisions/, the `current` link and sync-status.json; point the controller's
    /// --desired at <root>/current.
    #[arg(long, env = env::SYNC_ROOT)]
    pub root: PathBuf,
    /// Time between fetches (after a failure, retries start at 1s and back off to this).
    #[arg(long, env = env::SYNC_INTERVAL, default_value = "30s", value_parser = parse_duration_arg)]
    pub interval: Duration,
    /// Fetch and publish once, then exit: 0 published (or already current), 1 failed, 2 refused
    /// by --validate.
    #[arg(long)]
    pub once: bool,
    /// Refuse to publish a commit with invalid spec files (each is listed with file:line:column);
    /// without it they are published and the controller keeps their last valid versions.
    #[arg(long, env = env::SYNC_VALIDATE)]
    pub validate: bool,
    /// Published revisions to keep (the one `current` points at always stays).
    #[arg(long, env = env::SYNC_KEEP, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    /// How long one git command may run before it is killed (and the attempt counts as failed).
    #[arg(long, env = env::SYNC_GIT_TIMEOUT, default_value = "2m", value_parser = parse_duration_arg)]
    pub git_timeout: Duration,
    /// The controller's rules for spec files (`--allowed-users`, `--max-spec-files`): with
    /// --validate, a commit that breaks them is refused as the controller would refuse its files.
    #[command(flatten)]
    pub policy: SpecPolicyArgs,
}

#[derive(Debug, Args, Clone)]
pub struct DevclusterArgs {
    /// Address of the master; with --masters N, N addresses separated by commas.
    #[arg(long, default_value = "127.0.0.1:5050", value_delimiter = ',')]
    pub listen: Vec<SocketAddr>,
    /// Run several masters contending through ZooKeeper, e.g. zk://127.0.0.1:2181/mesos (each
    /// creates a json.info_ node under the path, as Mesos masters do).
    #[arg(long)]
    pub zk: Option<String>,
    /// How many masters (more than one needs --zk).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub masters: u32,
    /// The ZooKeeper session timeout of each master: a killed master's node vanishes, and
    /// another master leads, after about this long (Mesos: 10s).
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub zk_session_timeout: Duration,
    /// Number of agents.
    #[arg(long, default_value_t = 1)]
    pub agents: u32,
    /// Resources of each agent, e.g. 'cpus:4;mem:8192;disk:20000;ports:[31000-32000]'.
    #[arg(long, default_value = "cpus:4;mem:8192;disk:20000;ports:[31000-32000]")]
    pub agent_resources: String,
    /// Attributes of each agent, e.g. 'rack:r1;zone:z2'.
    #[arg(long, default_value = "")]
    pub agent_attributes: String,
    /// Run virtual agents (scripted tasks, no processes) instead of real ones.
    #[arg(long)]
    pub virtual_agents: bool,
    /// Where real agents put task sandboxes (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Seconds between heartbeats on subscription streams.
    #[arg(long, default_value = "15s", value_parser = parse_duration_arg)]
    pub heartbeat_interval: Duration,
    /// Time between offer cycles.
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    pub allocation_interval: Duration,
    /// Serve HTTPS with this PEM certificate chain (leaf first); point the controller's
    /// --ca-bundle at the CA that signed it. Not with --zk (the contending masters serve HTTP).
    #[arg(long, requires = "tls_key", conflicts_with = "zk")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: BenchScenario,
    /// Spec files (one task each) in the scenario.
    #[arg(long, default_value_t = 1000)]
    pub specs: usize,
    /// Runs per scenario, each with a fresh cluster, controller and directories; every figure is
    /// the median and the max over the runs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// One JSON object per scenario on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Samples per run: files written one by one for `latency` (default 200), requests per
    /// endpoint for `status` (default 20).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: Option<u32>,
    /// Length of the steady-state window of `idle`, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_secs: u64,
    /// A run still going after this long is stopped and its scenario reports `timed_out`.
    #[arg(long, default_value = "600s", value_parser = parse_duration_arg)]
    pub timeout: Duration,
    /// Virtual agents in the dev cluster.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub agents: u32,
}

/// The benchmark scenarios of `bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchScenario {
    /// N files written while the controller runs, until all N tasks are TASK_RUNNING.
    Converge,
    /// N files present before the controller starts, until all N tasks are TASK_RUNNING.
    Cold,
    /// With N running, one file written at a time: until its ACCEPT reaches the master, until RUNNING.
    Latency,
    /// With N running, kill -9 and restart the controller: until /readyz, and what it launched.
    Restart,
    /// As restart, with the state directory deleted: the framework and its tasks recovered from the master.
    Recover,
    /// With N running, a steady-state window: CPU and memory of the controller and the master.
    Idle,
    /// With N running, response times of the controller's status server.
    Status,
    /// The dev master alone: a plain scheduler launches N tasks, one per ACCEPT.
    Master,
    /// Every scenario in turn.
    All,
}

/// The wire encoding of calls and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WireEncoding {
    Protobuf,
    Json,
}

/// A framework id as Mesos accepts one: not empty, no `/`, `\\` or control characters.
pub fn parse_framework_id(text: &str) -> Result<String, String> {
    let bad = text.is_empty()
        || text == "."
        || text == ".."
        || text
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(format!(
            "{text:?} is not a framework id (as the master shows it, e.g. \
             2c3b5e0e-6f1d-4c2a-9b1e-7a6f3d2e1c0b-0000)"
        ));
    }
    Ok(text.to_owned())
}

/// Durations on the command line: the task spec's syntax (`500ms`, `10s`, `5m`, `1h`, `1m30s`),
/// plus `d` and `w` for the failover timeout; the spec's parser and messages, with its hint.
pub fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    crate::spec::duration::parse_long_duration(text).map_err(|e| match &e.hint {
        Some(h) => format!("{e} ({h})"),
        None => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_days_and_weeks() {
        assert_eq!(
            parse_duration_arg("1w").unwrap(),
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(
            parse_duration_arg("2d").unwrap(),
            Duration::from_secs(2 * 24 * 3600)
        );
        assert_eq!(parse_duration_arg("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration_arg("10sec").unwrap_err(),
            "unknown unit `sec` in duration \"10sec\"; units are ms, s, m, h, d and w (use `s`)"
        );
        assert!(parse_duration_arg("soon").is_err());
    }

    #[test]
    fn framework_ids_are_checked() {
        assert_eq!(parse_framework_id("abc-0001").unwrap(), "abc-0001");
        for bad in ["", "a/b", "a\\b", "..", "a\nb"] {
            assert!(parse_framework_id(bad).is_err(), "{bad:?}");
        }
        let cli = Cli::try_parse_from([
            "mesos-reconciler",
            "run",
            "--master",
            "http://127.0.0.1:5050",
            "--framework-id",
            "abc-0001",
            "--takeover",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(run.controller.framework_id.as_deref(), Some("abc-0001"));
        assert!(run.controller.takeover);
    }

    #[test]
    fn run_needs_a_master_and_reads_env_names() {
        assert!(Cli::try_parse_from(["mesos-reconciler", "run"]).is_err());
        let cli = Cli::try_parse_from([
            "mesos-reconciler",
            "run",
            "--master",
            "http://127.0.0.1:5050,http://127.0.0.1:5051",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(run.master.len(), 2);
        assert_eq!(run.controller.listen.port(), 0);
    }
}
