//! `p4k8s`: the command-line entry point.
//!
//! - `p4k8s run`: the target process: dataplane workers plus the P4Runtime
//!   server (default `127.0.0.1:9559`, device id 1).
//! - `p4k8s ctl apply|read`: a small P4Runtime controller that writes what
//!   upstream's manager writes for a scenario file, and reads tables back.

mod config;
mod ctl;
mod mac;
mod ports;
mod report;
mod run;

use clap::{Parser, Subcommand};

/// mimalloc: the P4Runtime server allocates per message and per update;
/// it roughly halves that cost against glibc's allocator (see the
/// `p4rt_write_path` bench).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// A small P4Runtime controller: apply a scenario, read tables.
    Ctl(ctl::CtlArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Run(args) => run::run(args),
        Command::Ctl(args) => {
            // A controller's errors are for people: no backtrace.
            if let Err(e) = ctl::run(args) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
