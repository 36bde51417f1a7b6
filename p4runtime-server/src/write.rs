//! Write (§12): P4Runtime updates to dataplane `TableOp`s, committed with
//! the request's atomicity.
//!
//! Most updates are one `TableOp`. Two kinds need more, and are committed
//! as their own all-or-nothing step so a half-done update is never left
//! behind under CONTINUE_ON_ERROR:
//! - `tx_balance_*` entries with a one-shot action set: the dataplane only
//!   knows members and groups, so the set becomes hidden members and a
//!   hidden group with ids from [`HIDDEN_BASE`] up, and the set is kept as
//!   written so Read returns it unchanged;
//! - counter writes, which are not table operations.
//!
//! Under ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC every update goes into one
//! commit that the dataplane applies whole or not at all.

use dataplane::control::{CommitMode, TableError, TableOp};
use dataplane::Control;

use crate::binding::{Binding, CounterKind};
use crate::error::P4rtError;
use crate::plan::{plan, Bookkeeping, CounterWrite, Plan};
use crate::proto::p4::v1::{write_request::Atomicity, Update};
use crate::shadow::Shadow;

pub use crate::plan::entity_kind;
pub use crate::shadow::{OneShot, HIDDEN_BASE};

/// The commit mode of a request's `atomicity`.
pub fn commit_mode(atomicity: i32) -> Result<CommitMode, P4rtError> {
    match Atomicity::try_from(atomicity) {
        Ok(Atomicity::ContinueOnError) => Ok(CommitMode::ContinueOnError),
        Ok(Atomicity::RollbackOnError) => Ok(CommitMode::RollbackOnError),
        Ok(Atomicity::DataplaneAtomic) => Ok(CommitMode::DataplaneAtomic),
        Err(_) => Err(P4rtError::InvalidArgument(format!(
            "WriteRequest.atomicity {atomicity} is not valid"
        ))),
    }
}

/// Updates planned into one commit: their ops in one list, handed to the
/// dataplane as is, and what each update has left to record.
struct Batch<'b> {
    ops: Vec<TableOp>,
    updates: Vec<Pending<'b>>,
}

/// A planned update of a [`Batch`].
struct Pending<'b> {
    /// Its index in the request.
    index: usize,
    /// How many of the batch's ops are its (they follow the previous
    /// update's).
    ops: usize,
    then: Bookkeeping<'b>,
}

impl<'b> Batch<'b> {
    fn with_capacity(n: usize) -> Self {
        Batch {
            ops: Vec::with_capacity(n),
            updates: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, index: usize, plan: Plan<'b>) {
        self.updates.push(Pending {
            index,
            ops: plan.ops.len(),
            then: plan.then,
        });
        self.ops.extend(plan.ops);
    }
}

/// Applies `updates` under `mode`; one result per update, in order.
pub fn write(
    b: &Binding,
    control: &Control,
    shots: &mut Shadow,
    updates: &[Update],
    mode: CommitMode,
) -> Vec<Result<(), P4rtError>> {
    let learn_class = control.config().learn_class;
    let mut results: Vec<Result<(), P4rtError>> = Vec::with_capacity(updates.len());
    match mode {
        CommitMode::ContinueOnError => {
            let mut batch = Batch::with_capacity(updates.len());
            for (i, u) in updates.iter().enumerate() {
                results.push(Ok(()));
                match plan(b, learn_class, shots, u) {
                    Err(e) => results[i] = Err(e),
                    Ok(p) if p.isolated || p.then.counter.is_some() => {
                        flush(control, shots, &mut batch, &mut results, mode);
                        let mut one = Batch::with_capacity(1);
                        one.push(i, p);
                        flush(
                            control,
                            shots,
                            &mut one,
                            &mut results,
                            CommitMode::RollbackOnError,
                        );
                        batch.ops.reserve(updates.len() - i);
                    }
                    Ok(p) => batch.push(i, p),
                }
            }
            flush(control, shots, &mut batch, &mut results, mode);
            results
        }
        CommitMode::RollbackOnError | CommitMode::DataplaneAtomic => {
            let mut scratch = shots.clone();
            let mut batch = Batch::with_capacity(updates.len());
            let mut failed: Option<usize> = None;
            for (i, u) in updates.iter().enumerate() {
                match plan(b, learn_class, &mut scratch, u) {
                    Ok(p) => {
                        // Later updates of the batch see this one's bookkeeping.
                        p.then.record_copy(&mut scratch);
                        batch.push(i, p);
                        results.push(Ok(()));
                    }
                    Err(e) => {
                        failed.get_or_insert(i);
                        results.push(Err(e));
                    }
                }
            }
            if let Some(first) = failed {
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(aborted(first));
                }
                return results;
            }
            // Bookkeeping changes were made on the scratch copy while planning.
            let counters: Vec<CounterWrite> = batch
                .updates
                .iter()
                .filter_map(|p| p.then.counter)
                .collect();
            if flush_atomic(control, &mut batch, &mut results, mode) {
                *shots = scratch;
                for c in counters {
                    apply_counter(control, c);
                }
            }
            results
        }
    }
}

fn aborted(first: usize) -> P4rtError {
    P4rtError::Aborted(format!(
        "not applied: update #{first} of the atomic batch failed"
    ))
}

/// Commits `batch` under `mode`, records per-update results, applies the
/// bookkeeping of the updates that went through, and empties `batch`.
fn flush(
    control: &Control,
    shots: &mut Shadow,
    batch: &mut Batch,
    results: &mut [Result<(), P4rtError>],
    mode: CommitMode,
) {
    if batch.updates.is_empty() {
        return;
    }
    let mut outcome = commit(control, &mut batch.ops, mode);
    for p in batch.updates.drain(..) {
        let r = outcome_of(&p, &mut outcome);
        if r.is_ok() {
            if let Some(c) = p.then.counter {
                apply_counter(control, c);
            }
            p.then.record(shots);
        }
        results[p.index] = r;
    }
}

/// Commits `batch` as one all-or-nothing batch; true when it applied.
fn flush_atomic(
    control: &Control,
    batch: &mut Batch,
    results: &mut [Result<(), P4rtError>],
    mode: CommitMode,
) -> bool {
    let mut outcome = commit(control, &mut batch.ops, mode);
    let mut first_failed = None;
    for p in &batch.updates {
        let r = outcome_of(p, &mut outcome);
        if first_failed.is_none() && matches!(&r, Err(e) if !matches!(e, P4rtError::Aborted(_))) {
            first_failed = Some(p.index);
        }
        results[p.index] = r;
    }
    if let Some(f) = first_failed {
        for r in results.iter_mut() {
            if matches!(r, Err(P4rtError::Aborted(_))) {
                *r = Err(aborted(f));
            }
        }
    }
    first_failed.is_none() && results.iter().all(|r| r.is_ok())
}

/// One commit of `ops` (which it takes); one result per op.
fn commit(
    control: &Control,
    ops: &mut Vec<TableOp>,
    mode: CommitMode,
) -> std::vec::IntoIter<Result<(), TableError>> {
    if ops.is_empty() {
        return Vec::new().into_iter();
    }
    control.commit(std::mem::take(ops), mode).into_iter()
}

/// The result of update `p` from the results of its ops, next in `outcome`.
fn outcome_of(
    p: &Pending,
    outcome: &mut std::vec::IntoIter<Result<(), TableError>>,
) -> Result<(), P4rtError> {
    let mut out = Ok(());
    for r in outcome.by_ref().take(p.ops) {
        if let Err(e) = r {
            let e = P4rtError::from_table(&format!("update #{}: {}", p.index, p.then.what), e);
            // Keep the update's own failure over an "aborted" one.
            if out.is_ok() || matches!(out, Err(P4rtError::Aborted(_))) {
                out = Err(e);
            }
        }
    }
    out
}

fn apply_counter(control: &Control, c: CounterWrite) {
    let (p, b) = control.counter(c.index).unwrap_or((0, 0));
    let (p, b) = match c.kind {
        CounterKind::Packets => (c.value, b),
        CounterKind::Bytes => (p, c.value),
    };
    let _ = control.set_counter(c.index, p, b);
}
