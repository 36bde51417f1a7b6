//! Helpers shared by the port backends' measurement tests.

use std::process::{Command, Output};
use std::time::Instant;

use p4k8s_packet::{Batch, BufPool, QueuePair};

/// What [`blast`] moved.
pub struct Blast {
    /// Frames `tx` handed to the peer.
    pub sent: u64,
    /// Frames `tx` dropped for a full ring.
    pub tx_full: u64,
    /// Frames `rx` received.
    pub received: u64,
}

/// Sends `frame` in bursts of 64 from `tx` on a thread for `secs` seconds
/// while `rx` receives (0.1 s longer, for the frames still in flight).
pub fn blast<T: QueuePair, R: QueuePair>(tx: &mut T, rx: &mut R, frame: &[u8], secs: f64) -> Blast {
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut pool = BufPool::new(128, 2048);
            let (mut sent, mut tx_full) = (0u64, 0u64);
            let t0 = Instant::now();
            while t0.elapsed().as_secs_f64() < secs {
                let mut b = Batch::new();
                for _ in 0..64 {
                    let mut buf = pool.get();
                    buf.copy_from(frame).unwrap();
                    b.push(buf).unwrap();
                }
                let o = tx.tx_burst(&mut b, &mut pool);
                sent += o.sent as u64;
                tx_full += o.dropped as u64;
            }
            (sent, tx_full)
        });
        let mut pool = BufPool::new(256, 2048);
        let mut batch = Batch::new();
        let mut received = 0u64;
        let t0 = Instant::now();
        while t0.elapsed().as_secs_f64() < secs + 0.1 {
            received += rx.rx_burst(&mut pool, &mut batch) as u64;
            batch.recycle(&mut pool);
        }
        let (sent, tx_full) = sender.join().unwrap();
        Blast {
            sent,
            tx_full,
            received,
        }
    })
}

/// Runs Python `code` inside network namespace `ns` and returns what it did.
pub fn python_in(ns: &str, code: &str) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", code])
        .output()
        .unwrap()
}
