//! A host or uplink port that is AF_XDP where the kernel, the driver and
//! our privileges allow it, and AF_PACKET otherwise; the caller gets the
//! same queue pairs either way.

use std::sync::Arc;

use p4k8s_packet::{Batch, BufPool, PortCounters, QueuePair, TxOutcome};

use super::{AfXdpConfig, AfXdpError, AfXdpPort, AfXdpQueue};
use crate::af_packet::{AfPacketConfig, AfPacketError, AfPacketPort, AfPacketQueue};

/// A host or uplink port over AF_XDP or, failing that, AF_PACKET.
#[derive(Debug)]
pub enum HostPort {
    /// AF_XDP opened.
    AfXdp(AfXdpPort),
    /// AF_XDP failed (the reason is kept) and AF_PACKET opened instead.
    AfPacket(AfPacketPort, AfXdpError),
}

/// One queue of a [`HostPort`].
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "moved once, to its worker; boxing would add a pointer chase per burst"
)]
pub enum HostQueue {
    /// An AF_XDP queue.
    AfXdp(AfXdpQueue),
    /// An AF_PACKET queue.
    AfPacket(AfPacketQueue),
}

impl HostPort {
    /// Opens `xdp` as an AF_XDP port; when that fails (no permission, a
    /// kernel without AF_XDP or BPF links, a driver that refuses, an XDP
    /// program already attached, too few device queues), logs why and opens
    /// `packet` as an AF_PACKET port. Fails only when AF_PACKET fails too.
    pub fn open(xdp: &AfXdpConfig, packet: &AfPacketConfig) -> Result<Self, AfPacketError> {
        match AfXdpPort::open(xdp) {
            Ok(port) => {
                tracing::info!(
                    ifname = %xdp.ifname,
                    mode = ?port.mode(),
                    queues = port.queues(),
                    "AF_XDP port open"
                );
                Ok(HostPort::AfXdp(port))
            }
            Err(why) => {
                // Warn only once AF_PACKET has opened: when it fails too, the
                // cause is not AF_XDP's (a missing interface or namespace)
                // and its own error says so.
                let port = AfPacketPort::create(packet)?;
                tracing::warn!(
                    ifname = %xdp.ifname,
                    error = %why,
                    "AF_XDP unavailable, fell back to AF_PACKET"
                );
                Ok(HostPort::AfPacket(port, why))
            }
        }
    }

    /// `"af_xdp"` or `"af_packet"`: the backend that opened.
    pub fn backend(&self) -> &'static str {
        match self {
            HostPort::AfXdp(_) => "af_xdp",
            HostPort::AfPacket(..) => "af_packet",
        }
    }

    /// Why AF_XDP was not used, for a fallen-back port.
    pub fn fallback_reason(&self) -> Option<&AfXdpError> {
        match self {
            HostPort::AfXdp(_) => None,
            HostPort::AfPacket(_, why) => Some(why),
        }
    }

    /// Number of queues.
    pub fn queues(&self) -> usize {
        match self {
            HostPort::AfXdp(p) => p.queues(),
            HostPort::AfPacket(p, _) => p.queues(),
        }
    }

    /// Takes queue `q` for a worker; `None` when there is no such queue or
    /// it was taken already.
    pub fn take_queue(&mut self, q: usize) -> Option<HostQueue> {
        match self {
            HostPort::AfXdp(p) => p.take_queue(q).map(HostQueue::AfXdp),
            HostPort::AfPacket(p, _) => p.take_queue(q).map(HostQueue::AfPacket),
        }
    }

    /// The port's counters, shared by all its queues.
    pub fn counters(&self) -> &Arc<PortCounters> {
        match self {
            HostPort::AfXdp(p) => p.counters(),
            HostPort::AfPacket(p, _) => p.counters(),
        }
    }
}

impl QueuePair for HostQueue {
    #[inline]
    fn rx_burst(&mut self, pool: &mut BufPool, batch: &mut Batch) -> usize {
        match self {
            HostQueue::AfXdp(q) => q.rx_burst(pool, batch),
            HostQueue::AfPacket(q) => q.rx_burst(pool, batch),
        }
    }

    #[inline]
    fn tx_burst(&mut self, batch: &mut Batch, pool: &mut BufPool) -> TxOutcome {
        match self {
            HostQueue::AfXdp(q) => q.tx_burst(batch, pool),
            HostQueue::AfPacket(q) => q.tx_burst(batch, pool),
        }
    }

    fn accepts_offloads(&self) -> bool {
        match self {
            HostQueue::AfXdp(q) => q.accepts_offloads(),
            HostQueue::AfPacket(q) => q.accepts_offloads(),
        }
    }
}
