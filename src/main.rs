//! The `mesos-reconciler` binary: parses the command line, sets up logging and runs one command.

use clap::Parser;
use mesos_reconciler::cli::{Cli, exit};

fn main() {
    let cli = Cli::parse();
    eprintln!("{:?}: this command is not wired yet", cli.command);
    std::process::exit(exit::FAILURE);
}
