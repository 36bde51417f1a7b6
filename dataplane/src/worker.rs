//! Poll-mode workers: each polls its queue pairs in bursts, runs the
//! pipeline, and transmits to the chosen ports.
//!
//! Every port gives each worker its own queue pair, so nothing is shared
//! between workers but the published tables and the learner tables. Ports
//! come and go at run time through a command channel that a worker drains
//! between bursts (a lock-free `try_recv`, no syscall). An idle worker backs
//! off (spin, then yield, then sleep up to a bound) so a small machine stays
//! usable; traffic returns it to full-speed polling at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use p4k8s_packet::offload::{complete_partial_checksum, segment_tcp_gso};
use p4k8s_packet::{Batch, BufPool, PacketBuf, PortId, QueuePair, VnetHeader, MAX_BURST};
use thiserror::Error;

use crate::control::Control;
use crate::pipeline::{Pipeline, Verdict};
use crate::stats::DropReason;

/// How an idle worker backs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Empty polls before the worker starts yielding.
    pub spin_polls: u32,
    /// Empty polls (after spinning) before it starts sleeping.
    pub yield_polls: u32,
    /// Longest sleep between polls, in microseconds (the latency an idle
    /// worker adds to the first packet of a burst).
    pub max_sleep_us: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            spin_polls: 256,
            yield_polls: 256,
            max_sleep_us: 200,
        }
    }
}

/// The worker threads to start.
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    /// Number of workers (at least one).
    pub workers: usize,
    /// Core each worker is pinned to (by worker index); empty: not pinned.
    pub cores: Vec<usize>,
    /// Idle back-off.
    pub backoff: Backoff,
    /// Buffers each worker preallocates.
    pub pool_buffers: usize,
    /// Size of each buffer, headroom included (0: the default 2 KiB).
    pub buf_size: usize,
}

/// A command to one worker.
enum Command {
    AddPort(PortId, Box<dyn QueuePair>),
    RemovePort(PortId),
}

/// A worker could not be started or reached.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// The thread could not be spawned.
    #[error("could not start worker {index}: {source}")]
    Spawn {
        /// Worker index.
        index: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// A port needs one queue pair per worker.
    #[error("port {port}: {given} queue pairs given for {workers} workers")]
    QueueCount {
        /// The port.
        port: PortId,
        /// Queue pairs given.
        given: usize,
        /// Workers running.
        workers: usize,
    },
    /// The worker has stopped.
    #[error("worker {0} has stopped")]
    Gone(usize),
}

/// One running worker's state (lives on its thread).
struct Worker {
    pipeline: Pipeline,
    ports: Vec<(PortId, Box<dyn QueuePair>)>,
    /// Whether each port takes frames with offload work left (by index).
    accepts_offloads: Vec<bool>,
    /// Segments of one large frame, before they join a tx batch.
    segments: Vec<PacketBuf>,
    index_of: HashMap<PortId, usize, FixedState>,
    tx: Vec<Batch>,
    pool: BufPool,
    commands: Receiver<Command>,
    stop: Arc<AtomicBool>,
    backoff: Backoff,
}

impl Worker {
    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::AddPort(id, q) => {
                let accepts = q.accepts_offloads();
                if let Some(&i) = self.index_of.get(&id) {
                    self.ports[i].1 = q;
                    self.accepts_offloads[i] = accepts;
                } else {
                    self.index_of.insert(id, self.ports.len());
                    self.ports.push((id, q));
                    self.accepts_offloads.push(accepts);
                    self.tx.push(Batch::new());
                }
            }
            Command::RemovePort(id) => {
                if let Some(i) = self.index_of.remove(&id) {
                    self.ports.swap_remove(i);
                    self.accepts_offloads.swap_remove(i);
                    let mut gone = self.tx.swap_remove(i);
                    gone.recycle(&mut self.pool);
                    if let Some((moved, _)) = self.ports.get(i) {
                        self.index_of.insert(*moved, i);
                    }
                }
            }
        }
    }

    /// Queues `pkt` for port `o`, first doing in software the offload work
    /// (segmentation, checksum) that the port cannot take.
    #[inline]
    fn enqueue(&mut self, o: usize, mut pkt: PacketBuf) {
        if pkt.vnet == VnetHeader::NONE || self.accepts_offloads[o] {
            self.push_tx(o, pkt);
            return;
        }
        if pkt.vnet.is_gso() {
            let mut segments = std::mem::take(&mut self.segments);
            let done = segment_tcp_gso(pkt.data(), &pkt.vnet, &mut self.pool, |seg| {
                segments.push(seg)
            });
            self.pool.put(pkt);
            match done {
                Ok(_) => {
                    for seg in segments.drain(..) {
                        self.push_tx(o, seg);
                    }
                }
                Err(_) => self.pipeline.stats().count_drop(DropReason::Offload),
            }
            self.segments = segments;
        } else {
            let mut vnet = pkt.vnet;
            if complete_partial_checksum(pkt.data_mut(), &mut vnet).is_ok() {
                pkt.vnet = VnetHeader::NONE;
                self.push_tx(o, pkt);
            } else {
                self.pipeline.stats().count_drop(DropReason::Offload);
                self.pool.put(pkt);
            }
        }
    }

    /// Adds `pkt` to port `o`'s tx batch, sending the batch first when full.
    #[inline]
    fn push_tx(&mut self, o: usize, pkt: PacketBuf) {
        if self.tx[o].remaining() == 0 {
            self.flush(o);
        }
        if let Err(pkt) = self.tx[o].push(pkt) {
            self.pool.put(pkt); // unreachable: flushed above
        }
    }

    /// Sends port `o`'s tx batch.
    #[inline]
    fn flush(&mut self, o: usize) {
        let out = self.ports[o].1.tx_burst(&mut self.tx[o], &mut self.pool);
        for _ in 0..out.dropped {
            self.pipeline.stats().count_drop(DropReason::TxFull);
        }
    }

    /// The index of port `id` in `ports`, if the worker has it.
    #[inline]
    fn port_index(&self, id: PortId) -> Option<usize> {
        self.index_of.get(&id).copied()
    }

    /// When every packet of `rx` goes out of the same port `o`, whose tx
    /// batch is empty, and none needs offload work done first: that port.
    /// The batch can then be sent as it is, without moving each packet
    /// into the tx batch (the common case of a burst from one pod to
    /// another).
    #[inline]
    fn single_destination(&self, rx: &Batch, verdicts: &[Verdict; MAX_BURST]) -> Option<usize> {
        let Verdict::Forward(out) = verdicts[0] else {
            return None;
        };
        let n = rx.len();
        if verdicts[1..n].iter().any(|v| *v != Verdict::Forward(out)) {
            return None;
        }
        let o = self.port_index(out)?;
        if !self.tx[o].is_empty() {
            return None;
        }
        if !self.accepts_offloads[o] && rx.as_slice().iter().any(|p| p.vnet != VnetHeader::NONE) {
            return None;
        }
        Some(o)
    }

    /// Polls every port once; returns the packets received.
    fn poll_once(&mut self, rx: &mut Batch, verdicts: &mut [Verdict; MAX_BURST]) -> usize {
        let mut total = 0;
        // Read the clock only once a port has packets (an idle poll then
        // costs no clock read).
        let mut now = None;
        for p in 0..self.ports.len() {
            let n = self.ports[p].1.rx_burst(&mut self.pool, rx);
            if n == 0 {
                continue;
            }
            total += n;
            let now = *now.get_or_insert_with(|| self.pipeline.now_ms());
            self.pipeline.run(rx, self.ports[p].0, now, verdicts);
            if let Some(o) = self.single_destination(rx, verdicts) {
                // The same packets, in the same order, to the same port as
                // the loop below would queue them.
                let out = self.ports[o].1.tx_burst(rx, &mut self.pool);
                for _ in 0..out.dropped {
                    self.pipeline.stats().count_drop(DropReason::TxFull);
                }
                continue;
            }
            // The last destination looked up: bursts mostly go to one or
            // two ports, so most packets skip the hash lookup.
            let mut last: Option<(PortId, Option<usize>)> = None;
            for (i, pkt) in rx.drain().enumerate() {
                match verdicts[i] {
                    Verdict::Forward(out) => {
                        let o = match last {
                            Some((id, o)) if id == out => o,
                            _ => {
                                let o = self.port_index(out);
                                last = Some((out, o));
                                o
                            }
                        };
                        match o {
                            Some(o) => self.enqueue(o, pkt),
                            None => {
                                self.pipeline.stats().count_drop(DropReason::NoSuchPort);
                                self.pool.put(pkt);
                            }
                        }
                    }
                    Verdict::Drop(_) => self.pool.put(pkt),
                }
            }
            for o in 0..self.ports.len() {
                if !self.tx[o].is_empty() {
                    self.flush(o);
                }
            }
        }
        total
    }

    fn run(mut self) {
        let mut rx = Batch::new();
        let mut verdicts = [Verdict::Drop(DropReason::NoSuchPort); MAX_BURST];
        let mut idle = 0u32;
        let mut sleep_us = 1u64;
        while !self.stop.load(Ordering::Relaxed) {
            while let Ok(cmd) = self.commands.try_recv() {
                self.apply(cmd);
            }
            if self.poll_once(&mut rx, &mut verdicts) > 0 {
                idle = 0;
                sleep_us = 1;
                continue;
            }
            idle = idle.saturating_add(1);
            if idle < self.backoff.spin_polls {
                std::hint::spin_loop();
            } else if idle < self.backoff.spin_polls + self.backoff.yield_polls {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(sleep_us));
                sleep_us = (sleep_us * 2).min(self.backoff.max_sleep_us.max(1));
            }
        }
    }
}

/// The running workers of a dataplane.
pub struct Workers {
    senders: Vec<Sender<Command>>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("workers", &self.senders.len())
            .finish()
    }
}

impl Workers {
    /// Starts the workers of `cfg` on the dataplane `control` manages.
    pub fn start(control: &Control, cfg: &WorkerConfig) -> Result<Workers, WorkerError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for index in 0..cfg.workers.max(1) {
            let (tx, rx) = channel();
            let worker = Worker {
                pipeline: Pipeline::new(control),
                ports: Vec::new(),
                accepts_offloads: Vec::new(),
                segments: Vec::with_capacity(64),
                index_of: HashMap::with_hasher(FixedState::default()),
                tx: Vec::new(),
                pool: BufPool::new(
                    cfg.pool_buffers.max(MAX_BURST * 4),
                    if cfg.buf_size == 0 {
                        p4k8s_packet::buffer::DEFAULT_BUF_SIZE
                    } else {
                        cfg.buf_size
                    },
                ),
                commands: rx,
                stop: Arc::clone(&stop),
                backoff: cfg.backoff,
            };
            let core = cfg.cores.get(index).copied();
            let thread = std::thread::Builder::new()
                .name(format!("p4k8s-worker-{index}"))
                .spawn(move || {
                    if let Some(id) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                            tracing::warn!(
                                worker = index,
                                core = id,
                                "could not pin worker to core"
                            );
                        }
                    }
                    worker.run();
                })
                .map_err(|source| WorkerError::Spawn { index, source })?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(Workers {
            senders,
            threads,
            stop,
        })
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// True when no worker runs.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Adds (or replaces) port `id`; queue pair i goes to worker i.
    pub fn add_port(&self, id: PortId, queues: Vec<Box<dyn QueuePair>>) -> Result<(), WorkerError> {
        if queues.len() != self.senders.len() {
            return Err(WorkerError::QueueCount {
                port: id,
                given: queues.len(),
                workers: self.senders.len(),
            });
        }
        for (i, (tx, q)) in self.senders.iter().zip(queues).enumerate() {
            tx.send(Command::AddPort(id, q))
                .map_err(|_| WorkerError::Gone(i))?;
        }
        Ok(())
    }

    /// Removes port `id` from every worker.
    pub fn remove_port(&self, id: PortId) -> Result<(), WorkerError> {
        for (i, tx) in self.senders.iter().enumerate() {
            tx.send(Command::RemovePort(id))
                .map_err(|_| WorkerError::Gone(i))?;
        }
        Ok(())
    }

    /// Stops every worker and waits for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shutdown();
    }
}
