//! The `mesos-reconciler` binary: parses the command line, sets up logging and runs one command.

use clap::Parser;
use mesos_reconciler::cli::{Cli, Command, env, exit};
use mesos_reconciler::commands;

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
        // The bench prints figures; its children log to files of their own.
        Command::Bench(_) => "warn",
        _ => "info",
    };
    init_logging(default_filter);
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
            Command::ApproveDeletions(args) => commands::approve(&args).await,
            Command::Sync(args) => commands::sync(args).await,
            Command::Devcluster(args) => commands::devcluster(args).await,
            Command::Bench(args) => commands::bench(args).await,
        }
    });
    std::process::exit(code);
}

/// Logs go to stderr; `MESOS_RECONCILER_LOG` (or `RUST_LOG`) filters them.
fn init_logging(default_filter: &str) {
    let filter = std::env::var(env::LOG)
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_filter.to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
