//! Fuzzes `parse`, then builds every zero-copy view at the offsets it
//! returned: whatever `parse` accepts, `new_checked` must accept, and no
//! accessor may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use p4k8s_packet::wire::{
    ArpPacket, EthernetPacket, IcmpPacket, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};
use p4k8s_packet::{parse, L3Kind, L4Kind};

fuzz_target!(|frame: &[u8]| {
    let Ok(m) = parse(frame) else {
        return;
    };
    let eth = EthernetPacket::new_checked(frame).expect("ethernet");
    assert_eq!(eth.dst_is_multicast(), m.dst_multicast);
    let _ = (eth.src(), eth.dst(), eth.ethertype(), eth.payload());

    let Some(l3) = frame.get(usize::from(m.l3_offset)..) else {
        panic!("l3_offset {} past the frame", m.l3_offset);
    };
    let l3_offset = usize::from(m.l3_offset);
    // The transport header's range in the frame: up to the end of the IP packet.
    let l4_end = match m.l3 {
        L3Kind::Ipv4 => {
            let ip = Ipv4Packet::new_checked(l3).expect("ipv4");
            assert_eq!(
                (ip.src(), ip.dst(), ip.protocol()),
                (m.src_ip, m.dst_ip, m.ip_proto)
            );
            let _ = (
                ip.options(),
                ip.verify_checksum(),
                ip.ttl(),
                ip.frag_offset(),
            );
            if m.l4 != L4Kind::None {
                assert_eq!(
                    usize::from(m.l4_offset),
                    usize::from(m.l3_offset) + ip.header_len()
                );
            }
            assert_eq!(
                ip.payload().len(),
                usize::from(ip.total_len()) - ip.header_len()
            );
            l3_offset + usize::from(ip.total_len())
        }
        L3Kind::Ipv6 => {
            let ip = Ipv6Packet::new_checked(l3).expect("ipv6");
            assert_eq!(
                Some((ip.src(), ip.dst(), ip.next_header())),
                m.ipv6_addresses(frame).map(|(s, d)| (s, d, m.ip_proto))
            );
            let _ = (ip.flow_label(), ip.traffic_class(), ip.hop_limit());
            assert_eq!(ip.payload().len(), usize::from(ip.payload_len()));
            l3_offset + 40 + usize::from(ip.payload_len())
        }
        L3Kind::Arp => {
            let arp = ArpPacket::new_checked(l3).expect("arp");
            assert!(arp.is_ethernet_ipv4());
            assert_eq!(arp.tpa(), m.arp_tpa);
            let _ = (arp.oper(), arp.sha(), arp.spa(), arp.tha());
            return;
        }
        L3Kind::Other => return,
    };
    if m.l4 == L4Kind::None {
        return;
    }
    let Some(l4) = frame.get(usize::from(m.l4_offset)..l4_end) else {
        panic!("l4 range {}..{l4_end} outside the frame", m.l4_offset);
    };
    match m.l4 {
        L4Kind::Tcp => {
            let tcp = TcpPacket::new_checked(l4).expect("tcp");
            assert_eq!(
                (tcp.src_port(), tcp.dst_port(), tcp.flags()),
                (m.src_port, m.dst_port, m.tcp_flags)
            );
            let _ = (
                tcp.options(),
                tcp.payload(),
                tcp.verify_checksum_ipv4(m.src_ip, m.dst_ip),
            );
        }
        L4Kind::Udp | L4Kind::UdpLite | L4Kind::Sctp => {
            let udp = UdpPacket::new_checked(l4).expect("udp");
            assert_eq!((udp.src_port(), udp.dst_port()), (m.src_port, m.dst_port));
            let _ = (udp.payload(), udp.verify_checksum_ipv4(m.src_ip, m.dst_ip));
        }
        L4Kind::Icmp => {
            let icmp = IcmpPacket::new_checked(l4).expect("icmp");
            assert_eq!(
                u16::from(icmp.msg_type()) << 8 | u16::from(icmp.msg_code()),
                m.icmp_type_code
            );
            let _ = (
                icmp.echo_ident(),
                icmp.echo_seq(),
                icmp.body(),
                icmp.verify_checksum(),
            );
        }
        L4Kind::None => {}
    }
});
