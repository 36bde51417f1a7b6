//! `p4k8s`: the command-line entry point.
//!
//! - `p4k8s run`: the target process: dataplane workers plus the P4Runtime
//!   server (default `127.0.0.1:9559`, device id 1).

mod config;
mod ports;
mod run;

use clap::{Parser, Subcommand};

/// p4k8s: a software P4 target for Kubernetes pod networking.
#[derive(Debug, Parser)]
#[command(name = "p4k8s", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the target: dataplane workers and the P4Runtime server.
    Run(run::RunArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run(args) => run::run(args),
    }
}
