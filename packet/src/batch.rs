//! Batches: the unit of work of every port and pipeline stage.

use crate::buffer::{BufPool, PacketBuf};

/// Most packets one burst moves (DPDK's and VPP's usual vector size).
pub const MAX_BURST: usize = 64;

/// Up to [`MAX_BURST`] packets, processed stage by stage.
///
/// The backing vector is allocated once with room for a full burst and
/// never grows, so moving packets through a batch never allocates.
#[derive(Debug)]
pub struct Batch {
    pkts: Vec<PacketBuf>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty batch with room for a full burst.
    pub fn new() -> Self {
        Batch {
            pkts: Vec::with_capacity(MAX_BURST),
        }
    }

    /// Packets in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.pkts.len()
    }

    /// True when the batch holds no packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }

    /// Room left before the batch is full.
    #[inline]
    pub fn remaining(&self) -> usize {
        MAX_BURST - self.pkts.len()
    }

    /// Adds a packet; gives it back when the batch is full.
    #[inline]
    pub fn push(&mut self, pkt: PacketBuf) -> Result<(), PacketBuf> {
        if self.pkts.len() >= MAX_BURST {
            return Err(pkt);
        }
        self.pkts.push(pkt);
        Ok(())
    }

    /// Removes the last packet.
    #[inline]
    pub fn pop(&mut self) -> Option<PacketBuf> {
        self.pkts.pop()
    }

    /// The packets.
    #[inline]
    pub fn as_slice(&self) -> &[PacketBuf] {
        &self.pkts
    }

    /// The packets, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [PacketBuf] {
        &mut self.pkts
    }

    /// Moves every packet out, in order.
    #[inline]
    pub fn drain(&mut self) -> std::vec::Drain<'_, PacketBuf> {
        self.pkts.drain(..)
    }

    /// Returns every packet to `pool`.
    pub fn recycle(&mut self, pool: &mut BufPool) {
        for pkt in self.pkts.drain(..) {
            pool.put(pkt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_holds_at_most_a_burst() {
        let mut pool = BufPool::new(MAX_BURST + 1, 256);
        let mut batch = Batch::new();
        for _ in 0..MAX_BURST {
            batch.push(pool.get()).unwrap();
        }
        assert_eq!(batch.remaining(), 0);
        assert!(batch.push(pool.get()).is_err());
        batch.recycle(&mut pool);
        assert!(batch.is_empty());
        assert_eq!(pool.available(), MAX_BURST);
    }
}
