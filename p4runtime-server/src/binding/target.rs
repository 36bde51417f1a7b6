//! What the target implements: the k8s program's tables (match fields by
//! name, width and kind; actions), actions (parameters by name and width),
//! action selectors and counters, and the dataplane capacity behind each
//! table. The binding (`super`) checks a P4Info against this.

use dataplane::control::{FlowDir, PolicyDir, RangeTable, ServiceProto};
use dataplane::DataplaneConfig;

/// The prefix of every object of the k8s program.
pub const CONTROL: &str = "k8s_dp_control";

/// A match kind the target implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// Exact match.
    Exact,
    /// Longest prefix match.
    Lpm,
}

/// The dataplane table behind a P4 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// `arpt_to_port_table`.
    ArptToPort,
    /// `ipv4_to_port_table`.
    Ipv4ToPort,
    /// `write_dest_ip_table`.
    WriteDestIp,
    /// `write_source_ip_table`.
    WriteSourceIp,
    /// `tx_balance_tcp` / `tx_balance_udp` (indirect: action selector).
    TxBalance(ServiceProto),
    /// `set_meta_tcp` / `set_meta_udp`.
    SetMeta(ServiceProto),
    /// `acl_pod_ip_proto_table_egress` / `_ingress`.
    AclPodIpProto(PolicyDir),
    /// `acl_ipset_match_table_egress` / `_ingress`.
    AclIpsetMatch(PolicyDir),
    /// The range-check tables.
    RangeCheck(RangeTable),
    /// `pinned_flows` / `pinned_flows_reverse` (learner tables).
    Flows(FlowDir),
}

/// The dataplane action behind a P4 action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// `NoAction`.
    NoAction,
    /// `set_dest_vport(p)`.
    SetDestVport,
    /// `set_dest_mac_vport(p, new_dmac)`.
    SetDestMacVport,
    /// `update_dst_ip(new_ip, new_port)`.
    UpdateDstIp,
    /// `update_src_ip(new_ip, new_port)`.
    UpdateSrcIp,
    /// `pinned_flows_hit(ptr)` / `pinned_flows_reverse_hit(ptr)`.
    FlowHit(FlowDir),
    /// `pinned_flows_miss` / `pinned_flows_reverse_miss`.
    FlowMiss(FlowDir),
    /// `set_default_lb_dest(ptr)`.
    SetDefaultLbDest,
    /// `set_key_for_reverse_ct(ptr)`.
    SetKeyForReverseCt,
    /// `acl_deny`.
    AclDeny,
    /// `udp_acl_deny`.
    UdpAclDeny,
    /// `set_range_check_ref(pol_id, range_check_ref)`.
    SetRangeCheckRef,
    /// `set_status_match_ipset_only(pol_id)`.
    SetStatusMatchIpsetOnly,
    /// `set_status_deny_all`.
    SetStatusDenyAll,
    /// `do_range_check_*` / `do_icmp_type_code_check` (16 params).
    DoRangeCheck(RangeTable),
    /// `set_ipset_match_result(ipset_matched_mask)`.
    SetIpsetMatchResult,
}

/// Where an action may be used (P4Info `ActionRef.scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Entries and the default action.
    TableAndDefault,
    /// Entries only.
    TableOnly,
    /// The default action only.
    DefaultOnly,
}

/// A counter the target implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterKind {
    /// `pkt_cntr` (packets).
    Packets,
    /// `byte_cntr` (bytes).
    Bytes,
}

/// What the dataplane expects of one table.
pub(super) struct TableSpec {
    pub(super) name: &'static str,
    pub(super) kind: TableKind,
    pub(super) fields: &'static [(&'static str, u32, MatchKind)],
    pub(super) actions: &'static [ActionKind],
}

use ActionKind as A;
use MatchKind::{Exact, Lpm};

const IP_PORT_TCP: &[(&str, u32, MatchKind)] = &[
    ("hdr.ipv4.dst_addr", 32, Exact),
    ("hdr.tcp.dst_port", 16, Exact),
];
const IP_PORT_UDP: &[(&str, u32, MatchKind)] = &[
    ("hdr.ipv4.dst_addr", 32, Exact),
    ("hdr.udp.dst_port", 16, Exact),
];
const FIVE_TUPLE: &[(&str, u32, MatchKind)] = &[
    ("meta.src_ip", 32, Exact),
    ("meta.dst_ip", 32, Exact),
    ("hdr.ipv4.protocol", 8, Exact),
    ("meta.src_port", 16, Exact),
    ("meta.dst_port", 16, Exact),
];
const POL_ID: &[(&str, u32, MatchKind)] = &[("meta.acl_pol_id", 8, Exact)];
const POD_ACTIONS: &[ActionKind] = &[
    A::SetStatusMatchIpsetOnly,
    A::SetRangeCheckRef,
    A::SetStatusDenyAll,
    A::NoAction,
];

pub(super) const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "arpt_to_port_table",
        kind: TableKind::ArptToPort,
        fields: &[("hdr.arp.tpa", 32, Exact)],
        actions: &[A::SetDestVport],
    },
    TableSpec {
        name: "ipv4_to_port_table",
        kind: TableKind::Ipv4ToPort,
        fields: &[("hdr.ipv4.dst_addr", 32, Exact)],
        actions: &[A::SetDestMacVport],
    },
    TableSpec {
        name: "write_dest_ip_table",
        kind: TableKind::WriteDestIp,
        fields: &[("meta.mod_blob_ptr_dnat", 24, Exact)],
        actions: &[A::UpdateDstIp, A::NoAction],
    },
    TableSpec {
        name: "write_source_ip_table",
        kind: TableKind::WriteSourceIp,
        fields: &[("meta.mod_blob_ptr_snat", 24, Exact)],
        actions: &[A::UpdateSrcIp, A::NoAction],
    },
    TableSpec {
        name: "tx_balance_tcp",
        kind: TableKind::TxBalance(ServiceProto::Tcp),
        fields: IP_PORT_TCP,
        actions: &[A::SetDefaultLbDest, A::NoAction],
    },
    TableSpec {
        name: "tx_balance_udp",
        kind: TableKind::TxBalance(ServiceProto::Udp),
        fields: IP_PORT_UDP,
        actions: &[A::SetDefaultLbDest, A::NoAction],
    },
    TableSpec {
        name: "set_meta_tcp",
        kind: TableKind::SetMeta(ServiceProto::Tcp),
        fields: IP_PORT_TCP,
        actions: &[A::SetKeyForReverseCt, A::NoAction],
    },
    TableSpec {
        name: "set_meta_udp",
        kind: TableKind::SetMeta(ServiceProto::Udp),
        fields: IP_PORT_UDP,
        actions: &[A::SetKeyForReverseCt, A::NoAction],
    },
    TableSpec {
        name: "acl_pod_ip_proto_table_egress",
        kind: TableKind::AclPodIpProto(PolicyDir::Egress),
        fields: &[
            ("hdr.ipv4.src_addr", 32, Exact),
            ("hdr.ipv4.protocol", 8, Lpm),
        ],
        actions: POD_ACTIONS,
    },
    TableSpec {
        name: "acl_pod_ip_proto_table_ingress",
        kind: TableKind::AclPodIpProto(PolicyDir::Ingress),
        fields: &[
            ("hdr.ipv4.dst_addr", 32, Exact),
            ("hdr.ipv4.protocol", 8, Lpm),
        ],
        actions: POD_ACTIONS,
    },
    TableSpec {
        name: "acl_ipset_match_table_egress",
        kind: TableKind::AclIpsetMatch(PolicyDir::Egress),
        fields: &[
            ("meta.acl_pol_id", 8, Exact),
            ("hdr.ipv4.dst_addr", 32, Lpm),
        ],
        actions: &[A::AclDeny, A::SetIpsetMatchResult],
    },
    TableSpec {
        name: "acl_ipset_match_table_ingress",
        kind: TableKind::AclIpsetMatch(PolicyDir::Ingress),
        fields: &[
            ("meta.acl_pol_id", 8, Exact),
            ("hdr.ipv4.src_addr", 32, Lpm),
        ],
        actions: &[A::AclDeny, A::SetIpsetMatchResult],
    },
    TableSpec {
        name: "tcp_dport_rc_table",
        kind: TableKind::RangeCheck(RangeTable::Tcp),
        fields: POL_ID,
        actions: &[A::AclDeny, A::DoRangeCheck(RangeTable::Tcp)],
    },
    TableSpec {
        name: "udp_dport_rc_table",
        kind: TableKind::RangeCheck(RangeTable::Udp),
        fields: POL_ID,
        actions: &[A::UdpAclDeny, A::AclDeny, A::DoRangeCheck(RangeTable::Udp)],
    },
    TableSpec {
        name: "sctp_dport_rc_table",
        kind: TableKind::RangeCheck(RangeTable::Sctp),
        fields: POL_ID,
        actions: &[A::AclDeny, A::DoRangeCheck(RangeTable::Sctp)],
    },
    TableSpec {
        name: "udpl_dport_rc_table",
        kind: TableKind::RangeCheck(RangeTable::UdpLite),
        fields: POL_ID,
        actions: &[A::AclDeny, A::DoRangeCheck(RangeTable::UdpLite)],
    },
    TableSpec {
        name: "icmp_type_code_check_table",
        kind: TableKind::RangeCheck(RangeTable::Icmp),
        fields: POL_ID,
        actions: &[A::AclDeny, A::DoRangeCheck(RangeTable::Icmp)],
    },
    TableSpec {
        name: "pinned_flows",
        kind: TableKind::Flows(FlowDir::Forward),
        fields: FIVE_TUPLE,
        actions: &[A::FlowHit(FlowDir::Forward), A::FlowMiss(FlowDir::Forward)],
    },
    TableSpec {
        name: "pinned_flows_reverse",
        kind: TableKind::Flows(FlowDir::Reverse),
        fields: FIVE_TUPLE,
        actions: &[A::FlowHit(FlowDir::Reverse), A::FlowMiss(FlowDir::Reverse)],
    },
];

const RANGE_PARAMS: &[(&str, u32)] = &[
    ("min0", 16),
    ("max0", 16),
    ("min1", 16),
    ("max1", 16),
    ("min2", 16),
    ("max2", 16),
    ("min3", 16),
    ("max3", 16),
    ("min4", 16),
    ("max4", 16),
    ("min5", 16),
    ("max5", 16),
    ("min6", 16),
    ("max6", 16),
    ("min7", 16),
    ("max7", 16),
];
const IP_PORT_PARAMS: &[(&str, u32)] = &[("new_ip", 32), ("new_port", 16)];
const PTR_PARAM: &[(&str, u32)] = &[("ptr", 24)];

/// (name, width) of each parameter of an action.
type Params = &'static [(&'static str, u32)];

/// (name without the control prefix, kind, params) of every action.
pub(super) const ACTIONS: &[(&str, ActionKind, Params)] = &[
    ("NoAction", A::NoAction, &[]),
    ("set_dest_vport", A::SetDestVport, &[("p", 32)]),
    (
        "set_dest_mac_vport",
        A::SetDestMacVport,
        &[("p", 32), ("new_dmac", 48)],
    ),
    ("update_dst_ip", A::UpdateDstIp, IP_PORT_PARAMS),
    ("update_src_ip", A::UpdateSrcIp, IP_PORT_PARAMS),
    ("pinned_flows_hit", A::FlowHit(FlowDir::Forward), PTR_PARAM),
    ("pinned_flows_miss", A::FlowMiss(FlowDir::Forward), &[]),
    (
        "pinned_flows_reverse_hit",
        A::FlowHit(FlowDir::Reverse),
        PTR_PARAM,
    ),
    (
        "pinned_flows_reverse_miss",
        A::FlowMiss(FlowDir::Reverse),
        &[],
    ),
    ("set_default_lb_dest", A::SetDefaultLbDest, PTR_PARAM),
    ("set_key_for_reverse_ct", A::SetKeyForReverseCt, PTR_PARAM),
    ("acl_deny", A::AclDeny, &[]),
    ("udp_acl_deny", A::UdpAclDeny, &[]),
    (
        "set_range_check_ref",
        A::SetRangeCheckRef,
        &[("pol_id", 8), ("range_check_ref", 8)],
    ),
    (
        "set_status_match_ipset_only",
        A::SetStatusMatchIpsetOnly,
        &[("pol_id", 8)],
    ),
    ("set_status_deny_all", A::SetStatusDenyAll, &[]),
    (
        "do_range_check_tcp",
        A::DoRangeCheck(RangeTable::Tcp),
        RANGE_PARAMS,
    ),
    (
        "do_range_check_udp",
        A::DoRangeCheck(RangeTable::Udp),
        RANGE_PARAMS,
    ),
    (
        "do_range_check_sctp",
        A::DoRangeCheck(RangeTable::Sctp),
        RANGE_PARAMS,
    ),
    (
        "do_range_check_udplite",
        A::DoRangeCheck(RangeTable::UdpLite),
        RANGE_PARAMS,
    ),
    (
        "do_icmp_type_code_check",
        A::DoRangeCheck(RangeTable::Icmp),
        RANGE_PARAMS,
    ),
    (
        "set_ipset_match_result",
        A::SetIpsetMatchResult,
        &[("ipset_matched_mask", 8)],
    ),
];

/// `k8s_dp_control.<short>`, or `short` itself for `NoAction`.
pub(super) fn qualified(short: &str) -> String {
    if short == "NoAction" {
        short.to_owned()
    } else {
        format!("{CONTROL}.{short}")
    }
}

/// The capacity `kind` has in the dataplane configured by `cfg`.
pub fn capacity(kind: TableKind, cfg: &DataplaneConfig) -> usize {
    match kind {
        TableKind::ArptToPort | TableKind::Ipv4ToPort => cfg.pod_capacity,
        TableKind::WriteDestIp | TableKind::WriteSourceIp => cfg.nat_capacity,
        TableKind::TxBalance(_) | TableKind::SetMeta(_) => cfg.service_capacity,
        TableKind::AclPodIpProto(_) | TableKind::AclIpsetMatch(_) | TableKind::RangeCheck(_) => {
            cfg.policy_capacity
        }
        TableKind::Flows(_) => cfg.flow_capacity,
    }
}

/// The fully-qualified name of the table of `kind`.
pub fn table_name(kind: TableKind) -> String {
    TABLES
        .iter()
        .find(|t| t.kind == kind)
        .map(|t| qualified(t.name))
        .unwrap_or_default()
}

/// Every table the target implements: (fully-qualified name, kind).
pub fn known_tables() -> impl Iterator<Item = (String, TableKind)> {
    TABLES.iter().map(|t| (qualified(t.name), t.kind))
}

/// Every action the target implements: (fully-qualified name, kind).
pub fn known_actions() -> impl Iterator<Item = (String, ActionKind)> {
    ACTIONS.iter().map(|(n, k, _)| (qualified(n), *k))
}

/// The action kinds the dataplane fixes as `kind`'s default action, or
/// `None` when the default can be changed (the NAT tables).
pub fn const_default(kind: TableKind) -> Option<&'static [ActionKind]> {
    Some(match kind {
        TableKind::ArptToPort => &[A::SetDestVport],
        TableKind::Ipv4ToPort => &[A::SetDestMacVport],
        TableKind::WriteDestIp | TableKind::WriteSourceIp => return None,
        TableKind::TxBalance(_) | TableKind::SetMeta(_) | TableKind::AclPodIpProto(_) => {
            &[A::NoAction]
        }
        TableKind::AclIpsetMatch(_) => &[A::AclDeny],
        TableKind::RangeCheck(_) => &[A::AclDeny, A::UdpAclDeny],
        TableKind::Flows(FlowDir::Forward) => &[A::FlowMiss(FlowDir::Forward)],
        TableKind::Flows(FlowDir::Reverse) => &[A::FlowMiss(FlowDir::Reverse)],
    })
}
