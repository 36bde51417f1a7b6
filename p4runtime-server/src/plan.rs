//! One P4Runtime update to what it does: the dataplane `TableOp`s, the
//! bookkeeping to record once they commit (one-shots, entry metadata) and
//! counter writes. Checks every field and names the entity at fault.

use dataplane::control::{FlowAction, GroupSpec, LbAction, Op, ServiceProto, TableOp, VipKey};
use dataplane::tables::selector::SelectorRef;

use std::fmt;

use smallvec::{smallvec, SmallVec};

use crate::binding::{Binding, BoundCounter, BoundProfile, BoundTable, CounterKind, TableKind};
use crate::error::P4rtError;
use crate::proto::p4::v1::{
    entity, table_action, update, ActionProfileGroup, ActionProfileMember, CounterEntry,
    TableEntry, Update,
};
use crate::shadow::{Change, MetaChange, OneShot, Shadow, HIDDEN_BASE};
use crate::translate::{decode_key, describe_key, dp_action, DpAction, Key};

/// A counter write, made once the rest of its batch committed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CounterWrite {
    pub(crate) kind: CounterKind,
    pub(crate) index: usize,
    pub(crate) value: u64,
}

/// Names the entity of an update in error messages. Formatted only when
/// an error is reported: a successful write formats nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'b> {
    /// A table entry, with its key once decoded.
    Entry {
        table: &'b BoundTable,
        key: Option<Key>,
    },
    /// A table's default entry.
    Default(&'b BoundTable),
    /// An action profile member.
    Member(&'b BoundProfile, u32),
    /// An action profile group.
    Group(&'b BoundProfile, u32),
    /// An indirect counter.
    Counter(&'b BoundCounter),
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Entry { table, key: None } => write!(f, "table_entry of {}", table.name),
            Subject::Entry {
                table,
                key: Some(key),
            } => write!(
                f,
                "table_entry of {} [{}]",
                table.name,
                describe_key(table, key)
            ),
            Subject::Default(table) => write!(f, "default entry of {}", table.name),
            Subject::Member(p, id) => write!(f, "action_profile_member {id} of {}", p.name),
            Subject::Group(p, id) => write!(f, "action_profile_group {id} of {}", p.name),
            Subject::Counter(c) => write!(f, "counter_entry of {}", c.name),
        }
    }
}

/// "`{what}: member {id}`", formatted on demand.
struct MemberOf<'a>(&'a Subject<'a>, u32);

impl fmt::Display for MemberOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: member {}", self.0, self.1)
    }
}

/// What one update does.
#[derive(Debug)]
pub(crate) struct Plan<'b> {
    /// Most updates are one op: kept inline, no allocation.
    pub(crate) ops: SmallVec<[TableOp; 1]>,
    /// Needs its own all-or-nothing commit under CONTINUE_ON_ERROR.
    pub(crate) isolated: bool,
    /// What to record once the ops committed.
    pub(crate) then: Bookkeeping<'b>,
}

/// What an update leaves to record once its ops committed, and its subject
/// for messages. Kept small: a batch holds one per update.
#[derive(Debug)]
pub(crate) struct Bookkeeping<'b> {
    /// The entity, for messages; for `meta`, the entry.
    pub(crate) what: Subject<'b>,
    /// One-shot bookkeeping (rare: boxed).
    pub(crate) change: Option<Box<Change>>,
    /// The entry's new metadata; `None`: unchanged.
    pub(crate) meta: Option<MetaChange>,
    pub(crate) counter: Option<CounterWrite>,
}

impl Bookkeeping<'_> {
    /// Records the one-shot and metadata changes in `shots`.
    pub(crate) fn record(self, shots: &mut Shadow) {
        if let Some(c) = self.change {
            shots.apply(*c);
        }
        if let (
            Some(m),
            Subject::Entry {
                table,
                key: Some(k),
            },
        ) = (self.meta, self.what)
        {
            shots.apply_meta(table.id, k, m);
        }
    }

    /// [`Self::record`] without giving up the changes.
    pub(crate) fn record_copy(&self, shots: &mut Shadow) {
        if let Some(c) = &self.change {
            shots.apply(Change::clone(c));
        }
        if let (
            Some(m),
            Subject::Entry {
                table,
                key: Some(k),
            },
        ) = (&self.meta, self.what)
        {
            shots.apply_meta(table.id, k, m.clone());
        }
    }
}

impl<'b> Plan<'b> {
    /// A plan about `what` that does nothing yet.
    fn about(what: Subject<'b>) -> Self {
        Plan {
            ops: SmallVec::new(),
            isolated: false,
            then: Bookkeeping {
                what,
                change: None,
                meta: None,
                counter: None,
            },
        }
    }
}

pub(crate) fn plan<'b>(
    b: &'b Binding,
    learn_class: u8,
    shots: &mut Shadow,
    u: &Update,
) -> Result<Plan<'b>, P4rtError> {
    let typ = update::Type::try_from(u.r#type).unwrap_or(update::Type::Unspecified);
    if typ == update::Type::Unspecified {
        return Err(P4rtError::InvalidArgument(format!(
            "update type {} is not INSERT, MODIFY or DELETE",
            u.r#type
        )));
    }
    let Some(e) = u.entity.as_ref().and_then(|e| e.entity.as_ref()) else {
        return Err(P4rtError::InvalidArgument(
            "update without an entity".into(),
        ));
    };
    match e {
        entity::Entity::TableEntry(te) => plan_table_entry(b, learn_class, shots, typ, te),
        entity::Entity::ActionProfileMember(m) => plan_member(b, typ, m),
        entity::Entity::ActionProfileGroup(g) => plan_group(b, typ, g),
        entity::Entity::CounterEntry(c) => plan_counter(b, typ, c),
        other => Err(P4rtError::Unimplemented(format!(
            "{} entities are not supported by this target",
            entity_kind(other)
        ))),
    }
}

/// The name of an entity's kind, for messages.
pub fn entity_kind(e: &entity::Entity) -> &'static str {
    match e {
        entity::Entity::ExternEntry(_) => "extern_entry",
        entity::Entity::TableEntry(_) => "table_entry",
        entity::Entity::ActionProfileMember(_) => "action_profile_member",
        entity::Entity::ActionProfileGroup(_) => "action_profile_group",
        entity::Entity::MeterEntry(_) => "meter_entry",
        entity::Entity::DirectMeterEntry(_) => "direct_meter_entry",
        entity::Entity::CounterEntry(_) => "counter_entry",
        entity::Entity::DirectCounterEntry(_) => "direct_counter_entry",
        entity::Entity::PacketReplicationEngineEntry(_) => "packet_replication_engine_entry",
        entity::Entity::ValueSetEntry(_) => "value_set_entry",
        entity::Entity::RegisterEntry(_) => "register_entry",
        entity::Entity::DigestEntry(_) => "digest_entry",
    }
}

fn op<K, A>(typ: update::Type, key: K, action: Option<A>) -> Op<K, A> {
    match (typ, action) {
        (update::Type::Insert, Some(a)) => Op::Insert(key, a),
        (update::Type::Modify, Some(a)) => Op::Modify(key, a),
        // Callers pass an action for INSERT and MODIFY.
        _ => Op::Delete(key),
    }
}

fn mismatch(what: &(impl fmt::Display + ?Sized)) -> P4rtError {
    P4rtError::InvalidArgument(format!("{what}: the key or action does not fit the table"))
}

/// The dataplane op for a direct table's entry or default action.
fn table_op(
    kind: TableKind,
    typ: update::Type,
    key: Option<Key>,
    action: Option<DpAction>,
    learn_class: u8,
    what: &Subject,
) -> Result<TableOp, P4rtError> {
    macro_rules! pick {
        ($variant:ident) => {
            match action {
                None => None,
                Some(DpAction::$variant(a)) => Some(a),
                Some(_) => return Err(mismatch(what)),
            }
        };
    }
    // The default action (no key): only SetDefault.
    let Some(key) = key else {
        return match (kind, action) {
            (TableKind::WriteDestIp, Some(DpAction::Nat(a))) => {
                Ok(TableOp::WriteDestIp(Op::SetDefault(a)))
            }
            (TableKind::WriteSourceIp, Some(DpAction::Nat(a))) => {
                Ok(TableOp::WriteSourceIp(Op::SetDefault(a)))
            }
            _ => Err(P4rtError::PermissionDenied(format!(
                "{what}: the table's default action is constant"
            ))),
        };
    };
    Ok(match (kind, key) {
        (TableKind::ArptToPort, Key::U32(k)) => TableOp::ArptToPort(op(typ, k, pick!(DestVport))),
        (TableKind::Ipv4ToPort, Key::U32(k)) => {
            TableOp::Ipv4ToPort(op(typ, k, pick!(DestMacVport)))
        }
        (TableKind::WriteDestIp, Key::U32(k)) => TableOp::WriteDestIp(op(typ, k, pick!(Nat))),
        (TableKind::WriteSourceIp, Key::U32(k)) => TableOp::WriteSourceIp(op(typ, k, pick!(Nat))),
        (TableKind::SetMeta(p), Key::Vip(k)) => TableOp::SetMeta(p, op(typ, k, pick!(SetMeta))),
        (TableKind::AclPodIpProto(d), Key::PodProto(k)) => {
            TableOp::AclPodIpProto(d, op(typ, k, pick!(Acl)))
        }
        (TableKind::AclIpsetMatch(d), Key::Ipset(k)) => {
            TableOp::AclIpsetMatch(d, op(typ, k, pick!(Ipset)))
        }
        (TableKind::RangeCheck(r), Key::PolId(k)) => {
            TableOp::RangeCheck(r, op(typ, k, pick!(Range)))
        }
        (TableKind::Flows(d), Key::Flow(k)) => {
            let a = match action {
                None => None,
                Some(DpAction::FlowHit(ptr)) => Some(FlowAction {
                    ptr,
                    class: learn_class,
                }),
                Some(_) => return Err(mismatch(what)),
            };
            TableOp::Flow(d, op(typ, k, a))
        }
        _ => return Err(mismatch(what)),
    })
}

fn plan_table_entry<'b>(
    b: &'b Binding,
    learn_class: u8,
    shots: &mut Shadow,
    typ: update::Type,
    te: &TableEntry,
) -> Result<Plan<'b>, P4rtError> {
    let t = b.table(te.table_id).ok_or_else(|| {
        P4rtError::NotFound(format!(
            "table_entry: table id {} is not in the P4Info",
            te.table_id
        ))
    })?;
    let what = Subject::Entry {
        table: t,
        key: None,
    };
    if te.priority != 0 {
        return Err(P4rtError::InvalidArgument(format!(
            "{what}: priority {} must be 0 (the table has only exact and LPM fields)",
            te.priority
        )));
    }
    if te.idle_timeout_ns != 0 {
        return Err(P4rtError::InvalidArgument(format!(
            "{what}: idle_timeout_ns must be 0 (the table has no idle timeout)"
        )));
    }
    if te.meter_config.is_some() || te.counter_data.is_some() || te.meter_counter_data.is_some() {
        return Err(P4rtError::InvalidArgument(format!(
            "{what}: the table has no direct meter or counter"
        )));
    }
    if te.is_default_action {
        if typ != update::Type::Modify {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: the default entry can only be modified (is_default_action with {typ:?})"
            )));
        }
        if !te.r#match.is_empty() {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: the default entry has no match fields"
            )));
        }
        if t.const_default {
            return Err(P4rtError::PermissionDenied(format!(
                "{what}: the table's default action is constant"
            )));
        }
        let action = match te.action.as_ref().and_then(|a| a.r#type.as_ref()) {
            // No action: back to the program's initial default (NoAction).
            None => DpAction::Nat(dataplane::control::NatAction::NoAction),
            Some(table_action::Type::Action(a)) => dp_action(b, t, a, true, &what)?,
            Some(_) => {
                return Err(P4rtError::InvalidArgument(format!(
                    "{what}: a default action must be a direct action"
                )))
            }
        };
        let op = table_op(t.kind, typ, None, Some(action), learn_class, &what)?;
        return Ok(Plan {
            ops: smallvec![op],
            ..Plan::about(Subject::Default(t))
        });
    }
    let key = decode_key(t, &te.r#match, &what)?;
    let what = Subject::Entry {
        table: t,
        key: Some(key),
    };
    // `controller_metadata` is deprecated since v1.4 (for `metadata`), still honoured.
    #[allow(deprecated)]
    let controller_metadata = te.controller_metadata;
    let meta = (typ != update::Type::Delete
        && (controller_metadata != 0 || !te.metadata.is_empty()))
    .then(|| (controller_metadata, te.metadata.clone()));
    // An insert without metadata has no metadata to replace.
    let meta = (typ != update::Type::Insert || meta.is_some()).then_some(meta);
    if let TableKind::TxBalance(p) = t.kind {
        let Key::Vip(k) = key else {
            return Err(mismatch(&what));
        };
        let mut plan = plan_tx_balance(b, t, shots, p, k, typ, te, what)?;
        plan.then.meta = meta;
        return Ok(plan);
    }
    let action = if typ == update::Type::Delete {
        None
    } else {
        match te.action.as_ref().and_then(|a| a.r#type.as_ref()) {
            Some(table_action::Type::Action(a)) => {
                Some(dp_action(b, t, a, false, &what)?)
            }
            Some(_) => {
                return Err(P4rtError::InvalidArgument(format!(
                    "{what}: the table is direct: action profile members, groups and action sets are not allowed"
                )))
            }
            None => {
                return Err(P4rtError::InvalidArgument(format!("{what}: action is missing")))
            }
        }
    };
    let mut plan = Plan {
        ops: smallvec![table_op(
            t.kind,
            typ,
            Some(key),
            action,
            learn_class,
            &what,
        )?],
        ..Plan::about(what)
    };
    plan.then.meta = meta;
    Ok(plan)
}

/// A member's weight. Zero counts as 1: the upstream manager leaves the
/// weight unset (PI would refuse it); negative weights are refused.
fn weight(w: i32, what: &(impl fmt::Display + ?Sized)) -> Result<u32, P4rtError> {
    match w {
        0 => Ok(1),
        w if w > 0 => Ok(w as u32),
        w => Err(P4rtError::InvalidArgument(format!(
            "{what}: weight {w} must be positive"
        ))),
    }
}

fn reserved(id: u32, what: &Subject, field: &str) -> Result<(), P4rtError> {
    if id >= HIDDEN_BASE {
        return Err(P4rtError::InvalidArgument(format!(
            "{what}: {field} {id:#x} is in the range the target reserves (>= {HIDDEN_BASE:#x})"
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn plan_tx_balance<'b>(
    b: &'b Binding,
    t: &BoundTable,
    shots: &mut Shadow,
    p: ServiceProto,
    k: VipKey,
    typ: update::Type,
    te: &TableEntry,
    what: Subject<'b>,
) -> Result<Plan<'b>, P4rtError> {
    let old = shots.get(p, &k).cloned();
    let mut plan = Plan {
        isolated: true,
        ..Plan::about(what)
    };
    let what = &what;
    let release = |plan: &mut Plan, old: &Option<OneShot>| {
        if let Some(o) = old {
            plan.ops.push(TableOp::Group(p, Op::Delete(o.group)));
            for m in &o.members {
                plan.ops.push(TableOp::Member(p, Op::Delete(*m)));
            }
            plan.then.change = Some(Box::new(Change::Drop(p, k)));
        }
    };
    if typ == update::Type::Delete {
        plan.ops.push(TableOp::TxBalance(p, Op::Delete(k)));
        release(&mut plan, &old);
        return Ok(plan);
    }
    let target = match te.action.as_ref().and_then(|a| a.r#type.as_ref()) {
        Some(table_action::Type::ActionProfileMemberId(m)) => {
            reserved(*m, what, "action_profile_member_id")?;
            SelectorRef::Member(*m)
        }
        Some(table_action::Type::ActionProfileGroupId(g)) => {
            reserved(*g, what, "action_profile_group_id")?;
            SelectorRef::Group(*g)
        }
        Some(table_action::Type::ActionProfileActionSet(set)) => {
            if set.action_profile_actions.is_empty() {
                return Err(P4rtError::InvalidArgument(format!(
                    "{what}: action_profile_action_set is empty"
                )));
            }
            let mut members = Vec::with_capacity(set.action_profile_actions.len());
            let mut ops = SmallVec::new();
            for (i, apa) in set.action_profile_actions.iter().enumerate() {
                let w = format!("{what}: action_profile_actions[{i}]");
                let a = apa
                    .action
                    .as_ref()
                    .ok_or_else(|| P4rtError::InvalidArgument(format!("{w}: action is missing")))?;
                let weight = weight(apa.weight, &w)?;
                let DpAction::Member(ma) = dp_action(b, t, a, false, &w)? else {
                    return Err(mismatch(&w));
                };
                let id = shots.alloc();
                ops.push(TableOp::Member(p, Op::Insert(id, ma)));
                members.push((id, weight));
            }
            let group = shots.alloc();
            ops.push(TableOp::Group(
                p,
                Op::Insert(
                    group,
                    GroupSpec {
                        members: members.clone(),
                        max_size: 0,
                    },
                ),
            ));
            plan.ops = ops;
            plan.then.change = Some(Box::new(Change::Set(
                p,
                k,
                OneShot {
                    set: set.clone(),
                    group,
                    members: members.iter().map(|(m, _)| *m).collect(),
                },
            )));
            SelectorRef::Group(group)
        }
        Some(table_action::Type::Action(_)) => {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: the table is indirect (action selector): use action_profile_member_id, action_profile_group_id or action_profile_action_set"
            )))
        }
        None => return Err(P4rtError::InvalidArgument(format!("{what}: action is missing"))),
    };
    plan.ops.push(TableOp::TxBalance(
        p,
        op(typ, k, Some(LbAction::Select(target))),
    ));
    if typ == update::Type::Modify {
        let new_change = plan.then.change.take();
        release(&mut plan, &old);
        if new_change.is_some() {
            plan.then.change = new_change;
        }
    } else if plan.then.change.is_none() {
        // An insert of a member/group entry: nothing to remember.
        plan.isolated = false;
    }
    Ok(plan)
}

fn plan_member<'b>(
    b: &'b Binding,
    typ: update::Type,
    m: &ActionProfileMember,
) -> Result<Plan<'b>, P4rtError> {
    let prof = b.profile(m.action_profile_id).ok_or_else(|| {
        P4rtError::NotFound(format!(
            "action_profile_member: action profile id {} is not in the P4Info",
            m.action_profile_id
        ))
    })?;
    let what = Subject::Member(prof, m.member_id);
    reserved(m.member_id, &what, "member_id")?;
    let action = if typ == update::Type::Delete {
        None
    } else {
        let t = b
            .table(prof.table_id)
            .ok_or_else(|| P4rtError::NotFound(format!("{what}: its table is not bound")))?;
        let a = m
            .action
            .as_ref()
            .ok_or_else(|| P4rtError::InvalidArgument(format!("{what}: action is missing")))?;
        match dp_action(b, t, a, false, &what)? {
            DpAction::Member(ma) => Some(ma),
            _ => return Err(mismatch(&what)),
        }
    };
    Ok(Plan {
        ops: smallvec![TableOp::Member(prof.selector, op(typ, m.member_id, action))],
        ..Plan::about(what)
    })
}

fn plan_group<'b>(
    b: &'b Binding,
    typ: update::Type,
    g: &ActionProfileGroup,
) -> Result<Plan<'b>, P4rtError> {
    let prof = b.profile(g.action_profile_id).ok_or_else(|| {
        P4rtError::NotFound(format!(
            "action_profile_group: action profile id {} is not in the P4Info",
            g.action_profile_id
        ))
    })?;
    let what = Subject::Group(prof, g.group_id);
    reserved(g.group_id, &what, "group_id")?;
    let spec = if typ == update::Type::Delete {
        None
    } else {
        if g.max_size < 0 {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: max_size {} is negative",
                g.max_size
            )));
        }
        if prof.max_group_size > 0 && g.max_size > prof.max_group_size {
            return Err(P4rtError::InvalidArgument(format!(
                "{what}: max_size {} exceeds the profile's max_group_size {}",
                g.max_size, prof.max_group_size
            )));
        }
        let mut members = Vec::with_capacity(g.members.len());
        for m in &g.members {
            reserved(m.member_id, &what, "member_id")?;
            let weight = weight(m.weight, &MemberOf(&what, m.member_id))?;
            if m.watch_kind.is_some() {
                return Err(P4rtError::Unimplemented(format!(
                    "{what}: member {}: watch ports are not supported",
                    m.member_id
                )));
            }
            members.push((m.member_id, weight));
        }
        Some(GroupSpec {
            members,
            max_size: g.max_size as u32,
        })
    };
    Ok(Plan {
        ops: smallvec![TableOp::Group(prof.selector, op(typ, g.group_id, spec))],
        ..Plan::about(what)
    })
}

fn plan_counter<'b>(
    b: &'b Binding,
    typ: update::Type,
    c: &CounterEntry,
) -> Result<Plan<'b>, P4rtError> {
    let bc = b.counter(c.counter_id).ok_or_else(|| {
        P4rtError::NotFound(format!(
            "counter_entry: counter id {} is not in the P4Info",
            c.counter_id
        ))
    })?;
    let what = Subject::Counter(bc);
    if typ != update::Type::Modify {
        return Err(P4rtError::InvalidArgument(format!(
            "{what}: counters can only be modified, not {typ:?}"
        )));
    }
    let index = c
        .index
        .as_ref()
        .ok_or_else(|| P4rtError::InvalidArgument(format!("{what}: index is missing")))?
        .index;
    if index < 0 || index >= bc.size {
        return Err(P4rtError::OutOfRange(format!(
            "{what}: index {index} is outside 0..{}",
            bc.size
        )));
    }
    let data = c.data.unwrap_or_default();
    let value = match bc.kind {
        CounterKind::Packets => data.packet_count,
        CounterKind::Bytes => data.byte_count,
    };
    if value < 0 {
        return Err(P4rtError::InvalidArgument(format!(
            "{what}: count {value} is negative"
        )));
    }
    let mut plan = Plan::about(what);
    plan.then.counter = Some(CounterWrite {
        kind: bc.kind,
        index: index as usize,
        value: value as u64,
    });
    Ok(plan)
}
