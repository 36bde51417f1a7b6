//! The control API: typed updates to every table, committed in batches and
//! published to running workers without stopping them.
//!
//! Publication is read-copy-update with three copies of the [`TableSet`]:
//! workers load the published copy once per batch (a lock-free `ArcSwap`
//! load) and read it for the whole batch. A commit takes a spare copy that
//! no worker reads, brings it up to date by replaying the updates it missed,
//! applies its own updates with validation, then swaps it in; a worker's
//! next batch sees the whole commit, so a change is visible within one
//! batch time and never half-applied. The copy it replaced becomes a spare.
//! With two spares a writer almost never waits: readers hold at most the
//! published copy and, for the rest of one batch, the one before it.
//!
//! Learned flows live in the shared learner tables ([`FlowTable`]) and are
//! written directly.

pub mod entry;
mod error;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};

pub use entry::*;
pub use error::TableError;

use crate::config::DataplaneConfig;
use crate::stats::{DropReason, WorkerStats, DROP_REASONS};
use crate::tables::{FlowEntry, FlowKey, FlowTable, LearnOutcome, TableSet};

/// How a batch of updates is committed (P4Runtime's `Atomicity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Each update stands alone: failed ones are reported, the rest applied.
    #[default]
    ContinueOnError,
    /// If any update fails, none is applied.
    RollbackOnError,
    /// All or nothing, and workers see the batch at once (every commit is
    /// published at once, so this equals `RollbackOnError` here).
    DataplaneAtomic,
}

/// The dataplane's clock, in milliseconds: real time, or a manual clock
/// for tests of expiry.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Milliseconds since the clock was made.
    Real(Instant),
    /// A value the test sets.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// Now, in milliseconds.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::Real(start) => start.elapsed().as_millis() as u64,
            Clock::Manual(ms) => ms.load(Ordering::Relaxed),
        }
    }
}

/// State shared by the control plane and every worker.
#[derive(Debug)]
pub struct Shared {
    /// The published tables.
    pub tables: ArcSwap<TableSet>,
    /// `pinned_flows`.
    pub pinned_flows: FlowTable,
    /// `pinned_flows_reverse`.
    pub pinned_flows_reverse: FlowTable,
    /// Configuration the instance was built with.
    pub config: DataplaneConfig,
    /// The clock workers and the control plane agree on.
    pub clock: Clock,
    /// Every worker's counters.
    workers: Mutex<Vec<Arc<WorkerStats>>>,
}

impl Shared {
    /// The learner table of `dir`.
    pub fn flows(&self, dir: FlowDir) -> &FlowTable {
        match dir {
            FlowDir::Forward => &self.pinned_flows,
            FlowDir::Reverse => &self.pinned_flows_reverse,
        }
    }

    /// Registers a new worker's counters.
    pub fn register_worker(&self) -> Arc<WorkerStats> {
        let stats = Arc::new(WorkerStats::new(self.config.counter_size));
        lock(&self.workers).push(Arc::clone(&stats));
        stats
    }
}

/// An update a spare copy has not seen yet.
#[derive(Debug, Clone)]
enum Replay {
    Op(TableOp),
    Clear,
}

/// A copy of the tables that is not published, and what it missed.
#[derive(Debug)]
struct Spare {
    tables: Arc<TableSet>,
    backlog: Vec<Replay>,
}

/// Spare copies kept besides the published one.
const SPARES: usize = 2;

/// The writer side: the spare copies.
#[derive(Debug)]
struct Writer {
    spares: Vec<Spare>,
    /// `pkt_cntr`/`byte_cntr` values written by the control plane are kept
    /// as offsets against the workers' running sums.
    pkt_offsets: Vec<u64>,
    byte_offsets: Vec<u64>,
}

/// Summed counters of all workers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsSummary {
    /// Drops by reason name (only reasons with drops).
    pub drops: Vec<(&'static str, u64)>,
    /// (table, hits, misses), for tables with lookups.
    pub tables: Vec<(TableId, u64, u64)>,
    /// Packets run through the pipeline.
    pub packets: u64,
    /// Flows learned.
    pub learned: u64,
    /// Learns refused for lack of room.
    pub learn_failed: u64,
    /// NAT rewrites.
    pub nat_rewrites: u64,
    /// Hairpin rewrites (source of forward packets, destination of replies).
    pub hairpin_rewrites: u64,
    /// Closing reverse flows dropped for a new connection on their tuple.
    pub superseded_flows: u64,
}

/// The control API of one dataplane instance. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Control {
    shared: Arc<Shared>,
    writer: Mutex<Writer>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the data half-written
    // (updates are validated before they mutate), so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Control {
    /// A new dataplane instance with empty tables, on the real clock.
    pub fn new(config: DataplaneConfig) -> Self {
        Self::with_clock(config, Clock::Real(Instant::now()))
    }

    /// A new instance on the given clock.
    pub fn with_clock(config: DataplaneConfig, clock: Clock) -> Self {
        let tables = TableSet::new(&config);
        let shared = Arc::new(Shared {
            tables: ArcSwap::from_pointee(tables.clone()),
            pinned_flows: FlowTable::new(config.flow_capacity, config.expiry_ms),
            pinned_flows_reverse: FlowTable::new(config.flow_capacity, config.expiry_ms),
            workers: Mutex::new(Vec::new()),
            clock,
            config: config.clone(),
        });
        Control {
            shared,
            writer: Mutex::new(Writer {
                spares: (0..SPARES)
                    .map(|_| Spare {
                        tables: Arc::new(tables.clone()),
                        backlog: Vec::new(),
                    })
                    .collect(),
                pkt_offsets: vec![0; config.counter_size],
                byte_offsets: vec![0; config.counter_size],
            }),
        }
    }

    /// The state shared with workers (for building pipelines).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The configuration.
    pub fn config(&self) -> &DataplaneConfig {
        &self.shared.config
    }

    /// The currently published tables (read-only).
    pub fn tables(&self) -> Guard<Arc<TableSet>> {
        self.shared.tables.load()
    }

    /// Applies `ops` in order and publishes the result; one result per
    /// update, in order. In the atomic modes either every result is `Ok` or
    /// nothing was applied (the failed updates carry their error, the others
    /// [`TableError::Aborted`]).
    pub fn commit(&self, ops: Vec<TableOp>, mode: CommitMode) -> Vec<Result<(), TableError>> {
        let mut w = lock(&self.writer);
        let mut spare = self.take_spare(&mut w);
        let Some(tables) = Arc::get_mut(&mut spare) else {
            unreachable!("take_spare returns an unshared copy")
        };
        let now = self.now_ms();
        let mut results = Vec::with_capacity(ops.len());
        let mut applied: Vec<Replay> = Vec::with_capacity(ops.len());
        let mut undo: Vec<TableOp> = Vec::new();
        let mut flow_undo: Vec<TableOp> = Vec::new();
        for op in ops {
            let result = match op {
                TableOp::Flow(dir, fop) => {
                    self.apply_flow(dir, fop, now).map(|u| flow_undo.push(u))
                }
                op => tables.apply(op.clone()).map(|u| {
                    undo.push(u);
                    applied.push(Replay::Op(op));
                }),
            };
            results.push(result);
        }
        let failed = results.iter().any(|r| r.is_err());
        if failed && mode != CommitMode::ContinueOnError {
            for u in undo.into_iter().rev() {
                let _ = tables.apply(u);
            }
            for u in flow_undo.into_iter().rev() {
                if let TableOp::Flow(dir, fop) = u {
                    let _ = self.apply_flow(dir, fop, now);
                }
            }
            w.spares.push(Spare {
                tables: spare,
                backlog: Vec::new(),
            });
            return results
                .into_iter()
                .map(|r| r.and(Err(TableError::Aborted)))
                .collect();
        }
        self.publish(&mut w, spare, applied);
        results
    }

    /// Publishes `tables`; the copy it replaces and the other spares must
    /// still replay `applied`.
    fn publish(&self, w: &mut Writer, tables: Arc<TableSet>, applied: Vec<Replay>) {
        if applied.is_empty() {
            w.spares.push(Spare {
                tables,
                backlog: Vec::new(),
            });
            return;
        }
        let old = self.shared.tables.swap(tables);
        for s in &mut w.spares {
            s.backlog.extend(applied.iter().cloned());
        }
        w.spares.push(Spare {
            tables: old,
            backlog: applied,
        });
    }

    /// A spare copy that no worker reads, brought up to date.
    fn take_spare(&self, w: &mut Writer) -> Arc<TableSet> {
        let mut spins = 0u32;
        let mut spare = loop {
            if let Some(i) = w
                .spares
                .iter_mut()
                .position(|s| Arc::get_mut(&mut s.tables).is_some())
            {
                break w.spares.swap_remove(i);
            }
            // Every spare is still read by a worker's batch: microseconds.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        };
        if let Some(tables) = Arc::get_mut(&mut spare.tables) {
            for r in spare.backlog.drain(..) {
                match r {
                    Replay::Clear => tables.clear_program_state(),
                    Replay::Op(op) => {
                        // Cannot fail: the same update succeeded on an identical copy.
                        let replayed = tables.apply(op);
                        debug_assert!(replayed.is_ok(), "replay diverged: {replayed:?}");
                    }
                }
            }
        }
        spare.tables
    }

    fn apply_flow(
        &self,
        dir: FlowDir,
        op: Op<FlowKey, FlowAction>,
        now: u64,
    ) -> Result<TableOp, TableError> {
        let table_id = match dir {
            FlowDir::Forward => TableId::PinnedFlows,
            FlowDir::Reverse => TableId::PinnedFlowsReverse,
        };
        let flows = self.shared.flows(dir);
        let check = |a: &FlowAction| {
            if a.ptr >> 24 != 0 || a.class > 7 {
                return Err(TableError::InvalidValue {
                    table: table_id,
                    what: format!(
                        "pointer {:#x} (24 bits) / expiry class {} (0..=7)",
                        a.ptr, a.class
                    ),
                });
            }
            Ok(())
        };
        match op {
            Op::Insert(k, a) => {
                check(&a)?;
                match flows.learn(&k, k.hash(), a.ptr, a.class, now) {
                    LearnOutcome::Added => Ok(TableOp::Flow(dir, Op::Delete(k))),
                    LearnOutcome::Exists(_) => Err(TableError::AlreadyExists {
                        table: table_id,
                        key: format!("{k:?}"),
                    }),
                    LearnOutcome::Full => Err(TableError::Full {
                        table: table_id,
                        capacity: flows.capacity(),
                    }),
                }
            }
            Op::Modify(k, a) => {
                check(&a)?;
                let old = flows.get(&k, now).ok_or_else(|| TableError::NotFound {
                    table: table_id,
                    key: format!("{k:?}"),
                })?;
                flows.remove(&k, now);
                flows.learn(&k, k.hash(), a.ptr, a.class, now);
                Ok(TableOp::Flow(
                    dir,
                    Op::Modify(
                        k,
                        FlowAction {
                            ptr: old.ptr,
                            class: old.class,
                        },
                    ),
                ))
            }
            Op::Delete(k) => {
                let old = flows.get(&k, now).ok_or_else(|| TableError::NotFound {
                    table: table_id,
                    key: format!("{k:?}"),
                })?;
                flows.remove(&k, now);
                Ok(TableOp::Flow(
                    dir,
                    Op::Insert(
                        k,
                        FlowAction {
                            ptr: old.ptr,
                            class: old.class,
                        },
                    ),
                ))
            }
            Op::SetDefault(_) | Op::ResetDefault => {
                Err(TableError::ConstDefault { table: table_id })
            }
        }
    }

    /// Removes every entry, member, group and learned flow and restores
    /// default actions (a new forwarding pipeline); ports are kept.
    pub fn reset(&self) {
        let mut w = lock(&self.writer);
        let mut spare = self.take_spare(&mut w);
        if let Some(t) = Arc::get_mut(&mut spare) {
            t.clear_program_state();
        }
        self.publish(&mut w, spare, vec![Replay::Clear]);
        self.shared.pinned_flows.clear();
        self.shared.pinned_flows_reverse.clear();
        w.pkt_offsets = self.sum_counters(|s| &s.pkt_cntr);
        w.byte_offsets = self.sum_counters(|s| &s.byte_cntr);
    }

    /// Now on the dataplane's clock (ms).
    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    /// Every live learned flow of `dir`.
    pub fn flows(&self, dir: FlowDir) -> Vec<FlowEntry> {
        self.shared.flows(dir).entries(self.now_ms())
    }

    /// The live learned flow `key` of `dir`.
    pub fn flow(&self, dir: FlowDir, key: &FlowKey) -> Option<FlowEntry> {
        self.shared.flows(dir).get(key, self.now_ms())
    }

    fn sum_counters(&self, pick: impl Fn(&WorkerStats) -> &[crate::stats::Counter]) -> Vec<u64> {
        let mut sums = vec![0u64; self.shared.config.counter_size];
        for w in lock(&self.shared.workers).iter() {
            for (s, c) in sums.iter_mut().zip(pick(w).iter()) {
                *s = s.wrapping_add(c.get());
            }
        }
        sums
    }

    /// `pkt_cntr` and `byte_cntr` at `index` (as the control plane last set them, plus counts since).
    pub fn counter(&self, index: usize) -> Option<(u64, u64)> {
        if index >= self.shared.config.counter_size {
            return None;
        }
        let w = lock(&self.writer);
        let p = self.sum_counters(|s| &s.pkt_cntr)[index].wrapping_sub(w.pkt_offsets[index]);
        let b = self.sum_counters(|s| &s.byte_cntr)[index].wrapping_sub(w.byte_offsets[index]);
        Some((p, b))
    }

    /// Sets `pkt_cntr[index]` and `byte_cntr[index]`; `None` for a bad index.
    pub fn set_counter(&self, index: usize, packets: u64, bytes: u64) -> Option<()> {
        if index >= self.shared.config.counter_size {
            return None;
        }
        let mut w = lock(&self.writer);
        w.pkt_offsets[index] = self.sum_counters(|s| &s.pkt_cntr)[index].wrapping_sub(packets);
        w.byte_offsets[index] = self.sum_counters(|s| &s.byte_cntr)[index].wrapping_sub(bytes);
        Some(())
    }

    /// All workers' counters, summed.
    pub fn stats(&self) -> StatsSummary {
        let workers = lock(&self.shared.workers);
        let mut drops = [0u64; DROP_REASONS];
        let mut hits = [0u64; TableId::ALL.len()];
        let mut misses = [0u64; TableId::ALL.len()];
        let mut sum = StatsSummary::default();
        for w in workers.iter() {
            for (d, c) in drops.iter_mut().zip(w.drops.iter()) {
                *d += c.get();
            }
            for i in 0..hits.len() {
                hits[i] += w.hits[i].get();
                misses[i] += w.misses[i].get();
            }
            sum.packets += w.events.packets.get();
            sum.learned += w.events.learned.get();
            sum.learn_failed += w.events.learn_failed.get();
            sum.nat_rewrites += w.events.nat_rewrites.get();
            sum.hairpin_rewrites += w.events.hairpin_rewrites.get();
            sum.superseded_flows += w.events.superseded_flows.get();
        }
        sum.drops = DropReason::all()
            .filter(|r| drops[r.index()] > 0)
            .map(|r| (r.name(), drops[r.index()]))
            .collect();
        sum.tables = TableId::ALL
            .iter()
            .filter(|t| hits[**t as usize] + misses[**t as usize] > 0)
            .map(|t| (*t, hits[*t as usize], misses[*t as usize]))
            .collect();
        sum
    }

    /// Drops counted for `reason`, over all workers.
    pub fn drops(&self, reason: DropReason) -> u64 {
        lock(&self.shared.workers)
            .iter()
            .map(|w| w.drops[reason.index()].get())
            .sum()
    }

    /// (hits, misses) of `table`, over all workers.
    pub fn table_stats(&self, table: TableId) -> (u64, u64) {
        let workers = lock(&self.shared.workers);
        let hits = workers.iter().map(|w| w.hits[table as usize].get()).sum();
        let misses = workers.iter().map(|w| w.misses[table as usize].get()).sum();
        (hits, misses)
    }
}
