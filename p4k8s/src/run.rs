//! `p4k8s run`: start the dataplane workers and the P4Runtime server, stop
//! both cleanly on SIGINT or SIGTERM; on SIGHUP, re-read the `--config`
//! file and open or close ports to match it; on SIGUSR1 and at stop, log
//! the counters of every port and of the pipeline.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use p4k8s_cdq::tap::MAX_GSO_FRAME;
use p4k8s_dataplane::worker::{Backoff, WorkerConfig, Workers};
use p4k8s_dataplane::{Control, DataplaneConfig};
use p4k8s_packet::buffer::{DEFAULT_BUF_SIZE, HEADROOM};

use crate::config::{FileConfig, PortSpec};
use crate::ports::PortSet;
use crate::report;

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
    /// Core for the control plane (the P4Runtime server's threads). By
    /// default, when the workers are pinned, the first core no worker uses.
    #[arg(long)]
    pub control_core: Option<usize>,
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
    args.control_core = file.p4runtime.core.or(args.control_core);

    let defaults = DataplaneConfig::default();
    let config = DataplaneConfig {
        flow_capacity: args.flow_capacity,
        hairpin_snat: file
            .dataplane
            .hairpin_snat
            .map_or(defaults.hairpin_snat, |h| h.address()),
        ..defaults
    };
    let control = Arc::new(Control::new(config));
    // Ports with offloads hand over 64 KiB segments: size buffers for them
    // (with a config file, any reload may add such a port).
    let big = args.config.is_some() || file.ports.iter().any(PortSpec::offloads);
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
    let mut ports = PortSet::default();
    let wanted = wanted_ports(&file, args.ring_ports);
    if let Some(e) = ports.sync(&wanted, &workers, &control).into_iter().next() {
        return Err(e.context("opening the configured ports"));
    }
    tracing::info!(workers = workers.len(), ports = ports.len(), addr = %args.p4rt_addr, device_id = args.device_id, "p4k8s target starting");
    let ports = std::sync::Mutex::new(ports);

    // The server decodes and applies writes on its own core, so a write
    // storm does not take cycles from the workers.
    let control_core = args.control_core.or_else(|| spare_core(&args.cores));
    if let Some(core) = control_core {
        pin(core);
        tracing::info!(core, "control plane pinned");
    }
    // One thread serves every connection (big writes go to the blocking
    // pool): a request crosses no thread on its way in and out.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .on_thread_start(move || {
            if let Some(core) = control_core {
                pin(core);
            }
        })
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let server = p4k8s_p4runtime::serve(
            args.p4rt_addr,
            args.device_id,
            Arc::clone(&control),
            shutdown_signal(),
        );
        let reloads = reload_on_sighup(
            args.config.as_deref(),
            args.ring_ports,
            &ports,
            &workers,
            &control,
        );
        let reports = report::log_on_sigusr1(&control, &ports);
        tokio::select! {
            r = server => r.context("P4Runtime server"),
            () = reloads => Ok(()),
            () = reports => Ok(()),
        }
    });
    tracing::info!("stopping dataplane workers");
    workers.stop();
    report::log_counters(&control, &ports);
    // Ports go after the workers that poll them (a TAP is deleted here).
    drop(ports);
    result
}

/// The first core of this machine that no worker is pinned to, when the
/// workers are pinned.
fn spare_core(worker_cores: &[usize]) -> Option<usize> {
    if worker_cores.is_empty() {
        return None;
    }
    core_affinity::get_core_ids()?
        .into_iter()
        .map(|c| c.id)
        .find(|id| !worker_cores.contains(id))
}

/// Pins the calling thread to `core` (a warning if the OS refuses).
fn pin(core: usize) {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        tracing::warn!(core, "could not pin the control plane");
    }
}

/// The ports a configuration asks for (ring ports 1..=N when it names none).
fn wanted_ports(file: &FileConfig, ring_ports: u32) -> Vec<PortSpec> {
    if file.ports.is_empty() {
        (1..=ring_ports).map(PortSpec::ring).collect()
    } else {
        file.ports.clone()
    }
}

/// On every SIGHUP, re-reads the configuration file and opens and closes
/// ports to match it while traffic on the other ports goes on. A file that
/// does not parse changes nothing. Never returns unless SIGHUP cannot be
/// watched.
async fn reload_on_sighup(
    path: Option<&std::path::Path>,
    ring_ports: u32,
    ports: &std::sync::Mutex<PortSet>,
    workers: &Workers,
    control: &Control,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot watch SIGHUP; ports are fixed");
        return std::future::pending().await;
    };
    while hup.recv().await.is_some() {
        let Some(path) = path else {
            tracing::info!("SIGHUP: no --config file to reload");
            continue;
        };
        match FileConfig::load(path) {
            Ok(file) => {
                let wanted = wanted_ports(&file, ring_ports);
                let mut set = ports.lock().unwrap_or_else(|e| e.into_inner());
                for e in set.sync(&wanted, workers, control) {
                    tracing::error!("reload: {e:#}");
                }
                tracing::info!(ports = set.len(), "configuration reloaded");
            }
            Err(e) => tracing::error!("reload refused, nothing changed: {e}"),
        }
    }
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
