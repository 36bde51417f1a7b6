//! The target's counters in its log: every port's receive, transmit and
//! drop counts, and the pipeline's drops by reason and events. Written on
//! SIGUSR1 while the target runs and once when it stops, so an operator
//! (or a benchmark script) can see where packets went.

use std::sync::Mutex;

use p4k8s_dataplane::Control;

use crate::ports::PortSet;

/// Logs the counters of every open port and of the pipeline.
pub fn log_counters(control: &Control, ports: &Mutex<PortSet>) {
    let stats = ports.lock().unwrap_or_else(|e| e.into_inner()).stats();
    for (port, s) in stats {
        tracing::info!(
            port,
            rx_packets = s.rx_packets,
            rx_bytes = s.rx_bytes,
            tx_packets = s.tx_packets,
            tx_bytes = s.tx_bytes,
            drops = s.drops,
            "port counters"
        );
    }
    let s = control.stats();
    let drops = s
        .drops
        .iter()
        .map(|(reason, n)| format!("{reason}={n}"))
        .collect::<Vec<_>>()
        .join(",");
    tracing::info!(
        packets = s.packets,
        learned = s.learned,
        learn_failed = s.learn_failed,
        nat_rewrites = s.nat_rewrites,
        hairpin_rewrites = s.hairpin_rewrites,
        superseded_flows = s.superseded_flows,
        drops = %if drops.is_empty() { "none".to_string() } else { drops },
        "pipeline counters"
    );
}

/// Logs the counters on every SIGUSR1. Never returns unless SIGUSR1
/// cannot be watched.
pub async fn log_on_sigusr1(control: &Control, ports: &Mutex<PortSet>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        tracing::warn!("cannot watch SIGUSR1; counters are logged only at stop");
        return std::future::pending().await;
    };
    while usr1.recv().await.is_some() {
        log_counters(control, ports);
    }
}
