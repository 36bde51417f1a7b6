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

use dataplane::control::{CommitMode, TableOp};
use dataplane::Control;

use crate::binding::{Binding, CounterKind};
use crate::error::P4rtError;
use crate::plan::{plan, CounterWrite, Plan};
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

/// Applies `updates` under `mode`; one result per update, in order.
pub fn write(
    b: &Binding,
    control: &Control,
    shots: &mut Shadow,
    updates: &[Update],
    mode: CommitMode,
) -> Vec<Result<(), P4rtError>> {
    let learn_class = control.config().learn_class;
    match mode {
        CommitMode::ContinueOnError => {
            let mut results: Vec<Result<(), P4rtError>> = Vec::with_capacity(updates.len());
            let mut pending: Vec<(usize, Plan)> = Vec::with_capacity(updates.len());
            for (i, u) in updates.iter().enumerate() {
                results.push(Ok(()));
                match plan(b, learn_class, shots, u) {
                    Err(e) => results[i] = Err(e),
                    Ok(p) if p.isolated || p.counter.is_some() => {
                        flush(
                            control,
                            shots,
                            &mut pending,
                            &mut results,
                            CommitMode::ContinueOnError,
                        );
                        let mut one = vec![(i, p)];
                        flush(
                            control,
                            shots,
                            &mut one,
                            &mut results,
                            CommitMode::RollbackOnError,
                        );
                    }
                    Ok(p) => pending.push((i, p)),
                }
            }
            flush(
                control,
                shots,
                &mut pending,
                &mut results,
                CommitMode::ContinueOnError,
            );
            results
        }
        CommitMode::RollbackOnError | CommitMode::DataplaneAtomic => {
            let mut scratch = shots.clone();
            let mut plans = Vec::with_capacity(updates.len());
            let mut failed: Option<usize> = None;
            for (i, u) in updates.iter().enumerate() {
                let p = plan(b, learn_class, &mut scratch, u);
                if let Ok(p) = &p {
                    if let Some(c) = &p.change {
                        scratch.apply(c.clone());
                    }
                    if let Some(m) = &p.meta {
                        scratch.apply_meta(m.clone());
                    }
                } else if failed.is_none() {
                    failed = Some(i);
                }
                plans.push(p);
            }
            if let Some(first) = failed {
                return plans
                    .into_iter()
                    .map(|p| match p {
                        Err(e) => Err(e),
                        Ok(_) => Err(aborted(first)),
                    })
                    .collect();
            }
            let mut pending: Vec<(usize, Plan)> = plans
                .into_iter()
                .enumerate()
                .filter_map(|(i, p)| p.ok().map(|p| (i, p)))
                .collect();
            let mut results = vec![Ok(()); updates.len()];
            // Bookkeeping changes were made on the scratch copy while planning.
            let ok = flush_atomic(control, &mut pending, &mut results, mode);
            if ok {
                let counters: Vec<CounterWrite> =
                    pending.iter().filter_map(|(_, p)| p.counter).collect();
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

/// Commits `pending` under `mode`, records per-update results, applies the
/// bookkeeping of the updates that went through, and empties `pending`.
fn flush(
    control: &Control,
    shots: &mut Shadow,
    pending: &mut Vec<(usize, Plan)>,
    results: &mut [Result<(), P4rtError>],
    mode: CommitMode,
) {
    if pending.is_empty() {
        return;
    }
    let outcome = commit(control, pending, mode);
    for ((i, p), r) in pending.drain(..).zip(outcome) {
        if r.is_ok() {
            if let Some(c) = p.change {
                shots.apply(c);
            }
            if let Some(m) = p.meta {
                shots.apply_meta(m);
            }
            if let Some(c) = p.counter {
                apply_counter(control, c);
            }
        }
        results[i] = r;
    }
}

/// Commits `pending` as one all-or-nothing batch; true when it applied.
fn flush_atomic(
    control: &Control,
    pending: &mut [(usize, Plan)],
    results: &mut [Result<(), P4rtError>],
    mode: CommitMode,
) -> bool {
    let outcome = commit(control, pending, mode);
    let first_failed = outcome
        .iter()
        .zip(pending.iter())
        .find(|(r, _)| matches!(r, Err(e) if !matches!(e, P4rtError::Aborted(_))))
        .map(|(_, (i, _))| *i);
    for ((i, _), r) in pending.iter().zip(outcome) {
        results[*i] = match (r, first_failed) {
            (Err(P4rtError::Aborted(_)), Some(f)) => Err(aborted(f)),
            (r, _) => r,
        };
    }
    first_failed.is_none() && results.iter().all(|r| r.is_ok())
}

/// One commit of every op of `plans`; one result per plan.
fn commit(
    control: &Control,
    plans: &[(usize, Plan)],
    mode: CommitMode,
) -> Vec<Result<(), P4rtError>> {
    let mut ops: Vec<TableOp> = Vec::with_capacity(plans.iter().map(|(_, p)| p.ops.len()).sum());
    ops.extend(plans.iter().flat_map(|(_, p)| p.ops.iter().cloned()));
    let mut results = if ops.is_empty() {
        Vec::new()
    } else {
        control.commit(ops, mode)
    }
    .into_iter();
    plans
        .iter()
        .map(|(i, p)| {
            let mut out = Ok(());
            for _ in 0..p.ops.len() {
                if let Some(Err(e)) = results.next() {
                    let e = P4rtError::from_table(&format!("update #{i}: {}", p.what), e);
                    // Keep the update's own failure over an "aborted" one.
                    if out.is_ok() || matches!(out, Err(P4rtError::Aborted(_))) {
                        out = Err(e);
                    }
                }
            }
            out
        })
        .collect()
}

fn apply_counter(control: &Control, c: CounterWrite) {
    let (p, b) = control.counter(c.index).unwrap_or((0, 0));
    let (p, b) = match c.kind {
        CounterKind::Packets => (c.value, b),
        CounterKind::Bytes => (p, c.value),
    };
    let _ = control.set_counter(c.index, p, b);
}
