//! Command-line parsing: the subcommands and their options, each option also settable through a
//! `MESOS_RECONCILER_*` environment variable. Values are validated here; turning them into working
//! objects happens in the command that runs.

use clap::{Parser, Subcommand};

/// Exit codes, as the README documents them.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const INVALID_SPECS: i32 = 2;
    pub const USAGE: i32 = 64;
}

/// Makes an Apache Mesos cluster match a directory of TOML task specs.
#[derive(Debug, Parser)]
#[command(name = "mesos-reconciler", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {}
