//! Header rewrites with incremental checksum updates (RFC 1624).
//!
//! Offsets come from a successful parse, which checked that the IPv4
//! header and the transport header lie inside the frame; the rewrites still
//! use checked slicing and skip a field that would not fit, so no frame can
//! make them panic.

use p4k8s_packet::checksum::ChecksumDelta;
use p4k8s_packet::{L4Kind, PacketMeta};

const IPV4_CHECKSUM: usize = 10;
const IPV4_SRC: usize = 12;
const IPV4_DST: usize = 16;
const TCP_CHECKSUM: usize = 16;
const UDP_CHECKSUM: usize = 6;

#[inline]
fn read_u16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

#[inline]
fn write_u16(frame: &mut [u8], at: usize, v: u16) {
    if let Some(b) = frame.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

#[inline]
fn write_u32(frame: &mut [u8], at: usize, v: u32) {
    if let Some(b) = frame.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

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
    let l3 = usize::from(meta.l3_offset);
    let l4 = usize::from(meta.l4_offset);
    let (ip_at, port_at, old_ip, old_port) = match side {
        Side::Source => (l3 + IPV4_SRC, l4, meta.src_ip, meta.src_port),
        Side::Destination => (l3 + IPV4_DST, l4 + 2, meta.dst_ip, meta.dst_port),
    };
    let ip_delta = ChecksumDelta::new().dword(old_ip, ip);
    if let Some(check) = read_u16(frame, l3 + IPV4_CHECKSUM) {
        write_u16(frame, l3 + IPV4_CHECKSUM, ip_delta.apply(check));
    }
    write_u32(frame, ip_at, ip);
    let l4_delta = ip_delta.word(old_port, port);
    let l4_check = match meta.l4 {
        L4Kind::Tcp => Some(l4 + TCP_CHECKSUM),
        L4Kind::Udp => Some(l4 + UDP_CHECKSUM),
        _ => None,
    };
    if let (true, Some(at)) = (partial_csum, l4_check) {
        if let Some(check) = read_u16(frame, at) {
            write_u16(frame, at, !ip_delta.apply(!check));
        }
        write_u16(frame, port_at, port);
    } else {
        match meta.l4 {
            L4Kind::Tcp => {
                if let Some(check) = read_u16(frame, l4 + TCP_CHECKSUM) {
                    write_u16(frame, l4 + TCP_CHECKSUM, l4_delta.apply(check));
                }
                write_u16(frame, port_at, port);
            }
            L4Kind::Udp => {
                if let Some(check) = read_u16(frame, l4 + UDP_CHECKSUM) {
                    write_u16(frame, l4 + UDP_CHECKSUM, l4_delta.apply_udp(check));
                }
                write_u16(frame, port_at, port);
            }
            _ => {}
        }
    }
    match side {
        Side::Source => {
            meta.src_ip = ip;
            if matches!(meta.l4, L4Kind::Tcp | L4Kind::Udp) {
                meta.src_port = port;
            }
        }
        Side::Destination => {
            meta.dst_ip = ip;
            if matches!(meta.l4, L4Kind::Tcp | L4Kind::Udp) {
                meta.dst_port = port;
            }
        }
    }
}

/// `set_dest_mac_vport`'s MAC rewrite: when `new_dmac` is non-zero and
/// differs, the old destination MAC becomes the source MAC.
#[inline]
pub fn rewrite_dmac(frame: &mut [u8], new_dmac: [u8; 6]) {
    if new_dmac == [0; 6] || frame.len() < 12 || frame[0..6] == new_dmac {
        return;
    }
    frame.copy_within(0..6, 6);
    frame[0..6].copy_from_slice(&new_dmac);
}
