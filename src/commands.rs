//! The subcommands: each turns checked command-line values into working objects, runs, and returns
//! the process exit code. The logic they run lives in `controller`, `spec`, `devcluster` and `bench`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use crate::cli::{
    ApproveArgs, BenchArgs, ControllerArgs, DevArgs, DevclusterArgs, RunArgs, SyncArgs,
    ValidateArgs, WireEncoding, exit,
};
use crate::controller::{self, ControllerConfig};
use crate::devcluster::{AgentSpec, AgentSpecKind, DevCluster, DevClusterConfig, ZkMasters};
use crate::mesos::client::{ClientConfig, Credentials, MasterSource, parse_master_source};
use crate::mesos::convert::FrameworkSettings;
use crate::mesos::encoding::Encoding;
use crate::zk::ZkUrl;

/// `mesos-reconciler run`.
pub async fn run(args: RunArgs) -> i32 {
    // Joined again, as clap split at the commas: a zk:// URL has commas of its own.
    let masters = match parse_master_source(&args.master.join(",")) {
        Ok(masters) => masters,
        Err(e) => {
            eprintln!("error: --master {e}");
            return exit::USAGE;
        }
    };
    let ha = match args.ha.as_deref().map(ZkUrl::parse).transpose() {
        Ok(ha) => ha,
        Err(e) => {
            eprintln!("error: --ha {e}");
            return exit::USAGE;
        }
    };
    if ha.as_ref().is_some_and(|url| url.path == "/") {
        eprintln!(
            "error: --ha needs a path of its own, e.g. zk://zk1:2181/mesos-reconciler (the \
             controllers' nodes are created below it)"
        );
        return exit::USAGE;
    }
    let mut client = match masters {
        MasterSource::List(masters) => ClientConfig::new(masters),
        MasterSource::ZooKeeper(zk) => {
            tracing::info!(zk = %zk, "following the leading Mesos master in ZooKeeper");
            ClientConfig::detected(crate::zk::detector::spawn(zk, args.zk_session_timeout))
        }
    };
    client.encoding = match args.encoding {
        WireEncoding::Protobuf => Encoding::Protobuf,
        WireEncoding::Json => Encoding::Json,
    };
    client.ca_bundle = args.ca_bundle.clone();
    if let (Some(principal), Some(file)) = (&args.principal, &args.secret_file) {
        match Credentials::from_file(principal.clone(), file) {
            Ok(c) => client.credentials = Some(c),
            Err(e) => {
                eprintln!("error: --secret-file: {e}");
                return exit::USAGE;
            }
        }
    } else if args.principal.is_some() {
        tracing::info!(
            "a principal without --secret-file: it is sent in FrameworkInfo, without HTTP authentication"
        );
    }
    let ha = ha.map(|zk| (zk, args.zk_session_timeout));
    run_controller(
        &args.controller,
        client,
        args.principal.clone(),
        Welcome::None,
        ha,
        shutdown_signal(),
    )
    .await
}

/// `mesos-reconciler dev`: the embedded dev cluster with one real agent sized to this machine,
/// and the controller against it.
pub async fn dev(args: DevArgs) -> i32 {
    let resources = machine_resources();
    let agent = match AgentSpec::parse(AgentSpecKind::Process, &resources, "") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot describe this machine as an agent ({resources}): {e}");
            return exit::FAILURE;
        }
    };
    let config = DevClusterConfig {
        listen: args.master_listen,
        agents: vec![agent],
        work_dir: args.controller.state.join("devcluster"),
        ..Default::default()
    };
    let cluster = match DevCluster::start(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start the dev cluster: {e}");
            return exit::FAILURE;
        }
    };
    tracing::info!(master = %cluster.url(), agent = %resources, "dev cluster running");
    let master = match reqwest::Url::parse(&cluster.url()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: dev cluster url: {e}");
            return exit::FAILURE;
        }
    };
    let code = run_controller(
        &args.controller,
        ClientConfig::new(vec![master]),
        None,
        Welcome::Dev,
        None,
        shutdown_signal(),
    )
    .await;
    // In dev mode the cluster is ours: its tasks stop with it.
    cluster.shutdown().await;
    code
}

/// What to say once the controller is ready.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Welcome {
    None,
    /// `dev`: the page and what a newcomer tries next, as the last start-up line.
    Dev,
}

async fn run_controller(
    args: &ControllerArgs,
    mut client: ClientConfig,
    principal: Option<String>,
    welcome: Welcome,
    ha: Option<(ZkUrl, std::time::Duration)>,
    shutdown: impl Future<Output = ()> + Send,
) -> i32 {
    // The store first: a second controller on the same state directory is told so before
    // anything else (it would otherwise fail on the status server's port, if both use the same).
    let store = match controller::open_store(&args.state) {
        Ok(s) => s,
        Err(e) => {
            report_error(&e);
            return controller_exit_code(&e);
        }
    };
    let status_token = match &args.token_file {
        Some(path) => match crate::status::auth::Token::from_file(path) {
            Ok(token) => Some(token),
            Err(e) => {
                eprintln!("error: --token-file: {e}");
                return exit::USAGE;
            }
        },
        None => None,
    };
    if let Err(message) = crate::status::auth::check_listen(args.listen, status_token.as_ref()) {
        eprintln!("error: {message}");
        return exit::USAGE;
    }
    let spec_policy = match args.policy.policy() {
        Ok(policy) => policy,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::USAGE;
        }
    };
    let user = args
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "nobody".to_owned());
    if !spec_policy.allows_user(&user) {
        eprintln!(
            "error: the framework's user `{user}` (--user, else $USER) is not in --allowed-users \
             ({}); every spec without `user` would run as it: pass an allowed --user",
            spec_policy.allowed_list()
        );
        return exit::USAGE;
    }
    let status = match bind(args.listen).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    if welcome == Welcome::Dev {
        if let Ok(addr) = status.local_addr() {
            tokio::spawn(dev_welcome(addr, args.desired.clone()));
        }
    }
    let leadership = match (ha, status.local_addr()) {
        (Some((zk, session_timeout)), Ok(addr)) => {
            let leadership = contend(zk, session_timeout, addr);
            let gate = leadership.clone();
            client.gate = Some(crate::mesos::client::Gate(std::sync::Arc::new(move || {
                gate.acting_until().is_none().then(|| {
                    "this controller does not lead (run --ha) or its lease ran out".to_owned()
                })
            })));
            Some(leadership)
        }
        (Some(_), Err(e)) => {
            eprintln!("error: the status server's address: {e}");
            return exit::FAILURE;
        }
        (None, _) => None,
    };
    let config = ControllerConfig {
        desired: args.desired.clone(),
        state_dir: args.state.clone(),
        client,
        framework: FrameworkSettings {
            name: args.framework_name.clone(),
            user,
            roles: Vec::new(),
            principal,
            failover_timeout: args.failover_timeout,
            // Shown by the master (`/master/frameworks`): where this controller runs, which is
            // what a second controller, or an operator, needs to find it.
            hostname: crate::state_dir::local_hostname(),
            webui_url: None,
        },
        role: args.role.clone(),
        status: Some(status),
        framework_id: args.framework_id.clone(),
        takeover: args.takeover,
        status_token,
        spec_policy,
        leadership,
        rows_on_demand_from: controller::ROWS_ON_DEMAND_FROM,
    };
    match controller::run_with_store(config, store, shutdown).await {
        Ok(()) => exit::OK,
        Err(e) => {
            report_error(&e);
            controller_exit_code(&e)
        }
    }
}

/// Joins the controllers' election (`run --ha`), with this process's host, pid and status
/// address as its node's data.
fn contend(
    zk: ZkUrl,
    session_timeout: std::time::Duration,
    status: SocketAddr,
) -> crate::zk::election::Leadership {
    let host = crate::state_dir::local_hostname().unwrap_or_else(|| "?".to_owned());
    // A status server on every interface is reached through the host's name.
    let status = if status.ip().is_unspecified() {
        format!("{host}:{}", status.port())
    } else {
        status.to_string()
    };
    let info = crate::controller::ContenderInfo {
        host,
        pid: std::process::id(),
        status,
    };
    tracing::info!(zk = %zk, "contending with the other controllers; acting only while leading");
    crate::zk::election::spawn(crate::zk::election::ElectionConfig {
        zk,
        label: crate::controller::CONTENDER_LABEL.to_owned(),
        data: serde_json::to_vec(&info).unwrap_or_default(),
        session_timeout,
    })
}

/// Waits for the controller's first successful pass (`/readyz`), then logs the page's URL and
/// the commands a newcomer tries next: the end of `dev`'s start-up.
async fn dev_welcome(addr: SocketAddr, desired: std::path::PathBuf) {
    let page = format!("http://{addr}");
    let server = if page == crate::cli::DEFAULT_SERVER {
        String::new()
    } else {
        format!(" --server {page}")
    };
    let Ok(http) = crate::http::client_builder().build() else {
        return;
    };
    let ready = format!("{page}/readyz");
    loop {
        if let Ok(r) = http.get(&ready).send().await {
            if r.status().is_success() {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tracing::info!(
        "ready: open {page}/ ; next try `mesos-reconciler status{server}`, add or edit a spec in \
         {}/ (e.g. copy one) and watch it start, `mesos-reconciler plan{server}` to see what \
         would change",
        desired.display()
    );
}

/// Prints `error: <e>` on stderr in one write, so that the line stays whole in a log file that
/// other processes write to as well.
fn report_error(e: &impl std::fmt::Display) {
    use std::io::Write as _;
    let line = format!("error: {e}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// 64 for what the operator must change (a state directory in use, a framework that cannot be
/// adopted), 1 for failures at run time.
fn controller_exit_code(e: &controller::ControllerError) -> i32 {
    if e.is_usage() {
        exit::USAGE
    } else {
        exit::FAILURE
    }
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, i32> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        eprintln!("error: cannot listen on {addr} for the status server: {e} (use --listen to pick another address, port 0 for any)");
        exit::USAGE
    })
}

/// `mesos-reconciler validate`: every problem, with file, line and column; exit 2 if any.
pub fn validate(args: &ValidateArgs) -> i32 {
    let policy = match args.policy.policy() {
        Ok(policy) => policy,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::USAGE;
        }
    };
    let snapshot = match crate::spec::dir::load_dir_with(&args.desired, &policy) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID_SPECS;
        }
    };
    for err in snapshot.errors.values() {
        println!("{err}");
    }
    if args.verbose {
        for id in snapshot.specs.keys() {
            println!("ok: {}", id.as_str());
        }
        for path in &snapshot.ignored {
            println!("ignored: {}", path.display());
        }
    }
    println!(
        "{} valid, {} invalid, {} ignored in {}",
        snapshot.specs.len(),
        snapshot.errors.len(),
        snapshot.ignored.len(),
        args.desired.display()
    );
    if snapshot.errors.is_empty() {
        exit::OK
    } else {
        exit::INVALID_SPECS
    }
}

/// `mesos-reconciler approve-deletions`.
pub async fn approve(args: &ApproveArgs) -> i32 {
    let server = match crate::shell::server_url(&args.server) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    let token = match crate::shell::read_token(&args.server) {
        Ok(token) => token,
        Err(code) => return code,
    };
    match crate::status::approve_deletions_with(&server, token.as_ref()).await {
        Ok(text) => {
            println!("{}", text.trim_end());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILURE
        }
    }
}

/// `mesos-reconciler sync`: the loop until SIGINT/SIGTERM (SIGHUP fetches at once), or one
/// attempt with `--once`.
pub async fn sync(args: SyncArgs) -> i32 {
    use crate::sync::{Attempt, SyncConfig, SyncError};
    if args.interval.is_zero() {
        eprintln!("error: --interval must be longer than 0s (e.g. 30s)");
        return exit::USAGE;
    }
    let policy = match args.policy.policy() {
        Ok(policy) => policy,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::USAGE;
        }
    };
    let config = SyncConfig {
        policy,
        repo: args.repo,
        branch: args.branch,
        subdir: args.subdir.unwrap_or_default(),
        root: args.root,
        interval: args.interval,
        validate: args.validate,
        keep: args.keep as usize,
        git: "git".into(),
        timeout: args.git_timeout,
    };
    let setup_failed = |e: SyncError| {
        eprintln!("error: {e}");
        match e {
            SyncError::Config(_) => exit::USAGE,
            SyncError::Setup(_) => exit::FAILURE,
        }
    };
    if !args.once {
        let (wake, woken) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                let _ = wake.try_send(());
            }
        });
        return match crate::sync::run(config, shutdown_signal(), woken).await {
            Ok(()) => exit::OK,
            Err(e) => setup_failed(e),
        };
    }
    match crate::sync::once(config).await {
        Err(e) => setup_failed(e),
        Ok(Ok(Attempt::Published(commit))) => {
            println!("published {} {}", commit.short(), commit.subject);
            exit::OK
        }
        Ok(Ok(Attempt::Unchanged(commit))) => {
            println!("already at {} {}", commit.short(), commit.subject);
            exit::OK
        }
        Ok(Ok(Attempt::Refused(refusal))) => {
            eprintln!(
                "error: commit {} ({}) was not published; `current` is unchanged:",
                refusal.commit.short(),
                refusal.commit.subject
            );
            for problem in &refusal.problems {
                eprintln!("  {problem}");
            }
            exit::INVALID_SPECS
        }
        Ok(Err(error)) => {
            eprintln!("error: {error}");
            exit::FAILURE
        }
    }
}

/// `mesos-reconciler devcluster`.
pub async fn devcluster(args: DevclusterArgs) -> i32 {
    let kind = if args.virtual_agents {
        AgentSpecKind::Virtual
    } else {
        AgentSpecKind::Process
    };
    let agent = match AgentSpec::parse(kind, &args.agent_resources, &args.agent_attributes) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --agent-resources/--agent-attributes: {e}");
            return exit::USAGE;
        }
    };
    let zk = match devcluster_masters(&args) {
        Ok(zk) => zk,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::USAGE;
        }
    };
    let mut config = DevClusterConfig {
        listen: args.listen[0],
        zk,
        agents: vec![agent; args.agents as usize],
        heartbeat_interval: args.heartbeat_interval,
        allocation_interval: args.allocation_interval,
        ..Default::default()
    };
    if let Some(dir) = args.work_dir {
        config.work_dir = dir;
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        match crate::devcluster::master::tls::server_config(cert, key) {
            Ok(tls) => config.tls = Some(tls),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
    }
    let cluster = match DevCluster::start(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    };
    tracing::info!(masters = %cluster.master_list(), agents = args.agents, "dev cluster running; Ctrl-C stops it and its tasks");
    println!("{}", cluster.master_list());
    shutdown_signal().await;
    cluster.shutdown().await;
    exit::OK
}

/// The ZooKeeper masters of `devcluster --zk --masters N --listen a,b,c`, or None for the single
/// master of `--listen a`.
fn devcluster_masters(args: &DevclusterArgs) -> Result<Option<ZkMasters>, String> {
    let masters = args.masters as usize;
    let Some(zk) = &args.zk else {
        if masters > 1 || args.listen.len() > 1 {
            return Err(format!(
                "--masters {masters} and --listen with {} addresses: several masters elect their leader through ZooKeeper; add --zk zk://HOST:2181/mesos",
                args.listen.len()
            ));
        }
        return Ok(None);
    };
    let url = ZkUrl::parse(zk).map_err(|e| format!("--zk: {e}"))?;
    if args.listen.len() != masters {
        return Err(format!(
            "--masters {masters} needs {masters} addresses in --listen (comma-separated, e.g. 127.0.0.1:5050,127.0.0.1:5051,127.0.0.1:5052); {} given",
            args.listen.len()
        ));
    }
    Ok(Some(ZkMasters {
        url,
        listen: args.listen.clone(),
        session_timeout: args.zk_session_timeout,
    }))
}

/// `mesos-reconciler bench`: the scenarios run this binary as a dev cluster and a controller, each
/// in its own process. On SIGINT or SIGTERM the bench is dropped, which kills both (SIGKILL).
/// Either way, the temporary directories of its runs are removed last.
pub async fn bench(args: BenchArgs) -> i32 {
    let code = tokio::select! {
        code = crate::bench::run(args) => code,
        () = shutdown_signal() => {
            eprintln!("bench interrupted: its processes are killed; removing its directories");
            exit::FAILURE
        }
    };
    crate::bench::remove_workspaces().await;
    code
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// This machine as one agent: all its cpus, 80% of its memory, 20 GB of disk, ports 31000-32000.
fn machine_resources() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem = mem_total_mib(Path::new("/proc/meminfo")).map_or(4096, |m| m * 8 / 10);
    format!("cpus:{cpus};mem:{mem};disk:20000;ports:[31000-32000]")
}

fn mem_total_mib(meminfo: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(meminfo).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
