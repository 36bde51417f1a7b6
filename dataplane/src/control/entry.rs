//! Typed keys, actions and operations of every table of the k8s program.
//!
//! Names follow the P4 program (`PIPELINE.md`): each table has its own key
//! and action types, so a write that does not fit a table cannot be built.

use std::fmt;

use crate::tables::prefix::PrefixKey;
use crate::tables::selector::SelectorRef;
use crate::tables::FlowKey;

/// Every table of the program, plus the target's port table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TableId {
    /// `arpt_to_port_table`: ARP target IP -> port.
    ArptToPort,
    /// `ipv4_to_port_table`: destination IP -> port and MAC.
    Ipv4ToPort,
    /// `write_dest_ip_table`: DNAT pointer -> endpoint IP and port.
    WriteDestIp,
    /// `write_source_ip_table`: SNAT pointer -> VIP and port.
    WriteSourceIp,
    /// `tx_balance_tcp`: (VIP, port) -> selector.
    TxBalanceTcp,
    /// `tx_balance_udp`: (VIP, port) -> selector.
    TxBalanceUdp,
    /// `set_meta_tcp`: (endpoint IP, port) -> SNAT pointer.
    SetMetaTcp,
    /// `set_meta_udp`: (endpoint IP, port) -> SNAT pointer.
    SetMetaUdp,
    /// `acl_pod_ip_proto_table_egress`.
    AclPodIpProtoEgress,
    /// `acl_pod_ip_proto_table_ingress`.
    AclPodIpProtoIngress,
    /// `acl_ipset_match_table_egress`.
    AclIpsetMatchEgress,
    /// `acl_ipset_match_table_ingress`.
    AclIpsetMatchIngress,
    /// `tcp_dport_rc_table`.
    TcpDportRc,
    /// `udp_dport_rc_table`.
    UdpDportRc,
    /// `sctp_dport_rc_table`.
    SctpDportRc,
    /// `udpl_dport_rc_table`.
    UdplDportRc,
    /// `icmp_type_code_check_table`.
    IcmpTypeCodeCheck,
    /// `pinned_flows` (learner).
    PinnedFlows,
    /// `pinned_flows_reverse` (learner).
    PinnedFlowsReverse,
    /// Action selector `as_sl3_tcp` (members and groups).
    AsSl3Tcp,
    /// Action selector `as_sl3_udp` (members and groups).
    AsSl3Udp,
    /// The target's ports and their directions.
    Ports,
}

impl TableId {
    /// Every table, in counter order.
    pub const ALL: [TableId; 22] = [
        TableId::ArptToPort,
        TableId::Ipv4ToPort,
        TableId::WriteDestIp,
        TableId::WriteSourceIp,
        TableId::TxBalanceTcp,
        TableId::TxBalanceUdp,
        TableId::SetMetaTcp,
        TableId::SetMetaUdp,
        TableId::AclPodIpProtoEgress,
        TableId::AclPodIpProtoIngress,
        TableId::AclIpsetMatchEgress,
        TableId::AclIpsetMatchIngress,
        TableId::TcpDportRc,
        TableId::UdpDportRc,
        TableId::SctpDportRc,
        TableId::UdplDportRc,
        TableId::IcmpTypeCodeCheck,
        TableId::PinnedFlows,
        TableId::PinnedFlowsReverse,
        TableId::AsSl3Tcp,
        TableId::AsSl3Udp,
        TableId::Ports,
    ];

    /// The program's name of the table (its P4Info alias).
    pub const fn name(self) -> &'static str {
        match self {
            TableId::ArptToPort => "arpt_to_port_table",
            TableId::Ipv4ToPort => "ipv4_to_port_table",
            TableId::WriteDestIp => "write_dest_ip_table",
            TableId::WriteSourceIp => "write_source_ip_table",
            TableId::TxBalanceTcp => "tx_balance_tcp",
            TableId::TxBalanceUdp => "tx_balance_udp",
            TableId::SetMetaTcp => "set_meta_tcp",
            TableId::SetMetaUdp => "set_meta_udp",
            TableId::AclPodIpProtoEgress => "acl_pod_ip_proto_table_egress",
            TableId::AclPodIpProtoIngress => "acl_pod_ip_proto_table_ingress",
            TableId::AclIpsetMatchEgress => "acl_ipset_match_table_egress",
            TableId::AclIpsetMatchIngress => "acl_ipset_match_table_ingress",
            TableId::TcpDportRc => "tcp_dport_rc_table",
            TableId::UdpDportRc => "udp_dport_rc_table",
            TableId::SctpDportRc => "sctp_dport_rc_table",
            TableId::UdplDportRc => "udpl_dport_rc_table",
            TableId::IcmpTypeCodeCheck => "icmp_type_code_check_table",
            TableId::PinnedFlows => "pinned_flows",
            TableId::PinnedFlowsReverse => "pinned_flows_reverse",
            TableId::AsSl3Tcp => "as_sl3_tcp",
            TableId::AsSl3Udp => "as_sl3_udp",
            TableId::Ports => "ports",
        }
    }

    /// True when the program fixes the table's default action (`const
    /// default_action`), so it cannot be changed.
    pub const fn has_const_default(self) -> bool {
        !matches!(
            self,
            TableId::WriteDestIp | TableId::WriteSourceIp | TableId::Ports
        )
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The two service protocols, which have their own tables and selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceProto {
    /// TCP: `tx_balance_tcp`, `set_meta_tcp`, `as_sl3_tcp`.
    Tcp,
    /// UDP: `tx_balance_udp`, `set_meta_udp`, `as_sl3_udp`.
    Udp,
}

/// The action selectors.
pub type SelectorId = ServiceProto;

impl ServiceProto {
    /// Index into per-protocol arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The selector's table id.
    pub const fn table(self) -> TableId {
        match self {
            ServiceProto::Tcp => TableId::AsSl3Tcp,
            ServiceProto::Udp => TableId::AsSl3Udp,
        }
    }
}

/// Policy direction: egress (from the pod, pass 0) or ingress (to the pod, pass 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyDir {
    /// Traffic leaving a pod.
    Egress,
    /// Traffic entering a pod.
    Ingress,
}

impl PolicyDir {
    /// Index into per-direction arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// The protocol of a range-check table (`range_check_ref` 1..=5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeTable {
    /// `tcp_dport_rc_table` (ref 1).
    Tcp,
    /// `udp_dport_rc_table` (ref 2).
    Udp,
    /// `sctp_dport_rc_table` (ref 3).
    Sctp,
    /// `udpl_dport_rc_table` (ref 4).
    UdpLite,
    /// `icmp_type_code_check_table` (ref 5).
    Icmp,
}

impl RangeTable {
    /// Index into per-protocol arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The table behind a `range_check_ref` value.
    pub const fn from_ref(r: u8) -> Option<RangeTable> {
        match r {
            1 => Some(RangeTable::Tcp),
            2 => Some(RangeTable::Udp),
            3 => Some(RangeTable::Sctp),
            4 => Some(RangeTable::UdpLite),
            5 => Some(RangeTable::Icmp),
            _ => None,
        }
    }

    /// The table id.
    pub const fn table(self) -> TableId {
        match self {
            RangeTable::Tcp => TableId::TcpDportRc,
            RangeTable::Udp => TableId::UdpDportRc,
            RangeTable::Sctp => TableId::SctpDportRc,
            RangeTable::UdpLite => TableId::UdplDportRc,
            RangeTable::Icmp => TableId::IcmpTypeCodeCheck,
        }
    }
}

/// Which learner table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowDir {
    /// `pinned_flows`: client -> VIP packets, DNAT pointer.
    Forward,
    /// `pinned_flows_reverse`: endpoint -> client packets, SNAT pointer.
    Reverse,
}

/// A service address: (IP, L4 port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VipKey {
    /// IPv4 address.
    pub ip: u32,
    /// TCP/UDP port.
    pub port: u16,
}

/// `set_dest_vport(p)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetDestVport {
    /// Egress port.
    pub port: u32,
}

/// `set_dest_mac_vport(p, new_dmac)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetDestMacVport {
    /// Egress port.
    pub port: u32,
    /// New destination MAC; all zero leaves the frame's MACs alone.
    pub dmac: [u8; 6],
}

/// Actions of `write_dest_ip_table` / `write_source_ip_table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatAction {
    /// `update_dst_ip` / `update_src_ip`: rewrite address and port.
    Rewrite {
        /// New address.
        ip: u32,
        /// New L4 port.
        port: u16,
    },
    /// `NoAction`.
    NoAction,
}

/// Actions of `tx_balance_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbAction {
    /// Through the action selector: a member or a group.
    Select(SelectorRef),
    /// `NoAction`.
    NoAction,
}

/// A selector member's action: `set_default_lb_dest(ptr)` or `NoAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    /// `set_default_lb_dest(ptr)`: the endpoint's DNAT pointer.
    SetDefaultLbDest {
        /// 24-bit pointer into `write_dest_ip_table`.
        ptr: u32,
    },
    /// `NoAction`.
    NoAction,
}

impl MemberAction {
    /// Member data as stored in the selector (`u32::MAX` for `NoAction`).
    pub const fn encode(self) -> u32 {
        match self {
            MemberAction::SetDefaultLbDest { ptr } => ptr,
            MemberAction::NoAction => u32::MAX,
        }
    }

    /// The member action stored as `v`.
    pub const fn decode(v: u32) -> Self {
        if v == u32::MAX {
            MemberAction::NoAction
        } else {
            MemberAction::SetDefaultLbDest { ptr: v }
        }
    }
}

/// Actions of `set_meta_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetMetaAction {
    /// `set_key_for_reverse_ct(ptr)`: learn the reverse flow with this SNAT pointer.
    SetKeyForReverseCt {
        /// 24-bit pointer into `write_source_ip_table`.
        ptr: u32,
    },
    /// `NoAction`.
    NoAction,
}

/// Actions of `acl_pod_ip_proto_table_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclAction {
    /// `set_status_match_ipset_only(pol_id)`.
    MatchIpsetOnly {
        /// Policy id.
        pol_id: u8,
    },
    /// `set_range_check_ref(pol_id, range_check_ref)`.
    RangeCheckRef {
        /// Policy id.
        pol_id: u8,
        /// 1 TCP, 2 UDP, 3 SCTP, 4 UDP-Lite, 5 ICMP.
        range_check_ref: u8,
    },
    /// `set_status_deny_all`.
    DenyAll,
    /// `NoAction`: allow.
    NoAction,
}

/// Actions of `acl_ipset_match_table_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpsetAction {
    /// `acl_deny`.
    Deny,
    /// `set_ipset_match_result(ipset_matched_mask)`.
    SetMatchResult {
        /// Bit i: rule i matched the peer CIDR.
        mask: u8,
    },
}

/// Actions of the range-check tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAction {
    /// `acl_deny` (`udp_acl_deny` in the UDP table).
    Deny,
    /// `do_range_check_*(min0, max0, ..., min7, max7)`.
    Check {
        /// (min, max) of rule i, inclusive.
        ranges: [(u16, u16); 8],
    },
}

/// Direction of a port (PNA `PNA_Direction_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortDirection {
    /// Ports facing pods and the host.
    #[default]
    HostToNet,
    /// Ports facing the network.
    NetToHost,
}

/// A group as written: members with weights and a size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// (member id, weight).
    pub members: Vec<(u32, u32)>,
    /// Most members (0: the selector's limit).
    pub max_size: u32,
}

/// A learned flow as written or read by the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowAction {
    /// Hit action's pointer.
    pub ptr: u32,
    /// Expiry class.
    pub class: u8,
}

/// One operation on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<K, A> {
    /// Add an entry; fails if the key exists.
    Insert(K, A),
    /// Change an entry's action; fails if the key is missing.
    Modify(K, A),
    /// Remove an entry; fails if the key is missing.
    Delete(K),
    /// Set the default action (tables without a const default only).
    SetDefault(A),
    /// Restore the program's initial default action (same tables).
    ResetDefault,
}

/// One update of the control API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableOp {
    /// `arpt_to_port_table`, keyed by ARP target IP.
    ArptToPort(Op<u32, SetDestVport>),
    /// `ipv4_to_port_table`, keyed by destination IP.
    Ipv4ToPort(Op<u32, SetDestMacVport>),
    /// `write_dest_ip_table`, keyed by the 24-bit DNAT pointer.
    WriteDestIp(Op<u32, NatAction>),
    /// `write_source_ip_table`, keyed by the 24-bit SNAT pointer.
    WriteSourceIp(Op<u32, NatAction>),
    /// `tx_balance_tcp` / `tx_balance_udp`.
    TxBalance(ServiceProto, Op<VipKey, LbAction>),
    /// `set_meta_tcp` / `set_meta_udp`.
    SetMeta(ServiceProto, Op<VipKey, SetMetaAction>),
    /// `acl_pod_ip_proto_table_*`: pod IP exact, protocol as an 8-bit prefix.
    AclPodIpProto(PolicyDir, Op<PrefixKey<u32>, AclAction>),
    /// `acl_ipset_match_table_*`: policy id exact, peer IP as a 32-bit prefix.
    AclIpsetMatch(PolicyDir, Op<PrefixKey<u8>, IpsetAction>),
    /// The range-check tables, keyed by policy id.
    RangeCheck(RangeTable, Op<u8, RangeAction>),
    /// Action-selector members, keyed by member id.
    Member(SelectorId, Op<u32, MemberAction>),
    /// Action-selector groups, keyed by group id.
    Group(SelectorId, Op<u32, GroupSpec>),
    /// Learned flows (the learner tables), written by the control plane.
    Flow(FlowDir, Op<FlowKey, FlowAction>),
    /// Port directions.
    Port(Op<u32, PortDirection>),
}
