//! `p4k8s run`: start the dataplane workers and the P4Runtime server, stop
//! both cleanly on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use p4k8s_dataplane::worker::{Backoff, WorkerConfig, Workers};
use p4k8s_dataplane::{Control, DataplaneConfig};
use p4k8s_packet::port::ring::RingPort;
use p4k8s_packet::QueuePair;

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
}

/// Runs the target until SIGINT or SIGTERM.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = DataplaneConfig { flow_capacity: args.flow_capacity, ..DataplaneConfig::default() };
    let control = Arc::new(Control::new(config));
    let workers = Workers::start(
        &control,
        &WorkerConfig {
            workers: args.workers,
            cores: args.cores.clone(),
            backoff: Backoff { max_sleep_us: args.idle_sleep_us, ..Backoff::default() },
            pool_buffers: 4096,
        },
    )
    .context("starting dataplane workers")?;
    // The embedded default: in-memory ring ports, so a controller can
    // program the target and read it back with no interface configured.
    let mut rings = Vec::new();
    for id in 1..=args.ring_ports {
        let ring = RingPort::new(workers.len(), 1024);
        let queues: Vec<Box<dyn QueuePair>> =
            (0..workers.len()).filter_map(|q| ring.queue(q)).map(|q| Box::new(q) as Box<dyn QueuePair>).collect();
        workers.add_port(id, queues).with_context(|| format!("adding ring port {id}"))?;
        rings.push(ring);
    }
    tracing::info!(workers = workers.len(), ring_ports = rings.len(), addr = %args.p4rt_addr, device_id = args.device_id, "p4k8s target starting");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        p4k8s_p4runtime::serve(args.p4rt_addr, args.device_id, Arc::clone(&control), shutdown_signal())
            .await
            .context("P4Runtime server")
    });
    tracing::info!("stopping dataplane workers");
    workers.stop();
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
