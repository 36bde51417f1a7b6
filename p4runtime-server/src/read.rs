//! Read (§13): dataplane state back to P4Runtime entities, in canonical
//! form. Supports wildcards (table id 0, member/group/counter id 0, no
//! index), default entries (`is_default_action`), one-shot entries as
//! written, and the learned flows of `pinned_flows*`.

use std::collections::HashMap;

use dataplane::control::{FlowDir, LbAction, MemberAction, ServiceProto};
use dataplane::tables::selector::SelectorRef;
use dataplane::tables::TableSet;
use dataplane::Control;

use crate::binding::{Binding, BoundTable, CounterKind, TableKind};
use crate::error::P4rtError;
use crate::proto::p4::v1::{
    action_profile_group, entity, table_action, table_entry, ActionProfileGroup,
    ActionProfileMember, CounterData, CounterEntry, Entity, Index, TableAction, TableEntry,
};
use crate::shadow::{Shadow, HIDDEN_BASE};
use crate::translate::{decode_key, encode_action, encode_key, DpAction, Key};
use crate::write::entity_kind;

/// What an entry does, as Read reports it.
enum EntryAction {
    Direct(DpAction),
    Select(SelectorRef),
    OneShot(crate::proto::p4::v1::ActionProfileActionSet),
}

/// Every entity matching the (possibly wildcard) `e`.
pub fn read(
    b: &Binding,
    control: &Control,
    shots: &Shadow,
    e: &Entity,
) -> Result<Vec<Entity>, P4rtError> {
    let Some(e) = e.entity.as_ref() else {
        return Err(P4rtError::InvalidArgument("read of an empty entity".into()));
    };
    match e {
        entity::Entity::TableEntry(te) => read_table_entries(b, control, shots, te),
        entity::Entity::ActionProfileMember(m) => read_members(b, control, m),
        entity::Entity::ActionProfileGroup(g) => read_groups(b, control, g),
        entity::Entity::CounterEntry(c) => read_counters(b, control, c),
        other => Err(P4rtError::Unimplemented(format!(
            "{} entities are not supported by this target",
            entity_kind(other)
        ))),
    }
}

fn wrap(e: entity::Entity) -> Entity {
    Entity { entity: Some(e) }
}

fn read_table_entries(
    b: &Binding,
    control: &Control,
    shots: &Shadow,
    te: &TableEntry,
) -> Result<Vec<Entity>, P4rtError> {
    let tables: Vec<&BoundTable> = if te.table_id == 0 {
        if !te.r#match.is_empty() {
            return Err(P4rtError::InvalidArgument(
                "table_entry read: match fields need a table_id".into(),
            ));
        }
        b.tables().collect()
    } else {
        vec![b.table(te.table_id).ok_or_else(|| {
            P4rtError::NotFound(format!(
                "table_entry read: table id {} is not in the P4Info",
                te.table_id
            ))
        })?]
    };
    let set = control.tables();
    let mut out = Vec::new();
    for t in tables {
        let what = format!("table_entry read of {}", t.name);
        if te.is_default_action {
            let action = default_action(&set, t.kind);
            let action = encode_action(b, t, &action);
            out.push(wrap(entity::Entity::TableEntry(Box::new(TableEntry {
                table_id: t.id,
                action: action.map(|a| TableAction {
                    r#type: Some(table_action::Type::Action(a)),
                }),
                is_default_action: true,
                ..Default::default()
            }))));
            continue;
        }
        let filter = if te.r#match.is_empty() {
            None
        } else {
            Some(decode_key(t, &te.r#match, &what)?)
        };
        let idle = if te.time_since_last_hit.is_some() {
            flow_idle(control, t.kind)
        } else {
            Default::default()
        };
        for (key, action) in entries(&set, control, shots, t.kind) {
            if filter.is_some_and(|f| f != key) {
                continue;
            }
            let time_since_last_hit = idle.get(&key).map(|ms| table_entry::IdleTimeout {
                elapsed_ns: i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
            });
            let action = match action {
                EntryAction::Direct(a) => encode_action(b, t, &a).map(table_action::Type::Action),
                EntryAction::Select(SelectorRef::Member(m)) => {
                    Some(table_action::Type::ActionProfileMemberId(m))
                }
                EntryAction::Select(SelectorRef::Group(g)) => {
                    Some(table_action::Type::ActionProfileGroupId(g))
                }
                EntryAction::OneShot(set) => Some(table_action::Type::ActionProfileActionSet(set)),
            };
            let (controller_metadata, metadata) =
                shots.meta(t.id, &key).cloned().unwrap_or_default();
            let mut entry = TableEntry {
                table_id: t.id,
                r#match: encode_key(t, &key),
                action: action.map(|a| TableAction { r#type: Some(a) }),
                time_since_last_hit,
                metadata,
                ..Default::default()
            };
            // Deprecated since v1.4 (in favour of `metadata`), still honoured.
            #[allow(deprecated)]
            {
                entry.controller_metadata = controller_metadata;
            }
            out.push(wrap(entity::Entity::TableEntry(Box::new(entry))));
        }
    }
    Ok(out)
}

/// Milliseconds since the last hit of every learned flow of a learner table.
fn flow_idle(control: &Control, kind: TableKind) -> HashMap<Key, u64> {
    match kind {
        TableKind::Flows(d) => control
            .flows(d)
            .into_iter()
            .map(|f| (Key::Flow(f.key), f.idle_ms))
            .collect(),
        _ => HashMap::new(),
    }
}

fn default_action(set: &TableSet, kind: TableKind) -> DpAction {
    match kind {
        TableKind::ArptToPort => DpAction::DestVport(set.arpt_to_port.default_action()),
        TableKind::Ipv4ToPort => DpAction::DestMacVport(set.ipv4_to_port.default_action()),
        TableKind::WriteDestIp => DpAction::Nat(set.write_dest_ip.default_action()),
        TableKind::WriteSourceIp => DpAction::Nat(set.write_source_ip.default_action()),
        // The selector tables' default is a direct NoAction.
        TableKind::TxBalance(_) => DpAction::Member(MemberAction::NoAction),
        TableKind::SetMeta(p) => DpAction::SetMeta(set.set_meta[p.index()].default_action()),
        TableKind::AclPodIpProto(d) => {
            DpAction::Acl(set.acl_pod_ip_proto[d.index()].default_action())
        }
        TableKind::AclIpsetMatch(d) => {
            DpAction::Ipset(set.acl_ipset_match[d.index()].default_action())
        }
        TableKind::RangeCheck(r) => DpAction::Range(set.range_check[r.index()].default_action()),
        TableKind::Flows(_) => DpAction::FlowMiss,
    }
}

fn entries(
    set: &TableSet,
    control: &Control,
    shots: &Shadow,
    kind: TableKind,
) -> Vec<(Key, EntryAction)> {
    use EntryAction::Direct;
    match kind {
        TableKind::ArptToPort => set
            .arpt_to_port
            .iter()
            .map(|(k, a)| (Key::U32(*k), Direct(DpAction::DestVport(*a))))
            .collect(),
        TableKind::Ipv4ToPort => set
            .ipv4_to_port
            .iter()
            .map(|(k, a)| (Key::U32(*k), Direct(DpAction::DestMacVport(*a))))
            .collect(),
        TableKind::WriteDestIp => set
            .write_dest_ip
            .iter()
            .map(|(k, a)| (Key::U32(*k), Direct(DpAction::Nat(*a))))
            .collect(),
        TableKind::WriteSourceIp => set
            .write_source_ip
            .iter()
            .map(|(k, a)| (Key::U32(*k), Direct(DpAction::Nat(*a))))
            .collect(),
        TableKind::TxBalance(p) => set.tx_balance[p.index()]
            .iter()
            .map(|(k, a)| {
                let action = match a {
                    LbAction::NoAction => Direct(DpAction::Member(MemberAction::NoAction)),
                    LbAction::Select(SelectorRef::Group(g)) => match shots.get(p, k) {
                        Some(s) if s.group == *g => EntryAction::OneShot(s.set.clone()),
                        _ => EntryAction::Select(SelectorRef::Group(*g)),
                    },
                    LbAction::Select(r) => EntryAction::Select(*r),
                };
                (Key::Vip(*k), action)
            })
            .collect(),
        TableKind::SetMeta(p) => set.set_meta[p.index()]
            .iter()
            .map(|(k, a)| (Key::Vip(*k), Direct(DpAction::SetMeta(*a))))
            .collect(),
        TableKind::AclPodIpProto(d) => set.acl_pod_ip_proto[d.index()]
            .iter()
            .map(|(k, a)| (Key::PodProto(*k), Direct(DpAction::Acl(*a))))
            .collect(),
        TableKind::AclIpsetMatch(d) => set.acl_ipset_match[d.index()]
            .iter()
            .map(|(k, a)| (Key::Ipset(*k), Direct(DpAction::Ipset(*a))))
            .collect(),
        TableKind::RangeCheck(r) => set.range_check[r.index()]
            .iter()
            .map(|(k, a)| (Key::PolId(*k), Direct(DpAction::Range(*a))))
            .collect(),
        TableKind::Flows(d) => flows(control, d),
    }
}

fn flows(control: &Control, d: FlowDir) -> Vec<(Key, EntryAction)> {
    control
        .flows(d)
        .into_iter()
        .map(|f| {
            (
                Key::Flow(f.key),
                EntryAction::Direct(DpAction::FlowHit(f.ptr)),
            )
        })
        .collect()
}

fn profiles_of(
    b: &Binding,
    id: u32,
    what: &str,
) -> Result<Vec<(u32, ServiceProto, u32)>, P4rtError> {
    if id == 0 {
        return Ok(b
            .profiles()
            .map(|p| (p.id, p.selector, p.table_id))
            .collect());
    }
    let p = b.profile(id).ok_or_else(|| {
        P4rtError::NotFound(format!(
            "{what}: action profile id {id} is not in the P4Info"
        ))
    })?;
    Ok(vec![(p.id, p.selector, p.table_id)])
}

fn read_members(
    b: &Binding,
    control: &Control,
    m: &ActionProfileMember,
) -> Result<Vec<Entity>, P4rtError> {
    let set = control.tables();
    let mut out = Vec::new();
    for (pid, sel, table_id) in profiles_of(b, m.action_profile_id, "action_profile_member read")? {
        let Some(t) = b.table(table_id) else { continue };
        let mut members: Vec<(u32, u32)> = set
            .selector(sel)
            .members()
            .filter(|(id, _)| *id < HIDDEN_BASE && (m.member_id == 0 || *id == m.member_id))
            .collect();
        members.sort_unstable();
        for (id, data) in members {
            let action = encode_action(b, t, &DpAction::Member(MemberAction::decode(data)));
            out.push(wrap(entity::Entity::ActionProfileMember(
                ActionProfileMember {
                    action_profile_id: pid,
                    member_id: id,
                    action,
                },
            )));
        }
    }
    Ok(out)
}

fn read_groups(
    b: &Binding,
    control: &Control,
    g: &ActionProfileGroup,
) -> Result<Vec<Entity>, P4rtError> {
    let set = control.tables();
    let mut out = Vec::new();
    for (pid, sel, _) in profiles_of(b, g.action_profile_id, "action_profile_group read")? {
        let mut groups: Vec<_> = set
            .selector(sel)
            .groups()
            .filter(|(id, _)| *id < HIDDEN_BASE && (g.group_id == 0 || *id == g.group_id))
            .collect();
        groups.sort_unstable_by_key(|(id, _)| *id);
        for (id, grp) in groups {
            out.push(wrap(entity::Entity::ActionProfileGroup(
                ActionProfileGroup {
                    action_profile_id: pid,
                    group_id: id,
                    members: grp
                        .members
                        .iter()
                        .map(|(m, w)| action_profile_group::Member {
                            member_id: *m,
                            weight: i32::try_from(*w).unwrap_or(i32::MAX),
                            watch_kind: None,
                        })
                        .collect(),
                    max_size: i32::try_from(grp.max_size).unwrap_or(i32::MAX),
                },
            )));
        }
    }
    Ok(out)
}

fn read_counters(
    b: &Binding,
    control: &Control,
    c: &CounterEntry,
) -> Result<Vec<Entity>, P4rtError> {
    let counters: Vec<_> = if c.counter_id == 0 {
        b.counters().collect()
    } else {
        vec![b.counter(c.counter_id).ok_or_else(|| {
            P4rtError::NotFound(format!(
                "counter_entry read: counter id {} is not in the P4Info",
                c.counter_id
            ))
        })?]
    };
    let mut out = Vec::new();
    for bc in counters {
        let indices: Vec<i64> = match &c.index {
            Some(Index { index }) => {
                if *index < 0 || *index >= bc.size {
                    return Err(P4rtError::OutOfRange(format!(
                        "counter_entry read of {}: index {index} is outside 0..{}",
                        bc.name, bc.size
                    )));
                }
                vec![*index]
            }
            None => (0..bc.size).collect(),
        };
        for i in indices {
            let (p, bytes) = control.counter(i as usize).unwrap_or((0, 0));
            let data = match bc.kind {
                CounterKind::Packets => CounterData {
                    packet_count: p as i64,
                    byte_count: 0,
                },
                CounterKind::Bytes => CounterData {
                    packet_count: 0,
                    byte_count: bytes as i64,
                },
            };
            out.push(wrap(entity::Entity::CounterEntry(CounterEntry {
                counter_id: bc.id,
                index: Some(Index { index: i }),
                data: Some(data),
            })));
        }
    }
    Ok(out)
}
