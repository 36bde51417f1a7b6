//! The k8s pipeline, table-driven, with frames built by etherparse and
//! every checksum verified after every rewrite.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use p4k8s_dataplane::control::*;
use p4k8s_dataplane::stats::DropReason;
use p4k8s_dataplane::tables::FlowKey;
use p4k8s_dataplane::Verdict;
use p4k8s_packet::Malformed;

const POD_A: &str = "10.1.0.2";
const POD_B: &str = "10.1.0.3";
const POD_C: &str = "10.1.0.4";
const VIP: &str = "10.96.0.10";

fn pods() -> Fixture {
    let f = Fixture::new();
    f.add_pod(ip(POD_A), 2);
    f.add_pod(ip(POD_B), 3);
    f.add_pod(ip(POD_C), 4);
    f
}

#[test]
fn pod_to_pod_is_routed_with_mac_rewrite() {
    let f = pods();
    let frame = tcp(ip(POD_A), ip(POD_B), 40000, 80, ACK, b"hello");
    let (v, out) = f.run(&frame, 2);
    assert_eq!(v, Verdict::Forward(3));
    assert_eq!(&out[0..6], &mac_of(3), "new destination MAC");
    assert_eq!(
        &out[6..12],
        &GW_MAC,
        "old destination MAC becomes the source"
    );
    assert_eq!(&out[12..], &frame[12..], "nothing past the MACs changes");
    assert_checksums(&out);
}

#[test]
fn forwarding_by_destination_table() {
    let f = pods();
    let cases: &[(&str, Vec<u8>, Verdict)] = &[
        (
            "arp to pod b",
            arp_request(ip(POD_A), ip(POD_B)),
            Verdict::Forward(3),
        ),
        (
            "arp to unknown goes to host",
            arp_request(ip(POD_A), ip("10.9.9.9")),
            Verdict::Forward(HOST_PORT),
        ),
        (
            "ipv4 to unknown goes to host",
            udp(ip(POD_A), ip("8.8.8.8"), 5353, 53, b"q"),
            Verdict::Forward(HOST_PORT),
        ),
        (
            "icmp pod to pod",
            icmp_echo(ip(POD_A), ip(POD_C)),
            Verdict::Forward(4),
        ),
    ];
    for (name, frame, want) in cases {
        assert_eq!(f.run(frame, 2).0, *want, "{name}");
    }
}

#[test]
fn broadcast_and_multicast_dropped_but_arp_kept() {
    let f = pods();
    let mut bcast = udp(ip(POD_A), ip(POD_B), 1, 2, b"x");
    bcast[0..6].copy_from_slice(&[0xff; 6]);
    let mut mcast = udp(ip(POD_A), ip(POD_B), 1, 2, b"x");
    mcast[0..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 1]);
    assert_eq!(f.run(&bcast, 2).0, Verdict::Drop(DropReason::Multicast));
    assert_eq!(f.run(&mcast, 2).0, Verdict::Drop(DropReason::Multicast));
    assert_eq!(
        f.run(&arp_request(ip(POD_A), ip(POD_B)), 2).0,
        Verdict::Forward(3)
    );
    assert_eq!(f.control.drops(DropReason::Multicast), 2);
}

fn service_fixture(proto: ServiceProto) -> Fixture {
    let f = pods();
    f.add_service(
        proto,
        ip(VIP),
        80,
        &[(ip(POD_B), 8080), (ip(POD_C), 8080)],
        1,
        100,
    );
    f
}

#[test]
fn tcp_service_dnat_pinning_and_snat_of_replies() {
    let f = service_fixture(ServiceProto::Tcp);
    let client = ip(POD_A);
    let (v, syn_out) = f.run(&tcp(client, ip(VIP), 40001, 80, SYN, b""), 2);
    assert_checksums(&syn_out);
    let (src, sport, ep, ep_port) = endpoints(&syn_out);
    assert_eq!((src, sport, ep_port), (client, 40001, 8080));
    let ep_port_id = if ep == ip(POD_B) { 3 } else { 4 };
    assert!(ep == ip(POD_B) || ep == ip(POD_C));
    assert_eq!(v, Verdict::Forward(ep_port_id));

    // Later packets of the connection stay on the endpoint.
    for flags in [ACK, ACK | 0x08, ACK | 0x01] {
        let (v, out) = f.run(&tcp(client, ip(VIP), 40001, 80, flags, b"data"), 2);
        assert_eq!(v, Verdict::Forward(ep_port_id));
        assert_eq!(endpoints(&out), (client, 40001, ep, 8080));
        assert_checksums(&out);
    }
    // Replies leave with VIP:port as their source.
    for flags in [SYN_ACK, ACK] {
        let (v, out) = f.run(&tcp(ep, client, 8080, 40001, flags, b"resp"), ep_port_id);
        assert_eq!(v, Verdict::Forward(2));
        assert_eq!(endpoints(&out), (ip(VIP), 80, client, 40001));
        assert_checksums(&out);
    }
    let fwd = f.control.flows(FlowDir::Forward);
    assert_eq!(fwd.len(), 1);
    assert_eq!(
        fwd[0].key,
        FlowKey {
            src_ip: client,
            dst_ip: ip(VIP),
            proto: 6,
            src_port: 40001,
            dst_port: 80
        }
    );
    let rev = f.control.flows(FlowDir::Reverse);
    assert_eq!(
        rev[0].key,
        FlowKey {
            src_ip: ep,
            dst_ip: client,
            proto: 6,
            src_port: 8080,
            dst_port: 40001
        }
    );
    assert_eq!(rev[0].ptr, 1, "SNAT pointer is the group id");
}

#[test]
fn udp_service_dnat_pinning_and_snat_of_replies() {
    let f = service_fixture(ServiceProto::Udp);
    let client = ip(POD_A);
    let (_, first) = f.run(&udp(client, ip(VIP), 5000, 80, b"q1"), 2);
    let (_, _, ep, _) = endpoints(&first);
    assert_checksums(&first);
    for _ in 0..5 {
        let (_, out) = f.run(&udp(client, ip(VIP), 5000, 80, b"q2"), 2);
        assert_eq!(endpoints(&out), (client, 5000, ep, 8080));
        assert_checksums(&out);
    }
    let ep_port_id = if ep == ip(POD_B) { 3 } else { 4 };
    let (v, out) = f.run(&udp(ep, client, 8080, 5000, b"a"), ep_port_id);
    assert_eq!(v, Verdict::Forward(2));
    assert_eq!(endpoints(&out), (ip(VIP), 80, client, 5000));
    assert_checksums(&out);
}

#[test]
fn udp_zero_checksum_stays_zero_through_nat() {
    let f = service_fixture(ServiceProto::Udp);
    let mut frame = udp(ip(POD_A), ip(VIP), 5001, 80, b"nocsum");
    let udp_csum = 14 + 20 + 6;
    frame[udp_csum..udp_csum + 2].copy_from_slice(&[0, 0]);
    let (_, out) = f.run(&frame, 2);
    assert_eq!(&out[udp_csum..udp_csum + 2], &[0, 0]);
    assert_checksums(&out);
}

#[test]
fn selection_spreads_over_endpoints_and_is_stable_per_flow() {
    let f = pods();
    let eps: Vec<(u32, u16)> = (0..4).map(|i| (ip("10.1.1.0") + i, 9000)).collect();
    f.add_service(ServiceProto::Tcp, ip(VIP), 443, &eps, 7, 200);
    let mut count: HashMap<u32, u32> = HashMap::new();
    for sport in 0..2000u16 {
        let (_, out) = f.run(&tcp(ip(POD_A), ip(VIP), 20000 + sport, 443, SYN, b""), 2);
        let (_, _, ep, _) = endpoints(&out);
        *count.entry(ep).or_default() += 1;
        // The same flow picks the same endpoint again (pinned or re-selected).
        let (_, again) = f.run(&tcp(ip(POD_A), ip(VIP), 20000 + sport, 443, SYN, b""), 2);
        assert_eq!(endpoints(&again).2, ep);
    }
    assert_eq!(count.len(), 4, "every endpoint is used: {count:?}");
    for n in count.values() {
        assert!((350..650).contains(n), "uneven spread: {count:?}");
    }
}

#[test]
fn selector_choice_is_a_function_of_source_ip_and_port() {
    // Two separate dataplanes with the same group choose alike, without
    // any learned state: the choice depends only on (src IP, src port).
    let a = service_fixture(ServiceProto::Tcp);
    let b = service_fixture(ServiceProto::Tcp);
    for sport in 1000..1100 {
        let frame = tcp(ip(POD_A), ip(VIP), sport, 80, SYN, b"");
        assert_eq!(
            endpoints(&a.run(&frame, 2).1),
            endpoints(&b.run(&frame, 2).1)
        );
    }
}

#[test]
fn learned_flows_expire_when_idle_and_refresh_on_hits() {
    let mut cfg = p4k8s_dataplane::DataplaneConfig::small();
    cfg.expiry_ms[2] = 1_000;
    let f = Fixture::with_config(cfg);
    f.add_pod(ip(POD_A), 2);
    f.add_pod(ip(POD_B), 3);
    f.add_service(ServiceProto::Tcp, ip(VIP), 80, &[(ip(POD_B), 8080)], 1, 100);
    f.run(&tcp(ip(POD_A), ip(VIP), 40000, 80, SYN, b""), 2);
    // Busy: a packet every 600 ms keeps the flow past its timeout.
    for _ in 0..5 {
        f.advance_ms(600);
        let (_, out) = f.run(&tcp(ip(POD_A), ip(VIP), 40000, 80, ACK, b"x"), 2);
        assert_eq!(endpoints(&out).2, ip(POD_B), "still pinned");
        let (_, reply) = f.run(&tcp(ip(POD_B), ip(POD_A), 8080, 40000, ACK, b"y"), 3);
        assert_eq!(endpoints(&reply).0, ip(VIP), "still SNATed");
    }
    assert_eq!(f.control.flows(FlowDir::Forward).len(), 1);
    // Idle past the timeout: gone in both directions.
    f.advance_ms(1_500);
    assert!(f.control.flows(FlowDir::Forward).is_empty());
    assert!(f.control.flows(FlowDir::Reverse).is_empty());
    let (_, out) = f.run(&tcp(ip(POD_A), ip(VIP), 40000, 80, ACK, b"x"), 2);
    assert_eq!(endpoints(&out).2, ip(VIP), "no NAT once the flow expired");
}

#[test]
fn flows_can_be_read_and_deleted_through_the_control_api() {
    let f = service_fixture(ServiceProto::Tcp);
    f.run(&tcp(ip(POD_A), ip(VIP), 40000, 80, SYN, b""), 2);
    let key = f.control.flows(FlowDir::Forward)[0].key;
    let r = f.control.commit(
        vec![TableOp::Flow(FlowDir::Forward, Op::Delete(key))],
        CommitMode::ContinueOnError,
    );
    assert_eq!(r, vec![Ok(())]);
    assert!(f.control.flow(FlowDir::Forward, &key).is_none());
    let r = f.control.commit(
        vec![TableOp::Flow(FlowDir::Forward, Op::Delete(key))],
        CommitMode::ContinueOnError,
    );
    assert!(matches!(
        r[0],
        Err(TableError::NotFound {
            table: TableId::PinnedFlows,
            ..
        })
    ));
}

/// One policy case: the tables written, the packet, the expected verdict.
struct PolicyCase {
    name: &'static str,
    acl: Option<AclAction>,
    acl_proto: Option<u8>,
    ipset: Option<(u32, u8, u8)>,
    range: Option<(RangeTable, RangeAction)>,
    frame: Vec<u8>,
    allowed: bool,
}

fn ranges(list: &[(u16, u16)]) -> RangeAction {
    let mut r = [(1u16, 0u16); 8];
    for (i, x) in list.iter().enumerate() {
        r[i] = *x;
    }
    RangeAction::Check { ranges: r }
}

#[test]
fn every_policy_verdict_in_both_directions() {
    let a = ip(POD_A);
    let b = ip(POD_B);
    let rc = |pol_id, r| {
        Some(AclAction::RangeCheckRef {
            pol_id,
            range_check_ref: r,
        })
    };
    let cases = || {
        vec![
            PolicyCase {
                name: "no entry allows",
                acl: None,
                acl_proto: None,
                ipset: None,
                range: None,
                frame: tcp(a, b, 1, 80, ACK, b""),
                allowed: true,
            },
            PolicyCase {
                name: "NoAction allows",
                acl: Some(AclAction::NoAction),
                acl_proto: None,
                ipset: None,
                range: None,
                frame: tcp(a, b, 1, 80, ACK, b""),
                allowed: true,
            },
            PolicyCase {
                name: "deny all",
                acl: Some(AclAction::DenyAll),
                acl_proto: None,
                ipset: None,
                range: None,
                frame: tcp(a, b, 1, 80, ACK, b""),
                allowed: false,
            },
            PolicyCase {
                name: "deny all for tcp only lets udp pass",
                acl: Some(AclAction::DenyAll),
                acl_proto: Some(6),
                ipset: None,
                range: None,
                frame: udp(a, b, 1, 80, b""),
                allowed: true,
            },
            PolicyCase {
                name: "ipset only, peer in set",
                acl: Some(AclAction::MatchIpsetOnly { pol_id: 1 }),
                acl_proto: None,
                ipset: Some((ip("10.1.0.0"), 16, 0b1)),
                range: None,
                frame: tcp(a, b, 1, 80, ACK, b""),
                allowed: true,
            },
            PolicyCase {
                name: "ipset only, peer not in set",
                acl: Some(AclAction::MatchIpsetOnly { pol_id: 1 }),
                acl_proto: None,
                ipset: Some((ip("10.2.0.0"), 16, 0b1)),
                range: None,
                frame: tcp(a, b, 1, 80, ACK, b""),
                allowed: false,
            },
            PolicyCase {
                name: "tcp port in range",
                acl: rc(2, 1),
                acl_proto: Some(6),
                ipset: Some((0, 0, 0b11)),
                range: Some((RangeTable::Tcp, ranges(&[(443, 443), (80, 90)]))),
                frame: tcp(a, b, 1, 85, ACK, b""),
                allowed: true,
            },
            PolicyCase {
                name: "tcp port out of range",
                acl: rc(2, 1),
                acl_proto: Some(6),
                ipset: Some((0, 0, 0b11)),
                range: Some((RangeTable::Tcp, ranges(&[(443, 443), (80, 90)]))),
                frame: tcp(a, b, 1, 91, ACK, b""),
                allowed: false,
            },
            PolicyCase {
                name: "range matches a rule whose ipset did not",
                acl: rc(2, 1),
                acl_proto: Some(6),
                ipset: Some((0, 0, 0b01)),
                range: Some((RangeTable::Tcp, ranges(&[(443, 443), (80, 90)]))),
                frame: tcp(a, b, 1, 85, ACK, b""),
                allowed: false,
            },
            PolicyCase {
                name: "udp port in range",
                acl: rc(3, 2),
                acl_proto: Some(17),
                ipset: Some((0, 0, 1)),
                range: Some((RangeTable::Udp, ranges(&[(53, 53)]))),
                frame: udp(a, b, 1, 53, b""),
                allowed: true,
            },
            PolicyCase {
                name: "udp range table miss denies",
                acl: rc(3, 2),
                acl_proto: Some(17),
                ipset: Some((0, 0, 1)),
                range: None,
                frame: udp(a, b, 1, 53, b""),
                allowed: false,
            },
            PolicyCase {
                name: "icmp type/code in range",
                acl: rc(4, 5),
                acl_proto: Some(1),
                ipset: Some((0, 0, 1)),
                range: Some((RangeTable::Icmp, ranges(&[(0x0800, 0x08ff)]))),
                frame: icmp_echo(a, b),
                allowed: true,
            },
            PolicyCase {
                name: "icmp type/code out of range",
                acl: rc(4, 5),
                acl_proto: Some(1),
                ipset: Some((0, 0, 1)),
                range: Some((RangeTable::Icmp, ranges(&[(0x0000, 0x00ff)]))),
                frame: icmp_echo(a, b),
                allowed: false,
            },
            PolicyCase {
                name: "tcp rule on a udp packet",
                acl: rc(2, 1),
                acl_proto: None,
                ipset: Some((0, 0, 1)),
                range: Some((RangeTable::Tcp, ranges(&[(0, 65535)]))),
                frame: udp(a, b, 1, 53, b""),
                allowed: false,
            },
        ]
    };
    for dir in [PolicyDir::Egress, PolicyDir::Ingress] {
        for case in cases() {
            let f = pods();
            let pod = if dir == PolicyDir::Egress { a } else { b };
            let mut ops = Vec::new();
            if let Some(action) = case.acl {
                ops.push(TableOp::AclPodIpProto(
                    dir,
                    Op::Insert(proto_key(pod, case.acl_proto), action),
                ));
            }
            let pol_id = match case.acl {
                Some(AclAction::MatchIpsetOnly { pol_id })
                | Some(AclAction::RangeCheckRef { pol_id, .. }) => pol_id,
                _ => 0,
            };
            if let Some((net, len, mask)) = case.ipset {
                ops.push(TableOp::AclIpsetMatch(
                    dir,
                    Op::Insert(
                        prefix32(pol_id, net, len),
                        IpsetAction::SetMatchResult { mask },
                    ),
                ));
            }
            if let Some((table, action)) = case.range {
                ops.push(TableOp::RangeCheck(table, Op::Insert(pol_id, action)));
            }
            f.commit(ops);
            let (v, _) = f.run(&case.frame, 2);
            let want = if case.allowed {
                Verdict::Forward(3)
            } else if dir == PolicyDir::Egress {
                Verdict::Drop(DropReason::EgressPolicy)
            } else {
                Verdict::Drop(DropReason::IngressPolicy)
            };
            assert_eq!(v, want, "{:?}: {}", dir, case.name);
        }
    }
}

#[test]
fn egress_policy_applies_only_to_host_to_net_ports() {
    let f = pods();
    f.commit(vec![
        TableOp::Port(Op::Insert(9, PortDirection::NetToHost)),
        TableOp::AclPodIpProto(
            PolicyDir::Egress,
            Op::Insert(proto_key(ip(POD_A), None), AclAction::DenyAll),
        ),
    ]);
    let frame = tcp(ip(POD_A), ip(POD_B), 1, 80, ACK, b"");
    assert_eq!(f.run(&frame, 2).0, Verdict::Drop(DropReason::EgressPolicy));
    assert_eq!(
        f.run(&frame, 9).0,
        Verdict::Forward(3),
        "from the network side only ingress policy runs"
    );
}

#[test]
fn counters_follow_the_program() {
    let f = pods();
    f.commit(vec![TableOp::AclPodIpProto(
        PolicyDir::Ingress,
        Op::Insert(proto_key(ip(POD_B), None), AclAction::DenyAll),
    )]);
    f.run(&tcp(ip(POD_A), ip(POD_B), 1, 80, ACK, b""), 2);
    f.run(&tcp(ip(POD_A), ip(POD_C), 1, 80, ACK, b""), 2);
    f.run(&arp_request(ip(POD_A), ip(POD_C)), 2);
    // Index 10 counts every pass: 2 per IPv4 packet, 1 per ARP.
    assert_eq!(f.control.counter(10), Some((5, 0)));
    assert_eq!(f.control.counter(40), Some((1, 0)), "deny all");
    assert_eq!(f.control.counter(80), Some((1, 0)), "acl_deny");
    assert_eq!(
        f.control.counter(299),
        Some((1, 0)),
        "one packet passed ingress"
    );
    assert_eq!(f.control.table_stats(TableId::Ipv4ToPort), (1, 0));
    assert_eq!(f.control.table_stats(TableId::ArptToPort), (1, 0));
    assert_eq!(f.control.table_stats(TableId::AclPodIpProtoIngress), (1, 1));
    assert_eq!(f.control.drops(DropReason::IngressPolicy), 1);
    f.control.set_counter(10, 100, 0).unwrap();
    f.run(&arp_request(ip(POD_A), ip(POD_C)), 2);
    assert_eq!(f.control.counter(10), Some((101, 0)));
    assert_eq!(f.control.counter(5000), None);
}

#[test]
fn each_malformed_reason_is_counted_and_dropped() {
    let f = pods();
    let good_tcp = tcp(ip(POD_A), ip(POD_B), 1, 80, ACK, b"");
    let good_udp = udp(ip(POD_A), ip(POD_B), 1, 80, b"");
    let good_icmp = icmp_echo(ip(POD_A), ip(POD_B));
    let with = |base: &[u8], at: usize, v: u8| {
        let mut x = base.to_vec();
        x[at] = v;
        x
    };
    let mut vlan_cut = good_tcp[..12].to_vec();
    vlan_cut.extend_from_slice(&[0x81, 0x00, 0x00]);
    let mut ipv6_short = good_tcp[..12].to_vec();
    ipv6_short.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    let mut ipv6_badver = good_tcp[..12].to_vec();
    ipv6_badver.extend_from_slice(&[0x86, 0xdd]);
    ipv6_badver.extend_from_slice(&[0x40; 40]);
    ipv6_badver[18..20].copy_from_slice(&[0, 0]);
    let mut sctp = good_udp[..14 + 20].to_vec();
    sctp[14 + 9] = 132;
    sctp[14 + 3] = 20 + 4;
    sctp.extend_from_slice(&[0, 1, 0, 2]);
    let mut udpl = sctp.clone();
    udpl[14 + 9] = 136;
    let cases: Vec<(&str, Vec<u8>, Malformed)> = vec![
        ("short ethernet", vec![0; 10], Malformed::TruncatedEthernet),
        ("vlan cut", vlan_cut, Malformed::TruncatedVlan),
        (
            "arp cut",
            arp_request(1, 2)[..30].to_vec(),
            Malformed::TruncatedArp,
        ),
        (
            "arp not ipv4",
            with(&arp_request(1, 2), 16, 0x86),
            Malformed::UnsupportedArp,
        ),
        (
            "ipv4 cut",
            good_tcp[..24].to_vec(),
            Malformed::TruncatedIpv4,
        ),
        (
            "ipv4 version",
            with(&good_tcp, 14, 0x55),
            Malformed::BadIpv4Version,
        ),
        (
            "ipv4 ihl",
            with(&good_tcp, 14, 0x44),
            Malformed::BadIpv4HeaderLength,
        ),
        (
            "ipv4 total length",
            with(&good_tcp, 17, 0xff),
            Malformed::BadIpv4TotalLength,
        ),
        ("ipv6 cut", ipv6_short, Malformed::TruncatedIpv6),
        ("ipv6 version", ipv6_badver, Malformed::BadIpv6Version),
        (
            "tcp data offset",
            with(&good_tcp, 14 + 20 + 12, 0x20),
            Malformed::TruncatedTcp,
        ),
        (
            "udp cut",
            {
                let mut x = good_udp[..14 + 20 + 4].to_vec();
                x[17] = 24;
                x
            },
            Malformed::TruncatedUdp,
        ),
        ("sctp cut", sctp, Malformed::TruncatedSctp),
        ("udp-lite cut", udpl, Malformed::TruncatedUdpLite),
        (
            "icmp cut",
            {
                let mut x = good_icmp[..14 + 20 + 2].to_vec();
                x[17] = 22;
                x
            },
            Malformed::TruncatedIcmp,
        ),
    ];
    let mut seen = HashSet::new();
    for (name, frame, reason) in cases {
        assert_eq!(
            f.run(&frame, 2).0,
            Verdict::Drop(DropReason::Malformed(reason)),
            "{name}"
        );
        seen.insert(reason);
        assert_eq!(
            f.control.drops(DropReason::Malformed(reason)),
            1,
            "{name} counted once"
        );
    }
    assert_eq!(seen.len(), Malformed::ALL.len(), "every reason covered");
}

#[test]
fn the_dataplane_answers_arp_for_the_pod_gateway() {
    let f = pods();
    let gw = p4k8s_dataplane::Gateway::default();
    let (v, out) = f.run(&arp_request(ip(POD_A), gw.ip), 2);
    assert_eq!(
        v,
        Verdict::Forward(2),
        "the reply goes back to the asking pod"
    );
    let arp = p4k8s_packet::wire::ArpPacket::new_checked(&out[14..]).expect("reply parses");
    assert_eq!(arp.oper(), 2);
    assert_eq!((arp.sha(), arp.spa()), (gw.mac, gw.ip));
    assert_eq!((arp.tha(), arp.tpa()), (CLIENT_MAC, ip(POD_A)));
    assert_eq!(&out[0..6], &CLIENT_MAC);
    // A reply to the gateway (not a request) is just forwarded by the program.
    let mut not_request = arp_request(ip(POD_A), gw.ip);
    not_request[21] = 2;
    assert_eq!(f.run(&not_request, 2).0, Verdict::Forward(HOST_PORT));
}

#[test]
fn nat_keeps_partial_checksums_partial_and_right() {
    use p4k8s_packet::offload::complete_partial_checksum;
    let f = service_fixture(ServiceProto::Tcp);
    for (flags, payload) in [(SYN, &b""[..]), (ACK, &b"a segment's worth of payload"[..])] {
        let frame = tcp(ip(POD_A), ip(VIP), 40010, 80, flags, payload);
        let (_, mut out) = f.run_buf(with_partial_tcp_checksum(frame), 2);
        let (_, _, ep, ep_port) = endpoints(out.data());
        assert_eq!(ep_port, 8080);
        assert!(ep == ip(POD_B) || ep == ip(POD_C));
        let mut vnet = out.vnet;
        complete_partial_checksum(out.data_mut(), &mut vnet).unwrap();
        assert_checksums(out.data());
    }
}

#[test]
fn a_new_direct_connection_supersedes_a_closing_service_flow_at_once() {
    let f = service_fixture(ServiceProto::Tcp);
    let client = ip(POD_A);
    let (_, syn) = f.run(&tcp(client, ip(VIP), 40300, 80, SYN, b""), 2);
    let (_, _, ep, _) = endpoints(&syn);
    let ep_port_id = if ep == ip(POD_B) { 3 } else { 4 };
    f.run(&tcp(ep, client, 8080, 40300, ACK | 0x01, b""), ep_port_id);
    f.run(&tcp(client, ip(VIP), 40300, 80, ACK | 0x01, b""), 2);
    // Right away (inside the 1 s closing class), the same client port
    // opens a direct connection to the endpoint: its SYN-ACK is not SNATed
    // to the VIP (the kernel's conntrack lets such a connection through too).
    f.run(&tcp(client, ep, 40300, 8080, SYN, b""), 2);
    assert_eq!(f.control.stats().superseded_flows, 1);
    let (_, syn_ack) = f.run(&tcp(ep, client, 8080, 40300, SYN_ACK, b""), ep_port_id);
    assert_eq!(endpoints(&syn_ack), (ep, 8080, client, 40300));
    // A live (not closing) service flow is never superseded.
    let (_, syn) = f.run(&tcp(client, ip(VIP), 40400, 80, SYN, b""), 2);
    let (_, _, ep2, _) = endpoints(&syn);
    let ep2_port_id = if ep2 == ip(POD_B) { 3 } else { 4 };
    f.run(&tcp(client, ep2, 40400, 8080, SYN, b""), 2);
    assert_eq!(f.control.stats().superseded_flows, 1);
    let (_, reply) = f.run(&tcp(ep2, client, 8080, 40400, ACK, b"x"), ep2_port_id);
    assert_eq!(endpoints(&reply).0, ip(VIP));
}

#[test]
fn closed_connections_do_not_rewrite_a_later_direct_one_on_the_same_ports() {
    let f = service_fixture(ServiceProto::Tcp);
    let client = ip(POD_A);
    let (_, syn) = f.run(&tcp(client, ip(VIP), 40100, 80, SYN, b""), 2);
    let (_, _, ep, _) = endpoints(&syn);
    let ep_port_id = if ep == ip(POD_B) { 3 } else { 4 };
    // The endpoint closes (HTTP with Connection: close); the client answers.
    let (_, fin) = f.run(&tcp(ep, client, 8080, 40100, ACK | 0x01, b""), ep_port_id);
    assert_eq!(endpoints(&fin).0, ip(VIP), "the FIN itself is still SNATed");
    f.run(&tcp(client, ip(VIP), 40100, 80, ACK | 0x01, b""), 2);
    // Past the closing class's timeout (1 s), a direct connection from the
    // same client port to the endpoint gets its SYN-ACK unchanged.
    f.advance_ms(1_500);
    let (_, direct) = f.run(&tcp(client, ep, 40100, 8080, SYN, b""), 2);
    assert_eq!(endpoints(&direct), (client, 40100, ep, 8080));
    let (_, syn_ack) = f.run(&tcp(ep, client, 8080, 40100, SYN_ACK, b""), ep_port_id);
    assert_eq!(
        endpoints(&syn_ack),
        (ep, 8080, client, 40100),
        "no SNAT from a closed flow"
    );
    // An open connection is not cut short: its flows keep the long class.
    let (_, syn) = f.run(&tcp(client, ip(VIP), 40200, 80, SYN, b""), 2);
    let (_, _, ep2, _) = endpoints(&syn);
    let ep2_port_id = if ep2 == ip(POD_B) { 3 } else { 4 };
    f.advance_ms(1_500);
    let (_, reply) = f.run(&tcp(ep2, client, 8080, 40200, ACK, b"x"), ep2_port_id);
    assert_eq!(endpoints(&reply).0, ip(VIP));
}
