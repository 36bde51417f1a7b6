//! The port interface: queue pairs that move bursts of packets.
//!
//! A port has one [`QueuePair`] per worker; each queue pair is owned and
//! polled by exactly one worker, so no queue is ever shared and no lock is
//! taken. Backends (in-memory rings here; TAP, memif and AF_PACKET in the
//! `cdq` crate) implement [`QueuePair`].

pub mod ring;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::batch::Batch;
use crate::buffer::BufPool;

/// A P4 port id (`PortId_t`, 32 bits): stable for the port's life.
pub type PortId = u32;

/// What a transmit did with the packets it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// Packets handed to the peer.
    pub sent: usize,
    /// Packets the peer had no room for; they went back to the pool.
    pub dropped: usize,
}

/// One queue pair of a port, owned by exactly one worker.
pub trait QueuePair: Send {
    /// Receives up to `batch.remaining()` packets into `batch`, taking
    /// buffers from `pool`; returns how many arrived. Never blocks.
    fn rx_burst(&mut self, pool: &mut BufPool, batch: &mut Batch) -> usize;

    /// Transmits every packet of `batch`, leaving it empty. Packets the peer
    /// cannot take are dropped and their buffers returned to `pool`.
    fn tx_burst(&mut self, batch: &mut Batch, pool: &mut BufPool) -> TxOutcome;

    /// True when the peer takes frames that still carry offload work
    /// ([`crate::PacketBuf::vnet`]: a partial checksum, a large segment).
    /// For the others, the worker completes checksums and segments first.
    fn accepts_offloads(&self) -> bool {
        false
    }
}

/// Per-port packet and byte counters, shared between the workers that
/// update them and the control plane that reads them.
///
/// Each queue pair bumps its own port's counters with relaxed atomics; a
/// port has few queues, so the cost is one uncontended add per burst.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Packets received.
    pub rx_packets: AtomicU64,
    /// Bytes received.
    pub rx_bytes: AtomicU64,
    /// Packets transmitted.
    pub tx_packets: AtomicU64,
    /// Bytes transmitted.
    pub tx_bytes: AtomicU64,
    /// Packets dropped by the port (no room in the peer, bad frames).
    pub drops: AtomicU64,
}

/// A point-in-time copy of [`PortCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets dropped by the port.
    pub drops: u64,
}

impl PortCounters {
    /// Counts a received burst.
    #[inline]
    pub fn count_rx(&self, packets: usize, bytes: usize) {
        self.rx_packets.fetch_add(packets as u64, Ordering::Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a transmitted burst and its drops.
    #[inline]
    pub fn count_tx(&self, packets: usize, bytes: usize, drops: usize) {
        self.tx_packets.fetch_add(packets as u64, Ordering::Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if drops > 0 {
            self.drops.fetch_add(drops as u64, Ordering::Relaxed);
        }
    }

    /// Reads all counters.
    pub fn snapshot(&self) -> PortStats {
        PortStats {
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
        }
    }
}
