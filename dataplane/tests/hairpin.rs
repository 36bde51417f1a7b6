//! Hairpin service traffic: a pod load-balanced to itself. Every leg of
//! TCP and UDP exchanges is checked for addresses, ports, port and
//! checksums (full and partial).

mod common;

use common::*;
use p4k8s_dataplane::config::CLOSING_CLASS;
use p4k8s_dataplane::control::*;
use p4k8s_dataplane::stats::DropReason;
use p4k8s_dataplane::tables::FlowKey;
use p4k8s_dataplane::{DataplaneConfig, Verdict, DEFAULT_HAIRPIN_SNAT};

const POD_A: &str = "10.1.0.2";
const POD_B: &str = "10.1.0.3";
const POD_C: &str = "10.1.0.4";
const VIP: &str = "10.96.0.10";
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;

fn hp() -> u32 {
    u32::from(DEFAULT_HAIRPIN_SNAT)
}

/// Pods a, b, c on ports 2, 3, 4; a `proto` service VIP:80 whose only
/// endpoint is pod b, port 8080 (so b always picks itself).
fn world(cfg: DataplaneConfig, proto: ServiceProto) -> Fixture {
    let f = Fixture::with_config(cfg);
    f.add_pod(ip(POD_A), 2);
    f.add_pod(ip(POD_B), 3);
    f.add_pod(ip(POD_C), 4);
    f.add_service(proto, ip(VIP), 80, &[(ip(POD_B), 8080)], 1, 100);
    f
}

fn hairpin_world(proto: ServiceProto) -> Fixture {
    world(DataplaneConfig::small(), proto)
}

/// Runs `frame` from pod b's port and checks it goes back out of it,
/// with valid checksums and the MAC rewrite towards pod b; its endpoints.
fn leg(f: &Fixture, frame: &[u8]) -> (u32, u16, u32, u16) {
    let (v, out) = f.run(frame, 3);
    assert_eq!(v, Verdict::Forward(3), "back out of pod b's port");
    assert_eq!(&out[0..6], &mac_of(3), "to pod b's MAC");
    assert_checksums(&out);
    endpoints(&out)
}

#[test]
fn tcp_hairpin_connection_every_leg() {
    let f = hairpin_world(ServiceProto::Tcp);
    let (b, vip, h) = (ip(POD_B), ip(VIP), hp());
    // Client side: b:40000 -> VIP:80 arrives as H:40000 -> b:8080.
    let fwd = |flags, data: &[u8]| leg(&f, &tcp(b, vip, 40000, 80, flags, data));
    // Server side: b:8080 -> H:40000 arrives as VIP:80 -> b:40000.
    let rev = |flags, data: &[u8]| leg(&f, &tcp(b, h, 8080, 40000, flags, data));
    let to_server = (h, 40000, b, 8080);
    let to_client = (vip, 80, b, 40000);

    assert_eq!(fwd(SYN, b""), to_server, "SYN");
    assert_eq!(rev(SYN_ACK, b""), to_client, "SYN-ACK");
    assert_eq!(fwd(ACK, b""), to_server, "ACK");
    assert_eq!(
        fwd(ACK | PSH, b"GET / HTTP/1.1\r\n\r\n"),
        to_server,
        "request"
    );
    assert_eq!(
        rev(ACK | PSH, b"HTTP/1.1 200 OK\r\n\r\nb"),
        to_client,
        "response"
    );
    assert_eq!(fwd(ACK, b""), to_server, "ACK of the response");

    // The learned state records the hairpin: the reverse key has H.
    let fwd_flows = f.control.flows(FlowDir::Forward);
    assert_eq!(fwd_flows.len(), 1);
    assert_eq!(
        fwd_flows[0].key,
        FlowKey {
            src_ip: b,
            dst_ip: vip,
            proto: 6,
            src_port: 40000,
            dst_port: 80
        }
    );
    assert_eq!(fwd_flows[0].ptr, 100, "DNAT pointer: the endpoint");
    let rev_flows = f.control.flows(FlowDir::Reverse);
    assert_eq!(rev_flows.len(), 1);
    assert_eq!(
        rev_flows[0].key,
        FlowKey {
            src_ip: b,
            dst_ip: h,
            proto: 6,
            src_port: 8080,
            dst_port: 40000
        }
    );
    assert_eq!(rev_flows[0].ptr, 1, "SNAT pointer: the group");
    assert_ne!(rev_flows[0].class, CLOSING_CLASS);

    // Close: the server's FIN, the client's FIN, the server's last ACK.
    assert_eq!(rev(ACK | FIN, b""), to_client, "server FIN");
    assert_eq!(fwd(ACK | FIN, b""), to_server, "client FIN");
    assert_eq!(rev(ACK, b""), to_client, "last ACK");
    for dir in [FlowDir::Forward, FlowDir::Reverse] {
        let flows = f.control.flows(dir);
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].class, CLOSING_CLASS, "{dir:?} flow is closing");
    }
    // Past the closing timeout the NAT state is gone in both directions.
    f.advance_ms(1_500);
    assert!(f.control.flows(FlowDir::Forward).is_empty());
    assert!(f.control.flows(FlowDir::Reverse).is_empty());
    let (v, out) = f.run(&tcp(b, h, 8080, 40000, ACK, b""), 3);
    assert_eq!(v, Verdict::Forward(HOST_PORT), "H is routed nowhere");
    assert_eq!(endpoints(&out), (b, 8080, h, 40000), "not translated");

    // One hairpin rewrite per leg: 9 legs, and none for the stale reply.
    assert_eq!(f.control.stats().hairpin_rewrites, 9);
}

#[test]
fn an_rst_from_either_side_closes_a_hairpin_flow() {
    for from_server in [false, true] {
        let f = hairpin_world(ServiceProto::Tcp);
        let (b, vip, h) = (ip(POD_B), ip(VIP), hp());
        leg(&f, &tcp(b, vip, 41000, 80, SYN, b""));
        leg(&f, &tcp(b, h, 8080, 41000, SYN_ACK, b""));
        let out = if from_server {
            leg(&f, &tcp(b, h, 8080, 41000, RST, b""))
        } else {
            leg(&f, &tcp(b, vip, 41000, 80, RST, b""))
        };
        if from_server {
            assert_eq!(out, (vip, 80, b, 41000));
        } else {
            assert_eq!(out, (h, 41000, b, 8080));
        }
        let dir = if from_server {
            FlowDir::Reverse
        } else {
            FlowDir::Forward
        };
        assert_eq!(f.control.flows(dir)[0].class, CLOSING_CLASS);
    }
}

#[test]
fn udp_hairpin_exchange_every_leg() {
    let f = hairpin_world(ServiceProto::Udp);
    let (b, vip, h) = (ip(POD_B), ip(VIP), hp());
    for i in 0..3u8 {
        let q = leg(&f, &udp(b, vip, 5000, 80, &[b'q', i]));
        assert_eq!(q, (h, 5000, b, 8080), "query {i}");
        let a = leg(&f, &udp(b, h, 8080, 5000, &[b'a', i]));
        assert_eq!(a, (vip, 80, b, 5000), "answer {i}");
    }
    let rev = f.control.flows(FlowDir::Reverse);
    assert_eq!(rev.len(), 1);
    assert_eq!(rev[0].key.dst_ip, h);
    // A second client port is a second flow, and hairpinned alike.
    assert_eq!(leg(&f, &udp(b, vip, 5001, 80, b"q")), (h, 5001, b, 8080));
    assert_eq!(leg(&f, &udp(b, h, 8080, 5001, b"a")), (vip, 80, b, 5001));
}

#[test]
fn udp_hairpin_without_checksum_keeps_it_zero() {
    let f = hairpin_world(ServiceProto::Udp);
    let (b, vip, h) = (ip(POD_B), ip(VIP), hp());
    let csum = 14 + 20 + 6;
    for (frame, want) in [
        (udp(b, vip, 5002, 80, b"q"), (h, 5002, b, 8080)),
        (udp(b, h, 8080, 5002, b"a"), (vip, 80, b, 5002)),
    ] {
        let mut frame = frame;
        frame[csum..csum + 2].copy_from_slice(&[0, 0]);
        let (_, out) = f.run(&frame, 3);
        assert_eq!(&out[csum..csum + 2], &[0, 0]);
        assert_eq!(endpoints(&out), want);
        assert_checksums(&out);
    }
}

#[test]
fn hairpin_keeps_partial_checksums_partial_and_right() {
    use p4k8s_packet::offload::complete_partial_checksum;
    let f = hairpin_world(ServiceProto::Tcp);
    let (b, vip, h) = (ip(POD_B), ip(VIP), hp());
    let payload = &b"a segment's worth of payload, offloaded"[..];
    let legs = [
        (tcp(b, vip, 40010, 80, SYN, b""), (h, 40010, b, 8080)),
        (tcp(b, h, 8080, 40010, SYN_ACK, b""), (vip, 80, b, 40010)),
        (tcp(b, vip, 40010, 80, ACK, payload), (h, 40010, b, 8080)),
        (tcp(b, h, 8080, 40010, ACK, payload), (vip, 80, b, 40010)),
        (tcp(b, vip, 40010, 80, ACK | FIN, b""), (h, 40010, b, 8080)),
    ];
    for (frame, want) in legs {
        let (v, mut out) = f.run_buf(with_partial_tcp_checksum(frame), 3);
        assert_eq!(v, Verdict::Forward(3));
        assert_eq!(endpoints(out.data()), want);
        let mut vnet = out.vnet;
        complete_partial_checksum(out.data_mut(), &mut vnet).unwrap();
        assert_checksums(out.data());
    }
}

#[test]
fn other_service_traffic_is_not_hairpinned() {
    let f = Fixture::new();
    f.add_pod(ip(POD_A), 2);
    f.add_pod(ip(POD_B), 3);
    f.add_pod(ip(POD_C), 4);
    let (a, b, c, vip) = (ip(POD_A), ip(POD_B), ip(POD_C), ip(VIP));
    f.add_service(ServiceProto::Tcp, vip, 80, &[(b, 8080), (c, 8080)], 1, 100);
    // From pod b, over many client ports: connections that land on c are
    // plain service flows, those that land on b are hairpinned.
    let (mut to_b, mut to_c) = (0, 0);
    for sport in 42000..42040u16 {
        let (v, out) = f.run(&tcp(b, vip, sport, 80, SYN, b""), 3);
        assert_checksums(&out);
        let (src, sp, ep, ep_port) = endpoints(&out);
        assert_eq!((sp, ep_port), (sport, 8080));
        if ep == c {
            to_c += 1;
            assert_eq!((v, src), (Verdict::Forward(4), b), "plain service flow");
            let (v, reply) = f.run(&tcp(c, b, 8080, sport, SYN_ACK, b""), 4);
            assert_eq!(v, Verdict::Forward(3));
            assert_eq!(endpoints(&reply), (vip, 80, b, sport));
        } else {
            to_b += 1;
            assert_eq!((v, src, ep), (Verdict::Forward(3), hp(), b), "hairpin");
            let reply = leg(&f, &tcp(b, hp(), 8080, sport, SYN_ACK, b""));
            assert_eq!(reply, (vip, 80, b, sport));
        }
    }
    assert!(to_b > 0 && to_c > 0, "both endpoints picked: {to_b} {to_c}");
    // From pod a: never hairpinned, whichever endpoint.
    for sport in 43000..43020u16 {
        let (_, out) = f.run(&tcp(a, vip, sport, 80, SYN, b""), 2);
        assert_eq!(endpoints(&out).0, a);
    }
    // Pod to pod, b to itself directly: untouched.
    let frame = tcp(b, b, 44000, 8080, SYN, b"");
    let (_, out) = f.run(&frame, 3);
    assert_eq!(&out[12..], &frame[12..]);
    assert_eq!(f.control.stats().hairpin_rewrites, 2 * to_b);
}

#[test]
fn a_packet_that_leaves_by_another_port_is_not_hairpinned() {
    // b's address arriving on pod a's port (spoofed) and DNATed to b goes
    // out of port 3, not back out of port 2: no hairpin NAT.
    let f = hairpin_world(ServiceProto::Tcp);
    let b = ip(POD_B);
    let (v, out) = f.run(&tcp(b, ip(VIP), 45000, 80, SYN, b""), 2);
    assert_eq!(v, Verdict::Forward(3));
    assert_eq!(endpoints(&out), (b, 45000, b, 8080));
    assert_eq!(f.control.flows(FlowDir::Reverse)[0].key.dst_ip, b);
    assert_eq!(f.control.stats().hairpin_rewrites, 0);
}

#[test]
fn hairpin_nat_can_be_turned_off() {
    let cfg = DataplaneConfig {
        hairpin_snat: None,
        ..DataplaneConfig::small()
    };
    let f = world(cfg, ServiceProto::Tcp);
    let b = ip(POD_B);
    // Upstream's behaviour: b's own address comes back to it.
    let (v, out) = f.run(&tcp(b, ip(VIP), 40000, 80, SYN, b""), 3);
    assert_eq!(v, Verdict::Forward(3));
    assert_eq!(endpoints(&out), (b, 40000, b, 8080));
    assert_checksums(&out);
}

#[test]
fn a_configured_hairpin_address_is_used() {
    let other = "169.254.7.7".parse().unwrap();
    let cfg = DataplaneConfig {
        hairpin_snat: Some(other),
        ..DataplaneConfig::small()
    };
    let f = world(cfg, ServiceProto::Udp);
    let (b, vip, h) = (ip(POD_B), ip(VIP), u32::from(other));
    assert_eq!(leg(&f, &udp(b, vip, 6000, 80, b"q")), (h, 6000, b, 8080));
    assert_eq!(leg(&f, &udp(b, h, 8080, 6000, b"a")), (vip, 80, b, 6000));
    // The default address means nothing here.
    let (v, _) = f.run(&udp(b, hp(), 8080, 6000, b"a"), 3);
    assert_eq!(v, Verdict::Forward(HOST_PORT));
}

#[test]
fn policy_sees_a_hairpin_flow_as_the_pod_talking_to_itself() {
    let (b, vip, h) = (ip(POD_B), ip(VIP), hp());
    // Ingress policy of b: TCP 8080 from 10.1.0.0/16 only. The hairpin
    // flow is allowed: policy sees b, not the hairpin address, as the peer.
    let f = hairpin_world(ServiceProto::Tcp);
    f.commit(vec![
        TableOp::AclPodIpProto(
            PolicyDir::Ingress,
            Op::Insert(
                proto_key(b, Some(6)),
                AclAction::RangeCheckRef {
                    pol_id: 1,
                    range_check_ref: 1,
                },
            ),
        ),
        TableOp::AclIpsetMatch(
            PolicyDir::Ingress,
            Op::Insert(
                prefix32(1, ip("10.1.0.0"), 16),
                IpsetAction::SetMatchResult { mask: 1 },
            ),
        ),
        TableOp::AclIpsetMatch(
            PolicyDir::Ingress,
            Op::Insert(
                prefix32(1, ip("10.96.0.0"), 16),
                IpsetAction::SetMatchResult { mask: 2 },
            ),
        ),
        TableOp::RangeCheck(
            RangeTable::Tcp,
            Op::Insert(
                1,
                RangeAction::Check {
                    ranges: [
                        (8080, 8080),
                        (1024, 65535),
                        (1, 0),
                        (1, 0),
                        (1, 0),
                        (1, 0),
                        (1, 0),
                        (1, 0),
                    ],
                },
            ),
        ),
    ]);
    assert_eq!(
        leg(&f, &tcp(b, vip, 46000, 80, SYN, b"")),
        (h, 46000, b, 8080)
    );
    assert_eq!(
        leg(&f, &tcp(b, h, 8080, 46000, SYN_ACK, b"")),
        (vip, 80, b, 46000)
    );

    // Egress deny-all on b: its hairpin traffic is b's, and is denied both ways.
    let f = hairpin_world(ServiceProto::Tcp);
    f.commit(vec![TableOp::AclPodIpProto(
        PolicyDir::Egress,
        Op::Insert(proto_key(b, None), AclAction::DenyAll),
    )]);
    for frame in [
        tcp(b, vip, 46001, 80, SYN, b""),
        tcp(b, h, 8080, 46001, SYN_ACK, b""),
    ] {
        assert_eq!(f.run(&frame, 3).0, Verdict::Drop(DropReason::EgressPolicy));
    }
}
