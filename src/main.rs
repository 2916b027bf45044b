//! The `mesos-reconciler` binary: parses the command line, sets up logging and runs one command.

use clap::Parser;
use mesos_reconciler::cli::Cli;

fn main() {
    let cli = Cli::parse();
    match cli.command {}
}
