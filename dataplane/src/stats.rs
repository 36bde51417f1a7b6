//! Per-worker counters, summed on read.
//!
//! Each worker owns one [`WorkerStats`] and is its only writer: it bumps a
//! counter with a relaxed load and store (a plain add, no locked
//! instruction); the control plane reads all workers' counters and sums.

use std::sync::atomic::{AtomicU64, Ordering};

use p4k8s_packet::Malformed;
use smallvec::SmallVec;

use crate::control::TableId;

/// Why the pipeline dropped a packet. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The parser refused the frame.
    Malformed(Malformed),
    /// Multicast or broadcast destination MAC, not ARP (pass 0, step 1).
    Multicast,
    /// Denied by egress network policy.
    EgressPolicy,
    /// Denied by ingress network policy.
    IngressPolicy,
    /// The chosen egress port does not exist on this target.
    NoSuchPort,
    /// The egress port's queue was full.
    TxFull,
    /// A large segment or partial checksum the egress port cannot take
    /// could not be completed in software (inconsistent offload header).
    Offload,
}

/// Number of distinct drop counters.
pub const DROP_REASONS: usize = Malformed::ALL.len() + 6;

impl DropReason {
    /// Index of the reason's counter.
    #[inline]
    pub const fn index(self) -> usize {
        let n = Malformed::ALL.len();
        match self {
            DropReason::Malformed(m) => m as usize,
            DropReason::Multicast => n,
            DropReason::EgressPolicy => n + 1,
            DropReason::IngressPolicy => n + 2,
            DropReason::NoSuchPort => n + 3,
            DropReason::TxFull => n + 4,
            DropReason::Offload => n + 5,
        }
    }

    /// Every reason, in counter order.
    pub fn all() -> impl Iterator<Item = DropReason> {
        Malformed::ALL
            .into_iter()
            .map(DropReason::Malformed)
            .chain([
                DropReason::Multicast,
                DropReason::EgressPolicy,
                DropReason::IngressPolicy,
                DropReason::NoSuchPort,
                DropReason::TxFull,
            ])
    }

    /// A stable snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed(m) => m.name(),
            DropReason::Multicast => "multicast",
            DropReason::EgressPolicy => "egress_policy",
            DropReason::IngressPolicy => "ingress_policy",
            DropReason::NoSuchPort => "no_such_port",
            DropReason::TxFull => "tx_full",
            DropReason::Offload => "offload",
        }
    }
}

/// A counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (only the owning worker calls this).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Events the pipeline counts besides drops and table hits.
#[derive(Debug, Default)]
pub struct EventCounters {
    /// Packets run through the pipeline.
    pub packets: Counter,
    /// Flows added to a learner table.
    pub learned: Counter,
    /// Learns refused because both buckets were full.
    pub learn_failed: Counter,
    /// NAT rewrites (DNAT or SNAT).
    pub nat_rewrites: Counter,
    /// Hairpin rewrites: the source of a hairpin flow's forward packets,
    /// the destination of its replies (not in `nat_rewrites`).
    pub hairpin_rewrites: Counter,
    /// ARP requests for the pod gateway answered by the dataplane.
    pub arp_replies: Counter,
    /// Closing reverse flows dropped because a new connection (a SYN no
    /// service claims) reuses their reply addresses and ports.
    pub superseded_flows: Counter,
}

/// One worker's counters.
#[derive(Debug)]
pub struct WorkerStats {
    /// Drops by [`DropReason::index`].
    pub drops: [Counter; DROP_REASONS],
    /// Hits per table (by `TableId as usize`).
    pub hits: [Counter; TableId::ALL.len()],
    /// Misses per table.
    pub misses: [Counter; TableId::ALL.len()],
    /// The program's `pkt_cntr` indirect counter.
    pub pkt_cntr: Box<[Counter]>,
    /// The program's `byte_cntr` indirect counter.
    pub byte_cntr: Box<[Counter]>,
    /// Other events.
    pub events: EventCounters,
}

impl WorkerStats {
    /// Zeroed counters, with `counter_size` indices per indirect counter.
    pub fn new(counter_size: usize) -> Self {
        WorkerStats {
            drops: std::array::from_fn(|_| Counter::default()),
            hits: std::array::from_fn(|_| Counter::default()),
            misses: std::array::from_fn(|_| Counter::default()),
            pkt_cntr: (0..counter_size).map(|_| Counter::default()).collect(),
            byte_cntr: (0..counter_size).map(|_| Counter::default()).collect(),
            events: EventCounters::default(),
        }
    }

    /// Counts a drop.
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason.index()].add(1);
    }
}

/// The most counts one packet's trace keeps; a path that counts more is
/// not repeated (see [`Tally`]).
pub const TRACE_CAPACITY: usize = 64;

/// The counts one packet's run made, in order: each counter and what was
/// added to it.
pub type CountTrace<'s> = SmallVec<[(&'s Counter, u64); TRACE_CAPACITY]>;

/// Counts into a worker's counters and notes every count in a
/// [`CountTrace`], so that a packet that takes the same path through the
/// program can repeat the counts without taking the path (see
/// `pipeline::replay`). The trace never allocates: a path that counts more
/// than [`TRACE_CAPACITY`] times is marked as overflowed instead.
///
/// `RECORD` false: the counts are only made (a packet whose run nothing
/// will repeat does not pay for the notes, not even a branch per count).
pub struct Tally<'s, 't, const RECORD: bool> {
    stats: &'s WorkerStats,
    trace: &'t mut CountTrace<'s>,
    overflowed: bool,
}

impl<'s, 't, const RECORD: bool> Tally<'s, 't, RECORD> {
    /// Counts into `stats`, noting the counts in `trace` (cleared first)
    /// when `RECORD`.
    #[inline]
    pub fn new(stats: &'s WorkerStats, trace: &'t mut CountTrace<'s>) -> Self {
        if RECORD {
            trace.clear();
        }
        Tally {
            stats,
            trace,
            overflowed: false,
        }
    }

    /// True when the trace holds every count (recording, and no more
    /// than [`TRACE_CAPACITY`] of them).
    #[inline]
    pub fn complete(&self) -> bool {
        RECORD && !self.overflowed
    }

    /// Adds `n` to `counter`, one of this worker's.
    #[inline]
    pub fn add(&mut self, counter: &'s Counter, n: u64) {
        counter.add(n);
        if !RECORD {
            return;
        }
        if self.trace.len() < TRACE_CAPACITY {
            self.trace.push((counter, n));
        } else {
            self.overflowed = true;
        }
    }

    /// `pkt_cntr.count(index)`.
    #[inline]
    pub fn pkt_count(&mut self, index: usize) {
        if let Some(c) = self.stats.pkt_cntr.get(index) {
            self.add(c, 1);
        }
    }

    /// `byte_cntr.count(index, n)`.
    #[inline]
    pub fn byte_count(&mut self, index: usize, n: u64) {
        if let Some(c) = self.stats.byte_cntr.get(index) {
            self.add(c, n);
        }
    }

    /// Counts a table lookup.
    #[inline]
    pub fn lookup(&mut self, table: TableId, hit: bool) {
        let c = if hit {
            &self.stats.hits[table as usize]
        } else {
            &self.stats.misses[table as usize]
        };
        self.add(c, 1);
    }

    /// Counts one of the [`EventCounters`].
    #[inline]
    pub fn event(&mut self, which: fn(&EventCounters) -> &Counter) {
        let c = which(&self.stats.events);
        self.add(c, 1);
    }
}

/// Repeats the counts of a trace `times` times.
#[inline]
pub fn repeat(trace: &CountTrace<'_>, times: u64) {
    if times == 0 {
        return;
    }
    for (c, n) in trace {
        c.add(n * times);
    }
}
