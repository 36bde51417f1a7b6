//! All configured tables of the program, as one snapshot.
//!
//! Workers read a published `TableSet` for a whole batch; the control plane
//! changes a spare copy and publishes it (see [`crate::control`]). The
//! learner tables are not here: workers write them, so they are shared.

use super::prefix::PrefixKey;
use super::selector::{ActionSelector, SelectorRef};
use super::{ExactTable, PrefixTable};
use crate::config::DataplaneConfig;
use crate::control::entry::*;
use crate::control::{TableError, TableId};

/// The default action of `ipv4_to_port_table` and `arpt_to_port_table`: the host port.
pub const HOST_PORT: u32 = 1;

/// Every configured table.
#[derive(Debug, Clone)]
pub struct TableSet {
    /// `arpt_to_port_table`.
    pub arpt_to_port: ExactTable<u32, SetDestVport>,
    /// `ipv4_to_port_table`.
    pub ipv4_to_port: ExactTable<u32, SetDestMacVport>,
    /// `write_dest_ip_table`.
    pub write_dest_ip: ExactTable<u32, NatAction>,
    /// `write_source_ip_table`.
    pub write_source_ip: ExactTable<u32, NatAction>,
    /// `tx_balance_tcp`, `tx_balance_udp` (by [`ServiceProto::index`]).
    pub tx_balance: [ExactTable<VipKey, LbAction>; 2],
    /// `set_meta_tcp`, `set_meta_udp`.
    pub set_meta: [ExactTable<VipKey, SetMetaAction>; 2],
    /// `as_sl3_tcp`, `as_sl3_udp`.
    pub selectors: [ActionSelector; 2],
    /// `acl_pod_ip_proto_table_egress`, `_ingress` (by [`PolicyDir::index`]).
    pub acl_pod_ip_proto: [PrefixTable<u32, AclAction>; 2],
    /// `acl_ipset_match_table_egress`, `_ingress`.
    pub acl_ipset_match: [PrefixTable<u8, IpsetAction>; 2],
    /// The range tables (by [`RangeTable::index`]).
    pub range_check: [ExactTable<u8, RangeAction>; 5],
    /// Port directions (missing ports face the host).
    pub ports: ExactTable<u32, PortDirection>,
}

fn op_on<K, A>(table: &mut ExactTable<K, A>, op: &Op<K, A>) -> Result<Op<K, A>, TableError>
where
    K: Copy + Eq + std::hash::Hash + std::fmt::Debug,
    A: Copy + std::fmt::Debug,
{
    match *op {
        Op::Insert(k, a) => table.insert(k, a).map(|()| Op::Delete(k)),
        Op::Modify(k, a) => table.modify(k, a).map(|old| Op::Modify(k, old)),
        Op::Delete(k) => table.delete(&k).map(|old| Op::Insert(k, old)),
        Op::SetDefault(_) | Op::ResetDefault if table.id().has_const_default() => {
            Err(TableError::ConstDefault { table: table.id() })
        }
        Op::SetDefault(a) => Ok(Op::SetDefault(table.set_default(a))),
        Op::ResetDefault => {
            let initial = table.initial_default();
            Ok(Op::SetDefault(table.set_default(initial)))
        }
    }
}

fn op_on_prefix<E, A>(
    table: &mut PrefixTable<E, A>,
    id: TableId,
    op: &Op<PrefixKey<E>, A>,
) -> Result<Op<PrefixKey<E>, A>, TableError>
where
    E: Copy + Eq + std::hash::Hash + std::fmt::Debug,
    A: Copy + std::fmt::Debug,
{
    match *op {
        Op::Insert(k, a) => table.insert(k, a).map(|()| Op::Delete(k)),
        Op::Modify(k, a) => table.modify(k, a).map(|old| Op::Modify(k, old)),
        Op::Delete(k) => table.delete(&k).map(|old| Op::Insert(k, old)),
        Op::SetDefault(_) | Op::ResetDefault => Err(TableError::ConstDefault { table: id }),
    }
}

fn check_ptr(table: TableId, what: &str, ptr: u32) -> Result<(), TableError> {
    if ptr >> 24 != 0 {
        return Err(TableError::InvalidValue {
            table,
            what: format!("{what} {ptr:#x} does not fit in 24 bits"),
        });
    }
    Ok(())
}

impl TableSet {
    /// Empty tables with the program's default actions.
    pub fn new(cfg: &DataplaneConfig) -> Self {
        let svc = |id| ExactTable::new(id, cfg.service_capacity, LbAction::NoAction);
        let meta = |id| ExactTable::new(id, cfg.service_capacity, SetMetaAction::NoAction);
        let sel = |id| {
            ActionSelector::new(
                id,
                cfg.selector_members,
                cfg.selector_groups,
                cfg.group_max_members,
            )
        };
        let pod = |id| PrefixTable::new(id, 8, cfg.policy_capacity, AclAction::NoAction);
        let ipset = |id| PrefixTable::new(id, 32, cfg.policy_capacity, IpsetAction::Deny);
        let rc = |id| ExactTable::new(id, cfg.policy_capacity, RangeAction::Deny);
        TableSet {
            arpt_to_port: ExactTable::new(
                TableId::ArptToPort,
                cfg.pod_capacity,
                SetDestVport { port: HOST_PORT },
            ),
            ipv4_to_port: ExactTable::new(
                TableId::Ipv4ToPort,
                cfg.pod_capacity,
                SetDestMacVport {
                    port: HOST_PORT,
                    dmac: [0; 6],
                },
            ),
            write_dest_ip: ExactTable::new(
                TableId::WriteDestIp,
                cfg.nat_capacity,
                NatAction::NoAction,
            ),
            write_source_ip: ExactTable::new(
                TableId::WriteSourceIp,
                cfg.nat_capacity,
                NatAction::NoAction,
            ),
            tx_balance: [svc(TableId::TxBalanceTcp), svc(TableId::TxBalanceUdp)],
            set_meta: [meta(TableId::SetMetaTcp), meta(TableId::SetMetaUdp)],
            selectors: [sel(ServiceProto::Tcp), sel(ServiceProto::Udp)],
            acl_pod_ip_proto: [
                pod(TableId::AclPodIpProtoEgress),
                pod(TableId::AclPodIpProtoIngress),
            ],
            acl_ipset_match: [
                ipset(TableId::AclIpsetMatchEgress),
                ipset(TableId::AclIpsetMatchIngress),
            ],
            range_check: [
                rc(TableId::TcpDportRc),
                rc(TableId::UdpDportRc),
                rc(TableId::SctpDportRc),
                rc(TableId::UdplDportRc),
                rc(TableId::IcmpTypeCodeCheck),
            ],
            ports: ExactTable::new(TableId::Ports, 1 << 16, PortDirection::HostToNet),
        }
    }

    /// Applies one operation; on success returns the operation that undoes
    /// it. On failure nothing changed. `Flow` operations are not table-set
    /// operations and are refused here.
    pub fn apply(&mut self, op: &TableOp) -> Result<TableOp, TableError> {
        Ok(match op {
            TableOp::ArptToPort(op) => TableOp::ArptToPort(op_on(&mut self.arpt_to_port, op)?),
            TableOp::Ipv4ToPort(op) => TableOp::Ipv4ToPort(op_on(&mut self.ipv4_to_port, op)?),
            TableOp::WriteDestIp(op) => {
                Self::check_nat_key(TableId::WriteDestIp, op)?;
                TableOp::WriteDestIp(op_on(&mut self.write_dest_ip, op)?)
            }
            TableOp::WriteSourceIp(op) => {
                Self::check_nat_key(TableId::WriteSourceIp, op)?;
                TableOp::WriteSourceIp(op_on(&mut self.write_source_ip, op)?)
            }
            &TableOp::TxBalance(p, ref op) => TableOp::TxBalance(p, self.apply_tx_balance(p, op)?),
            &TableOp::SetMeta(p, ref op) => {
                if let Op::Insert(_, SetMetaAction::SetKeyForReverseCt { ptr })
                | Op::Modify(_, SetMetaAction::SetKeyForReverseCt { ptr }) = *op
                {
                    check_ptr(self.set_meta[p.index()].id(), "pointer", ptr)?;
                }
                TableOp::SetMeta(p, op_on(&mut self.set_meta[p.index()], op)?)
            }
            &TableOp::AclPodIpProto(d, ref op) => {
                let t = &mut self.acl_pod_ip_proto[d.index()];
                let id = [TableId::AclPodIpProtoEgress, TableId::AclPodIpProtoIngress][d.index()];
                if let Op::Insert(
                    _,
                    AclAction::RangeCheckRef {
                        range_check_ref, ..
                    },
                )
                | Op::Modify(
                    _,
                    AclAction::RangeCheckRef {
                        range_check_ref, ..
                    },
                ) = *op
                {
                    if RangeTable::from_ref(range_check_ref).is_none() {
                        return Err(TableError::InvalidValue {
                            table: id,
                            what: format!("range_check_ref {range_check_ref} is not 1..=5"),
                        });
                    }
                }
                TableOp::AclPodIpProto(d, op_on_prefix(t, id, op)?)
            }
            &TableOp::AclIpsetMatch(d, ref op) => {
                let id = [TableId::AclIpsetMatchEgress, TableId::AclIpsetMatchIngress][d.index()];
                TableOp::AclIpsetMatch(
                    d,
                    op_on_prefix(&mut self.acl_ipset_match[d.index()], id, op)?,
                )
            }
            &TableOp::RangeCheck(r, ref op) => {
                TableOp::RangeCheck(r, op_on(&mut self.range_check[r.index()], op)?)
            }
            &TableOp::Member(s, ref op) => TableOp::Member(s, self.apply_member(s, op)?),
            &TableOp::Group(s, ref op) => TableOp::Group(s, self.apply_group(s, op)?),
            TableOp::Port(op) => TableOp::Port(op_on(&mut self.ports, op)?),
            TableOp::Flow(..) => {
                return Err(TableError::InvalidValue {
                    table: TableId::PinnedFlows,
                    what: "learned flows are not part of the table set".into(),
                })
            }
        })
    }

    /// Applies an operation that already succeeded, through [`Self::apply`],
    /// on an identical copy of these tables: it cannot fail, so the exact
    /// tables skip validation and undo (one hash probe each); the rest,
    /// whose side effects (reference counts, prefix lengths) live in
    /// [`Self::apply`], go through it.
    pub(crate) fn replay(&mut self, op: &TableOp) {
        fn on<K, A>(table: &mut ExactTable<K, A>, op: &Op<K, A>)
        where
            K: Copy + Eq + std::hash::Hash + std::fmt::Debug,
            A: Copy + std::fmt::Debug,
        {
            match *op {
                Op::Insert(k, a) | Op::Modify(k, a) => table.put(k, a),
                Op::Delete(k) => table.remove(&k),
                Op::SetDefault(a) => {
                    table.set_default(a);
                }
                Op::ResetDefault => {
                    table.set_default(table.initial_default());
                }
            }
        }
        match op {
            TableOp::ArptToPort(op) => on(&mut self.arpt_to_port, op),
            TableOp::Ipv4ToPort(op) => on(&mut self.ipv4_to_port, op),
            TableOp::WriteDestIp(op) => on(&mut self.write_dest_ip, op),
            TableOp::WriteSourceIp(op) => on(&mut self.write_source_ip, op),
            TableOp::SetMeta(p, op) => on(&mut self.set_meta[p.index()], op),
            TableOp::RangeCheck(r, op) => on(&mut self.range_check[r.index()], op),
            TableOp::Port(op) => on(&mut self.ports, op),
            op => {
                let replayed = self.apply(op);
                debug_assert!(replayed.is_ok(), "replay diverged: {replayed:?}");
            }
        }
    }

    fn check_nat_key(id: TableId, op: &Op<u32, NatAction>) -> Result<(), TableError> {
        match op {
            Op::Insert(k, _) | Op::Modify(k, _) | Op::Delete(k) => check_ptr(id, "pointer", *k),
            Op::SetDefault(_) | Op::ResetDefault => Ok(()),
        }
    }

    fn apply_tx_balance(
        &mut self,
        p: ServiceProto,
        op: &Op<VipKey, LbAction>,
    ) -> Result<Op<VipKey, LbAction>, TableError> {
        let selector = &mut self.selectors[p.index()];
        let target = |a: &LbAction| match a {
            LbAction::Select(r) => Some(*r),
            LbAction::NoAction => None,
        };
        if let Op::Insert(_, a) | Op::Modify(_, a) = op {
            if let Some(r) = target(a) {
                if !selector.contains(r) {
                    return Err(TableError::NotFound {
                        table: p.table(),
                        key: format!("{r:?}"),
                    });
                }
            }
        }
        let table = &mut self.tx_balance[p.index()];
        let undo = op_on(table, op)?;
        // Keep the selector's reference counts in step with the entries.
        match (op, &undo) {
            (Op::Insert(_, a), _) => {
                if let Some(r) = target(a) {
                    selector.count_entry_ref(r, true);
                }
            }
            (Op::Modify(_, a), Op::Modify(_, old)) => {
                if let Some(r) = target(old) {
                    selector.count_entry_ref(r, false);
                }
                if let Some(r) = target(a) {
                    selector.count_entry_ref(r, true);
                }
            }
            (Op::Delete(_), Op::Insert(_, old)) => {
                if let Some(r) = target(old) {
                    selector.count_entry_ref(r, false);
                }
            }
            _ => {}
        }
        Ok(undo)
    }

    fn apply_member(
        &mut self,
        s: SelectorId,
        op: &Op<u32, MemberAction>,
    ) -> Result<Op<u32, MemberAction>, TableError> {
        let selector = &mut self.selectors[s.index()];
        if let Op::Insert(_, MemberAction::SetDefaultLbDest { ptr })
        | Op::Modify(_, MemberAction::SetDefaultLbDest { ptr }) = *op
        {
            check_ptr(s.table(), "pointer", ptr)?;
        }
        match *op {
            Op::Insert(id, a) => selector
                .insert_member(id, a.encode())
                .map(|()| Op::Delete(id)),
            Op::Modify(id, a) => selector
                .modify_member(id, a.encode())
                .map(|old| Op::Modify(id, MemberAction::decode(old))),
            Op::Delete(id) => selector
                .delete_member(id)
                .map(|old| Op::Insert(id, MemberAction::decode(old))),
            Op::SetDefault(_) | Op::ResetDefault => {
                Err(TableError::ConstDefault { table: s.table() })
            }
        }
    }

    fn apply_group(
        &mut self,
        s: SelectorId,
        op: &Op<u32, GroupSpec>,
    ) -> Result<Op<u32, GroupSpec>, TableError> {
        let selector = &mut self.selectors[s.index()];
        let spec = |g: super::SelectorGroup| GroupSpec {
            members: g.members,
            max_size: g.max_size,
        };
        match op {
            &Op::Insert(id, ref g) => selector
                .insert_group(id, g.members.clone(), g.max_size)
                .map(|()| Op::Delete(id)),
            &Op::Modify(id, ref g) => selector
                .modify_group(id, g.members.clone(), g.max_size)
                .map(|old| Op::Modify(id, spec(old))),
            &Op::Delete(id) => selector
                .delete_group(id)
                .map(|old| Op::Insert(id, spec(old))),
            Op::SetDefault(_) | Op::ResetDefault => {
                Err(TableError::ConstDefault { table: s.table() })
            }
        }
    }

    /// Removes every entry, member and group, and restores default actions
    /// (ports are kept: they belong to the target, not the program).
    pub fn clear_program_state(&mut self) {
        self.arpt_to_port.clear();
        self.ipv4_to_port.clear();
        self.write_dest_ip.clear();
        self.write_source_ip.clear();
        self.tx_balance.iter_mut().for_each(|t| t.clear());
        self.set_meta.iter_mut().for_each(|t| t.clear());
        self.selectors.iter_mut().for_each(|t| t.clear());
        self.acl_pod_ip_proto.iter_mut().for_each(|t| t.clear());
        self.acl_ipset_match.iter_mut().for_each(|t| t.clear());
        self.range_check.iter_mut().for_each(|t| t.clear());
    }

    /// The selector a `tx_balance` entry points at.
    pub fn selector(&self, p: ServiceProto) -> &ActionSelector {
        &self.selectors[p.index()]
    }

    /// True when `r` names an existing member or group of selector `p`.
    pub fn selector_has(&self, p: ServiceProto, r: SelectorRef) -> bool {
        self.selectors[p.index()].contains(r)
    }
}
