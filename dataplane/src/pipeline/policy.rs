//! Network policy: the `acl_*` tables and the range checks, per direction.
//!
//! Reads: the pod IP (source for egress, destination for ingress), the peer
//! IP, the IP protocol and the L4 port or ICMP type/code, all after any DNAT
//! of this pass. Writes nothing but counters. Follows: SNAT (egress, pass
//! 0) or forwarding (ingress, pass 1) when allowed; drop when denied.
//! Counter indices are the upstream program's (`pkt_cntr.count(..)`).

use p4k8s_packet::{L4Kind, PacketMeta};

use crate::control::{AclAction, IpsetAction, PolicyDir, RangeAction, RangeTable, TableId};
use crate::stats::Tally;
use crate::tables::TableSet;

const ACL_DENY: usize = 80;

/// Runs the policy of direction `d`; `true` when the packet may pass.
#[inline]
pub fn allows<const RECORD: bool>(
    t: &TableSet,
    stats: &mut Tally<'_, '_, RECORD>,
    d: PolicyDir,
    m: &PacketMeta,
) -> bool {
    let (base, pod_ip, peer_ip, pod_table, ipset_table) = match d {
        PolicyDir::Egress => (
            100,
            m.src_ip,
            m.dst_ip,
            TableId::AclPodIpProtoEgress,
            TableId::AclIpsetMatchEgress,
        ),
        PolicyDir::Ingress => (
            200,
            m.dst_ip,
            m.src_ip,
            TableId::AclPodIpProtoIngress,
            TableId::AclIpsetMatchIngress,
        ),
    };
    stats.pkt_count(base);
    let (action, hit) = t.acl_pod_ip_proto[d.index()].lookup(pod_ip, u128::from(m.ip_proto));
    stats.lookup(pod_table, hit);
    let (pol_id, range_ref) = match action {
        AclAction::NoAction => {
            stats.pkt_count(base + 90);
            return true;
        }
        AclAction::DenyAll => {
            stats.pkt_count(40);
            stats.pkt_count(ACL_DENY);
            return false;
        }
        AclAction::MatchIpsetOnly { pol_id } => {
            stats.pkt_count(41);
            (pol_id, None)
        }
        AclAction::RangeCheckRef {
            pol_id,
            range_check_ref,
        } => {
            stats.pkt_count(42);
            (pol_id, Some(range_check_ref))
        }
    };
    stats.pkt_count(base + 10);
    let (ipset, hit) = t.acl_ipset_match[d.index()].lookup(pol_id, u128::from(peer_ip));
    stats.lookup(ipset_table, hit);
    let ipset_mask = match ipset {
        IpsetAction::Deny => {
            stats.pkt_count(ACL_DENY);
            return false;
        }
        IpsetAction::SetMatchResult { mask } => {
            stats.pkt_count(200);
            stats.byte_count(200, u64::from(mask));
            mask
        }
    };
    let Some(range_ref) = range_ref else {
        stats.pkt_count(base + 90);
        return true;
    };
    stats.pkt_count(base + 20);
    let mut range_mask = 0u8;
    if let Some(rt) = RangeTable::from_ref(range_ref) {
        let value = match (rt, m.l4) {
            (RangeTable::Tcp, L4Kind::Tcp)
            | (RangeTable::Udp, L4Kind::Udp)
            | (RangeTable::Sctp, L4Kind::Sctp)
            | (RangeTable::UdpLite, L4Kind::UdpLite) => Some(m.dst_port),
            (RangeTable::Icmp, L4Kind::Icmp) => Some(m.icmp_type_code),
            // The packet lacks the header the rule checks: no range matches.
            _ => None,
        };
        if let Some(value) = value {
            let (action, hit) = t.range_check[rt.index()].lookup(&pol_id);
            stats.lookup(rt.table(), hit);
            match action {
                RangeAction::Deny => {
                    if rt == RangeTable::Udp {
                        stats.pkt_count(60);
                    }
                    stats.pkt_count(ACL_DENY);
                    return false;
                }
                RangeAction::Check { ranges } => {
                    for (i, (min, max)) in ranges.iter().enumerate() {
                        if *min <= value && value <= *max {
                            range_mask |= 1 << i;
                        }
                    }
                }
            }
        }
    }
    stats.pkt_count(base + 30);
    stats.byte_count(base + 15, u64::from(ipset_mask));
    stats.byte_count(base + 25, u64::from(range_mask));
    if ipset_mask & range_mask == 0 {
        stats.pkt_count(base + 80);
        stats.pkt_count(ACL_DENY);
        return false;
    }
    stats.pkt_count(base + 90);
    true
}
