//! `p4k8s run`: start the dataplane workers and the P4Runtime server, stop
//! both cleanly on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use p4k8s_cdq::tap::MAX_GSO_FRAME;
use p4k8s_dataplane::control::{CommitMode, Op, PortDirection, TableOp};
use p4k8s_dataplane::worker::{Backoff, WorkerConfig, Workers};
use p4k8s_dataplane::{Control, DataplaneConfig};
use p4k8s_packet::buffer::{DEFAULT_BUF_SIZE, HEADROOM};

use crate::config::{FileConfig, PortSpec};
use crate::ports;

/// Options of `p4k8s run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Address the P4Runtime server listens on.
    #[arg(long, default_value = "127.0.0.1:9559")]
    pub p4rt_addr: SocketAddr,
    /// P4Runtime device id.
    #[arg(long, default_value_t = 1)]
    pub device_id: u64,
    /// Number of dataplane workers.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Cores to pin the workers to, comma separated (worker i on the i-th).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// In-memory ring ports to create when no other port is configured
    /// (port ids 1..=N; port 1 is the host port).
    #[arg(long, default_value_t = 4)]
    pub ring_ports: u32,
    /// Learned flows per learner table.
    #[arg(long, default_value_t = 1 << 20)]
    pub flow_capacity: usize,
    /// Longest idle sleep of a worker, in microseconds.
    #[arg(long, default_value_t = 200)]
    pub idle_sleep_us: u64,
    /// A TOML file with `[dataplane]`, `[p4runtime]` and `[[port]]` sections
    /// (see `p4k8s/src/config.rs`); its values override the flags.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}

/// Runs the target until SIGINT or SIGTERM.
pub fn run(mut args: RunArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    args.workers = file.dataplane.workers.unwrap_or(args.workers);
    args.cores = file.dataplane.cores.clone().unwrap_or(args.cores);
    args.flow_capacity = file.dataplane.flow_capacity.unwrap_or(args.flow_capacity);
    args.idle_sleep_us = file.dataplane.idle_sleep_us.unwrap_or(args.idle_sleep_us);
    args.p4rt_addr = file.p4runtime.addr.unwrap_or(args.p4rt_addr);
    args.device_id = file.p4runtime.device_id.unwrap_or(args.device_id);

    let config = DataplaneConfig {
        flow_capacity: args.flow_capacity,
        ..DataplaneConfig::default()
    };
    let control = Arc::new(Control::new(config));
    // Ports with offloads hand over 64 KiB segments: size buffers for them.
    let big = file.ports.iter().any(PortSpec::offloads);
    let buf_size = if big {
        MAX_GSO_FRAME + HEADROOM
    } else {
        DEFAULT_BUF_SIZE
    };
    let workers = Workers::start(
        &control,
        &WorkerConfig {
            workers: args.workers,
            cores: args.cores.clone(),
            backoff: Backoff {
                max_sleep_us: args.idle_sleep_us,
                ..Backoff::default()
            },
            pool_buffers: if big { 1024 } else { 4096 },
            buf_size,
        },
    )
    .context("starting dataplane workers")?;

    // Ports from the file; with none, the embedded default of in-memory
    // ring ports, so a controller can program the target with no interface.
    let specs: Vec<PortSpec> = if file.ports.is_empty() {
        (1..=args.ring_ports).map(PortSpec::ring).collect()
    } else {
        file.ports.clone()
    };
    let mut opened = Vec::new();
    let mut directions = Vec::new();
    for spec in &specs {
        let port = ports::open(spec, workers.len())?;
        let dir = if spec.direction()? {
            PortDirection::NetToHost
        } else {
            PortDirection::HostToNet
        };
        directions.push(TableOp::Port(Op::Insert(spec.id, dir)));
        workers
            .add_port(port.id, port.queues)
            .with_context(|| format!("adding port {}", spec.id))?;
        tracing::info!(port = spec.id, kind = ?spec.kind, "port up");
        opened.push(port.handle);
    }
    for r in control.commit(directions, CommitMode::ContinueOnError) {
        r.context("recording port directions")?;
    }
    tracing::info!(workers = workers.len(), ports = opened.len(), addr = %args.p4rt_addr, device_id = args.device_id, "p4k8s target starting");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        p4k8s_p4runtime::serve(
            args.p4rt_addr,
            args.device_id,
            Arc::clone(&control),
            shutdown_signal(),
        )
        .await
        .context("P4Runtime server")
    });
    tracing::info!("stopping dataplane workers");
    workers.stop();
    // Ports go after the workers that poll them (a TAP is deleted here).
    drop(opened);
    result
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the target");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}
