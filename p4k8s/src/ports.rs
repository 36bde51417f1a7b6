//! Opening the configured ports: each backend gives one queue pair per
//! worker, and a handle that keeps the port alive (dropping it removes a
//! TAP, stops a memif control thread).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use p4k8s_cdq::af_packet::{AfPacketConfig, AfPacketPort};
use p4k8s_cdq::af_xdp::{AfXdpConfig, HostPort};
use p4k8s_cdq::memif::{MemifConfig, MemifPort, MemifPortThread, SocketName};
use p4k8s_cdq::tap::{TapConfig, TapOffloads, TapPort};
use p4k8s_dataplane::control::{CommitMode, Op, PortDirection, TableOp};
use p4k8s_dataplane::worker::Workers;
use p4k8s_dataplane::Control;
use p4k8s_packet::port::ring::RingPort;
use p4k8s_packet::port::{PortCounters, PortStats};
use p4k8s_packet::QueuePair;

use crate::config::{PortKind, PortSpec};

/// What keeps an open port alive (dropping it closes the port), and where
/// its counters are read.
pub enum PortHandle {
    /// An in-memory ring (kept so tests and tools can reach it).
    Ring(RingPort),
    /// A TAP CDQ; dropping it deletes the netdev.
    Tap(TapPort),
    /// An AF_PACKET port.
    AfPacket(AfPacketPort),
    /// An AF_XDP port, or the AF_PACKET port it fell back to; dropping it
    /// detaches the XDP program.
    AfXdp(HostPort),
    /// A memif CDQ's control thread.
    Memif(MemifPortThread),
}

impl PortHandle {
    /// The port's receive, transmit and drop counters (all its queues).
    pub fn counters(&self) -> &Arc<PortCounters> {
        match self {
            PortHandle::Ring(p) => p.counters(),
            PortHandle::Tap(p) => p.counters(),
            PortHandle::AfPacket(p) => p.counters(),
            PortHandle::AfXdp(p) => p.counters(),
            PortHandle::Memif(p) => p.counters(),
        }
    }
}

/// An opened port: its queue pairs (one per worker) and its handle.
pub struct OpenPort {
    /// The P4 port id.
    pub id: u32,
    /// One queue pair per worker.
    pub queues: Vec<Box<dyn QueuePair>>,
    /// Keeps the backend alive.
    pub handle: PortHandle,
}

fn boxed<Q: QueuePair + 'static>(q: Q) -> Box<dyn QueuePair> {
    Box::new(q)
}

/// Opens `spec` with `workers` queue pairs.
pub fn open(spec: &PortSpec, workers: usize) -> anyhow::Result<OpenPort> {
    let id = spec.id;
    let (queues, handle) = match spec.kind {
        PortKind::Ring => {
            let ring = RingPort::new(workers, 1024);
            let queues = (0..workers)
                .filter_map(|q| ring.queue(q))
                .map(boxed)
                .collect();
            (queues, PortHandle::Ring(ring))
        }
        PortKind::Tap => {
            let mut cfg = TapConfig::new(spec.netns.as_deref().unwrap_or_default());
            if let Some(ifname) = &spec.ifname {
                cfg.ifname = ifname.clone();
            }
            cfg.mac = spec.mac_bytes()?;
            cfg.ipv4 = spec.ipv4_prefix()?;
            cfg.mtu = spec.mtu.unwrap_or(1500);
            cfg.queues = workers;
            cfg.port_id = id;
            if !spec.offloads() {
                cfg.offloads = TapOffloads {
                    csum: false,
                    tso: false,
                    uso: false,
                };
            }
            cfg.tx_queue_len = spec.tx_queue_len;
            cfg.rps_cpus = spec.rps_cpus.clone().unwrap_or_default();
            let mut tap = TapPort::create(&cfg)
                .with_context(|| format!("port {id}: creating the TAP CDQ"))?;
            let queues = (0..workers)
                .filter_map(|q| tap.take_queue(q))
                .map(boxed)
                .collect();
            (queues, PortHandle::Tap(tap))
        }
        PortKind::AfPacket => {
            let mut cfg = AfPacketConfig::new(spec.ifname.as_deref().unwrap_or_default());
            cfg.netns = spec.netns.clone();
            cfg.vnet_hdr = spec.offloads();
            cfg.queues = workers;
            cfg.port_id = id;
            let mut port = AfPacketPort::create(&cfg)
                .with_context(|| format!("port {id}: opening AF_PACKET"))?;
            let queues = (0..workers)
                .filter_map(|q| port.take_queue(q))
                .map(boxed)
                .collect();
            (queues, PortHandle::AfPacket(port))
        }
        PortKind::AfXdp => {
            let ifname = spec.ifname.as_deref().unwrap_or_default();
            let mut xdp = AfXdpConfig::new(ifname);
            xdp.netns = spec.netns.clone();
            xdp.queues = workers;
            xdp.port_id = id;
            let mut packet = AfPacketConfig::new(ifname);
            packet.netns = spec.netns.clone();
            packet.queues = workers;
            packet.port_id = id;
            let mut port = HostPort::open(&xdp, &packet)
                .with_context(|| format!("port {id}: opening AF_XDP, then AF_PACKET"))?;
            let queues = (0..workers)
                .filter_map(|q| port.take_queue(q))
                .map(boxed)
                .collect();
            (queues, PortHandle::AfXdp(port))
        }
        PortKind::Memif => {
            let text = spec.socket.clone().unwrap_or_default();
            let socket = match text.strip_prefix('@') {
                Some(name) => SocketName::Abstract(name.to_owned()),
                None => SocketName::Path(PathBuf::from(&text)),
            };
            let n = u16::try_from(workers).context("too many workers for memif queue pairs")?;
            let cfg = match spec.role.as_deref() {
                Some("client") => MemifConfig::client(socket, n),
                _ => MemifConfig::server(socket, n),
            };
            let mut port =
                MemifPort::new(cfg).with_context(|| format!("port {id}: memif socket {text}"))?;
            let queues = port.take_queue_pairs().into_iter().map(boxed).collect();
            let thread = port
                .spawn()
                .with_context(|| format!("port {id}: starting the memif control thread"))?;
            (queues, PortHandle::Memif(thread))
        }
    };
    Ok(OpenPort { id, queues, handle })
}

/// The target's open ports by id, kept in step with the configuration: at
/// start-up, and again on every reload (SIGHUP) while traffic runs.
#[derive(Default)]
pub struct PortSet {
    open: BTreeMap<u32, (PortSpec, PortHandle)>,
}

impl PortSet {
    /// Number of open ports.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Each open port's counters, by port id.
    pub fn stats(&self) -> Vec<(u32, PortStats)> {
        self.open
            .iter()
            .map(|(id, (_, handle))| (*id, handle.counters().snapshot()))
            .collect()
    }

    /// Closes the ports not in `wanted` (or whose entry changed) and opens
    /// the new ones, telling the workers and recording each port's
    /// direction; ports that did not change keep running untouched. Every
    /// port is tried; the errors are returned together.
    pub fn sync(
        &mut self,
        wanted: &[PortSpec],
        workers: &Workers,
        control: &Control,
    ) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        let stale: Vec<u32> = self
            .open
            .iter()
            .filter(|(id, (spec, _))| !wanted.iter().any(|w| w.id == **id && w == spec))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Err(e) = workers.remove_port(id) {
                errors.push(anyhow::Error::new(e).context(format!("removing port {id}")));
            }
            let _ = control.commit(
                vec![TableOp::Port(Op::Delete(id))],
                CommitMode::ContinueOnError,
            );
            // Dropping the handle closes the backend (a TAP is deleted).
            self.open.remove(&id);
            tracing::info!(port = id, "port down");
        }
        for spec in wanted {
            if self.open.contains_key(&spec.id) {
                continue;
            }
            match Self::bring_up(spec, workers, control) {
                Ok(handle) => {
                    self.open.insert(spec.id, (spec.clone(), handle));
                    tracing::info!(port = spec.id, kind = ?spec.kind, "port up");
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    fn bring_up(
        spec: &PortSpec,
        workers: &Workers,
        control: &Control,
    ) -> anyhow::Result<PortHandle> {
        let dir = if spec.direction()? {
            PortDirection::NetToHost
        } else {
            PortDirection::HostToNet
        };
        let port = open(spec, workers.len())?;
        for r in control.commit(
            vec![TableOp::Port(Op::Insert(spec.id, dir))],
            CommitMode::ContinueOnError,
        ) {
            r.with_context(|| format!("port {}: recording its direction", spec.id))?;
        }
        workers
            .add_port(port.id, port.queues)
            .with_context(|| format!("adding port {}", spec.id))?;
        Ok(port.handle)
    }
}
