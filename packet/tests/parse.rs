//! The parser against frames built by `etherparse`, hand-built SCTP and
//! UDP-Lite, and properties: `parse` never panics, and whatever it accepts
//! the zero-copy views accept at the offsets it returned.

use etherparse::{
    EtherType, Ethernet2Header, IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv6Header,
    PacketBuilder, VlanId,
};
use p4k8s_packet::parse::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use p4k8s_packet::wire::{
    ArpPacket, EthernetPacket, IcmpPacket, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};
use p4k8s_packet::{parse, L3Kind, L4Kind, Malformed, PacketMeta};
use proptest::prelude::*;

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

#[derive(Debug, Clone, Copy, PartialEq)]
enum L3 {
    V4,
    /// IPv4 with 8 bytes of options (IHL 7).
    V4Options,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum L4 {
    Tcp,
    Udp,
    Icmp,
}

/// What a built frame should parse to.
#[derive(Debug, Clone, Copy)]
struct Spec {
    vlan: Option<u16>,
    l3: L3,
    l4: L4,
    src4: [u8; 4],
    dst4: [u8; 4],
    src6: [u8; 16],
    dst6: [u8; 16],
    src_port: u16,
    dst_port: u16,
    payload: usize,
}

impl Spec {
    fn new(vlan: Option<u16>, l3: L3, l4: L4) -> Self {
        Spec {
            vlan,
            l3,
            l4,
            src4: [10, 1, 2, 3],
            dst4: [10, 4, 5, 6],
            src6: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst6: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            src_port: 40000,
            dst_port: 8080,
            payload: 6,
        }
    }

    fn build(&self) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(SRC_MAC, DST_MAC);
        let ip = match self.l3 {
            L3::V4 => IpHeaders::Ipv4(
                Ipv4Header::new(0, 64, IpNumber::UDP, self.src4, self.dst4).unwrap(),
                Default::default(),
            ),
            L3::V4Options => {
                let mut h = Ipv4Header::new(0, 64, IpNumber::UDP, self.src4, self.dst4).unwrap();
                h.options = [1, 1, 1, 1, 1, 1, 1, 0].into(); // NOPs and EOL
                IpHeaders::Ipv4(h, Default::default())
            }
            L3::V6 => IpHeaders::Ipv6(
                Ipv6Header {
                    hop_limit: 64,
                    source: self.src6,
                    destination: self.dst6,
                    ..Default::default()
                },
                Default::default(),
            ),
        };
        let ip = match self.vlan {
            Some(v) => eth.single_vlan(VlanId::try_new(v).unwrap()).ip(ip),
            None => eth.ip(ip),
        };
        let payload = vec![0xabu8; self.payload];
        let mut out = Vec::new();
        match (self.l4, self.l3) {
            (L4::Tcp, _) => ip
                .tcp(self.src_port, self.dst_port, 1, 1024)
                .syn()
                .ack(7)
                .write(&mut out, &payload),
            (L4::Udp, _) => ip
                .udp(self.src_port, self.dst_port)
                .write(&mut out, &payload),
            (L4::Icmp, L3::V6) => ip.icmpv6_echo_request(1, 2).write(&mut out, &payload),
            (L4::Icmp, _) => ip.icmpv4_echo_request(1, 2).write(&mut out, &payload),
        }
        .unwrap();
        out
    }

    fn expected(&self) -> PacketMeta {
        let l3_offset = if self.vlan.is_some() { 18 } else { 14 };
        let l3_len = match self.l3 {
            L3::V4 => 20,
            L3::V4Options => 28,
            L3::V6 => 40,
        };
        let mut m = PacketMeta {
            vlan: self.vlan,
            l3_offset,
            l4_offset: l3_offset + l3_len,
            ..PacketMeta::default()
        };
        if self.l3 == L3::V6 {
            m.ethertype = ETHERTYPE_IPV6;
            m.l3 = L3Kind::Ipv6;
        } else {
            m.ethertype = ETHERTYPE_IPV4;
            m.l3 = L3Kind::Ipv4;
            m.src_ip = u32::from_be_bytes(self.src4);
            m.dst_ip = u32::from_be_bytes(self.dst4);
        }
        match self.l4 {
            L4::Tcp => {
                m.l4 = L4Kind::Tcp;
                m.ip_proto = 6;
                m.tcp_flags = 0x12; // SYN|ACK
                m.src_port = self.src_port;
                m.dst_port = self.dst_port;
            }
            L4::Udp => {
                m.l4 = L4Kind::Udp;
                m.ip_proto = 17;
                m.src_port = self.src_port;
                m.dst_port = self.dst_port;
            }
            L4::Icmp => {
                m.l4 = L4Kind::Icmp;
                if self.l3 == L3::V6 {
                    m.ip_proto = 58;
                    m.icmp_type_code = 128 << 8;
                } else {
                    m.ip_proto = 1;
                    m.icmp_type_code = 8 << 8;
                }
            }
        }
        m
    }
}

fn all_specs() -> Vec<Spec> {
    let mut specs = Vec::new();
    for vlan in [None, Some(0), Some(100), Some(4095)] {
        for l3 in [L3::V4, L3::V4Options, L3::V6] {
            for l4 in [L4::Tcp, L4::Udp, L4::Icmp] {
                specs.push(Spec::new(vlan, l3, l4));
            }
        }
    }
    specs
}

/// Builds every view at the offsets `m` gives and checks they agree with it.
/// Whatever `parse` accepts, `new_checked` must accept.
fn check_views(frame: &[u8], m: &PacketMeta) {
    let eth = EthernetPacket::new_checked(frame).expect("ethernet view");
    assert_eq!(eth.dst_is_multicast(), m.dst_multicast);
    let l3 = &frame[usize::from(m.l3_offset)..];
    match m.l3 {
        L3Kind::Ipv4 => {
            let ip = Ipv4Packet::new_checked(l3).expect("ipv4 view");
            assert_eq!(
                (ip.src(), ip.dst(), ip.protocol()),
                (m.src_ip, m.dst_ip, m.ip_proto)
            );
            if m.l4 != L4Kind::None {
                let l4_offset = usize::from(m.l3_offset) + ip.header_len();
                assert_eq!(usize::from(m.l4_offset), l4_offset);
                check_l4(ip.payload(), m);
            }
        }
        L3Kind::Ipv6 => {
            let ip = Ipv6Packet::new_checked(l3).expect("ipv6 view");
            assert_eq!(
                Some((ip.src(), ip.dst(), ip.next_header())),
                m.ipv6_addresses(frame).map(|(s, d)| (s, d, m.ip_proto))
            );
            if m.l4 != L4Kind::None {
                assert_eq!(usize::from(m.l4_offset), usize::from(m.l3_offset) + 40);
                check_l4(ip.payload(), m);
            }
        }
        L3Kind::Arp => {
            let arp = ArpPacket::new_checked(l3).expect("arp view");
            assert!(arp.is_ethernet_ipv4());
            assert_eq!(arp.tpa(), m.arp_tpa);
        }
        L3Kind::Other => assert_eq!(m.l4, L4Kind::None),
    }
}

fn check_l4(l4: &[u8], m: &PacketMeta) {
    match m.l4 {
        L4Kind::Tcp => {
            let tcp = TcpPacket::new_checked(l4).expect("tcp view");
            assert_eq!(
                (tcp.src_port(), tcp.dst_port(), tcp.flags()),
                (m.src_port, m.dst_port, m.tcp_flags)
            );
        }
        L4Kind::Udp | L4Kind::UdpLite | L4Kind::Sctp => {
            // SCTP's ports sit where UDP's do; its 12-byte header was checked by parse.
            let udp = UdpPacket::new_checked(l4).expect("udp view");
            assert_eq!((udp.src_port(), udp.dst_port()), (m.src_port, m.dst_port));
        }
        L4Kind::Icmp => {
            let icmp = IcmpPacket::new_checked(l4).expect("icmp view");
            assert_eq!(
                u16::from(icmp.msg_type()) << 8 | u16::from(icmp.msg_code()),
                m.icmp_type_code
            );
        }
        L4Kind::None => {}
    }
}

#[test]
fn etherparse_frames_parse_to_the_expected_meta() {
    for spec in all_specs() {
        let frame = spec.build();
        let m = parse(&frame).unwrap_or_else(|e| panic!("{spec:?}: {e:?}"));
        assert_eq!(m, spec.expected(), "{spec:?}");
        let addrs = (spec.l3 == L3::V6).then(|| {
            (
                u128::from_be_bytes(spec.src6),
                u128::from_be_bytes(spec.dst6),
            )
        });
        assert_eq!(m.ipv6_addresses(&frame), addrs, "{spec:?}");
        check_views(&frame, &m);
        // The views agree on checksums etherparse computed.
        if let L3Kind::Ipv4 = m.l3 {
            let ip = Ipv4Packet::new_checked(&frame[usize::from(m.l3_offset)..]).unwrap();
            assert!(ip.verify_checksum(), "{spec:?}");
            match m.l4 {
                L4Kind::Tcp => assert!(TcpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum_ipv4(m.src_ip, m.dst_ip)),
                L4Kind::Udp => assert!(UdpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum_ipv4(m.src_ip, m.dst_ip)),
                L4Kind::Icmp => assert!(IcmpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum()),
                _ => unreachable!(),
            }
        }
    }
}

#[test]
fn padding_to_the_ethernet_minimum_is_ignored() {
    for spec in all_specs() {
        let spec = Spec { payload: 0, ..spec };
        let mut frame = spec.build();
        let want = parse(&frame).unwrap();
        frame.resize(frame.len().max(60) + 4, 0xee);
        assert_eq!(parse(&frame), Ok(want), "{spec:?}");
    }
}

#[test]
fn every_truncation_of_a_valid_frame_is_refused() {
    // A frame whose last byte belongs to a parsed header or to the payload
    // the IP length declares: no prefix can be accepted.
    for spec in all_specs() {
        let frame = spec.build();
        for n in 0..frame.len() {
            assert!(parse(&frame[..n]).is_err(), "{spec:?} cut to {n}");
        }
    }
}

fn eth_header(ethertype: u16) -> Vec<u8> {
    Ethernet2Header {
        source: SRC_MAC,
        destination: DST_MAC,
        ether_type: EtherType(ethertype),
    }
    .to_bytes()
    .to_vec()
}

fn ipv4_frame(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth_header(ETHERTYPE_IPV4);
    let mut h = Ipv4Header::new(
        l4.len() as u16,
        64,
        IpNumber(proto),
        [10, 0, 0, 1],
        [10, 0, 0, 2],
    )
    .unwrap();
    h.header_checksum = h.calc_header_checksum();
    f.extend_from_slice(&h.to_bytes());
    f.extend_from_slice(l4);
    f
}

fn ipv6_frame(next: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth_header(ETHERTYPE_IPV6);
    let h = Ipv6Header {
        payload_length: l4.len() as u16,
        next_header: IpNumber(next),
        hop_limit: 64,
        source: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        destination: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        ..Default::default()
    };
    f.extend_from_slice(&h.to_bytes());
    f.extend_from_slice(l4);
    f
}

/// SCTP common header (ports 36412 -> 38412, vtag, CRC32c) and an INIT chunk stub.
const SCTP: [u8; 16] = [0x8e, 0x3c, 0x96, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 4];
/// UDP-Lite header (ports 5000 -> 5001, coverage 8) and 4 bytes.
const UDP_LITE: [u8; 12] = [0x13, 0x88, 0x13, 0x89, 0, 8, 0, 0, 1, 2, 3, 4];

#[test]
fn hand_built_sctp_and_udp_lite() {
    let cases = [
        (ipv4_frame(132, &SCTP), L4Kind::Sctp, 36412, 38412, 34),
        (ipv4_frame(136, &UDP_LITE), L4Kind::UdpLite, 5000, 5001, 34),
        (ipv6_frame(132, &SCTP), L4Kind::Sctp, 36412, 38412, 54),
        (ipv6_frame(136, &UDP_LITE), L4Kind::UdpLite, 5000, 5001, 54),
    ];
    for (frame, l4, sp, dp, off) in cases {
        let m = parse(&frame).unwrap();
        assert_eq!(
            (m.l4, m.src_port, m.dst_port, m.l4_offset),
            (l4, sp, dp, off)
        );
        check_views(&frame, &m);
    }
    let cut = [
        (ipv4_frame(132, &SCTP[..11]), Malformed::TruncatedSctp),
        (ipv4_frame(136, &UDP_LITE[..7]), Malformed::TruncatedUdpLite),
        (ipv6_frame(132, &SCTP[..11]), Malformed::TruncatedSctp),
        (ipv6_frame(136, &UDP_LITE[..7]), Malformed::TruncatedUdpLite),
    ];
    for (frame, reason) in cut {
        assert_eq!(parse(&frame), Err(reason));
    }
}

#[test]
fn arp_request() {
    let mut frame = eth_header(ETHERTYPE_ARP);
    frame[..6].copy_from_slice(&[0xff; 6]);
    let mut arp = [0u8; 28];
    let mut view = ArpPacket::new_checked(&mut arp[..]).unwrap();
    view.set_ethernet_ipv4();
    view.set_oper(1);
    view.set_sha(SRC_MAC);
    view.set_spa(0x0a00_0001);
    view.set_tpa(0x0a00_00fe);
    frame.extend_from_slice(&arp);
    frame.resize(60, 0);
    let m = parse(&frame).unwrap();
    assert!(m.dst_multicast);
    assert_eq!(
        (m.l3, m.ethertype, m.arp_tpa, m.l4),
        (L3Kind::Arp, ETHERTYPE_ARP, 0x0a00_00fe, L4Kind::None)
    );
    check_views(&frame, &m);
    assert_eq!(parse(&frame[..41]), Err(Malformed::TruncatedArp));
}

#[test]
fn non_first_fragment_has_no_transport_header() {
    let mut frame = eth_header(ETHERTYPE_IPV4);
    let mut h = Ipv4Header::new(8, 64, IpNumber::TCP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
    h.dont_fragment = false;
    h.fragment_offset = IpFragOffset::try_new(185).unwrap();
    h.header_checksum = h.calc_header_checksum();
    frame.extend_from_slice(&h.to_bytes());
    frame.extend_from_slice(&[0xab; 8]); // not a TCP header
    let m = parse(&frame).unwrap();
    assert_eq!(
        (m.l3, m.ip_proto, m.l4, m.l4_offset, m.src_port, m.dst_port),
        (L3Kind::Ipv4, 6, L4Kind::None, 0, 0, 0)
    );
    check_views(&frame, &m);
}

#[test]
fn transport_header_must_lie_within_total_length() {
    let spec = Spec {
        payload: 0,
        ..Spec::new(None, L3::V4, L4::Udp)
    };
    let mut frame = spec.build();
    frame.resize(64, 0);
    frame[14 + 3] -= 1; // total length 27: the UDP header is cut, padding follows
    assert_eq!(parse(&frame), Err(Malformed::TruncatedUdp));
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (
        prop::option::of(0u16..4096),
        prop_oneof![Just(L3::V4), Just(L3::V4Options), Just(L3::V6)],
        prop_oneof![Just(L4::Tcp), Just(L4::Udp), Just(L4::Icmp)],
        any::<([u8; 4], [u8; 4], [u8; 16], [u8; 16])>(),
        any::<(u16, u16)>(),
        0usize..64,
    )
        .prop_map(
            |(vlan, l3, l4, (src4, dst4, src6, dst6), (src_port, dst_port), payload)| Spec {
                vlan,
                l3,
                l4,
                src4,
                dst4,
                src6,
                dst6,
                src_port,
                dst_port,
                payload,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..=200)) {
        if let Ok(m) = parse(&bytes) {
            check_views(&bytes, &m);
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes_after_a_plausible_header(
        ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806), Just(0x8100)],
        first in any::<u8>(),
        rest in prop::collection::vec(any::<u8>(), 0..=180),
    ) {
        let mut frame = eth_header(ethertype);
        frame.push(first);
        frame.extend_from_slice(&rest);
        if let Ok(m) = parse(&frame) {
            check_views(&frame, &m);
        }
    }

    #[test]
    fn built_frames_parse_exactly(spec in arb_spec()) {
        let frame = spec.build();
        let m = parse(&frame);
        prop_assert_eq!(m, Ok(spec.expected()));
        check_views(&frame, &spec.expected());
    }

    #[test]
    fn truncations_never_panic(spec in arb_spec(), cut in any::<prop::sample::Index>()) {
        let frame = spec.build();
        let n = cut.index(frame.len());
        prop_assert!(parse(&frame[..n]).is_err());
    }

    #[test]
    fn byte_flips_never_panic(
        spec in arb_spec(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        pad in 0usize..16,
    ) {
        let mut frame = spec.build();
        frame.resize(frame.len() + pad, 0);
        for (at, xor) in flips {
            let i = at.index(frame.len());
            frame[i] ^= xor;
        }
        if let Ok(m) = parse(&frame) {
            check_views(&frame, &m);
        }
    }
}
