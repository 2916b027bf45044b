//! The `mesos-reconciler` binary: parses the command line, sets up logging and runs one command.

use clap::Parser;
use mesos_reconciler::cli::{Cli, Command, LogFormat, env, exit};
use mesos_reconciler::commands;

/// mimalloc returns freed memory to the system; glibc's allocator kept the peak of a start at
/// 10,000 specs resident for good (the batch that writes every record, the first snapshot).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // clap exits with 2 on a usage error, which here means "invalid specs": usage errors get 64.
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let code = if e.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        };
        let _ = e.print();
        std::process::exit(code);
    });
    // In `dev` the embedded cluster logs only warnings by default, so the log shows one line per
    // task transition (the controller's), not three.
    let default_filter = match cli.command {
        Command::Dev(_) => "info,mesos_reconciler::devcluster=warn",
        // The bench prints figures; its children log to files of their own. The shell commands
        // print what they were asked for; their own logs would only be noise.
        Command::Bench(_) | Command::Status(_) | Command::Plan(_) | Command::Logs(_) => "warn",
        _ => "info",
    };
    init_logging(default_filter, cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILURE);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => commands::run(args).await,
            Command::Dev(args) => commands::dev(args).await,
            Command::Validate(args) => commands::validate(&args),
            Command::Status(args) => mesos_reconciler::shell::status(args).await,
            Command::Plan(args) => mesos_reconciler::shell::plan(args).await,
            Command::Logs(args) => mesos_reconciler::shell::logs(args).await,
            Command::ApproveDeletions(args) => commands::approve(&args).await,
            Command::Sync(args) => commands::sync(args).await,
            Command::Devcluster(args) => commands::devcluster(args).await,
            Command::Bench(args) => commands::bench(args).await,
        }
    });
    std::process::exit(code);
}

/// Logs go to stderr; `MESOS_RECONCILER_LOG` (or `RUST_LOG`) filters them. With `--log-format
/// json` each line is one JSON object whose event fields (`spec`, `task_id`, ...) are top-level
/// keys beside `timestamp`, `level`, `target` and `message`, and the enclosing span (a pass and
/// why it ran) is under `span`.
fn init_logging(default_filter: &str, format: LogFormat) {
    let filter = std::env::var(env::LOG)
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_filter.to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
