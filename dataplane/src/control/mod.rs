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
//! published copy and, for the rest of one batch, the one before it (or
//! longer, if the OS preempts a worker mid-batch).
//!
//! The updates a commit applied are kept once, as a shared log
//! (`Arc<Vec<TableOp>>`) that each spare's backlog points to, and a spare
//! replays them without validation (they succeeded on an identical copy):
//! an update is validated once, replayed twice, and never copied.
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

/// Updates a spare copy has not seen yet.
#[derive(Debug, Clone)]
enum Replay {
    /// The table updates one commit applied, in order; shared by every
    /// spare that has still to replay them.
    Ops(Arc<Vec<TableOp>>),
    /// A reset ([`TableSet::clear_program_state`]).
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
    pub fn commit(&self, mut ops: Vec<TableOp>, mode: CommitMode) -> Vec<Result<(), TableError>> {
        let mut w = lock(&self.writer);
        let mut spare = self.take_spare(&mut w);
        let Some(tables) = Arc::get_mut(&mut spare) else {
            unreachable!("take_spare returns an unshared copy")
        };
        let now = self.now_ms();
        // Only a failed atomic batch is undone: CONTINUE_ON_ERROR keeps
        // every success, and a failed update changed nothing.
        let atomic = mode != CommitMode::ContinueOnError;
        let mut results = Vec::with_capacity(ops.len());
        let mut undo: Vec<TableOp> = Vec::new();
        let mut flow_undo: Vec<TableOp> = Vec::new();
        let mut failed = false;
        // While every op is a table op that succeeded, `ops` is the log.
        let mut log_is_ops = true;
        for op in &ops {
            let result = match op {
                TableOp::Flow(dir, fop) => {
                    log_is_ops = false;
                    self.apply_flow(*dir, fop, now).map(|u| {
                        if atomic {
                            flow_undo.push(u);
                        }
                    })
                }
                op => tables.apply(op).map(|u| {
                    if atomic {
                        undo.push(u);
                    }
                }),
            };
            failed |= result.is_err();
            log_is_ops &= result.is_ok();
            results.push(result);
        }
        if failed && atomic {
            for u in undo.iter().rev() {
                let _ = tables.apply(u);
            }
            for u in flow_undo.iter().rev() {
                if let TableOp::Flow(dir, fop) = u {
                    let _ = self.apply_flow(*dir, fop, now);
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
        if !log_is_ops {
            // The spares replay what this copy applied: the table ops that
            // succeeded (learned flows are shared, not copied).
            let mut r = results.iter();
            ops.retain(|op| {
                r.next().is_some_and(|r| r.is_ok()) && !matches!(op, TableOp::Flow(..))
            });
        }
        if ops.is_empty() {
            w.spares.push(Spare {
                tables: spare,
                backlog: Vec::new(),
            });
        } else {
            self.publish(&mut w, spare, Replay::Ops(Arc::new(ops)));
        }
        results
    }

    /// Publishes `tables`; the copy it replaces and the other spares must
    /// still replay `applied`.
    fn publish(&self, w: &mut Writer, tables: Arc<TableSet>, applied: Replay) {
        let old = self.shared.tables.swap(tables);
        for s in &mut w.spares {
            s.backlog.push(applied.clone());
        }
        w.spares.push(Spare {
            tables: old,
            backlog: vec![applied],
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
                    // Cannot fail: the same updates succeeded on an identical copy.
                    Replay::Ops(ops) => ops.iter().for_each(|op| tables.replay(op)),
                }
            }
        }
        spare.tables
    }

    fn apply_flow(
        &self,
        dir: FlowDir,
        op: &Op<FlowKey, FlowAction>,
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
        match *op {
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
        self.publish(&mut w, spare, Replay::Clear);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::tables::prefix::PrefixKey;

    fn nat(ip: u32) -> NatAction {
        NatAction::Rewrite { ip, port: 80 }
    }

    /// The entries of `write_dest_ip_table`, and the keys of the egress
    /// pod/protocol table as (exact, prefix, length).
    type Contents = (BTreeMap<u32, NatAction>, Vec<(u32, u128, u8)>);

    /// The [`Contents`] of `t`, sorted.
    fn contents(t: &TableSet) -> Contents {
        let dnat = t.write_dest_ip.iter().map(|(k, a)| (*k, *a)).collect();
        let mut acl: Vec<_> = t.acl_pod_ip_proto[0]
            .iter()
            .map(|(k, _)| (k.exact, k.prefix, k.len))
            .collect();
        acl.sort();
        (dnat, acl)
    }

    fn acl(exact: u32) -> TableOp {
        TableOp::AclPodIpProto(
            PolicyDir::Egress,
            Op::Insert(
                PrefixKey {
                    exact,
                    prefix: 6,
                    len: 8,
                },
                AclAction::DenyAll,
            ),
        )
    }

    #[test]
    fn every_copy_replays_the_shared_log_while_readers_hold_copies() {
        let c = Control::new(DataplaneConfig::small());
        let mut model = BTreeMap::new();
        let mut acls = Vec::new();
        let mut held = Vec::new();
        for round in 0u32..12 {
            let base = round * 10;
            let mut ops: Vec<TableOp> = (base..base + 10)
                .map(|k| TableOp::WriteDestIp(Op::Insert(k, nat(k))))
                .collect();
            // A duplicate, a modify and a delete of earlier entries, an
            // entry of a prefix table (replayed through validation) and a
            // learned flow (not part of the copies).
            ops.push(TableOp::WriteDestIp(Op::Insert(base, nat(0))));
            if round > 0 {
                ops.push(TableOp::WriteDestIp(Op::Modify(base - 10, nat(7))));
                ops.push(TableOp::WriteDestIp(Op::Delete(base - 9)));
            }
            ops.push(acl(round));
            ops.push(TableOp::Flow(
                FlowDir::Forward,
                Op::Insert(
                    FlowKey {
                        src_ip: round,
                        ..FlowKey::default()
                    },
                    FlowAction { ptr: 1, class: 0 },
                ),
            ));
            let results = c.commit(ops, CommitMode::ContinueOnError);
            assert!(
                matches!(results[10], Err(TableError::AlreadyExists { .. })),
                "{results:?}"
            );
            assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
            for k in base..base + 10 {
                model.insert(k, nat(k));
            }
            if round > 0 {
                model.insert(base - 10, nat(7));
                model.remove(&(base - 9));
            }
            acls.push((round, 6, 8));
            assert_eq!(contents(&c.tables()), (model.clone(), acls.clone()));
            // Readers holding the published copy over the next commits
            // make the writer take each of the copies in turn.
            match round % 3 {
                0 => held.push(c.tables()),
                1 => held.clear(),
                _ => {}
            }
        }
        assert_eq!(c.flows(FlowDir::Forward).len(), 12);
    }

    #[test]
    fn spares_share_one_log_per_commit() {
        let c = Control::new(DataplaneConfig::small());
        let ops = (0..3)
            .map(|k| TableOp::WriteDestIp(Op::Insert(k, nat(k))))
            .collect();
        assert!(c
            .commit(ops, CommitMode::ContinueOnError)
            .iter()
            .all(|r| r.is_ok()));
        let w = lock(&c.writer);
        let logs: Vec<&Arc<Vec<TableOp>>> = w
            .spares
            .iter()
            .map(|s| match s.backlog.as_slice() {
                [Replay::Ops(log)] => log,
                other => panic!("backlog {other:?}"),
            })
            .collect();
        assert_eq!(logs.len(), SPARES);
        assert!(Arc::ptr_eq(logs[0], logs[1]));
        assert_eq!(logs[0].len(), 3);
    }

    #[test]
    fn a_failed_atomic_commit_changes_no_copy() {
        let c = Control::new(DataplaneConfig::small());
        let first = vec![TableOp::WriteDestIp(Op::Insert(1, nat(1)))];
        assert!(c.commit(first, CommitMode::ContinueOnError)[0].is_ok());
        let before = contents(&c.tables());
        for mode in [CommitMode::RollbackOnError, CommitMode::DataplaneAtomic] {
            let ops = vec![
                TableOp::WriteDestIp(Op::Modify(1, nat(9))),
                TableOp::WriteDestIp(Op::Insert(2, nat(2))),
                acl(1),
                TableOp::WriteDestIp(Op::Delete(3)),
            ];
            let results = c.commit(ops, mode);
            assert!(matches!(results[3], Err(TableError::NotFound { .. })));
            assert!(results[..3].iter().all(|r| *r == Err(TableError::Aborted)));
            assert_eq!(contents(&c.tables()), before);
        }
        // Every copy, published in turn, still holds only the first commit.
        for k in 10..13 {
            let op = vec![TableOp::WriteDestIp(Op::Insert(k, nat(k)))];
            assert!(c.commit(op, CommitMode::ContinueOnError)[0].is_ok());
            let (dnat, acl) = contents(&c.tables());
            assert_eq!(dnat.get(&1), Some(&nat(1)));
            assert_eq!(dnat.get(&2), None);
            assert!(acl.is_empty());
        }
    }
}
