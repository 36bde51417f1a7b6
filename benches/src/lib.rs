//! Shared set-up for the p4k8s criterion benchmarks: scenarios that program
//! a dataplane like the upstream manager does, and a [`Harness`] that moves
//! bursts through ring ports and the pipeline the way a worker does; and
//! ([`p4rt`]) the entries the P4Runtime benchmarks write.

pub mod p4rt;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use etherparse::PacketBuilder;
use p4k8s_dataplane::control::*;
use p4k8s_dataplane::tables::prefix::PrefixKey;
use p4k8s_dataplane::tables::selector::SelectorRef;
use p4k8s_dataplane::{DataplaneConfig, Pipeline, Verdict};
use p4k8s_packet::port::ring::RingPort;
use p4k8s_packet::{Batch, BufPool, QueuePair, MAX_BURST};

/// First pod address (10.1.0.0/16 and up).
pub const POD_BASE: u32 = 0x0a01_0000;
/// First service VIP (10.96.0.0/12).
pub const VIP_BASE: u32 = 0x0a60_0000;
/// Client pod of the service scenarios.
pub const CLIENT: u32 = 0x0a00_0002;
/// Port of the client pod.
pub const CLIENT_PORT: u32 = 2;

/// A 64-byte Ethernet/IPv4 TCP or UDP frame (no payload).
pub fn frame(tcp_flags: Option<u8>, src: u32, dst: u32, sport: u16, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0xfe]).ipv4(
        src.to_be_bytes(),
        dst.to_be_bytes(),
        64,
    );
    let mut out = Vec::with_capacity(64);
    let written = match tcp_flags {
        Some(flags) => {
            let mut t = b.tcp(sport, dport, 1, 1000);
            if flags & 0x02 != 0 {
                t = t.syn();
            }
            if flags & 0x10 != 0 {
                t = t.ack(1);
            }
            t.write(&mut out, &[])
        }
        None => b.udp(sport, dport).write(&mut out, &[0; 18]),
    };
    written.expect("frame builds");
    out.resize(64, 0);
    out
}

/// A dataplane programmed for one benchmark scenario, with a manual clock.
pub struct Scenario {
    /// The dataplane.
    pub control: Control,
    /// The clock (ms).
    pub clock: Arc<AtomicU64>,
}

impl Scenario {
    /// An empty dataplane sized for `flows` learned flows.
    pub fn new(flows: usize) -> Self {
        let cfg = DataplaneConfig {
            flow_capacity: flows.max(1024),
            ..DataplaneConfig::default()
        };
        let clock = Arc::new(AtomicU64::new(1));
        Scenario {
            control: Control::with_clock(cfg, Clock::Manual(Arc::clone(&clock))),
            clock,
        }
    }

    fn commit(&self, ops: Vec<TableOp>) {
        for chunk in ops.chunks(10_000) {
            for r in self
                .control
                .commit(chunk.to_vec(), CommitMode::ContinueOnError)
            {
                r.expect("scenario write");
            }
        }
    }

    /// `n` pods, pod i at `POD_BASE + i` on port `3 + i % 60`.
    pub fn pods(&self, n: u32) {
        let mut ops = vec![TableOp::Ipv4ToPort(Op::Insert(
            CLIENT,
            SetDestMacVport {
                port: CLIENT_PORT,
                dmac: [2, 0, 0, 0, 0, 2],
            },
        ))];
        for i in 0..n {
            let port = 3 + i % 60;
            ops.push(TableOp::ArptToPort(Op::Insert(
                POD_BASE + i,
                SetDestVport { port },
            )));
            ops.push(TableOp::Ipv4ToPort(Op::Insert(
                POD_BASE + i,
                SetDestMacVport {
                    port,
                    dmac: [2, 0, 0, 1, 0, port as u8],
                },
            )));
        }
        self.commit(ops);
    }

    /// `n` TCP services with 2 endpoints each (`POD_BASE + 2i` and `+ 2i+1`), as the
    /// upstream manager writes them; service i is `VIP_BASE + i`:80.
    pub fn services(&self, n: u32) {
        let mut ops = Vec::new();
        for i in 0..n {
            let group = i + 1;
            let mut members = Vec::new();
            for e in 0..2 {
                let ptr = 1 + 2 * i + e;
                let ep = POD_BASE + 2 * i + e;
                ops.push(TableOp::WriteDestIp(Op::Insert(
                    ptr,
                    NatAction::Rewrite { ip: ep, port: 8080 },
                )));
                ops.push(TableOp::Member(
                    ServiceProto::Tcp,
                    Op::Insert(ptr, MemberAction::SetDefaultLbDest { ptr }),
                ));
                ops.push(TableOp::SetMeta(
                    ServiceProto::Tcp,
                    Op::Insert(
                        VipKey { ip: ep, port: 8080 },
                        SetMetaAction::SetKeyForReverseCt { ptr: group },
                    ),
                ));
                members.push((ptr, 1));
            }
            ops.push(TableOp::Group(
                ServiceProto::Tcp,
                Op::Insert(
                    group,
                    GroupSpec {
                        members,
                        max_size: 0,
                    },
                ),
            ));
            ops.push(TableOp::TxBalance(
                ServiceProto::Tcp,
                Op::Insert(
                    VipKey {
                        ip: VIP_BASE + i,
                        port: 80,
                    },
                    LbAction::Select(SelectorRef::Group(group)),
                ),
            ));
            ops.push(TableOp::WriteSourceIp(Op::Insert(
                group,
                NatAction::Rewrite {
                    ip: VIP_BASE + i,
                    port: 80,
                },
            )));
        }
        self.commit(ops);
    }

    /// `n` policies (at most 254): pod i (for i < n) gets an ingress rule
    /// "TCP ports 80-90 and 443 from 10.0.0.0/8" with policy id i + 1, and
    /// the client pod the same rule for egress (policy id 255).
    pub fn policies(&self, n: u32) {
        if n == 0 {
            return;
        }
        let mut ranges = [(1u16, 0u16); 8];
        ranges[0] = (80, 90);
        ranges[1] = (443, 443);
        let rule = |dir, pod, pol_id| {
            [
                TableOp::AclPodIpProto(
                    dir,
                    Op::Insert(
                        PrefixKey {
                            exact: pod,
                            prefix: 6,
                            len: 8,
                        },
                        AclAction::RangeCheckRef {
                            pol_id,
                            range_check_ref: 1,
                        },
                    ),
                ),
                TableOp::AclIpsetMatch(
                    dir,
                    Op::Insert(
                        PrefixKey {
                            exact: pol_id,
                            prefix: 0x0a00_0000,
                            len: 8,
                        },
                        IpsetAction::SetMatchResult { mask: 0b11 },
                    ),
                ),
                TableOp::RangeCheck(
                    RangeTable::Tcp,
                    Op::Insert(pol_id, RangeAction::Check { ranges }),
                ),
            ]
        };
        let mut ops: Vec<TableOp> = rule(PolicyDir::Egress, CLIENT, 255).to_vec();
        for i in 0..n.min(254) {
            ops.extend(rule(PolicyDir::Ingress, POD_BASE + i, (i + 1) as u8));
        }
        self.commit(ops);
    }
}

/// Moves bursts from a source ring port through the pipeline to a sink
/// ring port, as a worker does, refilling the source from frame templates.
pub struct Harness {
    /// The pipeline under test.
    pub pipeline: Pipeline,
    clock: Arc<AtomicU64>,
    source: RingPort,
    sink: RingPort,
    rx_q: p4k8s_packet::port::ring::RingQueue,
    tx_q: p4k8s_packet::port::ring::RingQueue,
    pool: BufPool,
    rx: Batch,
    tx: Batch,
    verdicts: [Verdict; MAX_BURST],
    frames: Vec<Vec<u8>>,
    cursor: usize,
    /// Frames between clock ticks of 1 ms (0: the clock stands still).
    pub tick_every: usize,
    /// Verdicts seen, by kind: forwarded, dropped.
    pub forwarded: u64,
    /// Dropped packets.
    pub dropped: u64,
}

impl Harness {
    /// A harness on `scenario` replaying `frames` in order, cyclically.
    pub fn new(scenario: &Scenario, frames: Vec<Vec<u8>>) -> Self {
        let mut h = Self::with_control(&scenario.control, frames);
        h.clock = Arc::clone(&scenario.clock);
        h
    }

    /// A harness on any dataplane (its own clock stands still).
    pub fn with_control(control: &Control, frames: Vec<Vec<u8>>) -> Self {
        let source = RingPort::new(1, 1024);
        let sink = RingPort::new(1, 1024);
        let rx_q = source.queue(0).expect("queue 0");
        let tx_q = sink.queue(0).expect("queue 0");
        Harness {
            pipeline: Pipeline::new(control),
            clock: Arc::new(AtomicU64::new(1)),
            source,
            sink,
            rx_q,
            tx_q,
            pool: BufPool::new(4 * MAX_BURST, 2048),
            rx: Batch::new(),
            tx: Batch::new(),
            verdicts: [Verdict::Forward(0); MAX_BURST],
            frames,
            cursor: 0,
            tick_every: 0,
            forwarded: 0,
            dropped: 0,
        }
    }

    /// The template to send next; moves the cursor on and ticks the clock
    /// 1 ms every `tick_every` frames.
    #[inline]
    fn advance(cursor: &mut usize, len: usize, tick_every: usize, clock: &AtomicU64) -> usize {
        let i = *cursor;
        *cursor = if i + 1 == len { 0 } else { i + 1 };
        if tick_every > 0 && i.is_multiple_of(tick_every) {
            clock.fetch_add(1, Ordering::Relaxed);
        }
        i
    }

    /// One burst of 64 packets through the pipeline alone: the frames are
    /// copied into a batch kept across calls (NAT rewrites them in place, so
    /// each burst starts from the templates) and the pipeline runs; no
    /// ring, no pool. This is the pipeline's own cost per core.
    #[inline]
    pub fn burst_pipeline_only(&mut self) {
        while self.rx.len() < MAX_BURST {
            let _ = self.rx.push(self.pool.get());
        }
        for pkt in self.rx.as_mut_slice() {
            let i = Self::advance(
                &mut self.cursor,
                self.frames.len(),
                self.tick_every,
                &self.clock,
            );
            let _ = pkt.copy_from(&self.frames[i]);
        }
        let now = self.clock.load(Ordering::Relaxed);
        self.pipeline.run(&mut self.rx, 2, now, &mut self.verdicts);
        for v in &self.verdicts {
            match v {
                Verdict::Drop(_) => self.dropped += 1,
                Verdict::Forward(_) => self.forwarded += 1,
            }
        }
    }

    /// One burst of 64 packets: refill the source ring, receive, run the
    /// pipeline (unless `pipeline` is false: the ring-forwarding ceiling),
    /// transmit, and recycle what the sink got.
    #[inline]
    pub fn burst(&mut self, pipeline: bool) {
        for _ in 0..MAX_BURST {
            let mut buf = self.pool.get();
            let i = Self::advance(
                &mut self.cursor,
                self.frames.len(),
                self.tick_every,
                &self.clock,
            );
            let _ = buf.copy_from(&self.frames[i]);
            if let Err(buf) = self.source.inject(0, buf) {
                self.pool.put(buf);
            }
        }
        self.rx_q.rx_burst(&mut self.pool, &mut self.rx);
        if pipeline {
            let now = self.clock.load(Ordering::Relaxed);
            self.pipeline.run(&mut self.rx, 2, now, &mut self.verdicts);
        }
        for (i, pkt) in self.rx.drain().enumerate() {
            match (pipeline, self.verdicts[i]) {
                (true, Verdict::Drop(_)) => {
                    self.dropped += 1;
                    self.pool.put(pkt);
                }
                _ => {
                    self.forwarded += 1;
                    let _ = self.tx.push(pkt);
                }
            }
        }
        self.tx_q.tx_burst(&mut self.tx, &mut self.pool);
        while let Some(pkt) = self.sink.take(0) {
            self.pool.put(pkt);
        }
    }
}
