//! Header rewrites with incremental checksum updates (RFC 1624).
//!
//! Offsets come from a successful parse; the header views are built with
//! their checked constructors all the same, and a header that does not fit
//! is left alone, so no frame can make a rewrite panic.

use p4k8s_packet::checksum::ChecksumDelta;
use p4k8s_packet::wire::{EthernetPacket, Ipv4Packet, TcpPacket, UdpPacket};
use p4k8s_packet::{L4Kind, PacketMeta};

/// Which end of the flow a rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Source address and port (`update_src_ip`).
    Source,
    /// Destination address and port (`update_dst_ip`).
    Destination,
}

/// Rewrites the address (and, for TCP and UDP, the port) of one side of an
/// IPv4 packet, updating the IPv4 header checksum and the TCP/UDP checksum
/// (whose pseudo-header covers the address). A UDP checksum of 0 stays 0.
/// `meta` is updated to the new values.
///
/// With `partial_csum` (a frame whose L4 checksum is left to the receiver,
/// virtio-net `NEEDS_CSUM`), the checksum field holds the uncomplemented
/// pseudo-header sum: only the address change goes into it, uncomplemented;
/// the port is covered when the checksum is completed.
#[inline]
pub fn rewrite(
    frame: &mut [u8],
    meta: &mut PacketMeta,
    side: Side,
    ip: u32,
    port: u16,
    partial_csum: bool,
) {
    let (old_ip, old_port) = match side {
        Side::Source => (meta.src_ip, meta.src_port),
        Side::Destination => (meta.dst_ip, meta.dst_port),
    };
    let ip_delta = ChecksumDelta::new().dword(old_ip, ip);
    if let Some(Ok(mut ipv4)) = frame
        .get_mut(usize::from(meta.l3_offset)..)
        .map(Ipv4Packet::new_checked)
    {
        ipv4.set_checksum(ip_delta.apply(ipv4.checksum()));
        match side {
            Side::Source => ipv4.set_src(ip),
            Side::Destination => ipv4.set_dst(ip),
        }
    }
    let l4_delta = ip_delta.word(old_port, port);
    let new_check = |check: u16, udp: bool| match (partial_csum, udp) {
        (true, _) => !ip_delta.apply(!check),
        (false, true) => l4_delta.apply_udp(check),
        (false, false) => l4_delta.apply(check),
    };
    let l4 = frame.get_mut(usize::from(meta.l4_offset)..);
    let ported = match (meta.l4, l4) {
        (L4Kind::Tcp, Some(buf)) => match TcpPacket::new_checked(buf) {
            Ok(mut tcp) => {
                tcp.set_checksum(new_check(tcp.checksum(), false));
                match side {
                    Side::Source => tcp.set_src_port(port),
                    Side::Destination => tcp.set_dst_port(port),
                }
                true
            }
            Err(_) => false,
        },
        (L4Kind::Udp, Some(buf)) => match UdpPacket::new_checked(buf) {
            Ok(mut udp) => {
                udp.set_checksum(new_check(udp.checksum(), true));
                match side {
                    Side::Source => udp.set_src_port(port),
                    Side::Destination => udp.set_dst_port(port),
                }
                true
            }
            Err(_) => false,
        },
        _ => false,
    };
    match side {
        Side::Source => {
            meta.src_ip = ip;
            if ported {
                meta.src_port = port;
            }
        }
        Side::Destination => {
            meta.dst_ip = ip;
            if ported {
                meta.dst_port = port;
            }
        }
    }
}

/// `set_dest_mac_vport`'s MAC rewrite: when `new_dmac` is non-zero and
/// differs, the old destination MAC becomes the source MAC.
#[inline]
pub fn rewrite_dmac(frame: &mut [u8], new_dmac: [u8; 6]) {
    let Ok(mut eth) = EthernetPacket::new_checked(frame) else {
        return;
    };
    let old = eth.dst();
    if new_dmac == [0; 6] || old == new_dmac {
        return;
    }
    eth.set_src(old);
    eth.set_dst(new_dmac);
}
