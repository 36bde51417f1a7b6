//! In-memory ring ports, for tests and benchmarks.
//!
//! A [`RingPort`] is two lock-free bounded queues per worker queue pair: one
//! carries frames into the dataplane, the other carries what the dataplane
//! transmits. The outside (a test, a benchmark, a traffic generator) holds
//! the [`RingPort`]; each worker gets one [`RingQueue`].

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::{PortCounters, QueuePair, TxOutcome};
use crate::batch::Batch;
use crate::buffer::{BufPool, PacketBuf};

/// The two directions of one ring queue pair.
#[derive(Debug)]
struct RingLanes {
    to_dataplane: ArrayQueue<PacketBuf>,
    from_dataplane: ArrayQueue<PacketBuf>,
}

/// An in-memory port with one ring queue pair per worker.
#[derive(Debug, Clone)]
pub struct RingPort {
    lanes: Vec<Arc<RingLanes>>,
    counters: Arc<PortCounters>,
}

/// A worker's end of one [`RingPort`] queue pair.
#[derive(Debug)]
pub struct RingQueue {
    lanes: Arc<RingLanes>,
    counters: Arc<PortCounters>,
}

impl RingPort {
    /// A port with `queues` queue pairs, each ring holding `depth` packets.
    pub fn new(queues: usize, depth: usize) -> Self {
        let lanes = (0..queues.max(1))
            .map(|_| {
                Arc::new(RingLanes {
                    to_dataplane: ArrayQueue::new(depth.max(1)),
                    from_dataplane: ArrayQueue::new(depth.max(1)),
                })
            })
            .collect();
        RingPort {
            lanes,
            counters: Arc::new(PortCounters::default()),
        }
    }

    /// Number of queue pairs.
    pub fn queues(&self) -> usize {
        self.lanes.len()
    }

    /// The worker end of queue pair `q`, or `None` when there is no such queue.
    pub fn queue(&self, q: usize) -> Option<RingQueue> {
        self.lanes.get(q).map(|lanes| RingQueue {
            lanes: Arc::clone(lanes),
            counters: Arc::clone(&self.counters),
        })
    }

    /// The port's counters.
    pub fn counters(&self) -> &Arc<PortCounters> {
        &self.counters
    }

    /// Offers a packet to the dataplane on queue `q`; gives it back when the
    /// ring is full or there is no such queue.
    pub fn inject(&self, q: usize, pkt: PacketBuf) -> Result<(), PacketBuf> {
        match self.lanes.get(q) {
            Some(lanes) => lanes.to_dataplane.push(pkt),
            None => Err(pkt),
        }
    }

    /// Copies `frame` into a new buffer and offers it on queue 0 (cold path,
    /// for tests); `false` when the ring is full.
    pub fn inject_frame(&self, frame: &[u8]) -> bool {
        self.inject(0, PacketBuf::from_frame(frame)).is_ok()
    }

    /// Takes one packet the dataplane transmitted on queue `q`.
    pub fn take(&self, q: usize) -> Option<PacketBuf> {
        self.lanes
            .get(q)
            .and_then(|lanes| lanes.from_dataplane.pop())
    }

    /// Takes every transmitted frame of every queue, as byte vectors (cold
    /// path, for tests).
    pub fn take_frames(&self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        for lanes in &self.lanes {
            while let Some(pkt) = lanes.from_dataplane.pop() {
                frames.push(pkt.data().to_vec());
            }
        }
        frames
    }
}

impl QueuePair for RingQueue {
    #[inline]
    fn rx_burst(&mut self, _pool: &mut BufPool, batch: &mut Batch) -> usize {
        let mut n = 0;
        let mut bytes = 0;
        while batch.remaining() > 0 {
            let Some(pkt) = self.lanes.to_dataplane.pop() else {
                break;
            };
            bytes += pkt.len();
            // Cannot fail: the loop checked for room.
            let _ = batch.push(pkt);
            n += 1;
        }
        if n > 0 {
            self.counters.count_rx(n, bytes);
        }
        n
    }

    #[inline]
    fn tx_burst(&mut self, batch: &mut Batch, pool: &mut BufPool) -> TxOutcome {
        let mut out = TxOutcome::default();
        let mut bytes = 0;
        for pkt in batch.drain() {
            let len = pkt.len();
            match self.lanes.from_dataplane.push(pkt) {
                Ok(()) => {
                    out.sent += 1;
                    bytes += len;
                }
                Err(pkt) => {
                    out.dropped += 1;
                    pool.put(pkt);
                }
            }
        }
        self.counters.count_tx(out.sent, bytes, out.dropped);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_the_ring_both_ways() {
        let port = RingPort::new(1, 8);
        let mut q = port.queue(0).unwrap();
        let mut pool = BufPool::new(8, 256);
        let mut batch = Batch::new();
        assert!(port.inject_frame(&[1, 2, 3]));
        assert_eq!(q.rx_burst(&mut pool, &mut batch), 1);
        assert_eq!(batch.as_slice()[0].data(), &[1, 2, 3]);
        let out = q.tx_burst(&mut batch, &mut pool);
        assert_eq!(
            out,
            TxOutcome {
                sent: 1,
                dropped: 0
            }
        );
        assert_eq!(port.take_frames(), vec![vec![1, 2, 3]]);
        let stats = port.counters().snapshot();
        assert_eq!(
            (stats.rx_packets, stats.tx_packets, stats.tx_bytes),
            (1, 1, 3)
        );
    }

    #[test]
    fn full_ring_drops_and_recycles() {
        let port = RingPort::new(1, 1);
        let mut q = port.queue(0).unwrap();
        let mut pool = BufPool::new(0, 256);
        let mut batch = Batch::new();
        batch.push(PacketBuf::from_frame(&[1])).unwrap();
        batch.push(PacketBuf::from_frame(&[2])).unwrap();
        let out = q.tx_burst(&mut batch, &mut pool);
        assert_eq!(
            out,
            TxOutcome {
                sent: 1,
                dropped: 1
            }
        );
        assert_eq!(pool.available(), 1);
        assert!(port.queue(3).is_none());
    }
}
